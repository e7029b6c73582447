import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAgentConfig, type AgentConfig } from '../../lib/agent/config.js';
import { startAgent, type RunningAgent } from '../../lib/agent/run.js';
import {
  startSimulatedExchange,
  type Couplings,
  type SimulatedExchange,
} from '../../lib/agent/appliers/simulated-front-end.js';
import { startRelayEmulator, type RelayEmulator } from '../../lib/local/relay.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { AgentClient, RelaySender } from '../../lib/relay/sender.js';
import type { TestPki } from './packages.js';

export const relayRules = {
  listen: { keyName: 'listen', key: randomBytes(32).toString('base64') },
  send: { keyName: 'send', key: randomBytes(32).toString('base64') },
} as const;

/** The relay emulator and a client that sends through it with the send rule, as the cloud does. */
export async function relayWithClient(
  options: { deadlineInMs?: number } = {},
): Promise<{ relay: RelayEmulator; client: AgentClient; stop(): Promise<void> }> {
  const relay = await startRelayEmulator({
    rules: relayRules,
    ...(options.deadlineInMs === undefined ? {} : { deadlineInMs: options.deadlineInMs }),
  });
  const sender = new RelaySender({ baseUrl: relay.baseUrl, auth: { kind: 'sas', ...relayRules.send } });
  return {
    relay,
    client: new AgentClient(sender),
    stop: async () => {
      sender.close();
      await relay.stop();
    },
  };
}

let exchange: Promise<SimulatedExchange> | undefined;

/** A simulated Exchange front end shared by a test file, for agent services built without startAgent. */
export function simulatedExchange(): Promise<SimulatedExchange> {
  exchange ??= startSimulatedExchange({ unref: true });
  return exchange;
}

/**
 * agent.json for a simulated Exchange server listening on the emulator; written to disk, as an
 * admin would. Without `probes.baseUrl` the agent probes its own simulated front end.
 */
export async function writeAgentConfig(
  relay: RelayEmulator,
  pki: TestPki,
  overrides: {
    server?: string;
    build?: string;
    applier?: Record<string, unknown>;
    replyWithinMs?: number;
    couplings?: Couplings;
    probes?: Record<string, unknown>;
    allowKeepOnDegraded?: boolean;
  } = {},
): Promise<{ path: string; config: AgentConfig; directory: string }> {
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-agent-'));
  const server = overrides.server ?? 'ex01.contoso.com';
  await writeFile(join(directory, 'root.pem'), pki.root.certificatePem);
  await writeFile(join(directory, 'tsa-root.pem'), pki.timestampRoot.certificatePem);
  await writeFile(join(directory, 'listen.key'), relayRules.listen.key);
  const json = {
    server,
    build: overrides.build ?? '15.2.1118.7',
    relay: {
      namespace: '127.0.0.1',
      hybridConnection: server.split('.')[0],
      endpoint: relay.baseUrl.replace(/^http/, 'ws'),
      keyName: relayRules.listen.keyName,
      keyFile: 'listen.key',
    },
    trust: { anchors: ['root.pem'], timestampAnchors: ['tsa-root.pem'] },
    applier: {
      ...(overrides.applier ?? { kind: 'simulated' }),
      ...(overrides.couplings ? { couplings: overrides.couplings } : {}),
    },
    stateDirectory: 'state',
    ...(overrides.replyWithinMs === undefined ? {} : { replyWithinMs: overrides.replyWithinMs }),
    ...(overrides.probes ? { probes: overrides.probes } : {}),
    ...(overrides.allowKeepOnDegraded === undefined
      ? {}
      : { allowKeepOnDegraded: overrides.allowKeepOnDegraded }),
  };
  const path = join(directory, 'agent.json');
  await writeFile(path, JSON.stringify(json, null, 2));
  return { path, config: parseAgentConfig(json, directory), directory };
}

export async function runAgent(config: AgentConfig, logger: Logger = silentLogger): Promise<RunningAgent> {
  const agent = await startAgent(config, { logger });
  await agent.ready;
  return agent;
}
