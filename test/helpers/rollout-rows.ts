import type { RolloutStateRow, WaveRow } from '../../lib/fleet/schemas.js';
import type { RolloutState } from '../../lib/model/rollout.js';
import { withBit } from '../../lib/rollout/bits.js';

/** Rollout rows as the pure rollout rules read them, for their table tests. */

/** A wave of `servers` (6 unless told) on its first pass, nothing sent or counted yet. */
export function waveRowOf(changes: Partial<WaveRow> = {}): WaveRow {
  return {
    partitionKey: 'microsoft-000001-apply',
    rowKey: 'wave-00',
    name: 'canary',
    servers: 6,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    maxConcurrency: 2,
    maxErrors: 0,
    bakeInMs: 0,
    dispatched: 0,
    counted: '',
    attempt: 0,
    pass: '',
    failedIndices: '',
    failedServers: [],
    ...changes,
  };
}

/** The state row of a three-wave rollout in `state` on wave `currentWave` (0 unless told). */
export function stateRowOf(state: RolloutState, changes: Partial<RolloutStateRow> = {}): RolloutStateRow {
  return {
    partitionKey: 'microsoft-000001-apply',
    rowKey: 'state',
    feed: 'microsoft',
    packageSequence: 1,
    operation: 'apply',
    state,
    reasonCode: '',
    reasonDetail: '',
    waveCount: 3,
    currentWave: 0,
    profile: 'default',
    attempt: 0,
    halts: state === 'Halted' ? 1 : 0,
    applies: {},
    createdAt: new Date('2026-12-07T10:00:00Z'),
    updatedAt: new Date('2026-12-07T10:00:00Z'),
    ...changes,
  };
}

/** The bitset of these plan indices. */
export const bitsOf = (...indices: number[]): string =>
  indices.reduce((set, index) => withBit(set, index), '');
