import { describe, expect, it } from 'vitest';
import type { RolloutStateRow } from '../../lib/fleet/schemas.js';
import {
  countWave,
  earlyWindow,
  isSending,
  maxNamedFailures,
  type CountedResult,
} from '../../lib/rollout/accounting.js';
import { setBits } from '../../lib/rollout/bits.js';
import { bitsOf, stateRowOf, waveRowOf } from '../helpers/rollout-rows.js';

const running = stateRowOf('Running');
const firstPass = { wave: 0, attempt: 0 };
const ok = (index: number): CountedResult => ({ index, server: `s${index}`, verdict: 'succeeded' });
const failed = (index: number, note?: string): CountedResult => ({
  index,
  server: `s${index}`,
  verdict: 'failed',
  ...(note ? { note } : {}),
});
const skipped = (index: number): CountedResult => ({ index, server: `s${index}`, verdict: 'skipped' });
/** Six servers, two at a time, the first two sent. */
const started = waveRowOf({ dispatched: 2 });

describe('isSending', () => {
  it.each([
    { name: 'running this wave and pass', state: running, pass: firstPass, expected: true },
    { name: 'no state row', state: undefined, pass: firstPass, expected: false },
    { name: 'paused', state: stateRowOf('Paused'), pass: firstPass, expected: false },
    { name: 'baking', state: stateRowOf('Baking'), pass: firstPass, expected: false },
    {
      name: 'running another wave',
      state: stateRowOf('Running', { currentWave: 1 }),
      pass: firstPass,
      expected: false,
    },
    {
      name: 'running a retry of the wave',
      state: stateRowOf('Running', { attempt: 1 }),
      pass: firstPass,
      expected: false,
    },
  ])('$name → $expected', ({ state, pass, expected }) => {
    expect(isSending(state, pass)).toBe(expected);
  });
});

describe('earlyWindow: servers sent while results are still being stored', () => {
  it.each([
    { name: 'one answer frees one slot', state: running, wave: started, results: [ok(0)], expected: [2] },
    {
      name: 'two answers free two',
      state: running,
      wave: started,
      results: [ok(0), failed(1)],
      expected: [2, 3],
    },
    {
      name: 'an answer already counted (a redelivery) frees nothing',
      state: running,
      wave: waveRowOf({ dispatched: 3, succeeded: 1, counted: bitsOf(0) }),
      results: [ok(0)],
      expected: [],
    },
    {
      name: 'startWave (no result) fills the first window',
      state: running,
      wave: waveRowOf(),
      results: [],
      expected: [0, 1],
    },
    { name: 'paused: nothing', state: stateRowOf('Paused'), wave: started, results: [ok(0)], expected: [] },
    { name: 'no wave row: nothing', state: running, wave: undefined, results: [ok(0)], expected: [] },
    {
      name: 'the wave row is on another pass: nothing',
      state: running,
      wave: waveRowOf({ dispatched: 2, attempt: 1 }),
      results: [ok(0)],
      expected: [],
    },
    {
      name: 'never past the end of the wave',
      state: running,
      wave: waveRowOf({ servers: 2, dispatched: 2 }),
      results: [ok(0)],
      expected: [],
    },
  ])('$name', ({ state, wave, results, expected }) => {
    expect(earlyWindow(state, wave, firstPass, results).map(({ index }) => index)).toEqual(expected);
  });
});

interface CountCase {
  readonly name: string;
  readonly wave: ReturnType<typeof waveRowOf>;
  readonly results: readonly CountedResult[];
  readonly state?: RolloutStateRow | undefined;
  readonly sent?: readonly number[];
  /** [succeeded, failed, skipped] after the count. */
  readonly counts: readonly [number, number, number];
  readonly counted: readonly number[];
  readonly toSend: readonly number[];
  readonly dispatched: number;
  readonly finished: boolean;
  readonly changed: boolean;
}

describe('countWave: (wave, results, state) → counts, servers to send, finished', () => {
  it.each<CountCase>([
    {
      name: 'the first result slides the window by one',
      wave: started,
      results: [ok(0)],
      counts: [1, 0, 0],
      counted: [0],
      toSend: [2],
      dispatched: 3,
      finished: false,
      changed: true,
    },
    {
      name: 'a duplicate of a counted result counts nothing and sends nothing',
      wave: waveRowOf({ dispatched: 3, succeeded: 1, counted: bitsOf(0) }),
      results: [ok(0)],
      counts: [1, 0, 0],
      counted: [0],
      toSend: [],
      dispatched: 3,
      finished: false,
      changed: false,
    },
    {
      name: 'the same server twice in one batch counts once',
      wave: started,
      results: [ok(1), ok(1)],
      counts: [1, 0, 0],
      counted: [1],
      toSend: [2],
      dispatched: 3,
      finished: false,
      changed: true,
    },
    {
      name: 'out of order: a later server before an earlier one',
      wave: waveRowOf({ dispatched: 6, maxConcurrency: 6 }),
      results: [ok(5), failed(0), skipped(3)],
      counts: [1, 1, 1],
      counted: [0, 3, 5],
      toSend: [],
      dispatched: 6,
      finished: false,
      changed: true,
    },
    {
      name: 'the last result finishes the wave',
      wave: waveRowOf({ servers: 2, dispatched: 2, succeeded: 1, counted: bitsOf(0) }),
      results: [ok(1)],
      counts: [2, 0, 0],
      counted: [0, 1],
      toSend: [],
      dispatched: 2,
      finished: true,
      changed: true,
    },
    {
      name: 'the last result of a paused rollout is counted but does not finish the wave',
      wave: waveRowOf({ servers: 2, dispatched: 2, succeeded: 1, counted: bitsOf(0) }),
      results: [skipped(1)],
      state: stateRowOf('Paused', { resumeTo: 'Running' }),
      counts: [1, 0, 1],
      counted: [0, 1],
      toSend: [],
      dispatched: 2,
      finished: false,
      changed: true,
    },
    {
      name: 'a wave of 0 servers is finished as it starts',
      wave: waveRowOf({ servers: 0 }),
      results: [],
      counts: [0, 0, 0],
      counted: [],
      toSend: [],
      dispatched: 0,
      finished: true,
      changed: false,
    },
    {
      name: 'startWave: no result, the first window',
      wave: waveRowOf(),
      results: [],
      counts: [0, 0, 0],
      counted: [],
      toSend: [0, 1],
      dispatched: 2,
      finished: false,
      changed: true,
    },
    {
      name: 'servers sent early are not sent again, and dispatched goes past them',
      wave: started,
      results: [ok(0), ok(1)],
      sent: [2, 3],
      counts: [2, 0, 0],
      counted: [0, 1],
      toSend: [],
      dispatched: 4,
      finished: false,
      changed: true,
    },
    {
      name: 'a stopped rollout sends nothing',
      wave: started,
      results: [ok(0)],
      state: stateRowOf('Aborted'),
      counts: [1, 0, 0],
      counted: [0],
      toSend: [],
      dispatched: 2,
      finished: false,
      changed: true,
    },
    {
      name: 'a retry pass sends its own servers by plan index',
      wave: waveRowOf({ attempt: 1, pass: bitsOf(1, 4), succeeded: 4, maxConcurrency: 1, dispatched: 1 }),
      state: stateRowOf('Running', { attempt: 1 }),
      results: [failed(1)],
      counts: [4, 1, 0],
      counted: [1],
      toSend: [4],
      dispatched: 2,
      finished: false,
      changed: true,
    },
  ])('$name', ({ wave, results, state, sent, counts, counted, toSend, dispatched, finished, changed }) => {
    const pass = { wave: 0, attempt: wave.attempt };
    const count = countWave(wave, results, state === undefined ? running : state, pass, new Set(sent ?? []))!;
    expect([count.wave.succeeded, count.wave.failed, count.wave.skipped]).toEqual(counts);
    expect(setBits(count.wave.counted)).toEqual(counted);
    expect(count.toSend.map(({ index }) => index)).toEqual(toSend);
    expect(count.wave.dispatched).toBe(dispatched);
    expect(count.finished).toBe(finished);
    expect(count.changed).toBe(changed);
  });

  it('a result of an older pass than the wave row is on (a message older than a retry) counts nothing', () => {
    expect(countWave(waveRowOf({ attempt: 2 }), [ok(0)], running, firstPass, new Set())).toBeUndefined();
  });

  it('failures and skips are kept per index for a retry; only failures are named, with their note', () => {
    const count = countWave(
      waveRowOf({ dispatched: 6, maxConcurrency: 6 }),
      [failed(2, 'EM2 RolledBack: ecp'), skipped(4), failed(5), ok(0)],
      running,
      firstPass,
      new Set(),
    )!;
    expect(setBits(count.wave.failedIndices)).toEqual([2, 4, 5]);
    expect(count.wave.failedServers).toEqual(['s2', 's5']);
    expect(count.wave.failureNotes).toEqual({ s2: 'EM2 RolledBack: ecp' });
  });

  it.each([
    { name: 'one below the naming limit: named', before: maxNamedFailures - 1, named: maxNamedFailures },
    { name: 'at the naming limit: counted, not named', before: maxNamedFailures, named: maxNamedFailures },
  ])('$name', ({ before, named }) => {
    const wave = waveRowOf({
      servers: 200,
      dispatched: 200,
      maxConcurrency: 200,
      failed: before,
      failedServers: Array.from({ length: before }, (_, index) => `f${index}`),
    });
    const count = countWave(wave, [failed(150)], running, firstPass, new Set())!;
    expect(count.wave.failed).toBe(before + 1);
    expect(count.wave.failedServers).toHaveLength(named);
  });

  it('does not change the row it was given', () => {
    const wave = waveRowOf({ dispatched: 2 });
    const copy = structuredClone(wave);
    countWave(wave, [failed(0, 'note')], running, firstPass, new Set());
    expect(wave).toEqual(copy);
  });
});
