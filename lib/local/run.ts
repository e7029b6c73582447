import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { allFunctions } from '../../functions/index.js';
import { parseAgentConfig, parseHubConfig } from '../agent/config.js';
import type { HubAgent } from '../agent/hub.js';
import { fingerprintOf } from '../agent/site-link.js';
import { siteHybridConnectionName } from '../relay/route.js';
import { owaPoolTakesDownEcp } from '../agent/appliers/simulated-front-end.js';
import { startAgent, startHub, type RunningAgent } from '../agent/run.js';
import { dashboardUrl } from '../dashboard/page.js';
import { mapWithConcurrency } from '../concurrency.js';
import { readRows } from '../fleet/rows.js';
import { listRollouts, readRollout } from '../fleet/rollouts.js';
import { resultRow } from '../fleet/schemas.js';
import { registerServer } from '../fleet/servers.js';
import { FleetTables } from '../fleet/storage.js';
import { silentLogger } from '../log.js';
import { formatTable } from '../text.js';
import { readFeedState } from '../fleet/feeds.js';
import { latestPackage } from '../fleet/packages.js';
import { microsoftFeedName } from '../ocs/client.js';
import { feedTrust } from '../ocs/feeds.js';
import { cliEnvironmentNames, loadConfig, settingsEnvironment } from '../config/index.js';
import { microsoftFeedSource } from '../config/sources.js';
import type { EocsPackage } from '../package/model.js';
import { signPackage } from '../package/sign.js';
import { verifyPackage } from '../package/verify.js';
import { planRollout } from '../rollout/plan.js';
import { problemTable, rolloutProblems } from '../rollout/problems.js';
import { fleetSnapshot } from '../rollout/start.js';
import { notStartedLabel, stoppedRolloutOf, type StoppedRollout } from '../rollout/unreached.js';
import { defaultWaves } from '../model/waves.js';
import { startAzurite } from './azurite.js';
import { catalogueXml } from './catalogue.js';
import { startLocalHost } from './host/index.js';
import { createDevPki, devPkiFiles, issueCertificate, writeDevPki } from '../package/dev-pki.js';
import { ProgressDisplay, rolloutLines } from './progress.js';
import { startRelayEmulator } from './relay.js';

export interface LocalRunOptions {
  readonly servers: number;
  /** The first N servers of the canary ring fail every apply. */
  readonly faulty: number;
  /** The last N servers have no agent. */
  readonly unreachable: number;
  /** On the first N servers of the canary ring, stopping the OWA pool also takes ECP down, undeclared: a health-gated halt with rollback. */
  readonly break?: number;
  /** Servers behind this many site relay hubs (one hub a site, on loopback site links); 0: each agent on its own hybrid connection. */
  readonly sites?: number;
  readonly once: boolean;
  readonly port: number;
  /** Where progress lines go (stdout, or stderr under --json). */
  readonly progress: (line: string) => void;
  /** Raw writes to a terminal: when given, each wave's progress bar is redrawn in place. */
  readonly terminal?: (text: string) => void;
  /** Resolves when the user asks to stop (Ctrl-C); only used without --once. */
  readonly stopRequested: Promise<void>;
}

export interface LocalRunSummary {
  readonly servers: number;
  readonly package: { readonly sha256: string; readonly mitigations: readonly string[] };
  readonly rollouts: readonly {
    id: string;
    operation: string;
    state: string;
    waves: { name: string; servers: number; succeeded: number; failed: number; state: string }[];
  }[];
  readonly outcomes: Record<string, number>;
}

const activeStates = new Set(['Planned', 'Running', 'Baking']);

/**
 * `npm start`: the whole flow on one machine with the real parts: Azurite, the dev PKI, an OCS
 * emulator serving the signed demo catalogue, the relay emulator, one real agent (simulated
 * applier, real hyco-https) per server, and the local Functions host running every function.
 */
export async function runLocal(options: LocalRunOptions): Promise<LocalRunSummary> {
  const say = options.progress;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const azurite = await startAzurite();
    stops.push(() => azurite.stop());
    const pkiDirectory = resolve('.emfleet', 'pki');
    const pki = await devPki(pkiDirectory);
    // Microsoft's shape: KeyValue, signer, intermediate and root in KeyInfo, and the dev TSA's RFC 3161 countersignature.
    const signed = signPackage(
      catalogueXml,
      { privateKeyPem: pki.signerKey, certificatePem: pki.signer, chainPems: [pki.intermediate, pki.root] },
      {
        timestampAuthority: {
          privateKeyPem: pki.timestampAuthorityKey,
          certificatePem: pki.timestampAuthority,
        },
      },
    );
    const feed = http.createServer((_request, response) =>
      response.writeHead(200, { 'content-type': 'application/xml' }).end(signed),
    );
    feed.listen(0, '127.0.0.1');
    await once(feed, 'listening');
    stops.push(() => new Promise((done) => feed.close(() => done())));
    const feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/getexchangemitigations`;
    const rules = {
      listen: { keyName: 'listen', key: randomBytes(32).toString('base64') },
      send: { keyName: 'send', key: randomBytes(32).toString('base64') },
    };
    const relay = await startRelayEmulator({ rules });
    stops.push(() => relay.stop());
    say(`azurite, OCS emulator (${feedUrl}) and relay emulator (${relay.baseUrl}) running`);

    const settings = settingsEnvironment({
      storageConnectionString: azurite.connectionString,
      org: 'contoso',
      ocsUrl: feedUrl,
      // Paths, not the PEM text: the export lines for a second terminal stay short.
      trustAnchors: join(pkiDirectory, devPkiFiles.root),
      timestampAnchors: join(pkiDirectory, devPkiFiles.timestampRoot),
      relayNamespace: '127.0.0.1',
      relayEndpoint: relay.baseUrl,
      relaySendKeyName: rules.send.keyName,
      relaySendKey: rules.send.key,
      pollSchedule: '0 0 * * * *',
      reconcileSchedule: '0 30 * * * *',
      // No App Service Authentication on one machine: the function key alone opens the admin API.
      adminAuth: 'functionKey',
      // Bakes of seconds, not hours, so a local run shows every wave.
      waves: JSON.stringify([
        { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 5, maxErrors: 0, bake: 'PT3S' },
        { name: 'early', select: { percent: 25 }, maxConcurrency: '50%', maxErrors: '10%', bake: 'PT3S' },
        { name: 'broad', select: { percent: 100 }, maxConcurrency: '25%', maxErrors: '10%', bake: 'PT0S' },
      ]),
    });
    Object.assign(process.env, settings);
    const tables = new FleetTables({ kind: 'connectionString', connectionString: azurite.connectionString });
    const fleet = fleetOf(options);
    /** With --sites: each site's hybrid connection, secret, agent certificate and, once started, its agents. */
    const siteLinks = async (servers: readonly LocalServer[]): Promise<Map<string, LocalSite>> => {
      const found = new Map<string, LocalSite>();
      if (!options.sites) return found;
      for (const name of new Set(servers.map((server) => server.site))) {
        // One certificate a site (key generation is slow); on a real site each agent has its own.
        const tls = await issueCertificate({ subjectCn: 'localhost' });
        found.set(name, {
          hybridConnection: siteHybridConnectionName(name),
          secret: randomBytes(32).toString('base64'),
          tls,
          certificateSha256: fingerprintOf(tls.certificatePem),
          agents: {},
        });
      }
      return found;
    };
    const work = await mkdtemp(join(tmpdir(), 'emfleet-local-'));
    stops.push(() => rm(work, { recursive: true, force: true }));
    await writeFile(join(work, 'root.pem'), pki.root);
    await writeFile(join(work, 'tsa-root.pem'), pki.timestampRoot);
    await writeFile(join(work, 'listen.key'), rules.listen.key);
    const agents: RunningAgent[] = [];
    stops.push(async () => {
      for (const agent of agents) await agent.close();
    });
    const sites = await siteLinks(fleet);
    await mapWithConcurrency(fleet, 8, async (server) => {
      const site = sites.get(server.site);
      const placement = site
        ? { relayHybridConnection: site.hybridConnection, relayPath: server.name }
        : { relayHybridConnection: server.hybridConnection };
      await registerServer(
        tables,
        'contoso',
        { name: server.name, build: server.build, ring: server.ring, site: server.site, ...placement },
        { actor: 'npm-start' },
      );
      if (!server.agent) {
        // Listed at its hub, but nothing answers there: the hub's answer becomes its Unreachable detail.
        if (site)
          site.agents[server.name] = {
            url: 'https://127.0.0.1:1',
            certificateSha256: site.certificateSha256,
          };
        return;
      }
      const config = parseAgentConfig(
        {
          server: server.name,
          build: server.build,
          ...(site
            ? {
                siteLink: {
                  host: '127.0.0.1',
                  port: 0,
                  certificate: site.tls.certificatePem,
                  privateKey: site.tls.privateKeyPem,
                  secret: site.secret,
                },
              }
            : {
                relay: {
                  namespace: '127.0.0.1',
                  hybridConnection: server.hybridConnection,
                  endpoint: relay.baseUrl.replace(/^http/, 'ws'),
                  keyName: rules.listen.keyName,
                  keyFile: 'listen.key',
                },
              }),
          trust: { anchors: ['root.pem'], timestampAnchors: ['tsa-root.pem'] },
          applier: {
            kind: 'simulated',
            failOn: server.faulty
              ? ['MSExchangeOWAAppPool', 'MSExchangeUM', 'EEMS EM1 - Autodiscover Rule']
              : [],
            ...(server.broken ? { couplings: owaPoolTakesDownEcp } : {}),
          },
          stateDirectory: server.hybridConnection,
        },
        work,
      );
      const agent = await startAgent(config, { logger: silentLogger });
      await agent.ready;
      if (site && agent.siteLink) site.agents[server.name] = agent.siteLink;
      agents.push(agent);
    });
    for (const [name, site] of sites) {
      const hub = await startHub(
        parseHubConfig(
          {
            mode: 'hub',
            name: `${name}-hub`,
            site: name,
            relay: {
              namespace: '127.0.0.1',
              hybridConnection: site.hybridConnection,
              endpoint: relay.baseUrl.replace(/^http/, 'ws'),
              keyName: rules.listen.keyName,
              keyFile: 'listen.key',
            },
            secret: site.secret,
            agents: site.agents,
          },
          work,
        ),
        { logger: silentLogger },
      );
      stops.push(() => hub.close());
      await hub.ready;
    }
    say(
      `${fleet.length} servers registered, ${agents.length} agents listening${sites.size > 0 ? ` behind ${sites.size} site relay hubs` : ''} (${options.faulty} faulty, ${options.break ?? 0} broken, ${options.unreachable} unreachable)`,
    );

    // A local host.json with short retries, so an unreachable agent reaches the poison queue in seconds.
    const hostJson = JSON.parse(await readFile(resolve('host.json'), 'utf8'));
    hostJson.extensions.queues = {
      ...hostJson.extensions.queues,
      visibilityTimeout: '00:00:02',
      maxDequeueCount: 3,
      maxPollingInterval: '00:00:00.500',
    };
    const hostJsonPath = join(work, 'host.json');
    await writeFile(hostJsonPath, JSON.stringify(hostJson));
    const host = await startLocalHost({
      definitions: allFunctions,
      hostJsonPath,
      settings,
      connectionString: azurite.connectionString,
      httpPort: options.port,
      logger: silentLogger,
    });
    stops.push(() => host.stop());

    say('polling OCS now');
    await host.runTimer('pollOcs');
    say(await pollOutcome(tables));
    await watch(
      tables,
      new ProgressDisplay({ line: say, ...(options.terminal ? { terminal: options.terminal } : {}) }),
    );
    await host.idle();
    const verified = verifyPackage(Buffer.from(signed), {
      trust: feedTrust(microsoftFeedSource(loadConfig(settings))),
    });
    if (!verified.ok)
      throw new Error(`the demo package does not verify: ${verified.reason}: ${verified.detail}`);
    const rollouts = await allRollouts(tables);
    const cells = await fleetCells(
      tables,
      verified.package,
      stoppedRolloutOf(
        rollouts.map(({ state }) => state),
        microsoftFeedName,
      ),
    );
    const summary = summarize(rollouts, fleet.length, signed, verified.package, cells);
    say('');
    for (const line of summaryLines(summary)) say(line);
    for (const line of outcomeTable(
      cells,
      fleet.map((server) => server.name),
      summary.package.mitigations,
    ))
      say(line);
    for (const line of await haltedProblems(tables, rollouts)) say(line);
    if (!options.once) {
      say('');
      say(`admin API: ${host.httpUrl}/api/status  (header x-functions-key: ${host.functionKey})`);
      say(`dashboard: ${dashboardUrl(host.httpUrl, host.functionKey)}`);
      say('');
      say(
        'emfleet commands in another terminal reach this run after these lines (e.g. npx emfleet status, npx emfleet rollout retry ID, npx emfleet reconcile --dry-run):',
      );
      // The admin API's address and key too, for what goes through the function app (test-connectivity --from-cloud).
      for (const line of exportLines({
        ...settings,
        [cliEnvironmentNames.apiUrl]: host.httpUrl,
        [cliEnvironmentNames.apiKey]: host.functionKey,
      }))
        say(line);
      say('');
      say('press Ctrl-C to stop');
      await options.stopRequested;
    }
    return summary;
  } finally {
    await stopAll();
  }
}

/**
 * `export NAME='value'` for every setting the local run's functions run with, quoted for sh and
 * bash, so `emfleet` in another shell works against the same storage, org, trust and relay.
 */
export function exportLines(settings: Readonly<Record<string, string>>): string[] {
  return Object.entries(settings).map(
    ([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'`,
  );
}

interface LocalSite {
  readonly hybridConnection: string;
  readonly secret: string;
  readonly tls: { readonly certificatePem: string; readonly privateKeyPem: string };
  readonly certificateSha256: string;
  readonly agents: Record<string, HubAgent>;
}

interface LocalServer {
  readonly name: string;
  readonly build: string;
  readonly ring: string;
  readonly site: string;
  readonly hybridConnection: string;
  readonly agent: boolean;
  readonly faulty: boolean;
  /** Its OWA pool takes ECP down with it (--break). */
  readonly broken: boolean;
}

/** A mixed fleet: a canary ring, three sites, and some servers already on fixed builds. */
function fleetOf(
  options: Pick<LocalRunOptions, 'servers' | 'faulty' | 'unreachable' | 'break' | 'sites'>,
): LocalServer[] {
  const broken = options.break ?? 0;
  const canary = Math.max(1, Math.ceil(options.servers / 10), options.faulty, broken);
  return Array.from({ length: options.servers }, (_, index) => {
    const number = String(index + 1).padStart(3, '0');
    // A faulty or broken server is on a build every mitigation applies to, so its fault shows.
    const build =
      index < Math.max(options.faulty, broken)
        ? '15.2.1118.7'
        : index % 7 === 3
          ? '15.2.1544.9'
          : index % 5 === 2
            ? '15.1.2507.16'
            : '15.2.1118.7';
    return {
      name: `ex${number}.contoso.com`,
      build,
      ring: index < canary ? 'canary' : 'broad',
      site: options.sites ? `Site${(index % options.sites) + 1}` : ['HQ', 'DC2', 'DC3'][index % 3]!,
      hybridConnection: `ex${number}`,
      agent: index < options.servers - options.unreachable,
      faulty: index < options.faulty,
      broken: index < broken,
    };
  });
}

type DevPkiTexts = Record<keyof typeof devPkiFiles, string>;

/** The dev PKI under .emfleet/pki, made on first run (again when it predates the time-stamp authority). */
async function devPki(directory: string): Promise<DevPkiTexts> {
  const names = Object.keys(devPkiFiles) as (keyof typeof devPkiFiles)[];
  const file = (name: keyof typeof devPkiFiles): string => join(directory, devPkiFiles[name]);
  const complete = await Promise.all(
    names.map((name) =>
      access(file(name)).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (!complete.every(Boolean)) {
    await mkdir(directory, { recursive: true });
    await writeDevPki(await createDevPki(), directory);
  }
  const texts = await Promise.all(names.map((name) => readFile(file(name), 'utf8')));
  return Object.fromEntries(names.map((name, index) => [name, texts[index]!])) as DevPkiTexts;
}

/** What the first poll did: the package accepted (or why not), as the admin would ask. */
async function pollOutcome(tables: FleetTables): Promise<string> {
  const [state, current] = await Promise.all([
    readFeedState(tables, microsoftFeedName),
    latestPackage(tables, microsoftFeedName),
  ]);
  const duringLastPoll = (at: Date | undefined): boolean =>
    Boolean(at && state?.lastPollAt && at >= state.lastPollAt);
  if (state && duringLastPoll(state.lastRejectedAt))
    return `OCS package ${state.lastRejectedSha256.slice(0, 12)}… rejected: ${state.lastRejectedReason}`;
  if (!current || duringLastPoll(state?.lastErrorAt))
    return `OCS poll failed: ${state?.lastError || 'no package stored'}`;
  return `OCS package ${current.sequence} accepted: sha256 ${current.sha256.slice(0, 12)}…, mitigations ${current.mitigationIds.join(', ')}`;
}

/** Rollout and wave progress until no rollout is active any more. */
async function watch(tables: FleetTables, display: ProgressDisplay): Promise<void> {
  for (;;) {
    const rollouts = await allRollouts(tables);
    const now = new Date();
    display.show(rollouts.flatMap((rollout) => rolloutLines(rollout, { terminal: display.terminal, now })));
    if (rollouts.length > 0 && rollouts.every((rollout) => !activeStates.has(rollout.state.state))) return;
    await new Promise((resolveTimer) => setTimeout(resolveTimer, 500));
  }
}

/** A server's standing on one mitigation: its latest result, else what the planner decided. */
interface Cell {
  /** The outcome counted in the summary (`Applied`, `NotApplicable`, `Pending`, `NotStarted`…). */
  readonly outcome: string;
  /** What the table shows: the outcome, or the planner's reason, e.g. `NotApplicable (fixed)`. */
  readonly label: string;
}

/**
 * Every server × mitigation of the package. Results say what happened; where a server got no
 * result for a mitigation, the same planner the rollout used says why (fixed build, blocked,
 * disabled); work not done yet is `Pending`, or `Not started (rollout X halted)` when the rollout
 * that would have done it halted or was aborted.
 */
async function fleetCells(
  tables: FleetTables,
  eocs: EocsPackage,
  stopped: StoppedRollout | undefined,
): Promise<Map<string, Map<string, Cell>>> {
  const [snapshot, results] = await Promise.all([
    fleetSnapshot(tables, 'contoso', silentLogger),
    readRows(await tables.client('Results'), 'Results', resultRow),
  ]);
  const plan = planRollout({
    operation: 'apply',
    mitigationIds: eocs.mitigations.map((mitigation) => mitigation.id),
    mitigations: eocs.mitigations,
    ...snapshot,
    waves: defaultWaves,
  });
  const cells = new Map<string, Map<string, Cell>>();
  const decided = [...plan.waves.flatMap((wave) => wave.servers), ...plan.leftOut];
  for (const { server, decisions } of decided) {
    cells.set(
      server,
      new Map(
        decisions.map((decision) => [
          decision.mitigation,
          decision.decision === 'Skip'
            ? { outcome: decision.reason.split(' ')[0]!, label: decision.reason }
            : stopped
              ? { outcome: 'NotStarted', label: notStartedLabel(stopped) }
              : { outcome: 'Pending', label: 'Pending' },
        ]),
      ),
    );
  }
  for (const row of [...results.rows].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    const server = cells.get(row.partitionKey) ?? new Map<string, Cell>();
    for (const [id, result] of Object.entries(row.outcomes))
      server.set(id, { outcome: result.outcome, label: result.outcome });
    cells.set(row.partitionKey, server);
  }
  return cells;
}

/** Every rollout with its waves, newest first. */
async function allRollouts(tables: FleetTables): Promise<DetailedRollout[]> {
  return Promise.all(
    (await listRollouts(tables)).map((rollout) => readRollout(tables, rollout.partitionKey)),
  );
}

type DetailedRollout = Awaited<ReturnType<typeof readRollout>>;

function summarize(
  rollouts: readonly DetailedRollout[],
  servers: number,
  signed: string,
  eocs: EocsPackage,
  cells: Map<string, Map<string, Cell>>,
): LocalRunSummary {
  const outcomes: Record<string, number> = {};
  for (const server of cells.values())
    for (const cell of server.values()) outcomes[cell.outcome] = (outcomes[cell.outcome] ?? 0) + 1;
  return {
    servers,
    package: {
      sha256: createHash('sha256').update(signed).digest('hex'),
      mitigations: eocs.mitigations.map((mitigation) => mitigation.id),
    },
    rollouts: rollouts.map(({ state, waves }) => ({
      id: state.partitionKey,
      operation: state.operation,
      state: state.state,
      waves: waves.map((wave, index) => ({
        name: wave.name,
        servers: wave.servers,
        succeeded: wave.succeeded,
        failed: wave.failed,
        state:
          index < state.currentWave || state.state === 'Completed'
            ? 'Done'
            : index === state.currentWave
              ? state.state
              : 'NotStarted',
      })),
    })),
    outcomes,
  };
}

function summaryLines(summary: LocalRunSummary): string[] {
  return [
    `package ${summary.package.sha256.slice(0, 12)}… (${summary.package.mitigations.join(', ')}) on ${summary.servers} servers`,
    ...summary.rollouts.map((rollout) => `rollout ${rollout.id}: ${rollout.state}`),
    `outcomes (server × mitigation): ${
      Object.entries(summary.outcomes)
        .map(([outcome, count]) => `${outcome} ${count}`)
        .join(', ') || 'none'
    }`,
  ];
}

/** Servers × mitigations, each cell its label. Beyond 60 servers, one line per mitigation with the counts instead. */
function outcomeTable(
  cells: Map<string, Map<string, Cell>>,
  servers: readonly string[],
  mitigations: readonly string[],
): string[] {
  const label = (server: string, id: string): string => cells.get(server)?.get(id)?.label ?? '-';
  if (servers.length > 60) {
    return mitigations.map((id) => {
      const counts = new Map<string, number>();
      for (const server of servers) counts.set(label(server, id), (counts.get(label(server, id)) ?? 0) + 1);
      return `${id}: ${[...counts].map(([text, count]) => `${text} ${count}`).join(', ')}`;
    });
  }
  return formatTable(
    ['SERVER', ...mitigations],
    servers.map((server) => [server, ...mitigations.map((id) => label(server, id))]),
  );
}

/** For each halted rollout, what failed where and why (the probes' findings, the applier's error). */
async function haltedProblems(tables: FleetTables, rollouts: readonly DetailedRollout[]): Promise<string[]> {
  const lines: string[] = [];
  for (const { state, waves } of rollouts.filter((rollout) => rollout.state.state === 'Halted')) {
    lines.push(
      '',
      `why ${state.partitionKey} halted:`,
      ...problemTable(await rolloutProblems(tables, state.partitionKey, waves)),
      `it holds its mitigations: reconcile does not reapply them. Once the cause is fixed: emfleet rollout retry ${state.partitionKey}; or emfleet rollout abort ${state.partitionKey}`,
    );
  }
  return lines;
}
