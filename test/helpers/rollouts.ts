import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import type { Couplings } from '../../lib/agent/appliers/simulated-front-end.js';
import type { RunningAgent } from '../../lib/agent/run.js';
import { queueNames, StorageQueueSender, type QueueName } from '../../lib/fleet/queues.js';
import { registerServer } from '../../lib/fleet/servers.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { silentLogger } from '../../lib/log.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { createRolloutCaches } from '../../lib/rollout/caches.js';
import { applyToServer } from '../../lib/rollout/steps/apply-to-server.js';
import type { StepDeps } from '../../lib/rollout/steps/deps.js';
import { gateWave } from '../../lib/rollout/steps/gate-wave.js';
import { startWave } from '../../lib/rollout/steps/start-wave.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { relayWithClient, runAgent, writeAgentConfig } from './agents.js';
import { azuriteConnectionString, freshTables } from './fleet.js';
import { createTestPki, type TestPki } from './packages.js';

/**
 * A fleet for rollout tests: fresh tables and queues, registered servers, and a real agent (simulated
 * applier) per server behind the relay emulator; the queues are drained by the test instead of a host.
 */
export interface Fleet {
  tables: FleetTables;
  queues: StorageQueueSender;
  deps: StepDeps;
}

export async function fleet(
  relay: Awaited<ReturnType<typeof relayWithClient>>,
  pki: TestPki,
  agents: RunningAgent[],
  servers: {
    name: string;
    ring: string;
    build?: string;
    failOn?: string[];
    agent?: boolean;
    couplings?: Couplings;
    allowKeepOnDegraded?: boolean;
  }[],
): Promise<Fleet> {
  const { tables } = freshTables();
  const queues = new StorageQueueSender(
    { kind: 'connectionString', connectionString: azuriteConnectionString() },
    { prefix: `q${randomBytes(4).toString('hex')}` },
  );
  for (const server of servers) {
    const hybridConnection = `${server.name}-${randomBytes(3).toString('hex')}`;
    await registerServer(
      tables,
      'contoso',
      {
        name: `${server.name}.contoso.com`,
        build: server.build ?? '15.2.1118.7',
        ring: server.ring,
        relayHybridConnection: hybridConnection,
      },
      { actor: 'test' },
    );
    if (server.agent === false) continue;
    const { config } = await writeAgentConfig(relay.relay, pki, {
      server: `${server.name}.contoso.com`,
      build: server.build ?? '15.2.1118.7',
      applier: { kind: 'simulated', failOn: server.failOn ?? [] },
      ...(server.couplings ? { couplings: server.couplings } : {}),
      ...(server.allowKeepOnDegraded ? { allowKeepOnDegraded: true } : {}),
    });
    agents.push(await runAgent({ ...config, relay: { ...config.relay!, hybridConnection } }));
  }
  return {
    tables,
    queues,
    deps: {
      tables,
      queues,
      agents: relay.client,
      org: 'contoso',
      logger: silentLogger,
      caches: createRolloutCaches(),
      pausedRecheckMs: 1000,
    },
  };
}

/**
 * A test file's test PKI, relay emulator with its client, and the agents its fleets start: made
 * before the file's tests, the agents closed and the relay stopped after them.
 */
export function useFleets(): {
  readonly pki: TestPki;
  readonly relay: Awaited<ReturnType<typeof relayWithClient>>;
  /** The agents started so far, in order. */
  readonly agents: readonly RunningAgent[];
  fleet(servers: Parameters<typeof fleet>[3]): Promise<Fleet>;
} {
  let pki: TestPki | undefined;
  let relay: Awaited<ReturnType<typeof relayWithClient>> | undefined;
  const agents: RunningAgent[] = [];
  beforeAll(async () => {
    pki = await createTestPki();
    relay = await relayWithClient();
  });
  afterAll(async () => {
    for (const agent of agents) await agent.close();
    await relay?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('useFleets() is used before beforeAll made its PKI and relay');
    return value;
  };
  return {
    get pki() {
      return started(pki);
    },
    get relay() {
      return started(relay);
    },
    agents,
    fleet: (servers) => fleet(started(relay), started(pki), agents, servers),
  };
}

export async function drain(queues: StorageQueueSender, queue: QueueName): Promise<unknown[]> {
  const client = await queues.client(queue);
  const { receivedMessageItems } = await client.receiveMessages({
    numberOfMessages: 32,
    visibilityTimeout: 60,
  });
  for (const item of receivedMessageItems) await client.deleteMessage(item.messageId, item.popReceipt);
  return receivedMessageItems.map((item) =>
    JSON.parse(Buffer.from(item.messageText, 'base64').toString('utf8')),
  );
}

/** Runs the queued steps, round by round as the host would, until the queues are empty or `rounds` is reached. */
export async function runRounds(f: Fleet, rounds: number): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    const [started, applied, gated] = [
      await drain(f.queues, queueNames.waves),
      await drain(f.queues, queueNames.apply),
      await drain(f.queues, queueNames.gate),
    ];
    if (started.length + applied.length + gated.length === 0) return true;
    for (const message of started) await startWave(f.deps, message as never);
    for (const message of applied) await applyToServer(f.deps, message as never);
    for (const message of gated) await gateWave(f.deps, message as never);
  }
  return false;
}

export async function runQueues(f: Fleet): Promise<void> {
  if (!(await runRounds(f, 100))) throw new Error('queues did not drain');
}

/** Accepts a signed package through the real poll step and returns the rollout it started. */
export async function acceptPackage(
  f: Fleet,
  pki: TestPki,
  signedXml: string,
  waves: WaveProfile,
): Promise<string> {
  const outcome = await pollFeed(
    {
      tables: f.tables,
      queues: f.queues,
      org: 'contoso',
      waves,
      logger: silentLogger,
      fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(signedXml) }),
    },
    { name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust },
  );
  if (outcome.kind !== 'accepted' || outcome.rollouts.length === 0)
    throw new Error(`expected a rollout: ${JSON.stringify(outcome)}`);
  return outcome.rollouts[0]!;
}
