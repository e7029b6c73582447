import { describe, expect, it } from 'vitest';
import { defaultSimulatedServer } from '../../lib/agent/appliers/simulated.js';
import { allApplied, serverBeingWorkedOn, useWorld, waitFor } from '../helpers/e2e.js';

/**
 * An admin steering a running rollout through the admin API: pause and resume, abort. The agents
 * take a moment per change, so the test can act while a server is being worked on.
 */
const world = useWorld();

const rolloutId = 'microsoft-000001-apply';

describe('steering a running rollout', () => {
  it('pause: the server being worked on finishes, no other is touched; resume: the rollout carries on and completes', async () => {
    const broad = ['ex02', 'ex03', 'ex04'];
    const d = await world.deploy(
      [{ name: 'ex01', ring: 'canary' }, ...broad.map((name) => ({ name, ring: 'broad', delayInMs: 250 }))],
      {
        waves: [
          { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
          { name: 'broad', select: { percent: 100 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
        ],
      },
    );
    await d.host.runTimer('pollOcs');
    const first = await waitFor('a broad server being worked on', () => serverBeingWorkedOn(d, broad));
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/pause`)).toMatchObject({
      status: 200,
      body: { state: 'Paused' },
    });

    // Idle: nothing runs and no message waits, visible or not, so nothing more can happen while paused.
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state).toMatchObject({ state: 'Paused', resumeTo: 'Running' });
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 1, 1, 0, 0],
      ['broad', 3, 1, 0, 0],
    ]);
    for (const name of broad) expect(await d.outcomes(name)).toEqual(name === first ? [allApplied] : []);
    for (const name of broad.filter((server) => server !== first)) {
      expect(d.agents.get(name)!.running!.service.status().operations).toEqual([]);
      expect(await d.agents.get(name)!.readState()).toEqual(defaultSimulatedServer());
    }

    expect(await d.api('POST', `/api/rollouts/${rolloutId}/resume`)).toMatchObject({
      status: 200,
      body: { state: 'Running' },
    });
    await d.settled(rolloutId);
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state.state).toBe('Completed');
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 1, 1, 0, 0],
      ['broad', 3, 3, 0, 0],
    ]);
    for (const name of ['ex01', ...broad]) expect(await d.outcomes(name)).toEqual([allApplied]);
  });

  it('abort: the server being worked on finishes, queued messages end Skipped, nothing else is touched', async () => {
    const early = ['ex12', 'ex13', 'ex14'];
    const untouched = ['ex15', 'ex16'];
    const d = await world.deploy(
      [
        { name: 'ex11', ring: 'canary' },
        ...early.map((name) => ({ name, ring: 'early', delayInMs: 250 })),
        ...untouched.map((name) => ({ name, ring: 'broad' })),
      ],
      {
        waves: [
          { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
          { name: 'early', select: { ring: 'early' }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
          { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
        ],
        // One message at a time: of the early wave's window of two, one waits in the queue.
        queues: { batchSize: 1, newBatchThreshold: 0 },
      },
    );
    await d.host.runTimer('pollOcs');
    const first = await waitFor('an early server being worked on', () => serverBeingWorkedOn(d, early));
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/abort`)).toMatchObject({
      status: 200,
      body: { state: 'Aborted' },
    });

    await d.host.idle();
    expect((await d.rollout(rolloutId)).state).toMatchObject({
      state: 'Aborted',
      reasonCode: 'AbortedByAdmin',
      reasonDetail: expect.stringMatching(/^by /),
    });
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 1, 1, 0, 0],
      ['early', 3, 1, 0, 1],
      ['broad', 2, 0, 0, 0],
    ]);
    const byOutcome = Object.fromEntries(
      await Promise.all(early.map(async (name) => [name, await d.outcomes(name)] as const)),
    );
    expect(byOutcome[first]).toEqual([allApplied]);
    const skipped = early.filter((name) => byOutcome[name]!.length > 0 && name !== first);
    expect(skipped).toHaveLength(1);
    expect(byOutcome[skipped[0]!]).toEqual([
      { PING1: 'Skipped', EM1: 'Skipped', EM2: 'Skipped', EM3: 'Skipped' },
    ]);
    expect(Object.values((await d.results(skipped[0]!))[0]!.outcomes)[0]!.detail).toMatch(
      /rollout is Aborted/,
    );
    for (const name of [...early.filter((server) => server !== first), ...untouched]) {
      if (!skipped.includes(name)) expect(await d.outcomes(name)).toEqual([]);
      expect(d.agents.get(name)!.running!.service.status().operations).toEqual([]);
      expect(await d.agents.get(name)!.readState()).toEqual(defaultSimulatedServer());
    }
  });
});
