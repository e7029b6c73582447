import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { allFunctions } from '../../functions/index.js';
import { SimulatedApplier, type SimulatedServer } from '../../lib/agent/appliers/simulated.js';
import type { Couplings } from '../../lib/agent/appliers/simulated-front-end.js';
import { simulatedSetupFile } from '../../lib/agent/build-detect.js';
import { parseHubConfig, type AgentConfig, type HubConfig } from '../../lib/agent/config.js';
import type { HubAgent } from '../../lib/agent/hub.js';
import { startHub, type RunningAgent, type RunningHub } from '../../lib/agent/run.js';
import { issueCertificate } from '../../lib/package/dev-pki.js';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { readResults } from '../../lib/fleet/results.js';
import { readRollout } from '../../lib/fleet/rollouts.js';
import type { ResultRow } from '../../lib/fleet/schemas.js';
import type { Outcome } from '../../lib/model/outcomes.js';
import { registerServer } from '../../lib/fleet/servers.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { startLocalHost, type LocalHost } from '../../lib/local/host/index.js';
import { relayRules, relayWithClient, runAgent, writeAgentConfig } from './agents.js';
import { azuriteConnectionString } from './fleet.js';
import { recordingLogger } from './logs.js';
import { createTestPki, type TestPki } from './packages.js';
import { patienceMs, waitFor } from './wait.js';

export { waitFor };

/**
 * End-to-end tests run the whole cloud side as the Functions host does (lib/local/host: timers,
 * queue polling with visibility, dequeue counts and poison queues, HTTP with function keys) on
 * Azurite, against real agents (simulated applier, real hyco-https) behind the relay emulator,
 * with an OCS emulator serving what the test signs.
 */

export type RecordingLogger = ReturnType<typeof recordingLogger>;

/** The pieces a test file shares between its deployments: PKI, relay emulator, OCS emulator. */
export interface World {
  readonly pki: TestPki;
  /** Serves this from now on; each deployment starts with the signed catalogue. */
  serve(body: string): void;
  /** Signs the catalogue (or the given XML) with the test PKI, `ageInMs` ago: later packages are newer. */
  signed(xml?: string, ageInMs?: number): string;
  deploy(servers: readonly E2eServer[], options?: DeployOptions): Promise<Deployment>;
  close(): Promise<void>;
}

/** Every mitigation of the demo catalogue applied: a server's result after a clean apply. */
export const allApplied = { PING1: 'Applied', EM1: 'Applied', EM2: 'Applied', EM3: 'Applied' } as const;

/**
 * The test file's world: started before its tests, closed after them. The returned object stands
 * for it from the first test on (it is not usable at collection time, before beforeAll ran).
 */
export function useWorld(): Omit<World, 'close' | 'pki'> {
  let world: World | undefined;
  beforeAll(async () => {
    world = await startWorld();
  });
  afterAll(async () => {
    await world?.close();
  });
  const started = (): World => {
    if (!world) throw new Error('the e2e world is used before beforeAll started it');
    return world;
  };
  return {
    serve: (body) => started().serve(body),
    signed: (xml, ageInMs) => started().signed(xml, ageInMs),
    deploy: (servers, options) => started().deploy(servers, options),
  };
}

export interface E2eServer {
  /** Short name; the server is `${name}.contoso.com`. */
  readonly name: string;
  readonly ring: string;
  readonly build?: string;
  /** Names whose change fails on this server (simulated applier fault). */
  readonly failOn?: readonly string[];
  /** Each change takes this long, so a test can act while a server is being worked on. */
  readonly delayInMs?: number;
  /** What else goes down on this server when a pool or service stops (a broken server, as `npm start --break`). */
  readonly couplings?: Couplings;
  /** false: registered, but no agent listens. */
  readonly agent?: boolean;
  /** The server as it is before emfleet touches it (default: a fresh Exchange install). */
  readonly state?: SimulatedServer;
  /** Behind this site's relay hub (Servers row: the site's hybrid connection and a relayPath) instead of its own hybrid connection. */
  readonly site?: string;
}

export interface DeployOptions {
  /** EMFLEET_WAVES; default: canary ring (bake 1 s), early 50 %, broad the rest. */
  readonly waves?: readonly Record<string, unknown>[];
  /** host.json extensions.queues, over the fast defaults. */
  readonly queues?: Record<string, unknown>;
  /** Another Azurite than the run's. */
  readonly connectionString?: string;
  /** Hubs started per site (default 1); all listen on the site's one hybrid connection. */
  readonly hubsPerSite?: number;
}

export const defaultWaves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT1S' },
  { name: 'early', select: { percent: 50 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
];

/** The repository's host.json with short timings, so retries and poison happen within a test. */
const fastQueues = {
  batchSize: 16,
  newBatchThreshold: 8,
  maxDequeueCount: 2,
  visibilityTimeout: '00:00:01',
  maxPollingInterval: '00:00:00.200',
};

export const fqdn = (name: string): string => `${name}.contoso.com`;

export interface E2eAgent {
  readonly server: string;
  /** The agent's own log (MitigationOutcome per mitigation it applied or removed). */
  readonly logger: RecordingLogger;
  /** undefined while stopped. */
  readonly running: RunningAgent | undefined;
  /** The simulated IIS, app pools and services, as the applier's state file holds them. */
  readState(): Promise<SimulatedServer>;
  /** A change made on the server by hand, behind the agent's back. */
  writeState(state: SimulatedServer): Promise<void>;
  /** Stops the agent and starts it again with the same state, e.g. configured with a new build. */
  restart(changes?: { build?: string; failOn?: readonly string[] }): Promise<void>;
  /** Stops the agent: the server no longer answers through the relay. */
  stop(): Promise<void>;
  /** Installs an Exchange update: ExSetup.exe's version becomes this build; the running agent reads it at its next status request. */
  installUpdate(build: string): Promise<void>;
}

export interface Deployment {
  readonly host: LocalHost;
  /** The app settings the host runs with: what `npm start`'s export lines give a second terminal. */
  readonly settings: Readonly<Record<string, string>>;
  readonly tables: FleetTables;
  /** Everything the host and the functions logged. */
  readonly logger: RecordingLogger;
  /** Writes to this deployment's queues, as the functions do. */
  readonly queues: StorageQueueSender;
  readonly agents: ReadonlyMap<string, E2eAgent>;
  /** Each site's relay hubs, by site name. */
  readonly hubs: ReadonlyMap<string, readonly E2eHub[]>;
  api(method: 'GET' | 'POST', path: string): Promise<{ status: number; body: unknown }>;
  rollout(id: string): ReturnType<typeof readRollout>;
  /** Each wave as [name, servers, succeeded, failed, skipped]. */
  waveCounts(id: string): Promise<[string, number, number, number, number][]>;
  /** A server's result rows, oldest first. */
  results(name: string): Promise<ResultRow[]>;
  /** Per result row of a server, its outcomes by mitigation id. */
  outcomes(name: string): Promise<Record<string, Outcome>[]>;
  /** Polls the rollout until it is in one of `states`. */
  settled(id: string, states?: readonly string[], timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startWorld(): Promise<World> {
  const saved = { ...process.env };
  const pki = await createTestPki();
  const relay = await relayWithClient();
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-e2e-'));
  const signed = (xml = catalogueXml, ageInMs = 60_000): string =>
    pki.sign(xml, { signingTime: new Date(Date.now() - ageInMs) });
  let served = signed();
  const feed = http.createServer((_request, response) =>
    response.writeHead(200, { 'content-type': 'application/xml' }).end(served),
  );
  feed.listen(0, '127.0.0.1');
  await once(feed, 'listening');
  const feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/getexchangemitigations`;
  const deployments: Deployment[] = [];

  const deploy = async (servers: readonly E2eServer[], options: DeployOptions = {}): Promise<Deployment> => {
    const connectionString = options.connectionString ?? azuriteConnectionString();
    served = signed();
    const tablePrefix = `e${randomBytes(5).toString('hex')}`;
    const queuePrefix = `e${randomBytes(4).toString('hex')}`;
    const settings: Record<string, string> = {
      AzureWebJobsStorage: connectionString,
      EMFLEET_TABLE_PREFIX: tablePrefix,
      EMFLEET_QUEUE_PREFIX: queuePrefix,
      EMFLEET_ORG: 'contoso',
      EMFLEET_OCS_URL: feedUrl,
      EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
      EMFLEET_TIMESTAMP_ANCHORS: pki.timestampRoot.certificatePem,
      EMFLEET_RELAY_NAMESPACE: '127.0.0.1',
      EMFLEET_RELAY_ENDPOINT: relay.relay.baseUrl,
      EMFLEET_RELAY_SEND_KEY_NAME: relayRules.send.keyName,
      EMFLEET_RELAY_SEND_KEY: relayRules.send.key,
      // Timers run when the test says so.
      EMFLEET_POLL_SCHEDULE: '0 0 0 1 1 *',
      EMFLEET_RECONCILE_SCHEDULE: '0 0 0 1 1 *',
      EMFLEET_ADMIN_AUTH: 'functionKey',
      EMFLEET_WAVES: JSON.stringify(options.waves ?? defaultWaves),
    };
    // The handlers read their settings as the Functions host gives them: from the environment.
    Object.assign(process.env, settings);
    const connection = { kind: 'connectionString' as const, connectionString };
    const tables = new FleetTables(connection, { prefix: tablePrefix });
    const agents = new Map<string, E2eAgent>();
    const sites = new Map<
      string,
      { hybridConnection: string; secret: string; agents: Record<string, HubAgent> }
    >();
    for (const server of servers) {
      const site =
        server.site === undefined
          ? undefined
          : (sites.get(server.site) ?? {
              hybridConnection: `site-${server.site.toLowerCase()}-${randomBytes(3).toString('hex')}`,
              secret: randomBytes(32).toString('base64'),
              agents: {},
            });
      if (server.site !== undefined && site) sites.set(server.site, site);
      const hybridConnection = site?.hybridConnection ?? `${server.name}-${randomBytes(3).toString('hex')}`;
      const build = server.build ?? '15.2.1118.7';
      await registerServer(
        tables,
        'contoso',
        {
          name: fqdn(server.name),
          build,
          ring: server.ring,
          relayHybridConnection: hybridConnection,
          ...(site ? { site: server.site!, relayPath: fqdn(server.name) } : {}),
        },
        { actor: 'test' },
      );
      if (server.agent === false) {
        // Listed at its hub, but nothing listens there: the hub cannot reach it.
        if (site)
          site.agents[fqdn(server.name)] = { url: 'https://127.0.0.1:1', certificateSha256: 'AA'.repeat(32) };
        continue;
      }
      const { config } = await writeAgentConfig(relay.relay, pki, {
        server: fqdn(server.name),
        build,
        applier: { kind: 'simulated', failOn: server.failOn ?? [], delayInMs: server.delayInMs ?? 0 },
        ...(server.couplings ? { couplings: server.couplings } : {}),
      });
      // The agent detects its build from the simulated server's Setup values, as on Windows; no override.
      const { relay: ownRelay, build: _override, ...rest } = config;
      const agent = e2eAgent(
        site
          ? { ...rest, siteLink: await siteLinkFor(site.secret) }
          : { ...rest, relay: { ...ownRelay!, hybridConnection } },
      );
      await agent.installUpdate(build);
      if (server.state) await agent.writeState(server.state);
      await agent.restart();
      if (site) site.agents[fqdn(server.name)] = agent.running!.siteLink!;
      agents.set(server.name, agent);
    }
    const hubs = new Map<string, E2eHub[]>();
    for (const [name, site] of sites) {
      const config = parseHubConfig(
        {
          mode: 'hub',
          site: name,
          relay: {
            namespace: '127.0.0.1',
            hybridConnection: site.hybridConnection,
            endpoint: relay.relay.baseUrl.replace(/^http/, 'ws'),
            keyName: relayRules.listen.keyName,
            key: relayRules.listen.key,
          },
          secret: site.secret,
          agents: site.agents,
          forwardTimeoutInMs: 5000,
        },
        directory,
      );
      const started: E2eHub[] = [];
      for (let index = 1; index <= (options.hubsPerSite ?? 1); index++) {
        const hub = e2eHub({ ...config, name: `${name}-hub${index}` });
        await hub.start();
        started.push(hub);
      }
      hubs.set(name, started);
    }
    const hostJsonPath = join(directory, `host-${queuePrefix}.json`);
    await writeFile(
      hostJsonPath,
      JSON.stringify({ version: '2.0', extensions: { queues: { ...fastQueues, ...options.queues } } }),
    );
    const logger = recordingLogger();
    const host = await startLocalHost({
      definitions: allFunctions,
      hostJsonPath,
      settings,
      connectionString,
      queuePrefix,
      logger,
      pollIntervalMs: 50,
    });
    let stopping: Promise<void> | undefined;
    const deployment: Deployment = {
      host,
      settings,
      tables,
      logger,
      queues: new StorageQueueSender(connection, { prefix: queuePrefix }),
      agents,
      hubs,
      api: async (method, path) => {
        const response = await fetch(`${host.httpUrl}${path}`, {
          method,
          headers: { 'x-functions-key': host.functionKey },
        });
        return { status: response.status, body: await response.json().catch(() => undefined) };
      },
      rollout: (id) => readRollout(tables, id),
      waveCounts: async (id) =>
        (await readRollout(tables, id)).waves.map((wave) => [
          wave.name,
          wave.servers,
          wave.succeeded,
          wave.failed,
          wave.skipped,
        ]),
      results: async (name) =>
        (await readResults(tables, fqdn(name))).rows.sort((a, b) => a.at.getTime() - b.at.getTime()),
      outcomes: async (name) =>
        (await deployment.results(name)).map((row) =>
          Object.fromEntries(Object.entries(row.outcomes).map(([id, result]) => [id, result.outcome])),
        ),
      settled: async (id, states = ['Completed', 'Halted', 'Aborted'], timeoutMs = patienceMs) => {
        await waitFor(
          `rollout ${id} to be ${states.join(' or ')}`,
          async () =>
            states.includes((await readRollout(tables, id).catch(() => undefined))?.state.state ?? ''),
          { timeoutMs },
        );
      },
      stop: () => {
        stopping ??= (async () => {
          await host.stop();
          for (const site of hubs.values()) for (const hub of site) await hub.stop();
          for (const agent of agents.values()) await agent.running?.close();
        })();
        return stopping;
      },
    };
    deployments.push(deployment);
    onTestFinished(() => deployment.stop());
    return deployment;
  };

  return {
    pki,
    serve: (body) => {
      served = body;
    },
    signed,
    deploy,
    close: async () => {
      for (const deployment of deployments) await deployment.stop();
      await relay.stop();
      await new Promise((resolve) => feed.close(resolve));
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    },
  };
}

export interface E2eHub {
  readonly name: string;
  /** The hub's own log (HubForwarded, HubRefused, HubForwardFailed). */
  readonly logger: RecordingLogger;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function e2eHub(config: HubConfig): E2eHub {
  const logger = recordingLogger();
  let running: RunningHub | undefined;
  return {
    name: config.name!,
    logger,
    get running() {
      return running !== undefined;
    },
    start: async () => {
      running ??= await startHub(config, { logger });
      await running.ready;
    },
    stop: async () => {
      const stopping = running;
      running = undefined;
      await stopping?.close();
    },
  };
}

/** An agent's site link on loopback: its own self-signed certificate and the site's secret. */
async function siteLinkFor(secret: string): Promise<NonNullable<AgentConfig['siteLink']>> {
  const tls = await issueCertificate({ subjectCn: 'localhost' });
  return {
    host: '127.0.0.1',
    port: 0,
    certificate: tls.certificatePem,
    privateKey: tls.privateKeyPem,
    secret,
  };
}

function e2eAgent(initial: AgentConfig): E2eAgent {
  let config = initial;
  const logger = recordingLogger();
  const stateFile = join(config.stateDirectory, 'simulated-server.json');
  let running: RunningAgent | undefined;
  return {
    server: config.server,
    logger,
    get running() {
      return running;
    },
    readState: () => new SimulatedApplier(stateFile).read(),
    writeState: async (state) => {
      await mkdir(config.stateDirectory, { recursive: true });
      await writeFile(stateFile, JSON.stringify(state, null, 2));
    },
    installUpdate: async (build) => {
      await mkdir(config.stateDirectory, { recursive: true });
      await writeFile(simulatedSetupFile(config.stateDirectory), JSON.stringify({ ExSetupVersion: build }));
    },
    restart: async ({ failOn, ...changes } = {}) => {
      await running?.close();
      running = undefined;
      config = {
        ...config,
        ...changes,
        ...(failOn && config.applier.kind === 'simulated'
          ? { applier: { ...config.applier, failOn: [...failOn] } }
          : {}),
      };
      running = await runAgent(config, logger);
      // Restarted on the same port, where its hub expects it.
      if (running.siteLink && config.siteLink)
        config = {
          ...config,
          siteLink: { ...config.siteLink, port: Number(new URL(running.siteLink.url).port) },
        };
    },
    stop: async () => {
      await running?.close();
      running = undefined;
    },
  };
}

/** The server whose agent is working on an operation right now, if any. */
export function serverBeingWorkedOn(d: Deployment, names: readonly string[]): string | undefined {
  return names.find((name) =>
    d.agents
      .get(name)
      ?.running?.service.status()
      .operations.some((operation) => operation.status === 'InProgress'),
  );
}
