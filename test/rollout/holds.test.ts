import { describe, expect, it } from 'vitest';
import type { RolloutState } from '../../lib/model/rollout.js';
import type { Mitigation } from '../../lib/package/model.js';
import {
  activeHolds,
  contentHashes,
  heldBy,
  holdingStates,
  withoutHeld,
  type Hold,
  type HoldingRollout,
} from '../../lib/rollout/holds.js';
import type { ServerWork } from '../../lib/rollout/plan.js';

const mitigation = (id: string, value = 'DoNothing'): Mitigation => ({
  id,
  description: `${id} text`,
  applicability: [],
  actions: [{ kind: 'DoNothing', scope: 'Server', description: '', value }],
});
const v1 = contentHashes([mitigation('EM1'), mitigation('EM2')]);
/** EM1 changed, EM2 the same, EM3 new. */
const v2 = contentHashes([mitigation('EM1', 'Changed'), mitigation('EM2'), mitigation('EM3')]);

function rollout(
  id: string,
  state: RolloutState,
  applies: Record<string, string> = { EM1: v1['EM1']!, EM2: v1['EM2']! },
  feed = 'microsoft',
): HoldingRollout {
  return { partitionKey: id, feed, packageSequence: 1, state, applies };
}

describe('contentHashes', () => {
  it('is the content: a new description changes nothing, a new action value does', () => {
    expect(contentHashes([{ ...mitigation('EM1'), description: 'reworded' }])['EM1']).toBe(v1['EM1']);
    expect(v2['EM1']).not.toBe(v1['EM1']);
    expect(v2['EM2']).toBe(v1['EM2']);
  });
});

describe('heldBy: what one rollout holds now', () => {
  it.each([
    ...holdingStates.map((state) => ({
      name: `${state}, same package: everything it applies`,
      rollout: rollout('r1', state),
      current: v1,
      held: ['EM1', 'EM2'],
    })),
    ...(['Planned', 'Running', 'Baking', 'Paused', 'Completed'] as const).map((state) => ({
      name: `${state}: nothing`,
      rollout: rollout('r1', state),
      current: v1,
      held: [],
    })),
    {
      name: 'a newer package with different content for EM1 lifts EM1 only',
      rollout: rollout('r1', 'Halted'),
      current: v2,
      held: ['EM2'],
    },
    {
      name: 'a newer package without EM2 (withdrawn): a removal is never held',
      rollout: rollout('r1', 'Halted'),
      current: { EM1: v1['EM1']! },
      held: ['EM1'],
    },
    {
      name: 'the current package unreadable: the hold stays',
      rollout: rollout('r1', 'Aborted'),
      current: undefined,
      held: ['EM1', 'EM2'],
    },
    {
      name: 'a rollout that applied nothing (a removal) holds nothing',
      rollout: rollout('r1', 'Halted', {}),
      current: v1,
      held: [],
    },
  ])('$name', ({ rollout: holding, current, held }) => {
    expect(heldBy(holding, current)).toEqual(held);
  });
});

describe('activeHolds', () => {
  it('one hold per feed and mitigation, naming the newest holding rollout', () => {
    const rollouts = [
      rollout('r3', 'Completed'),
      rollout('r2', 'Aborted', { EM2: v1['EM2']! }),
      rollout('r1', 'Halted'),
      rollout('c1', 'Halted', { EM1: 'f'.repeat(64) }, 'contoso'),
    ];
    expect(activeHolds(rollouts, new Map([['microsoft', v1]]))).toEqual([
      { feed: 'microsoft', mitigation: 'EM2', rolloutId: 'r2', state: 'Aborted', packageSequence: 1 },
      { feed: 'microsoft', mitigation: 'EM1', rolloutId: 'r1', state: 'Halted', packageSequence: 1 },
      // No current content known for contoso: its hold stays.
      { feed: 'contoso', mitigation: 'EM1', rolloutId: 'c1', state: 'Halted', packageSequence: 1 },
    ]);
  });

  it('a retried rollout (Running again) holds nothing', () => {
    expect(activeHolds([rollout('r1', 'Running')], new Map([['microsoft', v1]]))).toEqual([]);
  });
});

describe("withoutHeld: reconcile's filtering step", () => {
  const server = (name: string, apply: string[], remove: string[] = []): ServerWork => ({
    server: name,
    hybridConnection: name,
    apply,
    remove,
    decisions: [],
    onDegraded: 'rollback',
    ring: 'broad',
  });
  const holds: Hold[] = [
    { feed: 'microsoft', mitigation: 'EM1', rolloutId: 'r1', state: 'Halted', packageSequence: 1 },
    { feed: 'contoso', mitigation: 'EM2', rolloutId: 'c1', state: 'Halted', packageSequence: 4 },
  ];
  it.each([
    {
      name: 'a held apply is dropped, the server drops out',
      work: [server('ex01', ['EM1'])],
      kept: [],
      held: [{ server: 'ex01', holds: [{ mitigation: 'EM1', rolloutId: 'r1' }] }],
    },
    {
      name: 'other applies stay',
      work: [server('ex01', ['EM1', 'EM3'])],
      kept: [server('ex01', ['EM3'])],
      held: [{ server: 'ex01', holds: [{ mitigation: 'EM1', rolloutId: 'r1' }] }],
    },
    {
      name: 'removals are never held',
      work: [server('ex01', ['EM1'], ['EM1', 'OLD9'])],
      kept: [server('ex01', [], ['EM1', 'OLD9'])],
      held: [{ server: 'ex01', holds: [{ mitigation: 'EM1', rolloutId: 'r1' }] }],
    },
    {
      name: "another feed's hold does not apply",
      work: [server('ex01', ['EM2'])],
      kept: [server('ex01', ['EM2'])],
      held: [],
    },
    {
      name: 'no hold: the work as it was',
      work: [server('ex01', ['EM3']), server('ex02', [], ['EM2'])],
      kept: [server('ex01', ['EM3']), server('ex02', [], ['EM2'])],
      held: [],
    },
  ])('$name', ({ work, kept, held }) => {
    expect(withoutHeld(work, holds, 'microsoft')).toEqual({ work: kept, held });
  });
});
