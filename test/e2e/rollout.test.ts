import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allFunctions } from '../../functions/index.js';
import type { RunningAgent } from '../../lib/agent/run.js';
import { readResults } from '../../lib/fleet/results.js';
import { getServer, registerServer } from '../../lib/fleet/servers.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { startLocalHost, type LocalHost } from '../../lib/local/host.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { relayRules, relayWithClient, runAgent, writeAgentConfig } from '../helpers/agents.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/**
 * The whole cloud side as the Functions host runs it (local host: timers, queue polling with
 * visibility, dequeue counts and poison queues, HTTP with function keys) against real agents behind
 * the relay emulator, on Azurite.
 */
let pki: TestPki;
let relay: Awaited<ReturnType<typeof relayWithClient>>;
let feed: http.Server;
let feedUrl: string;
let hostJsonPath: string;
/** What the feed serves now; a test that changes it puts it back. */
let served: string;
const agents: RunningAgent[] = [];
const saved = { ...process.env };

beforeAll(async () => {
  pki = await createTestPki();
  relay = await relayWithClient();
  served = pki.sign(catalogueXml);
  feed = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/xml' }).end(served));
  feed.listen(0, '127.0.0.1');
  await once(feed, 'listening');
  feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/getexchangemitigations`;
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-e2e-'));
  hostJsonPath = join(directory, 'host.json');
  // The repository's host.json with short timings, so retries and poison happen within a test.
  await writeFile(hostJsonPath, JSON.stringify({ version: '2.0', extensions: { queues: { batchSize: 16, newBatchThreshold: 8, maxDequeueCount: 2, visibilityTimeout: '00:00:01', maxPollingInterval: '00:00:00.200' } } }));
});

afterAll(async () => {
  for (const agent of agents) await agent.close();
  await relay?.stop();
  feed?.close();
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

interface Deployment {
  host: LocalHost;
  tables: FleetTables;
  api(method: string, path: string): Promise<{ status: number; body: unknown }>;
}

/** One deployment: its own tables and queues, servers with agents (or without), the host running every function. */
async function deploy(servers: { name: string; ring: string; failOn?: string[]; agent?: boolean }[]): Promise<Deployment> {
  const tablePrefix = `e${randomBytes(5).toString('hex')}`;
  const queuePrefix = `e${randomBytes(4).toString('hex')}`;
  const settings: Record<string, string> = {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: tablePrefix,
    EMFLEET_QUEUE_PREFIX: queuePrefix,
    EMFLEET_ORG: 'contoso',
    EMFLEET_OCS_URL: feedUrl,
    EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
    EMFLEET_RELAY_NAMESPACE: '127.0.0.1',
    EMFLEET_RELAY_ENDPOINT: relay.relay.baseUrl,
    EMFLEET_RELAY_SEND_KEY_NAME: relayRules.send.keyName,
    EMFLEET_RELAY_SEND_KEY: relayRules.send.key,
    EMFLEET_POLL_SCHEDULE: '0 0 0 1 1 *',
    EMFLEET_RECONCILE_SCHEDULE: '0 0 0 1 1 *',
    EMFLEET_WAVES: JSON.stringify([
      { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT1S' },
      { name: 'early', select: { percent: 50 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
      { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
    ]),
  };
  // The handlers read their settings as the Functions host gives them: from the environment.
  Object.assign(process.env, settings);
  const tables = new FleetTables({ kind: 'connectionString', connectionString: azuriteConnectionString() }, { prefix: tablePrefix });
  for (const server of servers) {
    const hybridConnection = `${server.name}-${randomBytes(3).toString('hex')}`;
    await registerServer(tables, 'contoso', { name: `${server.name}.contoso.com`, build: '15.2.1118.7', ring: server.ring, relayHybridConnection: hybridConnection }, { actor: 'test' });
    if (server.agent === false) continue;
    const { config } = await writeAgentConfig(relay.relay, pki, { server: `${server.name}.contoso.com`, applier: { kind: 'simulated', failOn: server.failOn ?? [] } });
    agents.push(await runAgent({ ...config, relay: { ...config.relay, hybridConnection } }));
  }
  const host = await startLocalHost({ definitions: allFunctions, hostJsonPath, settings, connectionString: azuriteConnectionString(), queuePrefix, logger: silentLogger });
  return {
    host,
    tables,
    api: async (method, path) => {
      const response = await fetch(`${host.httpUrl}${path}`, { method, headers: { 'x-functions-key': host.functionKey } });
      return { status: response.status, body: await response.json().catch(() => undefined) };
    },
  };
}

describe('a rollout run by the local Functions host', () => {
  it('polls, rolls out in three waves with a real bake, and completes; the admin API shows it', async () => {
    const d = await deploy([{ name: 'ex01', ring: 'canary' }, { name: 'ex02', ring: 'broad' }, { name: 'ex03', ring: 'broad' }, { name: 'ex04', ring: 'broad' }]);
    try {
      await d.host.runTimer('pollOcs');
      await d.host.idle();
      const { rollouts } = (await d.api('GET', '/api/rollouts')).body as { rollouts: { id: string; state: string }[] };
      expect(rollouts).toEqual([expect.objectContaining({ id: 'microsoft-000001-apply', state: 'Completed' })]);
      const shown = (await d.api('GET', '/api/rollouts/microsoft-000001-apply')).body as { waves: { name: string; servers: number; succeeded: number }[] };
      expect(shown.waves.map((wave) => [wave.name, wave.servers, wave.succeeded])).toEqual([['canary', 1, 1], ['early', 2, 2], ['broad', 1, 1]]);
      for (const server of ['ex01', 'ex02', 'ex03', 'ex04']) {
        const [result] = (await readResults(d.tables, `${server}.contoso.com`)).rows;
        expect(Object.values(result!.outcomes).map((outcome) => outcome.outcome)).toEqual(['Applied', 'Applied', 'Applied', 'Applied']);
      }
      expect((await d.api('GET', '/api/status')).status).toBe(200);
      expect((await fetch(`${d.host.httpUrl}/api/status`)).status).toBe(401);

      // Microsoft withdraws EM3 in a newer package: it comes off every server, back to the prior state.
      const original = served;
      served = pki.sign(catalogueXml.replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, ''), { signingTime: new Date(Date.now() + 1000) });
      try {
        await d.host.runTimer('pollOcs');
        await d.host.idle();
      } finally {
        served = original;
      }
      const removal = (await d.api('GET', '/api/rollouts/microsoft-000002-remove')).body as { state: string; waves: { servers: number }[] };
      expect(removal.state).toBe('Completed');
      expect(removal.waves.reduce((total, wave) => total + wave.servers, 0)).toBe(4);
      for (const server of ['ex01', 'ex02', 'ex03', 'ex04']) {
        expect((await getServer(d.tables, 'contoso', `${server}.contoso.com`)).reportedApplied).toEqual(['EM1', 'EM2', 'PING1']);
      }
    } finally {
      await d.host.stop();
    }
  });

  it('halts on a canary failure and never touches the later waves', async () => {
    const d = await deploy([{ name: 'ex05', ring: 'canary', failOn: ['MSExchangeUM'] }, { name: 'ex06', ring: 'broad' }]);
    try {
      await d.host.runTimer('pollOcs');
      await d.host.idle();
      const [rollout] = ((await d.api('GET', '/api/rollouts')).body as { rollouts: { state: string; reason: string }[] }).rollouts;
      expect(rollout).toMatchObject({ state: 'Halted', reason: expect.stringContaining('ex05.contoso.com') });
      expect((await readResults(d.tables, 'ex06.contoso.com')).rows).toEqual([]);
    } finally {
      await d.host.stop();
    }
  });

  it('a server whose agent never answers goes to the poison queue and is recorded Unreachable', async () => {
    const d = await deploy([{ name: 'ex07', ring: 'canary', agent: false }, { name: 'ex08', ring: 'broad' }]);
    try {
      await d.host.runTimer('pollOcs');
      await d.host.idle();
      const [result] = (await readResults(d.tables, 'ex07.contoso.com')).rows;
      expect(Object.values(result!.outcomes)[0]).toMatchObject({ outcome: 'Unreachable', detail: expect.stringContaining('gave up after maxDequeueCount') });
      const [rollout] = ((await d.api('GET', '/api/rollouts')).body as { rollouts: { state: string }[] }).rollouts;
      expect(rollout?.state).toBe('Halted');
    } finally {
      await d.host.stop();
    }
  });
});
