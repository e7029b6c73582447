import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { createTrustPolicy, readPemSetting, type TrustPolicy } from '../package/trust.js';
import { createSasToken } from '../relay/sas.js';
import { emfleetVersion } from '../version.js';
import type { Applier } from './applier.js';
import { PowerShellApplier } from './appliers/powershell.js';
import { SimulatedApplier } from './appliers/simulated.js';
import { startSimulatedExchange } from './appliers/simulated-front-end.js';
import type { AgentConfig, HubConfig } from './config.js';
import { createHubForwarder } from './hub.js';
import {
  detectBuild,
  fileSetupReader,
  simulatedSetupFile,
  windowsSetupReader,
  type DetectedBuild,
  type SetupReader,
} from './build-detect.js';
import { Journal } from './journal.js';
import { waitForIis } from './iis-ready.js';
import { startRelayListener, type ListenerState, type RelayListenerOptions } from './listener.js';
import { Prober } from './probes.js';
import { AgentService } from './service.js';
import { secureStateDirectory } from './state-directory.js';
import { parseSiteSecret, startSiteLinkListener } from './site-link.js';

export interface RunningAgent {
  readonly service: AgentService;
  /** Resolves when the relay has accepted the listener (at once for an agent only behind its site hub). */
  readonly ready: Promise<void>;
  /** Where the agent listens for its site hub, and the fingerprint the hub pins. */
  readonly siteLink?: { readonly url: string; readonly certificateSha256: string };
  close(): Promise<void>;
}

/** How long a listen token lives; the listener renews it well before. */
const listenTokenLifetimeSeconds = 3600;

/**
 * One agent: repairs what a crash left in the journal, then listens on its hybrid connection.
 * Several agents can run in one process (local runs, benchmarks), each with its own state directory.
 */
export async function startAgent(
  config: AgentConfig,
  options: { logger: Logger; onState?: (state: ListenerState) => void },
): Promise<RunningAgent> {
  const logger = options.logger;
  const trust = agentTrustPolicies(config);
  const applier = createApplier(config);
  await secureStateDirectory(config.stateDirectory, {
    windows: (directory) =>
      (applier instanceof PowerShellApplier ? applier : new PowerShellApplier()).secureStateDirectory(
        directory,
      ),
  });
  const journal = await Journal.open(join(config.stateDirectory, 'journal.json'));

  // A simulated server with nowhere else to be probed serves its own front end, so its probes are real HTTP too.
  const frontEnd =
    config.applier.kind === 'simulated' && config.probes.baseUrl === undefined
      ? await startSimulatedExchange()
      : undefined;
  const baseUrl = frontEnd?.add({
    name: 'server',
    stateFile: simulatedStateFile(config),
    server: config.server,
    ...(config.applier.kind === 'simulated' && config.applier.couplings
      ? { couplings: config.applier.couplings }
      : {}),
  });
  const detect = (): Promise<DetectedBuild> => detectBuild(createSetupReader(config), config.build);
  const detected = await detect();
  if (detected.build === undefined)
    logger.error('BuildNotDetected', {
      server: config.server,
      problem: detected.problem,
      remedy: 'set "build" in agent.json to override',
    });
  const service = new AgentService({
    identity: { server: config.server, build: detected.build ?? '', agentVersion: emfleetVersion },
    detectBuild: detect,
    trust,
    applier,
    journal,
    logger,
    replyWithinMs: config.replyWithinMs,
    prober: createProber(config, baseUrl),
    allowKeepOnDegraded: config.allowKeepOnDegraded,
  });
  // What a crash or a failed restore left is retried now and on a schedule while serving; it never
  // stops the agent from starting (an agent that does not start cannot be reached to fix anything).
  const repairPending = async (when: 'start' | 'schedule'): Promise<void> => {
    try {
      const { repaired, failed } = await service.repair();
      if (repaired.length > 0)
        logger.warn('AgentRepairedJournal', { server: config.server, when, mitigationIds: repaired });
      if (failed.length > 0)
        logger.error('AgentRepairPending', {
          server: config.server,
          when,
          mitigationIds: failed,
          retryInMs: config.retryRestoresEveryInMs,
        });
    } catch (error) {
      logger.error('AgentRepairPending', {
        server: config.server,
        when,
        error: (error as Error).message,
        retryInMs: config.retryRestoresEveryInMs,
      });
    }
  };
  // A scheduled task at start-up cannot depend on services: wait (bounded) for IIS before touching it.
  if (config.applier.kind === 'powershell')
    await waitForIis({
      readStatus: (name) => applier.serviceStatus(name),
      logger,
      server: config.server,
      boundInMs: config.applier.waitForIisInMs,
    });
  await repairPending('start');
  const repairTimer = setInterval(() => void repairPending('schedule'), config.retryRestoresEveryInMs);
  repairTimer.unref();
  const listener = config.relay
    ? startRelayListener(
        relayListenerOptions(
          config.relay,
          await readRelayKey(config.relay),
          async (request) => service.handle(request),
          logger,
          options.onState,
        ),
      )
    : undefined;
  const siteLink = config.siteLink
    ? await startSiteLinkListener({
        host: config.siteLink.host,
        port: config.siteLink.port,
        certificatePem: readPemSetting(config.siteLink.certificate, 'siteLink certificate'),
        privateKeyPem: await readSecretText(config.siteLink.privateKey, 'siteLink private key'),
        secret: await readSiteSecret(config.siteLink),
        relayPath: config.siteLink.relayPath ?? config.server.toLowerCase(),
        handler: async (request) => service.handle(request),
        logger,
      })
    : undefined;
  logger.info('AgentStarted', {
    server: config.server,
    build: detected.build ?? '',
    buildSource: detected.build === undefined ? 'none' : detected.source,
    hybridConnection: config.relay?.hybridConnection,
    siteLink: siteLink?.url,
    applier: applier.kind,
    agentVersion: emfleetVersion,
  });
  return {
    service,
    ready: listener?.ready ?? Promise.resolve(),
    ...(siteLink ? { siteLink: { url: siteLink.url, certificateSha256: siteLink.certificateSha256 } } : {}),
    close: async () => {
      clearInterval(repairTimer);
      await listener?.close();
      await siteLink?.close();
      await frontEnd?.stop();
    },
  };
}

/** One trust policy per `trust` entry of agent.json: each binds its anchors to its own signer. */
export function agentTrustPolicies(config: Pick<AgentConfig, 'trust'>): TrustPolicy[] {
  return config.trust.map((entry, index) =>
    createTrustPolicy({
      anchorPems: entry.anchors.map((anchor) => readPemSetting(anchor, `agent trust[${index}] anchor`)),
      anchorSha256: entry.anchorSha256,
      timestampAnchorPems: entry.timestampAnchors.map((anchor) =>
        readPemSetting(anchor, `agent trust[${index}] timestamp anchor`),
      ),
      timestampAnchorSha256: entry.timestampAnchorSha256,
      signerSubjectCn: entry.signerSubject,
      signerEku: entry.signerEku,
      revokedSerials: entry.revokedSerials,
    }),
  );
}

export interface RunningHub {
  /** Resolves when the relay has accepted the hub's listener. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** A site relay hub: listens on the site's hybrid connection and forwards to the site's agents (lib/agent/hub.ts). */
export async function startHub(
  config: HubConfig,
  options: { logger: Logger; onState?: (state: ListenerState) => void },
): Promise<RunningHub> {
  const logger = options.logger;
  const hubName = config.name ?? hostname();
  const forwarder = createHubForwarder({
    hubName,
    site: config.site,
    agents: new Map(
      Object.entries(config.agents).map(([relayPath, agent]) => [relayPath.toLowerCase(), agent]),
    ),
    secret: await readSiteSecret(config),
    forwardTimeoutInMs: config.forwardTimeoutInMs,
    logger,
  });
  const listener = startRelayListener(
    relayListenerOptions(
      config.relay,
      await readRelayKey(config.relay),
      forwarder.handle,
      logger,
      options.onState,
    ),
  );
  logger.info('HubStarted', {
    hub: hubName,
    site: config.site,
    hybridConnection: config.relay.hybridConnection,
    agents: Object.keys(config.agents).length,
    forwardTimeoutInMs: config.forwardTimeoutInMs,
    agentVersion: emfleetVersion,
  });
  return {
    ready: listener.ready,
    close: async () => {
      await listener.close();
      forwarder.close();
    },
  };
}

type RelaySettings = NonNullable<AgentConfig['relay']>;

function relayListenerOptions(
  relay: RelaySettings,
  key: string,
  handler: RelayListenerOptions['handler'],
  logger: Logger,
  onState: ((state: ListenerState) => void) | undefined,
): RelayListenerOptions {
  const endpoint = relay.endpoint ?? `wss://${relay.namespace}:443`;
  const resource = `http://${relay.namespace}/${relay.hybridConnection}`;
  return {
    listenUri: `${endpoint}/$hc/${encodeURIComponent(relay.hybridConnection)}?sb-hc-action=listen`,
    token: () =>
      createSasToken(resource, relay.keyName, key, { expiresInSeconds: listenTokenLifetimeSeconds }),
    handler,
    logger,
    ...(onState ? { onState } : {}),
  };
}

async function readRelayKey(relay: RelaySettings): Promise<string> {
  return relay.key ?? (await readKeyFile(relay.keyFile!, 'the listen key file'));
}

async function readSiteSecret(source: {
  secret?: string | undefined;
  secretFile?: string | undefined;
}): Promise<Buffer> {
  return parseSiteSecret(
    source.secret ?? (await readKeyFile(source.secretFile!, 'the site secret file')),
    source.secretFile ?? 'the site secret',
  );
}

/** PEM text as given, or the file it names. */
async function readSecretText(setting: string, what: string): Promise<string> {
  return setting.includes('-----BEGIN') ? setting : readKeyFile(setting, `the ${what} file`);
}

function simulatedStateFile(config: AgentConfig): string {
  return (
    (config.applier.kind === 'simulated' ? config.applier.stateFile : undefined) ??
    join(config.stateDirectory, 'simulated-server.json')
  );
}

/** Where this agent reads its Exchange build: Windows' registry and ExSetup.exe, or a simulated server's setup file. */
export function createSetupReader(config: AgentConfig): SetupReader {
  return config.applier.kind === 'powershell'
    ? windowsSetupReader({ executable: config.applier.executable })
    : fileSetupReader(simulatedSetupFile(config.stateDirectory));
}

export function createApplier(config: AgentConfig): Applier {
  const applier = config.applier;
  switch (applier.kind) {
    case 'simulated':
      return new SimulatedApplier(simulatedStateFile(config), {
        failOn: applier.failOn,
        delayInMs: applier.delayInMs,
      });
    case 'powershell':
      return new PowerShellApplier({
        ...(applier.executable === undefined ? {} : { executable: applier.executable }),
        timeoutInMs: applier.timeoutInMs,
      });
  }
}

/** Probes the server's own front end: https://{server} unless the config (or a simulated server's own front end) says where. */
export function createProber(config: AgentConfig, simulatedBaseUrl?: string): Prober {
  return new Prober({
    baseUrl: config.probes.baseUrl ?? simulatedBaseUrl ?? `https://${config.server}`,
    ownNames: [config.server],
    endpoints: config.probes.endpoints,
    timeoutInMs: config.probes.timeoutInMs,
    roundDeadlineInMs: config.probes.roundDeadlineInMs,
  });
}

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    const key = (await readFile(path, 'utf8')).trim();
    if (key === '') throw new ConfigError(`${what} ${path} is empty`);
    return key;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      { cause: error },
    );
  }
}
