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
export type ReasonGroup = 'package' | 'feed' | 'policy' | 'rollout' | 'refusal' | 'api' | 'legacy';

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
  TooLarge: text('package', 'the package exceeds a size, depth or element limit'),
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
  NotFound: text('api', 'nothing is served at that path'),
  DashboardNotBuilt: text('api', "the dashboard's files are missing: the app was not built"),
  InternalError: text('api', 'the request failed inside emfleet: the log has the details'),

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
