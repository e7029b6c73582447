import { describe, expect, it } from 'vitest';
import { rolloutView } from '../../lib/dashboard/overview.js';
import type { RolloutStateRow, WaveRow } from '../../lib/fleet/schemas.js';
import { waveRowOf } from '../helpers/rollout-rows.js';

const at = (second: number): Date => new Date(Date.UTC(2026, 10, 1, 12, 0, second));

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

const waveRow = (index: number, changes: Partial<WaveRow> = {}): WaveRow =>
  waveRowOf({
    rowKey: `wave-0${index}`,
    name: ['canary', 'early', 'broad'][index]!,
    servers: 10,
    maxErrors: 1,
    bakeInMs: 60_000,
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
