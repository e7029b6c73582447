import { describe, expect, it } from 'vitest';
import { allApplied, useWorld } from '../helpers/e2e.js';

/** A rollout from the poll to its end, run by the local Functions host against real agents. */
const world = useWorld();

describe('a rollout run by the local Functions host', () => {
  it('polls, rolls out in three waves with a real bake, and completes; the admin API shows it', async () => {
    const d = await world.deploy([
      { name: 'ex01', ring: 'canary' },
      { name: 'ex02', ring: 'broad' },
      { name: 'ex03', ring: 'broad' },
      { name: 'ex04', ring: 'broad' },
    ]);
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    const { rollouts } = (await d.api('GET', '/api/rollouts')).body as {
      rollouts: { id: string; state: string }[];
    };
    expect(rollouts).toEqual([expect.objectContaining({ id: 'microsoft-000001-apply', state: 'Completed' })]);
    const shown = (await d.api('GET', '/api/rollouts/microsoft-000001-apply')).body as {
      waves: { name: string; servers: number; succeeded: number }[];
    };
    expect(shown.waves.map((wave) => [wave.name, wave.servers, wave.succeeded])).toEqual([
      ['canary', 1, 1],
      ['early', 2, 2],
      ['broad', 1, 1],
    ]);
    for (const server of ['ex01', 'ex02', 'ex03', 'ex04'])
      expect(await d.outcomes(server)).toEqual([allApplied]);
    expect((await d.api('GET', '/api/status')).status).toBe(200);
    expect((await fetch(`${d.host.httpUrl}/api/status`)).status).toBe(401);
  });

  it('halts on a canary failure and never touches the later waves', async () => {
    const d = await world.deploy([
      { name: 'ex05', ring: 'canary', failOn: ['MSExchangeUM'] },
      { name: 'ex06', ring: 'broad' },
    ]);
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    const [rollout] = (
      (await d.api('GET', '/api/rollouts')).body as {
        rollouts: { state: string; reasonCode: string; reasonDetail: string }[];
      }
    ).rollouts;
    expect(rollout).toMatchObject({
      state: 'Halted',
      reasonCode: 'WaveHalted',
      reasonDetail: expect.stringContaining('ex05.contoso.com'),
    });
    expect(await d.outcomes('ex06')).toEqual([]);
    expect(d.agents.get('ex06')!.running!.service.status().operations).toEqual([]);
  });

  it('a server whose agent never answers goes to the poison queue and is recorded Unreachable', async () => {
    const d = await world.deploy([
      { name: 'ex07', ring: 'canary', agent: false },
      { name: 'ex08', ring: 'broad' },
    ]);
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    const [result] = await d.results('ex07');
    expect(Object.values(result!.outcomes)[0]).toMatchObject({
      outcome: 'Unreachable',
      detail: expect.stringContaining('gave up after maxDequeueCount'),
    });
    expect(d.logger.named('MessageMovedToPoison')).toHaveLength(1);
    // Counted by the gate: the canary's budget is 0 failures.
    expect(await d.waveCounts('microsoft-000001-apply')).toEqual([
      ['canary', 1, 0, 1, 0],
      ['early', 1, 0, 0, 0],
      ['broad', 0, 0, 0, 0],
    ]);
    const [rollout] = (
      (await d.api('GET', '/api/rollouts')).body as {
        rollouts: { state: string; reasonCode: string; reasonDetail: string }[];
      }
    ).rollouts;
    expect(rollout).toMatchObject({
      state: 'Halted',
      reasonCode: 'WaveHalted',
      reasonDetail: expect.stringContaining('ex07.contoso.com'),
    });
  });
});
