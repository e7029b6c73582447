import { describe, expect, it } from 'vitest';
import {
  appliedHistory,
  reconcileAction,
  serverView,
  type ServerViewInput,
} from '../../lib/admin/server-view.js';
import type { ResultRow, RolloutStateRow } from '../../lib/fleet/schemas.js';
import type { Mitigation } from '../../lib/package/model.js';
import { range } from '../helpers/packages.js';

const at = (minute: number): Date => new Date(Date.UTC(2026, 10, 1, 12, minute));
const mitigation = (id: string, ranges = [range('15.2.0.0', '15.2.9999.0')]): Mitigation => ({
  id,
  description: id,
  applicability: ranges,
  actions: [{ kind: 'DoNothing', scope: 'Server', description: '', value: 'DoNothing' }],
});
const result = (
  minute: number,
  outcomes: Record<string, string>,
  changes: Partial<ResultRow> = {},
): ResultRow => ({
  partitionKey: 'ex01.contoso.com',
  rowKey: `op-${minute}`,
  rolloutId: `microsoft-00000${minute}-apply`,
  operation: 'apply',
  status: 'Completed',
  outcomes: Object.fromEntries(
    Object.entries(outcomes).map(([id, outcome]) => [
      id,
      { outcome: outcome as never, detail: `${outcome} detail` },
    ]),
  ),
  at: at(minute),
  ...changes,
});
const rollout = (
  id: string,
  state: RolloutStateRow['state'],
  minute: number,
  sequence = 1,
): RolloutStateRow => ({
  partitionKey: id,
  rowKey: 'state',
  feed: 'microsoft',
  packageSequence: sequence,
  operation: 'apply',
  state,
  reasonCode: state === 'Halted' ? 'WaveHalted' : '',
  reasonDetail: state === 'Halted' ? 'over budget' : '',
  waveCount: 3,
  currentWave: 0,
  profile: 'default',
  createdAt: at(minute),
  updatedAt: at(minute),
  attempt: 0,
  halts: 0,
  applies: {},
});

const base: ServerViewInput = {
  server: {
    partitionKey: 'contoso',
    rowKey: 'ex01.contoso.com',
    fqdn: 'ex01.contoso.com',
    build: '15.2.1118.7',
    registeredBuild: '',
    site: 'HQ',
    ring: 'canary',
    relayHybridConnection: '',
    relayPath: '',
    agentVersion: '0.1.0',
    lastSeen: at(30),
    reportedApplied: [],
    reportedBlocked: [],
  },
  orgPolicy: undefined,
  serverPolicy: undefined,
  feeds: [{ name: 'microsoft', sequence: 1, mitigationIds: ['EM1'], mitigations: [mitigation('EM1')] }],
  results: [],
  rollouts: [],
  holds: [],
};
const view = (changes: Partial<ServerViewInput>, serverChanges: Partial<ServerViewInput['server']> = {}) =>
  serverView({ ...base, ...changes, server: { ...base.server, ...serverChanges } });

describe('servers show: the decision table for one server', () => {
  it.each([
    {
      name: 'applicable, never applied, no rollout: Pending, reconcile applies',
      input: {},
      server: {},
      row: {
        decision: 'Apply',
        reasonCode: 'Applicable',
        pending: 'Pending',
        applied: false,
        appliedBy: null,
        reconcile: { action: 'apply' },
      },
    },
    {
      name: 'applied by an emfleet rollout: reconcile leaves it',
      input: { results: [result(1, { EM1: 'Applied' })] },
      server: { reportedApplied: ['EM1'] },
      row: {
        decision: 'Apply',
        lastOutcome: {
          outcome: 'Applied',
          detail: 'Applied detail',
          at: at(1).toISOString(),
          rolloutId: 'microsoft-000001-apply',
        },
        pending: null,
        applied: true,
        appliedBy: 'emfleet',
        reconcile: { action: 'none', why: 'in place as policy wants' },
      },
    },
    {
      name: 'found in place (no result): adopted',
      input: {},
      server: { reportedApplied: ['EM1'] },
      row: { applied: true, appliedBy: 'adopted', pending: null, reconcile: { action: 'none' } },
    },
    {
      name: 'found in place by a rollout (AlreadyApplied): adopted',
      input: { results: [result(1, { EM1: 'AlreadyApplied' })] },
      server: { reportedApplied: ['EM1'] },
      row: { appliedBy: 'adopted' },
    },
    {
      name: 'blocked at the org while applied: reconcile removes',
      input: {
        orgPolicy: { table: { blockedMitigations: ['EM1'] } },
        results: [result(1, { EM1: 'Applied' })],
      },
      server: { reportedApplied: ['EM1'] },
      row: {
        decision: 'Remove',
        reasonCode: 'BlockedByOrg',
        appliedBy: 'emfleet',
        reconcile: { action: 'remove' },
      },
    },
    {
      name: 'blocked, not applied: skip',
      input: { serverPolicy: { table: { blockedMitigations: ['EM1'] } } },
      server: {},
      row: {
        decision: 'Skip',
        reasonCode: 'BlockedByServer',
        pending: null,
        reconcile: { action: 'none', why: 'policy says skip' },
      },
    },
    {
      name: 'disabled on the server: left alone',
      input: { serverPolicy: { table: { mitigationsEnabled: false } } },
      server: { reportedApplied: ['EM1'] },
      row: { decision: 'Skip', reasonCode: 'DisabledByServer', reconcile: { action: 'none' } },
    },
    {
      name: 'fixed build while applied: removed',
      input: {},
      server: { build: '15.2.9999.5', reportedApplied: ['EM1'] },
      row: { decision: 'Remove', reasonCode: 'NotApplicableFixed', reconcile: { action: 'remove' } },
    },
    {
      name: 'the rollout that would apply it halted: Not started, held',
      input: {
        rollouts: [rollout('microsoft-000001-apply', 'Halted', 1)],
        holds: [
          {
            feed: 'microsoft',
            mitigation: 'EM1',
            rolloutId: 'microsoft-000001-apply',
            state: 'Halted',
            packageSequence: 1,
          },
        ],
      },
      server: {},
      row: {
        pending: 'Not started (rollout microsoft-000001-apply halted)',
        reconcile: {
          action: 'none',
          why: 'held by rollout microsoft-000001-apply (Halted): retry it to continue',
        },
      },
    },
    {
      name: 'an aborted rollout, then a newer one running: Pending, reconcile waits',
      input: {
        rollouts: [
          rollout('microsoft-000001-apply', 'Aborted', 1),
          rollout('microsoft-reconcile-1', 'Running', 2),
        ],
      },
      server: {},
      row: {
        pending: 'Pending',
        reconcile: {
          action: 'none',
          why: 'rollout microsoft-reconcile-1 is under way; reconcile waits for it',
        },
      },
    },
    {
      name: 'the package no longer verifies: Unknown, nothing done',
      input: { feeds: [{ name: 'microsoft', sequence: 1, mitigationIds: ['EM1'], mitigations: undefined }] },
      server: {},
      row: { decision: 'Unknown', reconcile: { action: 'none' } },
    },
    {
      name: 'the feed is frozen: nothing done',
      input: {
        feeds: [
          {
            name: 'microsoft',
            sequence: 1,
            mitigationIds: ['EM1'],
            mitigations: [mitigation('EM1')],
            frozen: true,
          },
        ],
      },
      server: {},
      row: {
        decision: 'Apply',
        reconcile: { action: 'none', why: 'the feed is frozen: nothing is applied or removed' },
      },
    },
  ])('$name', ({ input, server, row }) => {
    const shown = view(input as Partial<ServerViewInput>, server);
    expect(shown.mitigations).toHaveLength(1);
    expect(shown.mitigations[0]).toMatchObject({ feed: 'microsoft', mitigation: 'EM1', ...row });
  });

  it('lists every mitigation of every feed once, and what is applied but in no current package as withdrawn', () => {
    const shown = view(
      {
        feeds: [
          {
            name: 'microsoft',
            sequence: 2,
            mitigationIds: ['EM1', 'EM2'],
            mitigations: [mitigation('EM1'), mitigation('EM2')],
          },
          {
            name: 'contoso',
            sequence: 1,
            mitigationIds: ['EM2', 'CX1'],
            mitigations: [mitigation('EM2'), mitigation('CX1')],
          },
        ],
      },
      { reportedApplied: ['EM1', 'OLD9'] },
    );
    expect(shown.mitigations.map((row) => `${row.feed}/${row.mitigation}`)).toEqual([
      'microsoft/EM1',
      'microsoft/EM2',
      'contoso/CX1',
    ]);
    expect(shown.withdrawn).toEqual([
      {
        mitigation: 'OLD9',
        reconcile: { action: 'remove', why: "OLD9 is in no feed's current package (withdrawn)" },
      },
    ]);
  });

  it('shows registration and what the agent reported, the reported build where the row has one', () => {
    // The row's build is the agent's report; registeredBuild is kept while the two differ.
    const shown = view({}, { build: '15.2.1258.12', registeredBuild: '15.2.1118.7' });
    expect(shown.server).toMatchObject({
      name: 'ex01.contoso.com',
      registeredBuild: '15.2.1118.7',
      reportedBuild: '15.2.1258.12',
      agentVersion: '0.1.0',
      lastSeen: at(30).toISOString(),
      relayHybridConnection: 'ex01.contoso.com',
      ring: 'canary',
      site: 'HQ',
    });
    expect(view({}, { agentVersion: '' }).server.reportedBuild).toBeNull();
    expect(view({ serverPolicy: { table: { mitigationsEnabled: false } } }).policy.leftAlone).toEqual({
      reasonCode: 'DisabledByServer',
      reasonDetail: expect.stringMatching(/^mitigations are disabled on /),
    });
  });

  it('keeps a withdrawn mitigation on a disabled server, or while a package does not verify', () => {
    expect(
      view({ orgPolicy: { table: { mitigationsEnabled: false } } }, { reportedApplied: ['OLD9'] })
        .withdrawn[0]!.reconcile.action,
    ).toBe('none');
    expect(
      view(
        { feeds: [{ name: 'microsoft', sequence: 1, mitigationIds: ['EM1'], mitigations: undefined }] },
        { reportedApplied: ['OLD9'] },
      ).withdrawn[0]!.reconcile.action,
    ).toBe('none');
  });
});

describe('appliedHistory', () => {
  it('follows apply, remove and apply again, in time order whatever the row order', () => {
    const { last, appliedBy } = appliedHistory([
      result(3, { EM1: 'Applied' }),
      result(1, { EM1: 'AlreadyApplied', EM2: 'Applied' }),
      result(2, { EM1: 'Removed', EM2: 'RolledBack' }),
    ]);
    expect(last.get('EM1')?.outcome).toBe('Applied');
    expect(appliedBy.get('EM1')).toBe('emfleet');
    expect(last.get('EM2')?.outcome).toBe('RolledBack');
    expect(appliedBy.has('EM2')).toBe(false);
  });

  it('ignores results still in progress', () => {
    expect(appliedHistory([result(1, { EM1: 'Applied' }, { status: 'InProgress' })]).last.size).toBe(0);
  });
});

describe('reconcileAction', () => {
  it.each([
    {
      facts: { work: true, decision: 'Apply', frozen: false, busy: undefined, held: undefined },
      action: 'apply',
    },
    {
      facts: { work: true, decision: 'Remove', frozen: false, busy: undefined, held: undefined },
      action: 'remove',
    },
    // A hold stops re-applying, never a removal (a block must still take it off).
    {
      facts: { work: true, decision: 'Remove', frozen: false, busy: undefined, held: 'r (Halted)' },
      action: 'remove',
    },
    {
      facts: { work: true, decision: 'Apply', frozen: false, busy: undefined, held: 'r (Halted)' },
      action: 'none',
    },
    { facts: { work: true, decision: 'Remove', frozen: false, busy: 'r2', held: undefined }, action: 'none' },
    {
      facts: { work: true, decision: 'Remove', frozen: true, busy: undefined, held: undefined },
      action: 'none',
    },
    {
      facts: { work: false, decision: 'Skip', frozen: false, busy: undefined, held: undefined },
      action: 'none',
    },
  ] as const)(
    '$facts.decision work=$facts.work frozen=$facts.frozen busy=$facts.busy held=$facts.held → $action',
    ({ facts, action }) => {
      expect(reconcileAction(facts).action).toBe(action);
    },
  );
});
