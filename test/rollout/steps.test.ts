import { describe, expect, it } from 'vitest';
import { queueNames } from '../../lib/fleet/queues.js';
import { readResults } from '../../lib/fleet/results.js';
import { readRollout } from '../../lib/fleet/rollouts.js';
import { getServer } from '../../lib/fleet/servers.js';
import { owaPoolTakesDownEcp } from '../../lib/agent/appliers/simulated-front-end.js';
import { changePolicy } from '../../lib/fleet/policy.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { jsonLogger } from '../../lib/log.js';
import { changeRollout } from '../../lib/rollout/admin.js';
import { rolloutProblems } from '../../lib/rollout/problems.js';
import { applyPoisoned } from '../../lib/rollout/steps/apply-poisoned.js';
import { applyToServer } from '../../lib/rollout/steps/apply-to-server.js';
import { applyEvent } from '../../lib/rollout/steps/rollout-events.js';
import { startWave } from '../../lib/rollout/steps/start-wave.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { acceptPackage, drain, type Fleet, runQueues, runRounds, useFleets } from '../helpers/rollouts.js';
import { waitFor } from '../helpers/wait.js';
import { renderReason } from '../../lib/model/reasons.js';

/**
 * The rollout steps end to end with real parts (Azurite tables and queues, the relay emulator,
 * real agents with the simulated applier), the queues drained by the test instead of a host.
 */
const waves: WaveProfile = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
];
const env = useFleets();

function accept(f: Fleet): Promise<string> {
  return acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
}

describe('rollout steps', () => {
  it('a two-wave rollout completes: every server applied, results recorded, reported state updated', async () => {
    const f = await env.fleet([
      { name: 'ex01', ring: 'canary' },
      { name: 'ex02', ring: 'broad' },
      { name: 'ex03', ring: 'broad' },
    ]);
    const id = await accept(f);
    await runQueues(f);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state).toMatchObject({ state: 'Completed' });
    expect(rollout.waves.map((wave) => [wave.name, wave.servers, wave.succeeded, wave.failed])).toEqual([
      ['canary', 1, 1, 0],
      ['broad', 2, 2, 0],
    ]);
    const results = await readResults(f.tables, 'ex02.contoso.com');
    expect(results.rows).toHaveLength(1);
    expect(Object.values(results.rows[0]!.outcomes).map((result) => result.outcome)).toEqual([
      'Applied',
      'Applied',
      'Applied',
      'Applied',
    ]);
    expect((await getServer(f.tables, 'contoso', 'ex03.contoso.com')).reportedApplied).toEqual([
      'EM1',
      'EM2',
      'EM3',
      'PING1',
    ]);
  });

  it('a canary failure over budget halts the rollout, names the server, and touches no later wave', async () => {
    const f = await env.fleet([
      { name: 'ex01', ring: 'canary', failOn: ['MSExchangeOWAAppPool'] },
      { name: 'ex02', ring: 'broad' },
    ]);
    const notified: unknown[] = [];
    f.deps = { ...f.deps, notify: async (event) => void notified.push(event) };
    const id = await accept(f);
    await runQueues(f);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state.state).toBe('Halted');
    expect(notified).toEqual([
      {
        kind: 'RolloutHalted',
        rolloutId: id,
        reasonCode: 'WaveHalted',
        reasonDetail: rollout.state.reasonDetail,
      },
    ]);
    expect(renderReason(rollout.state)).toMatch(
      /^WaveHalted: wave 1 had 1 failures, over its budget of 0 \(ex01\.contoso\.com\)/,
    );
    expect(rollout.waves[1]).toMatchObject({ dispatched: 0, succeeded: 0, failed: 0 });
    expect((await readResults(f.tables, 'ex02.contoso.com')).rows).toEqual([]);
  });

  it("the server's effective onDegraded reaches its agent: keep leaves a degrading change applied and reports Degraded", async () => {
    // The agent's own config must allow keep (allowKeepOnDegraded); a request alone cannot.
    const f = await env.fleet([
      { name: 'ex41', ring: 'canary', couplings: owaPoolTakesDownEcp, allowKeepOnDegraded: true },
      { name: 'ex42', ring: 'broad' },
    ]);
    await changePolicy(
      f.tables,
      { scope: 'org', name: 'contoso' },
      (table) => ({ ...table, onDegraded: 'keep' }),
      { actor: 'alice', action: 'policy.set' },
    );
    const id = await accept(f);
    await runQueues(f);
    const [result] = (await readResults(f.tables, 'ex41.contoso.com')).rows;
    expect(result!.outcomes.EM2).toMatchObject({
      outcome: 'Degraded',
      endpoints: ['/ecp/healthcheck.htm'],
      detail: expect.stringContaining('kept (policy onDegraded=keep)'),
    });
    // kept: still applied, so the server reports it
    expect((await getServer(f.tables, 'contoso', 'ex41.contoso.com')).reportedApplied).toContain('EM2');
    expect((await readRollout(f.tables, id)).state.state).toBe('Halted');
  });

  it('a change that degrades the canaries is RolledBack there: the gate halts, naming the servers and the endpoints, and no later wave is touched', async () => {
    const f = await env.fleet([
      { name: 'ex51', ring: 'canary', couplings: owaPoolTakesDownEcp },
      { name: 'ex52', ring: 'canary', couplings: owaPoolTakesDownEcp },
      { name: 'ex53', ring: 'broad' },
    ]);
    const id = await accept(f);
    await runQueues(f);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state.state).toBe('Halted');
    expect(renderReason(rollout.state)).toBe(
      'WaveHalted: wave 1 had 2 failures, over its budget of 0 (ex51.contoso.com [EM2 RolledBack: ecp], ex52.contoso.com [EM2 RolledBack: ecp])',
    );
    expect(rollout.waves[0]).toMatchObject({
      failed: 2,
      failureNotes: { 'ex51.contoso.com': 'EM2 RolledBack: ecp', 'ex52.contoso.com': 'EM2 RolledBack: ecp' },
    });
    expect(rollout.waves[1]).toMatchObject({ dispatched: 0, succeeded: 0, failed: 0 });
    expect((await readResults(f.tables, 'ex53.contoso.com')).rows).toEqual([]);
    // rolled back: not applied there, so nothing to remove later
    expect((await getServer(f.tables, 'contoso', 'ex51.contoso.com')).reportedApplied).toEqual([
      'EM1',
      'EM3',
      'PING1',
    ]);
    expect(await rolloutProblems(f.tables, id, rollout.waves)).toEqual([
      expect.objectContaining({
        wave: 0,
        waveName: 'canary',
        server: 'ex51.contoso.com',
        mitigation: 'EM2',
        outcome: 'RolledBack',
        endpoints: ['/ecp/healthcheck.htm'],
        detail: expect.stringContaining('ecp: 503 after apply (was 200)'),
      }),
      expect.objectContaining({
        wave: 0,
        server: 'ex52.contoso.com',
        mitigation: 'EM2',
        outcome: 'RolledBack',
      }),
    ]);
  });

  it('a message delivered twice never applies or counts twice', async () => {
    const f = await env.fleet([
      { name: 'ex01', ring: 'canary' },
      { name: 'ex02', ring: 'broad' },
    ]);
    const id = await accept(f);
    const [start] = await drain(f.queues, queueNames.waves);
    await startWave(f.deps, start as never);
    const [apply] = await drain(f.queues, queueNames.apply);
    await applyToServer(f.deps, apply as never);
    await applyToServer(f.deps, apply as never);
    const canary = (await readRollout(f.tables, id)).waves[0]!;
    expect(canary).toMatchObject({ servers: 1, succeeded: 1, failed: 0 });
  });

  it('pause holds messages without touching servers; resume carries on; abort skips what is left', async () => {
    const f = await env.fleet([
      { name: 'ex01', ring: 'canary' },
      { name: 'ex02', ring: 'broad' },
      { name: 'ex03', ring: 'broad' },
    ]);
    const id = await accept(f);
    await runRounds(f, 1);
    expect((await applyEvent(f.deps, id, { kind: 'pause', actor: 'alice' })).ok).toBe(true);
    const before = (await readRollout(f.tables, id)).waves.map((wave) => wave.succeeded + wave.failed);
    expect(await runRounds(f, 3)).toBe(true);
    expect((await readRollout(f.tables, id)).state.state).toBe('Paused');
    expect((await readRollout(f.tables, id)).waves.map((wave) => wave.succeeded + wave.failed)).toEqual(
      before,
    );
    expect((await applyEvent(f.deps, id, { kind: 'resume', actor: 'alice' })).ok).toBe(true);
    // The held messages come back after pausedRecheckMs (queue visibility): run the queues until they have.
    await waitFor(
      'the held messages to come back and the rollout to complete',
      async () => (await runRounds(f, 100)) && (await readRollout(f.tables, id)).state.state === 'Completed',
    );

    const g = await env.fleet([
      { name: 'ex04', ring: 'canary' },
      { name: 'ex05', ring: 'broad' },
    ]);
    const other = await accept(g);
    expect((await applyEvent(g.deps, other, { kind: 'abort', actor: 'bob' })).ok).toBe(true);
    await runQueues(g);
    expect((await readRollout(g.tables, other)).state).toMatchObject({
      state: 'Aborted',
      reasonCode: 'AbortedByAdmin',
      reasonDetail: 'by bob',
    });
    expect((await readResults(g.tables, 'ex05.contoso.com')).rows).toEqual([]);
  });

  it('a poisoned message records the server Unreachable and counts it as a failure', async () => {
    const f = await env.fleet([
      { name: 'ex06', ring: 'canary', agent: false },
      { name: 'ex07', ring: 'broad' },
    ]);
    const id = await accept(f);
    const [start] = await drain(f.queues, queueNames.waves);
    await startWave(f.deps, start as never);
    const [apply] = await drain(f.queues, queueNames.apply);
    await expect(applyToServer(f.deps, apply as never)).rejects.toThrow(/listener|Unreachable|502/i);
    await applyPoisoned(f.deps, apply as never);
    const results = await readResults(f.tables, 'ex06.contoso.com');
    expect(Object.values(results.rows[0]!.outcomes)[0]).toMatchObject({ outcome: 'Unreachable' });
    await runQueues(f);
    expect((await readRollout(f.tables, id)).state.state).toBe('Halted');
  });

  it('a transition is logged under its own name in the JSON log, with the event that caused it', async () => {
    const f = await env.fleet([{ name: 'ex31', ring: 'canary', agent: false }]);
    const id = await accept(f);
    const lines: string[] = [];
    const deps = { ...f.deps, logger: jsonLogger((line) => lines.push(line)) };
    await applyEvent(deps, id, { kind: 'pause', actor: 'alice' });
    await applyEvent(deps, id, { kind: 'pause', actor: 'alice' });
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries.map((entry) => [entry['event'], entry['rolloutEvent'], entry['rolloutId']])).toEqual([
      ['RolloutTransition', 'pause', id],
      ['RolloutEventRefused', 'pause', id],
    ]);
  });

  it('expedite puts the remaining waves on the emergency pace and widens the running window', async () => {
    const f = await env.fleet([
      { name: 'ex21', ring: 'canary', agent: false },
      ...['ex22', 'ex23', 'ex24', 'ex25', 'ex26'].map((name) => ({ name, ring: 'broad', agent: false })),
    ]);
    const id = await accept(f);
    await drain(f.queues, queueNames.waves);
    const emergency: WaveProfile = [
      { name: 'all', select: { percent: 100 }, maxConcurrency: '100%', maxErrors: '50%', bake: 'PT0S' },
    ];
    const result = await changeRollout(f.deps, id, 'expedite', 'carol', { emergencyWaves: emergency });
    expect(result.ok).toBe(true);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state).toMatchObject({
      profile: 'emergency',
      reasonCode: 'ExpeditedByAdmin',
      reasonDetail: 'by carol',
    });
    expect(
      rollout.waves.map((wave) => [wave.name, wave.maxConcurrency, wave.maxErrors, wave.bakeInMs]),
    ).toEqual([
      ['canary', 1, 0, 0],
      ['broad', 5, 2, 0],
    ]);
    expect(await drain(f.queues, queueNames.waves)).toEqual([{ rolloutId: id, wave: 0 }]);
  });

  // A broad wave's results arrive from many queue workers at once (batch size × instances), all on
  // one wave row: every result must be counted exactly once, a redelivered one not again.
  it('counts 40 concurrent results on one wave exactly once, redeliveries included', async () => {
    const names = Array.from({ length: 40 }, (_, index) => `ex${String(100 + index)}`);
    const f = await env.fleet(names.map((name) => ({ name, ring: 'broad', agent: false })));
    const id = await accept(f);
    const broad = (await readRollout(f.tables, id)).waves.findIndex((wave) => wave.servers === 40);
    const deliveries = [...names.keys(), ...names.keys()]
      .slice(0, 50)
      .map((index) => ({ rolloutId: id, wave: broad, index }));
    const settled = await Promise.allSettled(deliveries.map((message) => applyPoisoned(f.deps, message)));
    expect(settled.filter((outcome) => outcome.status === 'rejected')).toEqual([]);
    expect((await readRollout(f.tables, id)).waves[broad]).toMatchObject({
      servers: 40,
      failed: 40,
      succeeded: 0,
      skipped: 0,
    });
  });
});
