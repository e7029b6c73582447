import { describe, expect, it } from 'vitest';
import { gateEvent } from '../../lib/rollout/gate.js';
import { transition } from '../../lib/rollout/state.js';
import { waveRowOf } from '../helpers/rollout-rows.js';

describe('gateEvent', () => {
  it.each([
    {
      name: 'a clean wave',
      row: waveRowOf({ succeeded: 6 }),
      counts: { servers: 6, succeeded: 6, failed: 0, skipped: 0 },
      failedServers: [],
    },
    {
      name: 'failures named, with their notes where there are some',
      row: waveRowOf({
        succeeded: 4,
        failed: 2,
        maxErrors: 1,
        failedServers: ['ex01', 'ex02'],
        failureNotes: { ex02: 'EM2 RolledBack: ecp' },
      }),
      counts: { servers: 6, succeeded: 4, failed: 2, skipped: 0 },
      failedServers: ['ex01', 'ex02 [EM2 RolledBack: ecp]'],
    },
    {
      name: 'a wave of 0 servers',
      row: waveRowOf({ servers: 0 }),
      counts: { servers: 0, succeeded: 0, failed: 0, skipped: 0 },
      failedServers: [],
    },
  ])('$name', ({ row, counts, failedServers }) => {
    expect(gateEvent(2, row)).toEqual({
      kind: 'gate',
      wave: 2,
      counts,
      maxErrors: row.maxErrors,
      failedServers,
    });
  });

  it.each([
    { name: 'failures at the budget pass', failed: 2, maxErrors: 2, state: 'Running' },
    { name: 'one over the budget halts', failed: 3, maxErrors: 2, state: 'Halted' },
    { name: 'no budget, one failure halts', failed: 1, maxErrors: 0, state: 'Halted' },
  ])('judged by the state machine: $name', ({ failed, maxErrors, state }) => {
    const row = waveRowOf({
      succeeded: 6 - failed,
      failed,
      maxErrors,
      failedServers: Array.from({ length: failed }, (_, index) => `f${index}`),
    });
    const result = transition(
      {
        state: 'Baking',
        currentWave: 0,
        waveCount: 3,
        profile: 'default',
        reasonCode: '',
        reasonDetail: '',
        attempt: 0,
        halts: 0,
      },
      gateEvent(0, row),
    );
    expect(result.ok && result.status.state).toBe(state);
  });
});
