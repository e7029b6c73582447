/*
 * The reason catalogue: every reason emfleet gives, anywhere (package rejections, feed freezes and
 * holds, policy decisions, rollout states, refused actions, admin API problems), as one stable code
 * with its message template. Rows, the admin API, the CLI, logs, notifications and the dashboard
 * all carry the code and the detail apart, and render the words from here, so they say the same
 * thing (STYLE: "reasons are constants with message templates"; argo-rollouts
 * utils/conditions/conditions.go).
 *
 * The template is a function of typed facts: `reason('WaveHalted', { wave: 1, failed: 3, … })`
 * renders the detail once, when the reason is given; the row keeps `reasonCode` and that
 * `reasonDetail` text. What a person reads is `renderReason`: the code's label (EM's own words
 * where EM has them, `Disabled (org)`, `NotApplicable (fixed)`) and the detail. The detail is
 * kept as text, not as the facts, so a row stays readable in Storage Explorer and a release that
 * rewords a template still shows what an older one wrote.
 *
 * This module imports nothing, not even zod: the dashboard's browser script loads it as it is.
 */

/** Which part of emfleet gives the reason. */
export type ReasonGroup =
  | 'package'
  | 'feed'
  | 'policy'
  | 'rollout'
  | 'refusal'
  | 'api'
  | 'error'
  | 'agent'
  | 'local'
  | 'legacy';

interface ReasonSpec<Params, Group extends ReasonGroup = ReasonGroup> {
  readonly group: Group;
  /** The words before the detail: the code itself, or EM's phrase for it. */
  readonly label: string;
  /** What the code means, whatever the detail: for help texts, docs and log events. */
  readonly meaning: string;
  /** The detail from the facts of one occurrence. */
  readonly detail: (params: Params) => string;
}

/** A reason whose detail is free text (a verifier's or a parser's own words). */
const text = <Group extends ReasonGroup>(
  group: Group,
  meaning: string,
  label?: string,
): ReasonSpec<string, Group> => ({
  group,
  label: label ?? '',
  meaning,
  detail: (detail) => detail,
});

/** A reason whose detail is built from typed facts. */
const template = <Params, Group extends ReasonGroup>(
  group: Group,
  meaning: string,
  detail: (params: Params) => string,
  label?: string,
): ReasonSpec<Params, Group> => ({ group, label: label ?? '', meaning, detail });

/** "wave 2 (retry 1)": waves are counted from 1 for people, from 0 in rows. */
const waveName = (wave: number, attempt = 0): string =>
  `wave ${wave + 1}${attempt > 0 ? ` (retry ${attempt})` : ''}`;

/** The first ten names, then how many more. */
const firstNames = (names: readonly string[]): string =>
  names.slice(0, 10).join(', ') + (names.length > 10 ? ` and ${names.length - 10} more` : '');

const definitions = {
  // ---- package rejections (lib/package/verify.ts; the agent gives the same codes)
  Malformed: text('package', 'the package is not a well-formed EOCS document'),
  TooLarge: text(
    'package',
    'the package exceeds a size, depth or element limit (the agent answers a request body over its limit so too)',
  ),
  BadSignature: text('package', 'the XML signature is missing, misplaced or does not match the content'),
  UnsupportedAlgorithm: text('package', 'the signature uses an algorithm outside the allow-list'),
  UntrustedChain: text('package', 'the signer certificate does not chain to a configured trust anchor'),
  WrongSigner: text('package', 'the signer certificate has the wrong subject or extended key usage'),
  Expired: text('package', 'a certificate in the chain was not valid at signing time'),
  Revoked: text('package', 'a certificate in the chain is on the revoked-serials deny-list'),
  BadTimestamp: text(
    'package',
    'the RFC 3161 time stamp of the signature is present but not valid or not trusted',
  ),
  Rollback: text('package', 'the package is older than the last accepted package from the same feed'),

  // ---- feeds (lib/rollout/frozen.ts, lib/rollout/poll.ts): a frozen feed's reason is one of these or a rejection code
  NotConfigured: text(
    'feed',
    'the feed is no longer in the settings, but servers still have its mitigations',
  ),
  Misconfigured: text(
    'feed',
    "the feed's settings cannot be used (an unreadable trust anchor or Key Vault reference, a pin that matches no anchor)",
  ),
  PackageHeld: template(
    'feed',
    'a verified package whose age cannot be told would withdraw mitigations: it waits for an admin to approve it',
    (held: { readonly feed: string; readonly sha256: string; readonly withdrawn: readonly string[] }) =>
      `package ${held.sha256} carries no trusted signing time or sequence to show it is newer, and would withdraw ${held.withdrawn.join(', ')}; approve it with emfleet feed accept ${held.sha256} --feed ${held.feed}`,
  ),

  // ---- policy decisions (lib/policy/decide.ts, DESIGN §6): the labels are what admins read
  DisabledByOrg: text('policy', 'mitigations are disabled for the organization', 'Disabled (org)'),
  DisabledByServer: text('policy', 'mitigations are disabled on the server', 'Disabled (server)'),
  BlockedByOrg: text('policy', 'the mitigation is blocked for the organization', 'Blocked (org)'),
  BlockedByServer: text('policy', 'the mitigation is blocked on the server', 'Blocked (server)'),
  NotApplicable: text('policy', "the server's Exchange build is outside the mitigation's ranges"),
  NotApplicableFixed: text(
    'policy',
    "the server's Exchange build includes the fix: the mitigation is not needed, and is removed where applied",
    'NotApplicable (fixed)',
  ),
  PolicyError: text(
    'policy',
    'a policy or a server fact cannot be used: nothing is applied or removed there',
  ),
  Unsupported: text('policy', 'the mitigation has an action emfleet cannot apply'),
  Applicable: text('policy', 'the mitigation applies to the server'),
  Withdrawn: text('policy', "the feed's newer package no longer has the mitigation: it is removed"),
  Undecided: text('policy', "the feed's current package no longer verifies, so policy cannot decide"),

  // ---- rollout states (lib/rollout/state.ts)
  WaveHalted: template(
    'rollout',
    'a wave had more failures than its error budget: the rollout holds until an admin retries or aborts it',
    (halt: {
      readonly wave: number;
      readonly attempt: number;
      readonly failed: number;
      readonly maxErrors: number;
      readonly failedServers: readonly string[];
    }) =>
      `${waveName(halt.wave, halt.attempt)} had ${halt.failed} failures, over its budget of ${halt.maxErrors}${halt.failedServers.length > 0 ? ` (${firstNames(halt.failedServers)})` : ''}`,
  ),
  PausedByAdmin: template(
    'rollout',
    'an admin paused the rollout: no more servers are sent to until it resumes',
    (paused: { readonly actor: string }) => `by ${paused.actor}`,
    'Paused',
  ),
  ResumedByAdmin: template(
    'rollout',
    'an admin resumed a paused rollout',
    (resumed: { readonly actor: string }) => `by ${resumed.actor}`,
    'Resumed',
  ),
  AbortedByAdmin: template(
    'rollout',
    'an admin ended the rollout: no further server is touched; a halt it ends still holds its mitigations',
    (aborted: { readonly actor: string; readonly after?: string }) =>
      `by ${aborted.actor}${aborted.after ? ` after ${aborted.after}` : ''}`,
    'Aborted',
  ),
  RetriedByAdmin: template(
    'rollout',
    'an admin retried a halted wave: its failed and unreached servers are sent again, then the rollout carries on',
    (retried: { readonly actor: string; readonly wave: number }) =>
      `by ${retried.actor}: ${waveName(retried.wave)} sent again to its failed and unreached servers`,
    'Retried',
  ),
  ExpeditedByAdmin: template(
    'rollout',
    'an admin switched the rollout to the emergency profile',
    (expedited: { readonly actor: string }) => `by ${expedited.actor}`,
    'Expedited',
  ),
  NotPlanned: template(
    'rollout',
    "a queued message names a server the rollout's plan does not have: it is ignored",
    (stray: { readonly wave: number; readonly index: number }) =>
      `${waveName(stray.wave)} has no server at plan index ${stray.index}`,
  ),
  Superseded: template(
    'rollout',
    'a queued message belongs to an earlier pass of its wave: a retry sent the wave again, so it is ignored',
    (stale: { readonly wave: number; readonly attempt: number }) =>
      `${waveName(stale.wave)} is on retry ${stale.attempt}`,
  ),

  // ---- refused admin actions and late events (the state machine's answer, in the log, the API, the CLI and Audit alike)
  Refused: template(
    'refusal',
    "the rollout's state does not allow the action (or the event came late): nothing changed",
    (refused: {
      readonly event: string;
      readonly why: string;
      readonly state: string;
      readonly wave: number;
      readonly waveCount: number;
    }) =>
      `${refused.event} refused: ${refused.why} (rollout is ${refused.state}, wave ${refused.wave + 1} of ${refused.waveCount})`,
  ),

  // ---- the admin API's problems (`{code, detail}`)
  InvalidRoute: text('api', 'a part of the URL path is not valid'),
  InvalidQuery: text('api', 'a query parameter is not valid'),
  InvalidBody: text('api', 'the request body is not valid'),
  InvalidHeader: text('api', 'a request header is not valid'),
  Unauthenticated: text('api', 'the request carries no valid credential'),
  Forbidden: text('api', "the caller's role does not allow the request"),
  RolloutNotFound: text('api', 'no rollout has that id'),
  ServerNotFound: text('api', 'no server has that name'),
  UnknownFeed: text('api', 'no feed has that name'),
  NoPackage: text('api', 'the feed has no accepted package yet'),
  NotHeld: text('api', 'the feed holds no package with that SHA-256'),
  NotFound: text(
    'api',
    'nothing is served at that path (an admin API or agent path), or the IIS site, application pool or Windows service an action names does not exist',
  ),
  DashboardNotBuilt: text('api', "the dashboard's files are missing: the app was not built"),
  InternalError: text(
    'api',
    'the request failed inside emfleet (or inside the agent): the log has the details',
  ),

  // ---- failures (EmfleetError codes, lib/errors.ts): what the CLI's stderr, logs and the API's 500 name
  Config: text('error', 'a setting or a configuration file makes the work impossible: fix it, do not retry'),
  Usage: text(
    'error',
    'the command line is wrong, or a file it names cannot be read: nothing was done (exit code 2)',
  ),
  Conflict: text('error', 'a Tables row kept changing under every optimistic (ETag) retry'),
  InvalidRow: text(
    'error',
    'a Tables row does not have the shape this release reads: it is skipped, never guessed',
  ),
  PackageStore: text('error', 'a package the rows name is missing from the Packages table or cannot be read'),
  AdminApiUnreachable: text('error', "the CLI cannot reach the function app's admin API"),
  AdminApiFailed: text(
    'error',
    'the admin API answered something other than its JSON (a proxy page, an unexpected shape, a code this release does not know)',
  ),
  UnreadablePackage: text('error', 'emfleet package test cannot read the package it was given'),
  ProbeUnmet: text('error', 'a request of emfleet package test did not get the verdict its probe expects'),
  InvalidRewriteRule: text(
    'error',
    "an IIS URL Rewrite rule of a mitigation is outside what emfleet's evaluator understands",
  ),
  RelayProvisioning: text(
    'error',
    'creating or reading an Azure Relay hybrid connection or its rules failed',
  ),
  Unreachable: text(
    'error',
    'no agent answered over Azure Relay: no listener, no such hybrid connection, a relay fault or a network failure; retry later',
  ),
  RelayAuth: text(
    'error',
    'Azure Relay refused the send token: fix the send rule or the role assignment, retrying does not help',
  ),
  Timeout: text(
    'error',
    'no answer in time (the relay, the agent, or a PowerShell script): the work may still have happened',
  ),
  BadReply: text('error', 'the agent (or a script it ran) answered something the protocol does not allow'),
  InvalidRequest: text('error', 'a request to the agent would break the protocol: it was not sent'),
  AgentRefused: text(
    'error',
    'the agent refused with a code this release does not know: the detail has its words',
  ),
  OcsDns: text('error', "the feed's host name does not resolve"),
  OcsTls: text('error', "the feed's TLS handshake or certificate failed (a TLS-inspecting proxy?)"),
  OcsHttpStatus: text('error', 'the feed answered an HTTP error status'),
  OcsTimeout: text('error', 'the feed did not answer in time'),
  OcsTooLarge: text('error', "the feed's answer is larger than a package may be"),
  OcsNetwork: text('error', 'the connection to the feed failed (refused, reset)'),
  OcsProxy: text('error', 'the proxy in front of the feed refused or failed the connection'),
  ListenerClosed: text('error', "the agent's relay listener closed before it was ready"),
  Journal: text('error', "the agent's journal cannot be read or written"),
  StateDirectoryUnsafe: text(
    'error',
    "the agent's state directory or journal can be written by others: the agent refuses to use it",
  ),
  RequestTooLarge: text('error', 'a request body to the agent is larger than its limit'),
  SpawnFailed: text('error', 'the agent cannot start PowerShell'),
  ConstrainedLanguage: text(
    'error',
    "PowerShell runs the agent's scripts in Constrained Language mode (WDAC or AppLocker): sign or allow them",
  ),
  Not64Bit: text('error', 'PowerShell runs as a 32-bit process, which cannot use IIS configuration'),
  ScriptFailed: text('error', 'a PowerShell script of the agent failed'),
  OutputTooLarge: text('error', 'a PowerShell script wrote more output than the agent reads: it was stopped'),
  UrlRewriteMissing: text('error', 'the IIS URL Rewrite module is not installed on the server'),
  DuplicateRule: text(
    'error',
    'the site already inherits a rule of that name: a second one would make IIS refuse the site (HTTP 500.19)',
  ),
  StateCorrupt: text('error', "the simulated server's state file cannot be read"),
  InjectedFault: text('error', 'a failure the simulated applier was told to give (tests and the local lab)'),

  // ---- the agent's refusals on the wire (`{error, detail}`) and the reasons of its log events
  BadRequest: text('agent', 'the request to the agent is not valid JSON or not what the protocol allows'),
  MethodNotAllowed: text('agent', "the agent's path does not take that HTTP method"),
  NotBehindThisHub: text(
    'agent',
    "the site hub has no agent of that relay path: check the Servers row's site and relayPath",
  ),
  AgentUnreachable: text('agent', 'the site hub could not reach the agent over the site LAN'),
  AgentTimeout: text('agent', "the agent did not answer within the site hub's forward deadline"),
  HubSignatureMissing: text('agent', 'a request from the site hub carries no signature'),
  HubSignatureBadFormat: text('agent', "the site hub's signature header cannot be read"),
  HubSignatureBadSignature: text('agent', "the site hub's signature does not match this site's secret"),
  HubSignatureWrongServer: text('agent', 'the site hub signed the request for another server'),
  HubSignatureStale: text('agent', "the site hub's signature is too old or from the future"),
  HubSignatureReplayed: text('agent', "the site hub's signature nonce was already used"),
  ListenTokenRefused: text(
    'agent',
    'Azure Relay refused the listen token (401): check the listen rule name and key',
  ),
  ListenNotGranted: text('agent', 'the listen token does not grant Listen on the hybrid connection (403)'),
  HybridConnectionMissing: text('agent', 'the hybrid connection does not exist (404)'),
  ControlChannelClosed: text('agent', "the relay listener's control channel closed: it reconnects"),
  NoListenToken: text('agent', 'the agent could not make a listen token: it tries again'),
  ListenFailed: text('agent', 'the relay listener could not open its control channel: it tries again'),
  ExchangeSetupRunning: template(
    'agent',
    'Exchange setup (a cumulative or security update) is running: changes and drift checks wait until it ends',
    (setup: { readonly evidence: string }) =>
      `Exchange setup is running (${setup.evidence}); changes wait until it ends, as a disabled Exchange service is a known cause of failed updates`,
  ),

  // ---- the local Functions host and Azure Relay emulator (lib/local, `npm start`): the real services' behaviour
  MaxDequeueCountExceeded: text(
    'local',
    'a queue message was already dequeued more often than maxDequeueCount: it goes to the poison queue without a run',
  ),
  MaxDequeueCountReached: text(
    'local',
    'a queue message failed its last allowed run (maxDequeueCount): it goes to the poison queue',
  ),
  NotBase64: text('local', 'a queue message is not Base64: the host moves it to the poison queue at once'),
  SasBadFormat: text('local', 'a Shared Access Signature token cannot be read'),
  SasUnknownKeyName: text('local', 'a Shared Access Signature names no rule the hybrid connection has'),
  SasBadSignature: text('local', "a Shared Access Signature does not match its rule's key"),
  SasExpired: text('local', 'a Shared Access Signature token has expired'),
  SasWrongResource: text('local', 'a Shared Access Signature is for another resource'),

  // ---- a row written before codes: its text is kept whole as the detail
  Legacy: text('legacy', 'a reason recorded by a release before reason codes, shown as it was written'),
} as const satisfies Record<string, ReasonSpec<never>>;

export type ReasonCode = keyof typeof definitions;
/** The codes of one group, as a type: `ReasonCodeOf<'package'>` is every rejection code. */
export type ReasonCodeOf<Group extends ReasonGroup> = {
  [Code in ReasonCode]: (typeof definitions)[Code]['group'] extends Group ? Code : never;
}[ReasonCode];
/** The facts a code's template takes: free text, or an object of typed fields. */
export type ReasonParams<Code extends ReasonCode> = Parameters<(typeof definitions)[Code]['detail']>[0];

/** Every code, its group, label and meaning: for docs, help texts and the dashboard. */
export const reasonCatalogue: Readonly<
  Record<ReasonCode, { readonly group: ReasonGroup; readonly label: string; readonly meaning: string }>
> = definitions;

export const reasonCodes = Object.keys(definitions) as ReasonCode[];

/** The codes of one group, e.g. `reasonCodesOf('package')` = every rejection code. */
export const reasonCodesOf = <Group extends ReasonGroup>(group: Group): ReasonCodeOf<Group>[] =>
  reasonCodes.filter((code): code is ReasonCodeOf<Group> => definitions[code].group === group);

/**
 * One reason as rows, JSON answers, log events and notifications carry it: the code, and the
 * detail its template rendered, in two fields of these names everywhere (spread it in).
 */
export interface Reason<Code extends string = ReasonCode> {
  readonly reasonCode: Code;
  readonly reasonDetail: string;
}

/** The reason for `code`, its detail rendered from the facts once. */
export function reason<Code extends ReasonCode>(code: Code, params: ReasonParams<Code>): Reason<Code> {
  const detail = definitions[code].detail as (facts: ReasonParams<Code>) => string;
  return { reasonCode: code, reasonDetail: detail(params) };
}

export function isReasonCode(value: string): value is ReasonCode {
  return Object.hasOwn(definitions, value);
}

/** What a person reads for a code: EM's phrase where it has one, else the code. An unknown code (a newer release's) reads as itself. */
export function reasonLabel(code: string): string {
  return isReasonCode(code) ? definitions[code].label || code : code;
}

/**
 * The reason in words: `WaveHalted: wave 2 had 3 failures, over its budget of 1 (ex01)`,
 * `Disabled (org): mitigations are disabled …`, the label alone when there is no detail, and a
 * legacy row's text as it was written.
 */
export function renderReason(given: Reason<string>): string {
  if (given.reasonCode === 'Legacy') return given.reasonDetail;
  const label = reasonLabel(given.reasonCode);
  return given.reasonDetail ? `${label}: ${given.reasonDetail}` : label;
}

/**
 * A stored reason read back: the code and detail a row keeps apart, or, for a row an earlier
 * release wrote (its reason as one text, no code), that text as the detail of a `Legacy` reason.
 * No reason at all is undefined. A code this release does not know is kept as it is.
 */
export function storedReason(stored: {
  readonly reasonCode?: string | undefined;
  readonly reasonDetail?: string | undefined;
  readonly legacyText?: string | undefined;
}): Reason<string> | undefined {
  if (stored.reasonCode) return { reasonCode: stored.reasonCode, reasonDetail: stored.reasonDetail ?? '' };
  if (stored.legacyText) return { reasonCode: 'Legacy', reasonDetail: stored.legacyText };
  return undefined;
}
