import { describe, expect, it } from 'vitest';
import type { Timers } from '../../../lib/clock.js';
import { queueNames } from '../../../lib/fleet/queues.js';
import { readResults } from '../../../lib/fleet/results.js';
import { catalogueXml } from '../../../lib/local/catalogue.js';
import type { WaveProfile } from '../../../lib/model/waves.js';
import type { OperationReply } from '../../../lib/relay/protocol.js';
import { applyToServer } from '../../../lib/rollout/steps/apply-to-server.js';
import type { AgentPort } from '../../../lib/rollout/steps/deps.js';
import { startWave } from '../../../lib/rollout/steps/start-wave.js';
import { manualTimers } from '../../helpers/clock.js';
import { acceptPackage, drain, type Fleet, useFleets } from '../../helpers/rollouts.js';

/**
 * An agent that answers 202 (the operation still running) is asked again within the same delivery,
 * on the step's clock and timers: every wait is asked of the injected timers, and the deadline is
 * read from the injected clock, so these cases neither sleep nor depend on the machine's speed.
 */
const waves: WaveProfile = [
  { name: 'all', select: { percent: 100 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
];
const env = useFleets();

/** A clock that moves on by each wait it is asked for, and ends the wait at once (no time passes). */
function steppingClock(): { now: () => Date; timers: Timers; delays: number[] } {
  let at = Date.UTC(2026, 11, 7, 12, 0, 0);
  const delays: number[] = [];
  const manual = manualTimers();
  return {
    now: () => new Date(at),
    delays,
    timers: {
      setTimeout: (callback, delayMs) => {
        delays.push(delayMs);
        at += delayMs;
        const handle = manual.setTimeout(callback, delayMs);
        manual.pending.at(-1)!.fire();
        return handle;
      },
      clearTimeout: manual.clearTimeout,
    },
  };
}

/** The real agent behind a port whose apply answers "still running" and whose status says so `runningFor` times. */
function slowAgent(f: Fleet, runningFor: number): AgentPort & { statusCalls: () => number } {
  const real = f.deps.agents;
  let calls = 0;
  let applied: OperationReply | undefined;
  return {
    remove: (hybridConnection, request) => real.remove(hybridConnection, request),
    apply: async (hybridConnection, request) => {
      applied = await real.apply(hybridConnection, request);
      return { ...applied, status: 'InProgress', outcomes: {} };
    },
    status: async (hybridConnection) => {
      calls += 1;
      const status = await real.status(hybridConnection);
      if (calls > runningFor || applied === undefined) return status;
      return { ...status, operations: [{ ...applied, status: 'InProgress', outcomes: {} }] };
    },
    statusCalls: () => calls,
  };
}

async function theApplyMessage(f: Fleet): Promise<unknown> {
  await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
  for (const message of await drain(f.queues, queueNames.waves)) await startWave(f.deps, message as never);
  const [message] = await drain(f.queues, queueNames.apply);
  expect(message).toBeDefined();
  return message;
}

describe('applyToServer waiting on a 202 operation', () => {
  it('asks again after each poll interval until the operation completes, then records its result', async () => {
    const f = await env.fleet([{ name: 'ex01', ring: 'broad' }]);
    const message = await theApplyMessage(f);
    const clock = steppingClock();
    const agents = slowAgent(f, 3);
    await applyToServer({ ...f.deps, agents, now: clock.now, timers: clock.timers }, message as never);
    expect(agents.statusCalls()).toBe(4);
    expect(clock.delays).toEqual([2000, 2000, 2000, 2000]);
    const results = await readResults(f.tables, 'ex01.contoso.com');
    expect(Object.values(results.rows[0]!.outcomes).map((result) => result.outcome)).toEqual([
      'Applied',
      'Applied',
      'Applied',
      'Applied',
    ]);
  });

  it('gives up after operationWaitMs on its clock, naming the server and the operation, so the host asks again later', async () => {
    const f = await env.fleet([{ name: 'ex02', ring: 'broad' }]);
    const message = await theApplyMessage(f);
    const clock = steppingClock();
    const agents = slowAgent(f, Number.POSITIVE_INFINITY);
    await expect(
      applyToServer(
        { ...f.deps, agents, now: clock.now, timers: clock.timers, operationWaitMs: 10_000 },
        message as never,
      ),
    ).rejects.toMatchObject({
      name: 'RelayTimeoutError',
      context: { server: 'ex02.contoso.com', operationId: expect.any(String) as unknown },
    });
    // 10 s at 2 s a poll: five waits reach the deadline, the sixth look is past it.
    expect(clock.delays).toEqual([2000, 2000, 2000, 2000, 2000, 2000]);
    expect((await readResults(f.tables, 'ex02.contoso.com')).rows).toEqual([]);
  });
});
