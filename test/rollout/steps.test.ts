import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../lib/agent/run.js';
import { queueNames, StorageQueueSender, type QueueName } from '../../lib/fleet/queues.js';
import { readResults } from '../../lib/fleet/results.js';
import { readRollout } from '../../lib/fleet/rollouts.js';
import { registerServer, getServer } from '../../lib/fleet/servers.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { applyEvent, applyPoisoned, applyToServer, gateWave, startWave, type StepDeps } from '../../lib/rollout/steps.js';
import type { WaveProfile } from '../../lib/rollout/waves.js';
import { relayWithClient, runAgent, writeAgentConfig } from '../helpers/agents.js';
import { azuriteConnectionString, freshTables } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/**
 * The rollout steps end to end with real parts (Azurite tables and queues, the relay emulator,
 * real agents with the simulated applier), the queues drained by the test instead of a host.
 */
const waves: WaveProfile = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
];
let pki: TestPki;
let relay: Awaited<ReturnType<typeof relayWithClient>>;
const agents: RunningAgent[] = [];

beforeAll(async () => {
  pki = await createTestPki();
  relay = await relayWithClient();
});

afterAll(async () => {
  for (const agent of agents) await agent.close();
  await relay?.stop();
});

interface Fleet {
  tables: FleetTables;
  queues: StorageQueueSender;
  deps: StepDeps;
}

async function fleet(servers: { name: string; ring: string; failOn?: string[]; agent?: boolean }[]): Promise<Fleet> {
  const { tables } = freshTables();
  const queues = new StorageQueueSender({ kind: 'connectionString', connectionString: azuriteConnectionString() }, { prefix: `q${randomBytes(4).toString('hex')}` });
  for (const server of servers) {
    const hybridConnection = `${server.name}-${randomBytes(3).toString('hex')}`;
    await registerServer(tables, 'contoso', { name: `${server.name}.contoso.com`, build: '15.2.1118.7', ring: server.ring, relayHybridConnection: hybridConnection }, { actor: 'test' });
    if (server.agent === false) continue;
    const { config } = await writeAgentConfig(relay.relay, pki, { server: `${server.name}.contoso.com`, applier: { kind: 'simulated', failOn: server.failOn ?? [] } });
    agents.push(await runAgent({ ...config, relay: { ...config.relay, hybridConnection } }));
  }
  return { tables, queues, deps: { tables, queues, agents: relay.client, org: 'contoso', logger: silentLogger, pausedRecheckMs: 1000 } };
}

async function drain(queues: StorageQueueSender, queue: QueueName): Promise<unknown[]> {
  const client = await queues.client(queue);
  const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 60 });
  for (const item of receivedMessageItems) await client.deleteMessage(item.messageId, item.popReceipt);
  return receivedMessageItems.map((item) => JSON.parse(Buffer.from(item.messageText, 'base64').toString('utf8')));
}

/** Runs the queued steps, round by round as the host would, until the queues are empty or `rounds` is reached. */
async function runRounds(f: Fleet, rounds: number): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    const [started, applied, gated] = [await drain(f.queues, queueNames.waves), await drain(f.queues, queueNames.apply), await drain(f.queues, queueNames.gate)];
    if (started.length + applied.length + gated.length === 0) return true;
    for (const message of started) await startWave(f.deps, message as never);
    for (const message of applied) await applyToServer(f.deps, message as never);
    for (const message of gated) await gateWave(f.deps, message as never);
  }
  return false;
}

async function runQueues(f: Fleet): Promise<void> {
  if (!(await runRounds(f, 100))) throw new Error('queues did not drain');
}

async function accept(f: Fleet): Promise<string> {
  const outcome = await pollFeed({ tables: f.tables, queues: f.queues, org: 'contoso', waves, logger: silentLogger, fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(pki.sign(catalogueXml)) }) }, { name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust });
  if (outcome.kind !== 'accepted') throw new Error(JSON.stringify(outcome));
  return outcome.rollouts[0]!;
}

describe('rollout steps', () => {
  it('a two-wave rollout completes: every server applied, results recorded, reported state updated', async () => {
    const f = await fleet([{ name: 'ex01', ring: 'canary' }, { name: 'ex02', ring: 'broad' }, { name: 'ex03', ring: 'broad' }]);
    const id = await accept(f);
    await runQueues(f);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state).toMatchObject({ state: 'Completed' });
    expect(rollout.waves.map((wave) => [wave.name, wave.servers, wave.succeeded, wave.failed])).toEqual([['canary', 1, 1, 0], ['broad', 2, 2, 0]]);
    const results = await readResults(f.tables, 'ex02.contoso.com');
    expect(results.rows).toHaveLength(1);
    expect(Object.values(results.rows[0]!.outcomes).map((result) => result.outcome)).toEqual(['Applied', 'Applied', 'Applied', 'Applied']);
    expect((await getServer(f.tables, 'contoso', 'ex03.contoso.com')).reportedApplied).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
  });

  it('a canary failure over budget halts the rollout, names the server, and touches no later wave', async () => {
    const f = await fleet([{ name: 'ex01', ring: 'canary', failOn: ['MSExchangeOWAAppPool'] }, { name: 'ex02', ring: 'broad' }]);
    const id = await accept(f);
    await runQueues(f);
    const rollout = await readRollout(f.tables, id);
    expect(rollout.state.state).toBe('Halted');
    expect(rollout.state.reason).toMatch(/^WaveHalted: wave 1 had 1 failures, over its budget of 0 \(ex01\.contoso\.com\)/);
    expect(rollout.waves[1]).toMatchObject({ dispatched: 0, succeeded: 0, failed: 0 });
    expect((await readResults(f.tables, 'ex02.contoso.com')).rows).toEqual([]);
  });

  it('a message delivered twice never applies or counts twice', async () => {
    const f = await fleet([{ name: 'ex01', ring: 'canary' }, { name: 'ex02', ring: 'broad' }]);
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
    const f = await fleet([{ name: 'ex01', ring: 'canary' }, { name: 'ex02', ring: 'broad' }, { name: 'ex03', ring: 'broad' }]);
    const id = await accept(f);
    await runRounds(f, 1);
    expect((await applyEvent(f.deps, id, { kind: 'pause', actor: 'alice' })).ok).toBe(true);
    const before = (await readRollout(f.tables, id)).waves.map((wave) => wave.succeeded + wave.failed);
    expect(await runRounds(f, 3)).toBe(true);
    expect((await readRollout(f.tables, id)).state.state).toBe('Paused');
    expect((await readRollout(f.tables, id)).waves.map((wave) => wave.succeeded + wave.failed)).toEqual(before);
    expect((await applyEvent(f.deps, id, { kind: 'resume', actor: 'alice' })).ok).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await runQueues(f);
    expect((await readRollout(f.tables, id)).state.state).toBe('Completed');

    const g = await fleet([{ name: 'ex04', ring: 'canary' }, { name: 'ex05', ring: 'broad' }]);
    const other = await accept(g);
    expect((await applyEvent(g.deps, other, { kind: 'abort', actor: 'bob' })).ok).toBe(true);
    await runQueues(g);
    expect((await readRollout(g.tables, other)).state).toMatchObject({ state: 'Aborted', reason: 'Aborted by bob' });
    expect((await readResults(g.tables, 'ex05.contoso.com')).rows).toEqual([]);
  });

  it('a poisoned message records the server Unreachable and counts it as a failure', async () => {
    const f = await fleet([{ name: 'ex06', ring: 'canary', agent: false }, { name: 'ex07', ring: 'broad' }]);
    const id = await accept(f);
    const [start] = await drain(f.queues, queueNames.waves);
    await startWave(f.deps, start as never);
    const [apply] = await drain(f.queues, queueNames.apply);
    await expect(applyToServer(f.deps, apply as never)).rejects.toThrow(/listener|Unreachable|502/i);
    await applyPoisoned(f.deps, apply as never, 5);
    const results = await readResults(f.tables, 'ex06.contoso.com');
    expect(Object.values(results.rows[0]!.outcomes)[0]).toMatchObject({ outcome: 'Unreachable' });
    await runQueues(f);
    expect((await readRollout(f.tables, id)).state.state).toBe('Halted');
  });
});
