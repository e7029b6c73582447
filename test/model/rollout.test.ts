import { describe, expect, it } from 'vitest';
import { isActive, resumableStates, rolloutStates, type RolloutState } from '../../lib/model/rollout.js';

describe('isActive', () => {
  it.each<{ name: string; state: RolloutState; active: boolean }>([
    { name: 'planned, not sent yet', state: 'Planned', active: true },
    { name: 'sending a wave', state: 'Running', active: true },
    { name: 'baking before the gate', state: 'Baking', active: true },
    { name: 'paused by an admin (resumable)', state: 'Paused', active: true },
    { name: 'halted by the gate (ended until retried)', state: 'Halted', active: false },
    { name: 'aborted', state: 'Aborted', active: false },
    { name: 'completed', state: 'Completed', active: false },
  ])('$name: $active', ({ state, active }) => {
    expect(isActive(state)).toBe(active);
  });

  it('covers every state, and a paused rollout resumes only to an active state', () => {
    expect(new Set(rolloutStates).size).toBe(7);
    for (const state of resumableStates) expect(isActive(state)).toBe(true);
  });
});
