import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';
import { createTrustPolicy, readPemSetting, type TrustPolicy } from '../package/trust.js';
import { createSasToken } from '../relay/sas.js';
import { emfleetVersion } from '../version.js';
import type { Applier } from './applier.js';
import { PowerShellApplier } from './appliers/powershell.js';
import { SimulatedApplier } from './appliers/simulated.js';
import { startSimulatedExchange, type SimulatedExchange } from './appliers/simulated-front-end.js';
import type { AgentConfig } from './config.js';
import { Journal } from './journal.js';
import { startRelayListener, type ListenerState } from './listener.js';
import { Prober } from './probes.js';
import { AgentService } from './service.js';
import { secureStateDirectory } from './state-directory.js';

export interface RunningAgent {
  readonly service: AgentService;
  /** Resolves when the relay has accepted the listener. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** How long a listen token lives; the listener renews it well before. */
const listenTokenLifetimeSeconds = 3600;

/**
 * One agent: repairs what a crash left in the journal, then listens on its hybrid connection.
 * Several agents can run in one process (local runs, benchmarks), each with its own state directory.
 */
export async function startAgent(config: AgentConfig, options: { logger: Logger; onState?: (state: ListenerState) => void }): Promise<RunningAgent> {
  const logger = options.logger;
  const trust = agentTrustPolicies(config);
  const key = config.relay.key ?? (await readKeyFile(config.relay.keyFile!));
  const applier = createApplier(config);
  await secureStateDirectory(config.stateDirectory, { windows: (directory) => (applier instanceof PowerShellApplier ? applier : new PowerShellApplier()).secureStateDirectory(directory) });
  const journal = await Journal.open(join(config.stateDirectory, 'journal.json'));

  // A simulated server with nowhere else to be probed serves its own front end, so its probes are real HTTP too.
  const frontEnd = config.applier.kind === 'simulated' && config.probes.baseUrl === undefined ? await startSimulatedExchange() : undefined;
  const baseUrl = frontEnd?.add({ name: 'server', stateFile: simulatedStateFile(config), server: config.server, ...(config.applier.kind === 'simulated' && config.applier.couplings ? { couplings: config.applier.couplings } : {}) });
  const service = new AgentService({
    identity: { server: config.server, build: config.build, agentVersion: emfleetVersion },
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
      if (repaired.length > 0) logger.warn('AgentRepairedJournal', { server: config.server, when, mitigationIds: repaired });
      if (failed.length > 0) logger.error('AgentRepairPending', { server: config.server, when, mitigationIds: failed, retryInMs: config.retryRestoresEveryInMs });
    } catch (error) {
      logger.error('AgentRepairPending', { server: config.server, when, error: (error as Error).message, retryInMs: config.retryRestoresEveryInMs });
    }
  };
  await repairPending('start');
  const repairTimer = setInterval(() => void repairPending('schedule'), config.retryRestoresEveryInMs);
  repairTimer.unref();
  const endpoint = config.relay.endpoint ?? `wss://${config.relay.namespace}:443`;
  const resource = `http://${config.relay.namespace}/${config.relay.hybridConnection}`;
  const listener = startRelayListener({
    listenUri: `${endpoint}/$hc/${encodeURIComponent(config.relay.hybridConnection)}?sb-hc-action=listen`,
    token: () => createSasToken(resource, config.relay.keyName, key, { expiresInSeconds: listenTokenLifetimeSeconds }),
    handler: async (request) => service.handle(request),
    logger,
    ...(options.onState ? { onState: options.onState } : {}),
  });
  logger.info('AgentStarted', { server: config.server, build: config.build, hybridConnection: config.relay.hybridConnection, applier: applier.kind, agentVersion: emfleetVersion });
  return {
    service,
    ready: listener.ready,
    close: () => {
      clearInterval(repairTimer);
      return closeAll(listener, frontEnd);
    },
  };
}

/** One trust policy per `trust` entry of agent.json: each binds its anchors to its own signer. */
export function agentTrustPolicies(config: Pick<AgentConfig, 'trust'>): TrustPolicy[] {
  return config.trust.map((entry, index) =>
    createTrustPolicy({
      anchorPems: entry.anchors.map((anchor) => readPemSetting(anchor, `agent trust[${index}] anchor`)),
      anchorSha256: entry.anchorSha256,
      timestampAnchorPems: entry.timestampAnchors.map((anchor) => readPemSetting(anchor, `agent trust[${index}] timestamp anchor`)),
      timestampAnchorSha256: entry.timestampAnchorSha256,
      signerSubjectCn: entry.signerSubject,
      signerEku: entry.signerEku,
      revokedSerials: entry.revokedSerials,
    }),
  );
}

async function closeAll(listener: { close(): Promise<void> }, frontEnd: SimulatedExchange | undefined): Promise<void> {
  await listener.close();
  await frontEnd?.stop();
}

function simulatedStateFile(config: AgentConfig): string {
  return (config.applier.kind === 'simulated' ? config.applier.stateFile : undefined) ?? join(config.stateDirectory, 'simulated-server.json');
}

export function createApplier(config: AgentConfig): Applier {
  const applier = config.applier;
  switch (applier.kind) {
    case 'simulated':
      return new SimulatedApplier(simulatedStateFile(config), { failOn: applier.failOn, delayInMs: applier.delayInMs });
    case 'powershell':
      return new PowerShellApplier({ ...(applier.executable === undefined ? {} : { executable: applier.executable }), timeoutInMs: applier.timeoutInMs });
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

async function readKeyFile(path: string): Promise<string> {
  try {
    const key = (await readFile(path, 'utf8')).trim();
    if (key === '') throw new ConfigError(`the listen key file ${path} is empty`);
    return key;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`cannot read the listen key file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}
