import { describe, expect, it } from 'vitest';
import { bitIsSet, withBit } from '../../lib/rollout/bits.js';
import { nextWindow, passIndices, retriedWave, retryCount } from '../../lib/rollout/pass.js';
import { waveRowOf } from '../helpers/rollout-rows.js';

const bits = (...indices: number[]): string => indices.reduce((set, index) => withBit(set, index), '');

const wave = waveRowOf;

/** The halted canary: indices 0-5; 1 and 4 failed, 3 skipped, 5 never counted, 0 and 2 succeeded. */
const halted = wave({
  succeeded: 2,
  failed: 2,
  skipped: 1,
  dispatched: 6,
  counted: bits(0, 1, 2, 3, 4),
  failedIndices: bits(1, 3, 4),
  failedServers: ['ex02', 'ex05'],
  failureNotes: { ex02: 'EM2 RolledBack: ecp' },
});

describe('retriedWave: what a retry sends again', () => {
  it.each([
    {
      name: 'failed, skipped and never-counted servers of a first pass',
      from: halted,
      attempt: 1,
      again: [1, 3, 4, 5],
    },
    {
      name: 'of a retry: only the servers of that pass that failed again',
      from: wave({
        attempt: 1,
        pass: bits(1, 3, 4, 5),
        succeeded: 3,
        failed: 1,
        dispatched: 4,
        counted: bits(1, 3, 4, 5),
        failedIndices: bits(4),
      }),
      attempt: 2,
      again: [4],
    },
    {
      name: 'a row from before failures were kept per index: the whole pass',
      from: wave({ succeeded: 4, failed: 2, counted: bits(0, 1, 2, 3, 4, 5) }),
      attempt: 1,
      again: [0, 1, 2, 3, 4, 5],
    },
    {
      name: 'a pass with nothing counted: all of it',
      from: wave({ attempt: 1, pass: bits(2, 5), succeeded: 4 }),
      attempt: 2,
      again: [2, 5],
    },
  ])('$name', ({ from, attempt, again }) => {
    const next = retriedWave(from, attempt);
    expect(passIndices(next)).toEqual(again);
    expect(next).toMatchObject({
      attempt,
      succeeded: from.servers - again.length,
      failed: 0,
      skipped: 0,
      dispatched: 0,
      counted: '',
      failedIndices: '',
      failedServers: [],
      servers: from.servers,
      maxErrors: from.maxErrors,
    });
    expect(next.failureNotes).toBeUndefined();
    expect(retryCount(from)).toBe(again.length);
  });

  it("keeps the wave's plan, budget and pace", () => {
    const next = retriedWave(halted, 1);
    expect({ ...next, attempt: 0, pass: '', succeeded: 2 }).toMatchObject({
      name: 'canary',
      servers: 6,
      maxConcurrency: 2,
      maxErrors: 0,
      bakeInMs: 0,
    });
  });
});

describe('nextWindow: the servers to send next', () => {
  it.each([
    {
      name: 'a first pass starts with maxConcurrency servers',
      from: wave(),
      answered: 0,
      window: [
        [0, 0],
        [1, 1],
      ],
    },
    { name: 'each answer frees a slot', from: wave({ dispatched: 2 }), answered: 1, window: [[2, 2]] },
    {
      name: 'counted results free slots',
      from: wave({ dispatched: 2, succeeded: 2 }),
      answered: 0,
      window: [
        [2, 2],
        [3, 3],
      ],
    },
    {
      name: 'never past the wave',
      from: wave({ dispatched: 5, succeeded: 5 }),
      answered: 0,
      window: [[5, 5]],
    },
    {
      name: 'a retry sends positions of its pass, as plan indices',
      from: retriedWave(halted, 1),
      answered: 0,
      window: [
        [0, 1],
        [1, 3],
      ],
    },
    {
      name: 'servers that succeeded before the retry count as done, not in flight',
      from: { ...retriedWave(halted, 1), dispatched: 2, failed: 1 },
      answered: 0,
      window: [[2, 4]],
    },
    {
      name: 'the end of a retry pass',
      from: { ...retriedWave(halted, 1), dispatched: 3, succeeded: 5 },
      answered: 0,
      window: [[3, 5]],
    },
  ])('$name', ({ from, answered, window }) => {
    expect(nextWindow(from, answered).map(({ position, index }) => [position, index])).toEqual(window);
  });
});

describe('bit sets', () => {
  it('set and read back, across bytes', () => {
    const set = bits(0, 7, 8, 100);
    expect([0, 1, 7, 8, 9, 99, 100, 101].map((index) => bitIsSet(set, index))).toEqual([
      true,
      false,
      true,
      true,
      false,
      false,
      true,
      false,
    ]);
    expect(passIndices({ servers: 200, attempt: 1, pass: set })).toEqual([0, 7, 8, 100]);
  });
});
