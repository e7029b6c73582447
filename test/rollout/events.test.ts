import { describe, expect, it } from 'vitest';
import { setBits } from '../../lib/rollout/bits.js';
import { decideEvent, decideRetry, stateChanges, statusOf } from '../../lib/rollout/events.js';
import { bitsOf, stateRowOf, waveRowOf } from '../helpers/rollout-rows.js';

const actor = 'alice@contoso.com';

describe('statusOf and stateChanges', () => {
  it('what the state machine sees of a row, and back', () => {
    const row = stateRowOf('Paused', {
      resumeTo: 'Baking',
      reasonCode: 'PausedByAdmin',
      reasonDetail: 'by alice',
      attempt: 1,
      halts: 1,
    });
    const status = statusOf(row);
    expect(status).toEqual({
      state: 'Paused',
      currentWave: 0,
      waveCount: 3,
      profile: 'default',
      reasonCode: 'PausedByAdmin',
      reasonDetail: 'by alice',
      attempt: 1,
      halts: 1,
      resumeTo: 'Baking',
    });
    expect({ ...row, ...stateChanges(status) }).toEqual(row);
  });

  it('a resume clears resumeTo (undefined, left out when stored)', () => {
    expect(stateChanges(statusOf(stateRowOf('Running')))).toHaveProperty('resumeTo', undefined);
  });
});

describe('decideEvent', () => {
  it.each([
    {
      name: 'start: written, then the first wave is sent',
      row: stateRowOf('Planned'),
      event: { kind: 'start' } as const,
      expected: { kind: 'accepted', state: 'Running', effects: [{ kind: 'startWave', wave: 0 }] },
    },
    {
      name: 'a duplicate waveFinished after the wave moved on is refused',
      row: stateRowOf('Baking'),
      event: { kind: 'waveFinished', wave: 0 } as const,
      expected: { kind: 'refused' },
    },
    {
      name: 'pausing a paused rollout is refused',
      row: stateRowOf('Paused', { resumeTo: 'Running' }),
      event: { kind: 'pause', actor } as const,
      expected: { kind: 'refused' },
    },
    {
      name: 'a gate for a wave already judged is refused',
      row: stateRowOf('Running', { currentWave: 1 }),
      event: {
        kind: 'gate',
        wave: 0,
        counts: { servers: 1, succeeded: 1, failed: 0, skipped: 0 },
        maxErrors: 0,
        failedServers: [],
      } as const,
      expected: { kind: 'refused' },
    },
  ])('$name', ({ row, event, expected }) => {
    const decision = decideEvent(row, event);
    expect(decision.kind).toBe(expected.kind);
    if (decision.kind === 'accepted' && expected.kind === 'accepted') {
      expect(decision.changes?.state).toBe(expected.state);
      expect(decision.effects).toEqual(expected.effects);
    }
    if (decision.kind === 'refused') expect(decision.refusal.reasonCode).toBe('Refused');
  });
});

describe('decideRetry', () => {
  /** Six canaries: 0 and 2 succeeded, 1 and 4 failed, 3 skipped, 5 never counted. */
  const halted = waveRowOf({
    succeeded: 2,
    failed: 2,
    skipped: 1,
    dispatched: 6,
    counted: bitsOf(0, 1, 2, 3, 4),
    failedIndices: bitsOf(1, 3, 4),
    failedServers: ['s1', 's4'],
  });

  it('resends the failed and unreached servers under the next attempt, with a fresh count', () => {
    const decision = decideRetry(
      stateRowOf('Halted', { reasonCode: 'WaveHalted', reasonDetail: '…' }),
      halted,
      0,
      {
        kind: 'retry',
        actor,
      },
    );
    expect(decision.kind).toBe('retry');
    if (decision.kind !== 'retry') return;
    expect(decision.resent).toBe(4);
    expect(setBits(decision.wave.pass)).toEqual([1, 3, 4, 5]);
    expect(decision.wave).toMatchObject({
      attempt: 1,
      succeeded: 2,
      failed: 0,
      skipped: 0,
      failedServers: [],
    });
    expect(decision.state).toMatchObject({ state: 'Running', attempt: 1 });
    expect(decision.effects).toContainEqual({ kind: 'startWave', wave: 0 });
  });

  it.each([
    {
      name: 'the rollout moved on to another wave since it was read',
      row: stateRowOf('Halted', { currentWave: 1 }),
      expected: {
        kind: 'refused',
        refusal: {
          reasonCode: 'Refused',
          reasonDetail:
            'retry refused: the rollout moved on to wave 2 meanwhile; retry again (rollout is Halted, wave 2 of 3)',
        },
      },
    },
    {
      name: 'a running rollout cannot be retried',
      row: stateRowOf('Running'),
      expected: expect.objectContaining({ kind: 'refused' }),
    },
    {
      name: 'an aborted rollout cannot be retried',
      row: stateRowOf('Aborted'),
      expected: expect.objectContaining({ kind: 'refused' }),
    },
  ])('refused: $name', ({ row, expected }) => {
    expect(decideRetry(row, halted, 0, { kind: 'retry', actor })).toEqual(expected);
  });
});
