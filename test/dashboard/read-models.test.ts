import { describe, expect, it } from 'vitest';
import { pollResultOf } from '../../lib/dashboard/feeds.js';
import { feedStateRow } from '../../lib/fleet/feeds.js';
import { feedStatusOf } from '../../lib/fleet/status.js';
import { renderReason } from '../../lib/model/reasons.js';
import { decisionCell, serverCells, type GridColumn } from '../../lib/dashboard/grid.js';
import { rolloutView } from '../../lib/dashboard/overview.js';
import type { ResultRow, RolloutStateRow, WaveRow } from '../../lib/fleet/schemas.js';
import type { Mitigation } from '../../lib/package/model.js';
import type { PolicyDecision, PolicyReason } from '../../lib/policy/decide.js';

const at = (second: number): Date => new Date(Date.UTC(2026, 10, 1, 12, 0, second));

describe('pollResultOf: what the last poll came to', () => {
  it.each([
    { name: 'never polled', state: undefined, result: null },
    { name: 'polled, nothing else', state: { lastPollAt: at(10) }, result: 'Success' },
    {
      name: 'an error in the last poll',
      state: { lastPollAt: at(10), lastErrorAt: at(10) },
      result: 'Failed',
    },
    {
      name: 'an error in an earlier poll',
      state: { lastPollAt: at(20), lastErrorAt: at(10) },
      result: 'Success',
    },
    {
      name: 'a rejection in the last poll',
      state: { lastPollAt: at(10), lastRejectedAt: at(10) },
      result: 'Rejected',
    },
    {
      name: 'a rejection stamped a millisecond after the poll',
      state: { lastPollAt: at(10), lastRejectedAt: new Date(at(10).getTime() + 1) },
      result: 'Rejected',
    },
    {
      name: 'a rejection in an earlier poll',
      state: { lastPollAt: at(20), lastRejectedAt: at(10) },
      result: 'Success',
    },
  ])('$name → $result', ({ state, result }) => {
    expect(pollResultOf(state)).toBe(result);
  });
});

describe("a feed record's last rejection: code and detail apart, or an earlier release's text", () => {
  const base = {
    partitionKey: 'microsoft',
    rowKey: 'feed',
    lastRejectedAt: at(10),
    lastRejectedSha256: 'ab'.repeat(32),
  };
  it.each([
    {
      name: 'this release: the code and the detail as written',
      row: {
        lastRejectedReasonCode: 'BadSignature',
        lastRejectedReasonDetail: 'the SignatureValue does not match',
      },
      read: { reasonCode: 'BadSignature', reasonDetail: 'the SignatureValue does not match' },
      text: 'BadSignature: the SignatureValue does not match',
    },
    {
      name: 'an earlier release: one text, kept whole as a Legacy detail, never split',
      row: { lastRejectedReason: 'Rollback: signed 2026-01-01: older than the last' },
      read: { reasonCode: 'Legacy', reasonDetail: 'Rollback: signed 2026-01-01: older than the last' },
      text: 'Rollback: signed 2026-01-01: older than the last',
    },
    {
      name: 'a newer release’s code passes as it is',
      row: { lastRejectedReasonCode: 'SomethingNew', lastRejectedReasonDetail: 'as written' },
      read: { reasonCode: 'SomethingNew', reasonDetail: 'as written' },
      text: 'SomethingNew: as written',
    },
  ])('$name', ({ row, read, text }) => {
    const state = feedStateRow.parse({ ...base, ...row });
    const status = feedStatusOf({ name: 'microsoft', url: 'https://ocs.example' }, state, undefined);
    expect(status.lastRejected).toEqual({ at: at(10).toISOString(), sha256: 'ab'.repeat(32), ...read });
    expect(renderReason(status.lastRejected!)).toBe(text);
  });
});

const stateRow = (changes: Partial<RolloutStateRow>): RolloutStateRow => ({
  partitionKey: 'microsoft-000001-apply',
  rowKey: 'state',
  feed: 'microsoft',
  packageSequence: 1,
  operation: 'apply',
  state: 'Running',
  reasonCode: '',
  reasonDetail: '',
  waveCount: 3,
  currentWave: 1,
  profile: 'default',
  attempt: 0,
  halts: 0,
  applies: {},
  createdAt: at(0),
  updatedAt: at(30),
  ...changes,
});

const waveRow = (index: number, changes: Partial<WaveRow> = {}): WaveRow => ({
  partitionKey: 'microsoft-000001-apply',
  rowKey: `wave-0${index}`,
  name: ['canary', 'early', 'broad'][index]!,
  servers: 10,
  succeeded: 0,
  failed: 0,
  skipped: 0,
  maxConcurrency: 2,
  maxErrors: 1,
  bakeInMs: 60_000,
  dispatched: 0,
  counted: '',
  attempt: 0,
  pass: '',
  failedIndices: '',
  failedServers: [],
  ...changes,
});

describe('rolloutView', () => {
  const waves = [
    waveRow(0, { succeeded: 9, failed: 1, failedServers: ['ex07'] }),
    waveRow(1, { succeeded: 3, skipped: 1 }),
    waveRow(2),
  ];

  it('gives each wave its phase and pending count', () => {
    const view = rolloutView(stateRow({}), waves);
    expect(
      view.waves.map((wave) => [
        wave.name,
        wave.phase,
        wave.succeeded,
        wave.failed,
        wave.skipped,
        wave.pending,
      ]),
    ).toEqual([
      ['canary', 'Done', 9, 1, 0, 0],
      ['early', 'Current', 3, 0, 1, 6],
      ['broad', 'NotStarted', 0, 0, 0, 10],
    ]);
    expect(view.waves[0]!.failedServers).toEqual(['ex07']);
  });

  it.each([
    { name: 'running: no bake yet', state: {}, bakeEndsAt: null },
    {
      name: 'baking: the bake ends its length after the rollout started baking',
      state: { state: 'Baking' as const },
      bakeEndsAt: at(90).toISOString(),
    },
    {
      name: 'baking on the emergency profile: the gate is due at once',
      state: { state: 'Baking' as const, profile: 'emergency' as const },
      bakeEndsAt: at(30).toISOString(),
    },
    {
      name: 'paused while baking: the bake starts over on resume, so no deadline',
      state: { state: 'Paused' as const, resumeTo: 'Baking' as const },
      bakeEndsAt: null,
    },
  ])('$name', ({ state, bakeEndsAt }) => {
    const view = rolloutView(stateRow(state), waves);
    expect(view.waves.map((wave) => wave.bakeEndsAt)).toEqual([null, bakeEndsAt, null]);
  });

  it.each([
    { state: 'Planned' as const, actions: ['pause', 'abort', 'expedite'] },
    { state: 'Running' as const, actions: ['pause', 'abort', 'expedite'] },
    { state: 'Baking' as const, actions: ['pause', 'abort', 'expedite'] },
    { state: 'Paused' as const, resumeTo: 'Running' as const, actions: ['resume', 'abort', 'expedite'] },
    { state: 'Halted' as const, actions: ['abort', 'retry'] },
    { state: 'Aborted' as const, actions: [] },
    { state: 'Completed' as const, actions: [] },
    { state: 'Running' as const, halts: 1, actions: ['pause', 'abort', 'expedite'] },
  ])('$state: offers $actions', ({ state, resumeTo, halts, actions }) => {
    expect(
      rolloutView(stateRow({ state, ...(resumeTo ? { resumeTo } : {}), ...(halts ? { halts } : {}) }), waves)
        .actions,
    ).toEqual(actions);
  });

  it('a halted rollout: what it holds (lifted where the feed changed the content) and how many servers a retry sends again', () => {
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
    // Wave 2 (current): plan indices 0-9, of which 0-6 succeeded, 7 and 8 failed, 9 was never counted.
    const counted = Buffer.from([0xff, 0x01]).toString('base64');
    const failedIndices = Buffer.from([0x80, 0x01]).toString('base64');
    const halted = [waves[0]!, waveRow(1, { succeeded: 7, failed: 2, counted, failedIndices }), waves[2]!];
    const view = rolloutView(stateRow({ state: 'Halted', halts: 1, applies: { EM1: a, EM2: a } }), halted, {
      EM1: a,
      EM2: b,
    });
    expect(view).toMatchObject({ holds: ['EM1'], retryServers: 3, actions: ['abort', 'retry'] });
    expect(
      rolloutView(stateRow({ state: 'Running', applies: { EM1: a } }), halted, { EM1: a }),
    ).toMatchObject({ holds: [], retryServers: 0 });
  });

  it('offers no expedite once on the emergency profile; a completed rollout has every wave done', () => {
    expect(rolloutView(stateRow({ profile: 'emergency' }), waves).actions).toEqual(['pause', 'abort']);
    expect(
      rolloutView(stateRow({ state: 'Completed', currentWave: 2 }), waves).waves.map((wave) => wave.phase),
    ).toEqual(['Done', 'Done', 'Done']);
  });
});

describe('grid cells', () => {
  const mitigation = (id: string): Mitigation => ({
    id,
    description: id,
    applicability: [],
    actions: [{ kind: 'DoNothing', scope: 'Server', description: '', value: 'DoNothing' }],
  });
  const columns: GridColumn[] = [
    { id: 'EM1', mitigation: mitigation('EM1') },
    { id: 'EM2', mitigation: mitigation('EM2') },
    { id: 'EM3', mitigation: undefined },
  ];
  const result = (changes: Partial<ResultRow>): ResultRow => ({
    partitionKey: 'ex01.contoso.com',
    rowKey: 'op',
    rolloutId: 'r1',
    operation: 'apply',
    status: 'Completed',
    outcomes: {},
    at: at(0),
    ...changes,
  });
  const apply: PolicyDecision = {
    decision: 'Apply',
    reasonCode: 'Applicable',
    reasonDetail: 'applies to build 15.2.1118.7',
  };

  it('takes the latest completed result per mitigation, whatever order the rows come in', () => {
    const cells = serverCells(
      columns,
      [
        result({ rowKey: 'b', at: at(2), outcomes: { EM1: { outcome: 'Removed', detail: 'withdrawn' } } }),
        result({
          rowKey: 'a',
          at: at(1),
          outcomes: { EM1: { outcome: 'Applied', detail: '' }, EM2: { outcome: 'Failed', detail: 'boom' } },
        }),
        result({
          rowKey: 'c',
          at: at(3),
          status: 'InProgress',
          outcomes: { EM2: { outcome: 'Applied', detail: '' } },
        }),
      ],
      () => apply,
    );
    expect(cells).toEqual({
      EM1: {
        outcome: 'Removed',
        reasonCode: null,
        reasonDetail: 'withdrawn',
        source: 'result',
        at: at(2).toISOString(),
        rolloutId: 'r1',
      },
      EM2: {
        outcome: 'Failed',
        reasonCode: null,
        reasonDetail: 'boom',
        source: 'result',
        at: at(1).toISOString(),
        rolloutId: 'r1',
      },
      EM3: expect.objectContaining({ outcome: 'Unknown', reasonCode: 'Undecided', source: 'policy' }),
    });
  });

  it('asks policy only for mitigations without a result', () => {
    const asked: string[] = [];
    serverCells(
      columns,
      [result({ outcomes: { EM1: { outcome: 'Applied', detail: '' } } })],
      (model) => (asked.push(model.id), apply),
    );
    expect(asked).toEqual(['EM2']);
  });

  const skip = (reasonCode: PolicyReason, reasonDetail = 'x'): PolicyDecision => ({
    decision: 'Skip',
    reasonCode,
    reasonDetail,
  });

  it.each<{ decision: PolicyDecision; outcome: string; text: string }>([
    { decision: apply, outcome: 'Pending', text: 'Applicable: applies to build 15.2.1118.7' },
    {
      decision: {
        decision: 'Remove',
        reasonCode: 'BlockedByOrg',
        reasonDetail: 'EM1 is blocked; it is applied, so it is removed',
      },
      outcome: 'Pending',
      text: 'Blocked (org): EM1 is blocked; it is applied, so it is removed',
    },
    {
      decision: skip('DisabledByOrg', 'disabled (bicep)'),
      outcome: 'Disabled',
      text: 'Disabled (org): disabled (bicep)',
    },
    { decision: skip('DisabledByServer'), outcome: 'Disabled', text: 'Disabled (server): x' },
    { decision: skip('BlockedByServer'), outcome: 'Blocked', text: 'Blocked (server): x' },
    { decision: skip('NotApplicable'), outcome: 'NotApplicable', text: 'NotApplicable: x' },
    { decision: skip('NotApplicableFixed'), outcome: 'NotApplicable', text: 'NotApplicable (fixed): x' },
    { decision: skip('PolicyError'), outcome: 'PolicyError', text: 'PolicyError: x' },
    { decision: skip('Unsupported'), outcome: 'Unsupported', text: 'Unsupported: x' },
  ])(
    'a $decision.decision decision ($decision.reasonCode) is $outcome, read as "$text"',
    ({ decision, outcome, text }) => {
      const cell = decisionCell(decision);
      expect(cell).toEqual({
        outcome,
        reasonCode: decision.reasonCode,
        reasonDetail: decision.reasonDetail,
        source: 'policy',
        at: null,
        rolloutId: null,
      });
      expect(renderReason({ reasonCode: cell.reasonCode!, reasonDetail: cell.reasonDetail })).toBe(text);
    },
  );

  it('work a halted or aborted rollout never reached is Not started, naming the rollout; a skip stays a skip', () => {
    const stopped = { id: 'microsoft-000001-apply', state: 'Halted' };
    expect(decisionCell(apply, stopped)).toEqual({
      outcome: 'NotStarted',
      reasonCode: 'Applicable',
      reasonDetail: 'Not started (rollout microsoft-000001-apply halted); applies to build 15.2.1118.7',
      source: 'policy',
      at: null,
      rolloutId: 'microsoft-000001-apply',
    });
    expect(
      decisionCell(
        { decision: 'Remove', reasonCode: 'BlockedByOrg', reasonDetail: 'x' },
        { id: 'r2', state: 'Aborted' },
      ).reasonDetail,
    ).toBe('Not started (rollout r2 aborted); x');
    expect(decisionCell(skip('NotApplicable'), stopped).outcome).toBe('NotApplicable');
  });

  it('a column of a halted feed makes its unreached cells Not started; cells with results keep them', () => {
    const stopped = { id: 'microsoft-000001-apply', state: 'Halted' };
    const cells = serverCells(
      [
        { id: 'EM1', mitigation: mitigation('EM1'), stopped },
        { id: 'EM2', mitigation: mitigation('EM2'), stopped },
      ],
      [result({ outcomes: { EM1: { outcome: 'Failed', detail: 'boom' } } })],
      () => apply,
    );
    expect(cells['EM1']!.outcome).toBe('Failed');
    expect(cells['EM2']!.outcome).toBe('NotStarted');
  });
});
