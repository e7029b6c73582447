import { describe, expect, it } from 'vitest';
import { describePolicyEffect, fixUpProfile, fixUpRolloutId, narrowDrift } from '../../lib/rollout/fixup.js';
import type { ServerWork } from '../../lib/rollout/plan.js';
import { notStartedLabel, stoppedRolloutOf } from '../../lib/rollout/unreached.js';

const work = (server: string, apply: string[], remove: string[]): ServerWork => ({
  server,
  hybridConnection: server,
  apply,
  remove,
  onDegraded: 'rollback',
  ring: '',
  decisions: [...apply, ...remove].map((mitigation) => ({
    mitigation,
    decision: apply.includes(mitigation) ? 'Apply' : 'Remove',
    reasonCode: 'Applicable',
    reasonDetail: '',
  })),
});
const drift = [work('ex01', ['EM1'], ['EM3']), work('ex02', ['EM2'], []), work('ex03', [], ['EM3'])];

describe('narrowDrift: what a policy change touched', () => {
  it.each([
    {
      name: 'the org, every mitigation (set --org-scope)',
      scope: {},
      expected: [
        ['ex01', ['EM1'], ['EM3']],
        ['ex02', ['EM2'], []],
        ['ex03', [], ['EM3']],
      ],
    },
    {
      name: 'the org, one blocked id',
      scope: { mitigationIds: ['EM3'] },
      expected: [
        ['ex01', [], ['EM3']],
        ['ex03', [], ['EM3']],
      ],
    },
    { name: 'one server', scope: { servers: ['ex02'] }, expected: [['ex02', ['EM2'], []]] },
    {
      name: 'one server, an id it has no work for',
      scope: { servers: ['ex02'], mitigationIds: ['EM3'] },
      expected: [],
    },
  ])('$name', ({ scope, expected }) => {
    const narrowed = narrowDrift(drift, scope);
    expect(narrowed.map((server) => [server.server, server.apply, server.remove])).toEqual(expected);
    for (const server of narrowed)
      expect(server.decisions.map((decision) => decision.mitigation).sort()).toEqual(
        [...server.apply, ...server.remove].sort(),
      );
  });
});

describe('fixUpProfile', () => {
  it.each([
    {
      name: 'removals only (a block), with an emergency profile',
      work: [work('ex01', [], ['EM3'])],
      hasEmergency: true,
      profile: 'emergency',
    },
    {
      name: 'removals only, no emergency profile',
      work: [work('ex01', [], ['EM3'])],
      hasEmergency: false,
      profile: 'default',
    },
    {
      name: 'anything applied takes the normal waves',
      work: [work('ex01', [], ['EM3']), work('ex02', ['EM2'], [])],
      hasEmergency: true,
      profile: 'default',
    },
    { name: 'nothing to do', work: [], hasEmergency: true, profile: 'default' },
  ])('$name → $profile', ({ work: given, hasEmergency, profile }) => {
    expect(fixUpProfile(given, hasEmergency)).toBe(profile);
  });
});

describe('fixUpRolloutId', () => {
  const now = new Date(Date.UTC(2026, 10, 1, 10, 5, 9));
  it('is the feed and the UTC second, numbered when taken, and a valid rollout id', () => {
    expect(fixUpRolloutId('microsoft', now, [])).toBe('microsoft-now-20261101100509');
    expect(fixUpRolloutId('microsoft', now, ['microsoft-now-20261101100509'])).toBe(
      'microsoft-now-20261101100509-2',
    );
    expect(
      fixUpRolloutId('microsoft', now, ['microsoft-now-20261101100509', 'microsoft-now-20261101100509-2']),
    ).toBe('microsoft-now-20261101100509-3');
  });
});

describe('describePolicyEffect', () => {
  it('says when the change takes effect without --now', () => {
    expect(describePolicyEffect({ takesEffect: 'nextReconcile', at: '2026-11-01T10:30:00.000Z' })).toEqual([
      'takes effect at the next reconcile, 10:30 UTC (2026-11-01T10:30:00.000Z); add --now to start the fix-up at once',
    ]);
  });

  it('names the rollout it started, or why none', () => {
    expect(
      describePolicyEffect({
        takesEffect: 'now',
        fixUps: [
          {
            feed: 'microsoft',
            kind: 'started',
            rolloutId: 'microsoft-now-1',
            servers: 2,
            profile: 'emergency',
          },
          { feed: 'contoso', kind: 'busy', busyRolloutId: 'contoso-000003-apply' },
          { feed: 'lab', kind: 'nothingToDo' },
          { feed: 'edge', kind: 'held', heldBy: 'edge-000002-apply' },
        ],
      }),
    ).toEqual([
      'feed microsoft: fix-up rollout microsoft-now-1 started for 2 servers (emergency waves); follow it with: emfleet rollout show microsoft-now-1',
      'feed contoso: rollout contoso-000003-apply is still under way; the fix-up runs at the next reconcile after it ends (abort it to act sooner)',
      'feed lab: nothing to fix up (every server in scope already matches, or policy leaves it alone)',
      'feed edge: held by rollout edge-000002-apply (halted or aborted): nothing is re-applied until it is retried',
    ]);
  });
});

describe('stoppedRolloutOf: the rollout whose halt left work undone', () => {
  const row = (partitionKey: string, feed: string, state: string, minute: number) => ({
    partitionKey,
    feed,
    state,
    createdAt: new Date(Date.UTC(2026, 10, 1, 10, minute)),
  });
  it.each([
    {
      name: 'the newest of the feed halted',
      rollouts: [row('a', 'microsoft', 'Completed', 1), row('b', 'microsoft', 'Halted', 2)],
      stopped: { id: 'b', state: 'Halted' },
    },
    {
      name: 'the newest of the feed aborted',
      rollouts: [row('b', 'microsoft', 'Aborted', 2)],
      stopped: { id: 'b', state: 'Aborted' },
    },
    {
      name: 'a halt, then a newer rollout took over',
      rollouts: [row('b', 'microsoft', 'Halted', 2), row('c', 'microsoft', 'Running', 3)],
      stopped: undefined,
    },
    { name: 'another feed halted', rollouts: [row('x', 'contoso', 'Halted', 2)], stopped: undefined },
  ])('$name', ({ rollouts, stopped }) => {
    expect(stoppedRolloutOf(rollouts, 'microsoft')).toEqual(stopped);
  });

  it('is said as "Not started (rollout X halted)"', () => {
    expect(notStartedLabel({ id: 'microsoft-000001-apply', state: 'Halted' })).toBe(
      'Not started (rollout microsoft-000001-apply halted)',
    );
  });
});
