import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/main.js';
import { ConfigError, EmfleetError } from '../../lib/errors.js';
import {
  isReasonCode,
  reason,
  reasonCatalogue,
  reasonCodes,
  reasonCodesOf,
  reasonLabel,
  renderReason,
  storedReason,
  type ReasonCode,
} from '../../lib/model/reasons.js';

describe('the reason catalogue', () => {
  it.each(reasonCodes)('%s has a group and a meaning, and renders with and without a detail', (code) => {
    const entry = reasonCatalogue[code];
    expect(entry.meaning.length).toBeGreaterThan(10);
    expect(entry.group).toMatch(/^(package|feed|policy|rollout|refusal|api|error|agent|local|legacy)$/);
    if (code === 'Legacy') return;
    expect(renderReason({ reasonCode: code, reasonDetail: '' })).toBe(reasonLabel(code));
    expect(renderReason({ reasonCode: code, reasonDetail: 'what happened' })).toBe(
      `${reasonLabel(code)}: what happened`,
    );
  });

  it('has the package rejection codes of DESIGN §4, and no code twice in any group', () => {
    expect(reasonCodesOf('package')).toEqual([
      'Malformed',
      'TooLarge',
      'BadSignature',
      'UnsupportedAlgorithm',
      'UntrustedChain',
      'WrongSigner',
      'Expired',
      'Revoked',
      'BadTimestamp',
      'Rollback',
    ]);
    expect(new Set(reasonCodes).size).toBe(reasonCodes.length);
  });

  it.each<{ name: string; code: ReasonCode; label: string }>([
    { name: 'org disabled', code: 'DisabledByOrg', label: 'Disabled (org)' },
    { name: 'server disabled', code: 'DisabledByServer', label: 'Disabled (server)' },
    { name: 'blocked for the org', code: 'BlockedByOrg', label: 'Blocked (org)' },
    { name: 'blocked on the server', code: 'BlockedByServer', label: 'Blocked (server)' },
    { name: 'outside the ranges', code: 'NotApplicable', label: 'NotApplicable' },
    { name: 'fixed by the build', code: 'NotApplicableFixed', label: 'NotApplicable (fixed)' },
    { name: 'a rejection', code: 'BadSignature', label: 'BadSignature' },
    { name: 'a pause', code: 'PausedByAdmin', label: 'Paused' },
  ])('$name: code $code reads as $label', ({ code, label }) => {
    expect(reasonLabel(code)).toBe(label);
  });

  it.each<{ name: string; given: ReturnType<typeof reason>; text: string }>([
    {
      name: 'a halt names the wave, the count, the budget and the servers',
      given: reason('WaveHalted', {
        wave: 1,
        attempt: 0,
        failed: 3,
        maxErrors: 1,
        failedServers: ['ex01', 'ex02'],
      }),
      text: 'WaveHalted: wave 2 had 3 failures, over its budget of 1 (ex01, ex02)',
    },
    {
      name: 'a halt on a retry says which pass, and names at most ten servers',
      given: reason('WaveHalted', {
        wave: 0,
        attempt: 2,
        failed: 12,
        maxErrors: 0,
        failedServers: Array.from({ length: 12 }, (_, index) => `ex${index + 1}`),
      }),
      text: 'WaveHalted: wave 1 (retry 2) had 12 failures, over its budget of 0 (ex1, ex2, ex3, ex4, ex5, ex6, ex7, ex8, ex9, ex10 and 2 more)',
    },
    {
      name: 'a halt without named servers',
      given: reason('WaveHalted', { wave: 0, attempt: 0, failed: 1, maxErrors: 0, failedServers: [] }),
      text: 'WaveHalted: wave 1 had 1 failures, over its budget of 0',
    },
    {
      name: 'a pause names who',
      given: reason('PausedByAdmin', { actor: 'alice' }),
      text: 'Paused: by alice',
    },
    {
      name: 'an abort of a halt keeps what the halt found',
      given: reason('AbortedByAdmin', { actor: 'bob', after: 'WaveHalted: wave 1 had 2 failures' }),
      text: 'Aborted: by bob after WaveHalted: wave 1 had 2 failures',
    },
    {
      name: 'an abort of a running rollout',
      given: reason('AbortedByAdmin', { actor: 'bob' }),
      text: 'Aborted: by bob',
    },
    {
      name: 'a retry names the wave sent again',
      given: reason('RetriedByAdmin', { actor: 'carol', wave: 2 }),
      text: 'Retried: by carol: wave 3 sent again to its failed and unreached servers',
    },
    {
      name: 'a refusal names the event, why, and where the rollout is',
      given: reason('Refused', {
        event: 'resume',
        why: 'only a paused rollout resumes',
        state: 'Running',
        wave: 0,
        waveCount: 3,
      }),
      text: 'Refused: resume refused: only a paused rollout resumes (rollout is Running, wave 1 of 3)',
    },
    {
      name: 'a rejection keeps the verifier’s words',
      given: reason('BadSignature', 'the digest does not match'),
      text: 'BadSignature: the digest does not match',
    },
    {
      name: 'a policy reason reads in EM’s words',
      given: reason('NotApplicableFixed', 'build 15.2.1544.11 includes the fix for EM1'),
      text: 'NotApplicable (fixed): build 15.2.1544.11 includes the fix for EM1',
    },
    {
      name: 'a held package says how to approve it',
      given: reason('PackageHeld', { feed: 'contoso', sha256: 'abc', withdrawn: ['EM1', 'EM2'] }),
      text: 'PackageHeld: package abc carries no trusted signing time or sequence to show it is newer, and would withdraw EM1, EM2; approve it with emfleet feed accept abc --feed contoso',
    },
  ])('$name', ({ given, text }) => {
    expect(renderReason(given)).toBe(text);
  });

  it('keeps the code and the rendered detail apart', () => {
    expect(reason('ExpeditedByAdmin', { actor: 'dave' })).toEqual({
      reasonCode: 'ExpeditedByAdmin',
      reasonDetail: 'by dave',
    });
  });

  it.each([
    { name: 'a known code', value: 'WaveHalted', known: true },
    { name: 'a label is not a code', value: 'Disabled (org)', known: false },
    { name: 'a newer release’s code', value: 'SomethingNew', known: false },
    { name: 'an inherited property', value: 'toString', known: false },
  ])('isReasonCode: $name', ({ value, known }) => {
    expect(isReasonCode(value)).toBe(known);
  });

  it('reads an unknown code (a newer release’s row) as itself, never dropping the detail', () => {
    expect(reasonLabel('SomethingNew')).toBe('SomethingNew');
    expect(renderReason({ reasonCode: 'SomethingNew', reasonDetail: 'as written' })).toBe(
      'SomethingNew: as written',
    );
  });
});

describe('the error codes: every EmfleetError code is a catalogue code', () => {
  it('has one entry per failure code (the codes logs, alerts and docs name)', () => {
    expect(reasonCodesOf('error')).toEqual([
      'Config',
      'Usage',
      'Conflict',
      'InvalidRow',
      'PackageStore',
      'AdminApiUnreachable',
      'AdminApiFailed',
      'UnreadablePackage',
      'ProbeUnmet',
      'InvalidRewriteRule',
      'RelayProvisioning',
      'Unreachable',
      'RelayAuth',
      'Timeout',
      'BadReply',
      'InvalidRequest',
      'AgentRefused',
      'OcsDns',
      'OcsTls',
      'OcsHttpStatus',
      'OcsTimeout',
      'OcsTooLarge',
      'OcsNetwork',
      'OcsProxy',
      'ListenerClosed',
      'Journal',
      'StateDirectoryUnsafe',
      'RequestTooLarge',
      'SpawnFailed',
      'ConstrainedLanguage',
      'Not64Bit',
      'ScriptFailed',
      'OutputTooLarge',
      'UrlRewriteMissing',
      'DuplicateRule',
      'StateCorrupt',
      'InjectedFault',
    ]);
  });

  it('has the agent’s wire refusals and log reasons', () => {
    expect(reasonCodesOf('agent')).toEqual([
      'BadRequest',
      'MethodNotAllowed',
      'NotBehindThisHub',
      'AgentUnreachable',
      'AgentTimeout',
      'HubSignatureMissing',
      'HubSignatureBadFormat',
      'HubSignatureBadSignature',
      'HubSignatureWrongServer',
      'HubSignatureStale',
      'HubSignatureReplayed',
      'ListenTokenRefused',
      'ListenNotGranted',
      'HybridConnectionMissing',
      'ControlChannelClosed',
      'NoListenToken',
      'ListenFailed',
      'ExchangeSetupRunning',
    ]);
  });

  it.each<{ name: string; error: EmfleetError; code: ReasonCode }>([
    { name: 'a configuration error', error: new ConfigError('EMFLEET_FEEDS is not JSON'), code: 'Config' },
    { name: 'any failure', error: new EmfleetError('Conflict', 'kept changing'), code: 'Conflict' },
  ])('$name carries its catalogue code, rendered as `<Code>: <detail>`', ({ error, code }) => {
    expect(error.code).toBe(code);
    expect(isReasonCode(error.code)).toBe(true);
    expect(renderReason({ reasonCode: error.code, reasonDetail: error.message })).toBe(
      `${code}: ${error.message}`,
    );
  });

  it('refuses, at compile time, a code outside the catalogue', () => {
    // @ts-expect-error: 'NotACode' is no ReasonCode, so tsc (npm run build) fails if this line compiles.
    const stray = new EmfleetError('NotACode', 'a code nobody can look up');
    expect(isReasonCode(stray.code)).toBe(false);
  });

  it('the setup reason names the evidence', () => {
    expect(
      renderReason(reason('ExchangeSetupRunning', { evidence: 'ExSetup.exe is running (process 7)' })),
    ).toBe(
      'ExchangeSetupRunning: Exchange setup is running (ExSetup.exe is running (process 7)); changes wait until it ends, as a disabled Exchange service is a known cause of failed updates',
    );
  });

  it('the CLI says a usage error as every failure, `emfleet: Usage: <detail>`, and exits 2', async () => {
    const stderr: string[] = [];
    const stdout: string[] = [];
    const code = await main(['node', 'emfleet', 'rollout', 'plan', '--latest', '--package', 'p.xml'], {
      stdout: (line) => stdout.push(line),
      stderr: (line) => stderr.push(line),
      env: {},
    });
    expect({ code, stderr, stdout }).toEqual({
      code: 2,
      stderr: ['emfleet: Usage: give exactly one of --package FILE or --latest'],
      stdout: [],
    });
  });
});

describe('storedReason: rows of this release and of the one before', () => {
  it.each([
    {
      name: 'code and detail apart',
      stored: { reasonCode: 'WaveHalted', reasonDetail: 'wave 1 had 2 failures, over its budget of 0' },
      read: { reasonCode: 'WaveHalted', reasonDetail: 'wave 1 had 2 failures, over its budget of 0' },
      text: 'WaveHalted: wave 1 had 2 failures, over its budget of 0',
    },
    {
      name: 'a code without detail',
      stored: { reasonCode: 'Applicable', reasonDetail: '' },
      read: { reasonCode: 'Applicable', reasonDetail: '' },
      text: 'Applicable',
    },
    {
      name: "an earlier release's halt, one text",
      stored: { legacyText: 'WaveHalted: wave 2 had 3 failures, over its budget of 1 (ex01)' },
      read: {
        reasonCode: 'Legacy',
        reasonDetail: 'WaveHalted: wave 2 had 3 failures, over its budget of 1 (ex01)',
      },
      text: 'WaveHalted: wave 2 had 3 failures, over its budget of 1 (ex01)',
    },
    {
      name: "an earlier release's pause",
      stored: { reasonCode: '', reasonDetail: '', legacyText: 'Paused by alice' },
      read: { reasonCode: 'Legacy', reasonDetail: 'Paused by alice' },
      text: 'Paused by alice',
    },
    {
      name: 'a code wins over legacy text left on the row',
      stored: { reasonCode: 'PausedByAdmin', reasonDetail: 'by alice', legacyText: 'Paused by bob' },
      read: { reasonCode: 'PausedByAdmin', reasonDetail: 'by alice' },
      text: 'Paused: by alice',
    },
  ])('$name', ({ stored, read, text }) => {
    const got = storedReason(stored);
    expect(got).toEqual(read);
    expect(renderReason(got!)).toBe(text);
  });

  it('no reason at all is undefined', () => {
    expect(storedReason({})).toBeUndefined();
    expect(storedReason({ reasonCode: '', reasonDetail: '', legacyText: '' })).toBeUndefined();
  });
});

describe("the README's reason codes", () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(
    readme.indexOf('### Reason codes'),
    readme.indexOf('The admin HTTP API, behind'),
  );

  it.each(reasonCodes)('lists %s', (code) => {
    expect(section).toContain(`\`${code}\``);
  });
});
