import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeInTransactions } from '../lib/fleet/batch.js';
import { readRows, validateRow } from '../lib/fleet/rows.js';
import { listRollouts, readRollout } from '../lib/fleet/rollouts.js';
import { resultRow, serverRow } from '../lib/fleet/schemas.js';
import { FleetTables, tableNames } from '../lib/fleet/storage.js';
import { TableClient, type TransactionAction } from '@azure/data-tables';
import { QueueServiceClient } from '@azure/storage-queue';
import { catalogueXml } from '../lib/local/catalogue.js';
import { startAzurite, type RunningAzurite } from '../lib/local/azurite.js';
import { createDevPki, type DevPki } from '../lib/package/dev-pki.js';
import { startRelayEmulator, type RelayEmulator } from '../lib/local/relay.js';
import { signPackage } from '../lib/package/sign.js';
import type { AgentSpec, BenchSiteLink } from './agents.js';
import type { HubSpec } from './hubs.js';
import { fingerprintOf } from '../lib/agent/site-link.js';
import { issueCertificate } from '../lib/package/dev-pki.js';
import type { CeilingResult } from './ceiling.js';
import { cpuSecondsOf, memoryOf, profileArgs, startWorker, type Worker } from './ipc.js';
import { countsBetween, startCountingProxy, startRequestCounter, type CountingProxy } from './proxy.js';

/**
 * Everything a fan-out or an idle hour runs on, shared by the deployments of one bench run:
 * Azurite behind the counting proxy, the dev PKI and the signed demo catalogue, an OCS emulator
 * (ETag, 304 when unchanged, requests counted), the relay emulator, and the agent processes.
 */
export interface World {
  readonly azurite: RunningAzurite;
  readonly proxy: CountingProxy;
  readonly relay: RelayEmulator;
  readonly signed: string;
  readonly mitigationIds: readonly string[];
  /** Requests the OCS emulator has answered so far. */
  ocsRequests(): number;
  /** Requests sent to agents through the relay so far (the app's and the ceiling's). */
  relayRequests(): number;
  deploy(servers: number, options: DeployOptions): Promise<Deployment>;
  close(): Promise<void>;
}

export interface DeployOptions {
  /** Real agents for every server (a fan-out); without, the servers are registered only (an idle hour). */
  readonly agents: boolean;
  /** Each set-up step as it ends (agents started, servers seeded, host started, agents reset), with its time. */
  readonly onStep?: (step: string, ms: number) => void;
  /** The wave's maxConcurrency, and the ceiling's. */
  readonly concurrency: number;
  /** Another host.json than the repository's, to compare queue settings. */
  readonly hostJsonPath?: string;
  /**
   * The memory of the instance the host stands in for, in MB: its V8 heap is sized as Node sizes it
   * there (old generation a quarter of the memory, V8's default). Undefined: this machine's defaults.
   */
  readonly hostMemoryMb?: number;
  /**
   * Servers behind site relay hubs instead of on hybrid connections of their own: this many sites
   * (servers split evenly, in name order), each with `hubsPerSite` hubs on its hybrid connection.
   */
  readonly sites?: { readonly count: number; readonly hubsPerSite: number };
}

/** infra/main.bicep's instanceMemoryMB, the memory of the instance the host stands in for (a test keeps them equal). */
export const defaultHostMemoryMb = 2048;

/** V8 gives the old generation a quarter of the memory it is told the machine has (Node tells it the container's limit). */
export function heapOptionsFor(memoryMb: number | undefined): string[] {
  return memoryMb === undefined ? [] : [`--max-old-space-size=${Math.floor(memoryMb / 4)}`];
}

export interface Deployment {
  readonly servers: number;
  readonly hostPid: number;
  /** Runs a timer function in the host process; resolves when it has finished. */
  runTimer(name: 'pollOcs' | 'reconcile'): Promise<void>;
  /** Polls OCS (the package is accepted and rolled out) and waits until no rollout is active. */
  rollOut(): Promise<RolloutRun>;
  /** The same apply requests straight to the agents from one process (agents reset first if they already applied). */
  ceiling(): Promise<CeilingRun>;
  /** The servers as if every mitigation of the package were applied: what an idle hour starts from. */
  markAllApplied(): Promise<void>;
  /** Every rollout so far, by state. */
  rollouts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** CPU seconds used during a phase, by part: Azurite, the local host, the agent processes, this process (relay emulator, proxy), the ceiling's sender. */
export type CpuSeconds = Record<string, number>;

export interface CeilingRun extends CeilingResult {
  readonly cpu: CpuSeconds;
}

export interface RolloutRun {
  readonly ms: number;
  /** Warnings and errors the host logged, by event (e.g. InvocationFailed: a delivery that will be retried). */
  readonly problems: Record<string, number>;
  readonly cpu: CpuSeconds;
  readonly storage: Map<string, number>;
  readonly peakRssMiB: number;
  /** The host's heap after a full collection once the rollout has completed: what it still holds. */
  readonly liveHeapMiB: number;
  /** How long the exact-once check took (not part of ms). */
  readonly checkMs: number;
  readonly rollouts: readonly {
    id: string;
    state: string;
    succeeded: number;
    failed: number;
    skipped: number;
    servers: number;
  }[];
}

const org = 'contoso';
/** On the demo catalogue's build lines, so every mitigation applies everywhere. */
const build = '15.2.1118.7';
const agentProcesses = 2;
const rules = {
  listen: { keyName: 'listen', key: randomBytes(32).toString('base64') },
  send: { keyName: 'send', key: randomBytes(32).toString('base64') },
};

export async function startWorld(): Promise<World> {
  const stops: (() => Promise<void>)[] = [];
  try {
    // A process per service, as Azure serves queues and tables apart (see startAzurite).
    const azurite = await startAzurite({ execArgv: profileArgs('azurite'), processPerService: true });
    stops.push(() => azurite.stop());
    const proxy = await startCountingProxy(azurite.connectionString);
    stops.push(() => proxy.stop());
    const pki: DevPki = await createDevPki();
    const signed = signPackage(catalogueXml, {
      privateKeyPem: pki.signer.privateKeyPem,
      certificatePem: pki.signer.certificatePem,
      chainPems: [pki.intermediate.certificatePem],
    });
    const mitigationIds = [...catalogueXml.matchAll(/<Config id="([^"]+)"/g)].map((match) => match[1]!);
    const etag = `"${createHash('sha256').update(signed).digest('hex')}"`;
    let ocsRequests = 0;
    const ocs = http.createServer((request, response) => {
      ocsRequests += 1;
      if (request.headers['if-none-match'] === etag) return void response.writeHead(304, { etag }).end();
      response.writeHead(200, { 'content-type': 'application/xml', etag }).end(signed);
    });
    ocs.listen(0, '127.0.0.1');
    await once(ocs, 'listening');
    stops.push(() => new Promise((resolve) => ocs.close(() => resolve())));
    const ocsUrl = `http://127.0.0.1:${(ocs.address() as AddressInfo).port}/getexchangemitigations`;
    const relay = await startRelayEmulator({ rules });
    stops.push(() => relay.stop());
    // Senders go through a counter; listeners connect to the emulator directly.
    const relaySenders = await startRequestCounter(relay.baseUrl);
    stops.push(() => relaySenders.stop());
    const shm = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    const stateRoot = await mkdtemp(join(shm, 'emfleet-bench-'));
    stops.push(() => rm(stateRoot, { recursive: true, force: true }));
    let deployments = 0;

    const deploy = async (servers: number, options: DeployOptions): Promise<Deployment> => {
      const number = ++deployments;
      const id = `b${number}${randomBytes(3).toString('hex')}`;
      const settings: Record<string, string> = {
        AzureWebJobsStorage: proxy.connectionString,
        EMFLEET_TABLE_PREFIX: id,
        EMFLEET_QUEUE_PREFIX: id,
        EMFLEET_ORG: org,
        EMFLEET_OCS_URL: ocsUrl,
        EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
        EMFLEET_RELAY_NAMESPACE: '127.0.0.1',
        EMFLEET_RELAY_ENDPOINT: relaySenders.baseUrl,
        EMFLEET_RELAY_SEND_KEY_NAME: rules.send.keyName,
        EMFLEET_RELAY_SEND_KEY: rules.send.key,
        // Timers run when the bench says so.
        EMFLEET_POLL_SCHEDULE: '0 0 0 1 1 *',
        EMFLEET_RECONCILE_SCHEDULE: '0 0 0 1 1 *',
        // One wave, no bake: the fan-out is measured, not the waiting.
        EMFLEET_WAVES: JSON.stringify([
          {
            name: 'all',
            select: { percent: 100 },
            maxConcurrency: options.concurrency,
            maxErrors: 0,
            bake: 'PT0S',
          },
        ]),
      };
      // The bench reads and seeds Azurite directly, so only the app's own requests are counted.
      const tables = new FleetTables(
        { kind: 'connectionString', connectionString: azurite.connectionString },
        { prefix: id },
      );
      const names = Array.from(
        { length: servers },
        (_, index) => `ex${String(index + 1).padStart(5, '0')}.contoso.com`,
      );
      const specs: AgentSpec[] = names.map((name, index) => ({
        server: name,
        build,
        hybridConnection: `${id}-${index + 1}`,
      }));
      const serversPerSite = options.sites ? Math.ceil(servers / options.sites.count) : 0;
      /** Behind hubs: each server's site (1-based) and its site's hybrid connection. */
      const siteOf = (index: number): { site: string; hybridConnection: string } | undefined =>
        options.sites
          ? {
              site: `site${Math.floor(index / serversPerSite) + 1}`,
              hybridConnection: `${id}-site-${Math.floor(index / serversPerSite) + 1}`,
            }
          : undefined;
      /** What the cloud sends to: the agent's own hybrid connection, or its site's with the server's relay path. */
      const addressOf = (spec: AgentSpec, index: number): string => {
        const site = siteOf(index);
        return site ? `${site.hybridConnection}/${spec.server}` : spec.hybridConnection;
      };
      const siteLink = options.sites ? await benchSiteLink() : undefined;
      const seed = async (applied: readonly string[]): Promise<void> => {
        const client = await tables.client('Servers');
        const rows = specs.map((spec, index) => {
          const site = siteOf(index);
          const placement = site
            ? { site: site.site, relayHybridConnection: site.hybridConnection, relayPath: spec.server }
            : { site: 'HQ', relayHybridConnection: spec.hybridConnection, relayPath: '' };
          const entity = {
            partitionKey: org,
            rowKey: spec.server,
            fqdn: spec.server,
            build,
            ring: 'broad',
            ...placement,
            agentVersion: '',
            reportedApplied: JSON.stringify(applied),
            reportedBlocked: '[]',
          };
          const checked = validateRow('Servers', serverRow, entity);
          if (!checked.ok)
            throw new Error(`bench server row: ${checked.problem.field}: ${checked.problem.message}`);
          // Each deployment's tables are new, and Azurite's insert scans the partition once where an upsert scans it twice.
          return ['create', entity] as TransactionAction;
        });
        await writeInTransactions(client, rows);
      };
      // Each deployment's tables and queues go when it stops, so Azurite holds one deployment at a time.
      const stopsHere: [string, () => Promise<void>][] = [
        [
          'storage deleted',
          async () => {
            await Promise.all(
              tableNames.map((table) =>
                TableClient.fromConnectionString(azurite.connectionString, `${id}${table}`, {
                  allowInsecureConnection: true,
                }).deleteTable(),
              ),
            );
            const queues = QueueServiceClient.fromConnectionString(azurite.connectionString);
            for await (const queue of queues.listQueues({ prefix: id.toLowerCase() }))
              await queues.deleteQueue(queue.name);
          },
        ],
      ];
      const workers: Worker[] = [];
      let hubWorker: Worker | undefined;
      // Seeding is Azurite's work, starting agents the agent processes': done side by side.
      const seedingStarted = Date.now();
      const seeding = options.agents
        ? seed([]).then(() => options.onStep?.(`${servers} servers seeded`, Date.now() - seedingStarted))
        : Promise.resolve();
      seeding.catch(() => undefined);
      if (options.agents) {
        for (let index = 0; index < agentProcesses; index++) workers.push(startWorker('agents'));
        stopsHere.push([
          'agents stopped',
          async () => {
            await Promise.all(workers.map((worker) => worker.call({ kind: 'stop' }).catch(() => undefined)));
            await Promise.all(workers.map((worker) => worker.exit()));
          },
        ]);
        const starting = Date.now();
        const started = await Promise.all(
          workers.map((worker, index) =>
            worker.call<{ links: Record<string, string> }>({
              kind: 'start',
              agents: specs.filter((_, position) => position % workers.length === index),
              relayEndpoint: relay.baseUrl.replace(/^http/, 'ws'),
              keyName: rules.listen.keyName,
              key: rules.listen.key,
              anchorPem: pki.root.certificatePem,
              stateRoot: join(stateRoot, `${id}-${index}`),
              ...(siteLink ? { siteLink } : {}),
            }),
          ),
        );
        options.onStep?.(`${servers} agents started`, Date.now() - starting);
        if (options.sites && siteLink) {
          const links: Record<string, string> = Object.assign({}, ...started.map((reply) => reply.links));
          const hubSpecs = new Map<string, HubSpec>();
          specs.forEach((spec, index) => {
            const site = siteOf(index)!;
            const hub = hubSpecs.get(site.site) ?? {
              site: site.site,
              hybridConnection: site.hybridConnection,
              agents: {},
            };
            (hub.agents as Record<string, string>)[spec.server] = links[spec.server]!;
            hubSpecs.set(site.site, hub);
          });
          const hubStarting = Date.now();
          const hubs = startWorker('hubs');
          hubWorker = hubs;
          stopsHere.push([
            'hubs stopped',
            async () => {
              await hubs.call({ kind: 'stop' }).catch(() => undefined);
              await hubs.exit();
            },
          ]);
          await hubs.call({
            kind: 'start',
            hubs: [...hubSpecs.values()],
            hubsPerSite: options.sites.hubsPerSite,
            relayEndpoint: relay.baseUrl.replace(/^http/, 'ws'),
            keyName: rules.listen.keyName,
            key: rules.listen.key,
            secret: siteLink.secret,
            certificateSha256: siteLink.certificateSha256,
          });
          options.onStep?.(
            `${hubSpecs.size * options.sites.hubsPerSite} hubs started for ${hubSpecs.size} sites`,
            Date.now() - hubStarting,
          );
        }
      }
      /** CPU seconds of each part so far; a phase's use is the difference of two readings. */
      const cpuReading = async (): Promise<CpuSeconds> => {
        const { user, system } = process.cpuUsage();
        const agents = await Promise.all(workers.map((worker) => cpuSecondsOf(worker.pid)));
        return {
          azurite: (await Promise.all(azurite.pids.map(cpuSecondsOf))).reduce(
            (sum, seconds) => sum + seconds,
            0,
          ),
          host: await cpuSecondsOf(host.pid),
          agents: agents.reduce((sum, seconds) => sum + seconds, 0),
          ...(hubWorker ? { hubs: await cpuSecondsOf(hubWorker.pid) } : {}),
          'relay + proxy': (user + system) / 1e6,
        };
      };
      const cpuBetween = (before: CpuSeconds, after: CpuSeconds): CpuSeconds =>
        Object.fromEntries(
          Object.entries(after).map(([part, seconds]) => [part, seconds - (before[part] ?? 0)]),
        );
      // --expose-gc only lets the bench ask for a full collection after the rollout (liveHeapMiB); V8 collects as usual.
      const host = startWorker('host', settings, ['--expose-gc', ...heapOptionsFor(options.hostMemoryMb)]);
      stopsHere.push([
        'host stopped',
        async () => {
          await host.call({ kind: 'stop' }).catch(() => undefined);
          await host.exit();
        },
      ]);
      const hostStarting = Date.now();
      await host.call({
        kind: 'start',
        ...(options.hostJsonPath ? { hostJsonPath: options.hostJsonPath } : {}),
      });
      options.onStep?.('host started', Date.now() - hostStarting);
      await seeding;
      let agentsUsed = false;
      /** Every server as it was before any change: needed before a second run over the same agents. */
      const resetAgents = async (): Promise<void> => {
        if (!agentsUsed) {
          agentsUsed = true;
          return;
        }
        const resetting = Date.now();
        await Promise.all(workers.map((worker) => worker.call({ kind: 'reset' })));
        options.onStep?.(`${servers} agents reset`, Date.now() - resetting);
      };

      const rolloutRows = async (): Promise<RolloutRun['rollouts']> => {
        const states = await listRollouts(tables);
        return Promise.all(
          states.map(async (state) => {
            const { waves } = await readRollout(tables, state.partitionKey);
            const sum = (field: 'succeeded' | 'failed' | 'skipped' | 'servers'): number =>
              waves.reduce((all, wave) => all + wave[field], 0);
            return {
              id: state.partitionKey,
              state: state.state,
              succeeded: sum('succeeded'),
              failed: sum('failed'),
              skipped: sum('skipped'),
              servers: sum('servers'),
            };
          }),
        );
      };

      const deployment: Deployment = {
        servers,
        hostPid: host.pid,
        runTimer: async (name) => {
          await host.call({ kind: 'runTimer', name });
        },
        rollOut: async () => {
          await resetAgents();
          const before = proxy.counts();
          const cpuBefore = await cpuReading();
          const started = Date.now();
          await host.call({ kind: 'runTimer', name: 'pollOcs' });
          // The poll has planned and started the rollout by now. Then only its state row is read while it
          // runs: a scan of Rollouts (thousands of plan rows) every 100 ms made Azurite, which serves the
          // rollout too, measurably slower (bench-only load: 147 s at 10,000 before, see docs/benchmarks.md).
          const [running] = await listRollouts(tables);
          if (!running) throw new Error('pollOcs started no rollout');
          const client = await tables.client('Rollouts');
          for (;;) {
            const { state } = await client.getEntity<{ state: string }>(running.partitionKey, 'state');
            if (['Completed', 'Halted', 'Aborted'].includes(state)) break;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          const ms = Date.now() - started;
          const rollouts = await rolloutRows();
          const cpu = cpuBetween(cpuBefore, await cpuReading());
          const storage = countsBetween(before, proxy.counts());
          const { peakRssMiB } = await memoryOf(host.pid);
          const { liveHeapMiB } = await host.call<{ liveHeapMiB: number }>({ kind: 'liveHeap' });
          const problems = await host.call<Record<string, number>>({ kind: 'problems' });
          const checking = Date.now();
          await checkExactlyOnce(tables, rollouts, servers, mitigationIds, workers);
          return {
            ms,
            cpu,
            storage,
            peakRssMiB,
            liveHeapMiB,
            rollouts,
            problems,
            checkMs: Date.now() - checking,
          };
        },
        ceiling: async () => {
          await resetAgents();
          const ceiling = startWorker('ceiling', settings);
          try {
            const before = await cpuReading();
            const senderBefore = await cpuSecondsOf(ceiling.pid);
            const result = await ceiling.call<CeilingResult>({
              kind: 'run',
              hybridConnections: specs.map(addressOf),
              packageBase64: Buffer.from(signed).toString('base64'),
              mitigationIds,
              concurrency: options.concurrency,
            });
            const cpu = {
              ...cpuBetween(before, await cpuReading()),
              sender: (await cpuSecondsOf(ceiling.pid)) - senderBefore,
            };
            return { ...result, cpu };
          } finally {
            await ceiling.exit();
          }
        },
        markAllApplied: () => seed(mitigationIds),
        rollouts: async () => {
          const byState: Record<string, number> = {};
          for (const rollout of await listRollouts(tables))
            byState[rollout.state] = (byState[rollout.state] ?? 0) + 1;
          return byState;
        },
        stop: async () => {
          for (const [step, stop] of stopsHere.reverse()) {
            const stopping = Date.now();
            await stop();
            options.onStep?.(step, Date.now() - stopping);
          }
        },
      };
      return deployment;
    };

    return {
      azurite,
      proxy,
      relay,
      signed,
      mitigationIds,
      ocsRequests: () => ocsRequests,
      relayRequests: () => relaySenders.count(),
      deploy,
      close: async () => {
        for (const stop of stops.reverse()) await stop().catch(() => undefined);
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw error;
  }
}

let siteLinkMaterial: Promise<BenchSiteLink & { certificateSha256: string }> | undefined;

/** The bench's one agent certificate and site secret (made once a run: RSA key generation is slow). */
function benchSiteLink(): Promise<BenchSiteLink & { certificateSha256: string }> {
  siteLinkMaterial ??= issueCertificate({ subjectCn: 'localhost' }).then((tls) => ({
    certificatePem: tls.certificatePem,
    privateKeyPem: tls.privateKeyPem,
    secret: randomBytes(32).toString('base64'),
    certificateSha256: fingerprintOf(tls.certificatePem),
  }));
  return siteLinkMaterial;
}

/**
 * Fails loudly unless every server got exactly one result, counted once: the wave counts add up to
 * the servers, the Results table holds one row per server with every mitigation Applied, and each
 * agent reports the whole package applied.
 */
async function checkExactlyOnce(
  tables: FleetTables,
  rollouts: RolloutRun['rollouts'],
  servers: number,
  mitigationIds: readonly string[],
  workers: readonly Worker[],
): Promise<void> {
  const problems: string[] = [];
  if (rollouts.length !== 1) problems.push(`${rollouts.length} rollouts instead of 1`);
  for (const rollout of rollouts) {
    if (rollout.state !== 'Completed') problems.push(`rollout ${rollout.id} is ${rollout.state}`);
    if (
      rollout.servers !== servers ||
      rollout.succeeded !== servers ||
      rollout.failed !== 0 ||
      rollout.skipped !== 0
    ) {
      problems.push(
        `rollout ${rollout.id} counted ${rollout.succeeded} succeeded, ${rollout.failed} failed, ${rollout.skipped} skipped of ${rollout.servers} planned, for ${servers} servers`,
      );
    }
  }
  const { rows } = await readRows(await tables.client('Results'), 'Results', resultRow);
  const perServer = new Map<string, number>();
  for (const row of rows) perServer.set(row.partitionKey, (perServer.get(row.partitionKey) ?? 0) + 1);
  const doubled = [...perServer.values()].filter((count) => count > 1).length;
  const notApplied = rows.filter((row) =>
    mitigationIds.some((id) => row.outcomes[id]?.outcome !== 'Applied'),
  ).length;
  if (perServer.size !== servers || doubled > 0 || notApplied > 0)
    problems.push(
      `Results: ${perServer.size} servers of ${servers} have a result, ${doubled} have more than one, ${notApplied} rows are not all Applied`,
    );
  const applied: Record<string, number> = {};
  for (const worker of workers) {
    const summary = await worker.call<{ applied: Record<string, number> }>({ kind: 'summary' });
    for (const [set, count] of Object.entries(summary.applied)) applied[set] = (applied[set] ?? 0) + count;
  }
  const whole = [...mitigationIds].sort().join(',');
  if (applied[whole] !== servers)
    problems.push(`agents report ${JSON.stringify(applied)}; expected ${servers} with ${whole}`);
  if (problems.length > 0)
    throw new Error(`the rollout lost or doubled results:\n  ${problems.join('\n  ')}`);
}
