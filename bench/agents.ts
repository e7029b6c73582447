import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAgentConfig } from '../lib/agent/config.js';
import { startAgent, type RunningAgent } from '../lib/agent/run.js';
import { mapWithConcurrency } from '../lib/concurrency.js';
import { startSimulatedExchange, type SimulatedExchange } from '../lib/agent/appliers/simulated-front-end.js';
import { silentLogger } from '../lib/log.js';
import { serveCommands, type Command } from './ipc.js';

/**
 * A worker process hosting many real agents (hyco-https listener, package verification,
 * simulated applier with its journal), each with its own state directory, as `npm start` runs
 * them. Several of these share the simulated fleet, so the local host's process is measured alone.
 */
export interface AgentSpec {
  readonly server: string;
  readonly build: string;
  readonly hybridConnection: string;
}

/** Agents behind site hubs listen on loopback for their hub instead of on the relay. */
export interface BenchSiteLink {
  /** One certificate for every bench agent (the hub pins it); real agents each have their own. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly secret: string;
}

export interface StartAgents extends Command {
  readonly kind: 'start';
  readonly agents: readonly AgentSpec[];
  readonly siteLink?: BenchSiteLink;
  /** ws://127.0.0.1:PORT of the relay emulator. */
  readonly relayEndpoint: string;
  readonly keyName: string;
  readonly key: string;
  readonly anchorPem: string;
  /** Each agent's state lives under here (tmpfs, so the journal's fsync costs what a fast disk would). */
  readonly stateRoot: string;
}

/** Agents that connect at once; the relay emulator takes them in any order. */
const startConcurrency = 64;

let running: RunningAgent[] = [];
let last: StartAgents | undefined;
/** Each site-linked agent's port, kept over a reset so its hub finds it again. */
const ports = new Map<string, number>();
/** The front ends of this process's servers, which their agents probe before and after each change. */
let exchange: SimulatedExchange | undefined;

async function start(
  command: StartAgents,
): Promise<{ agents: number; ms: number; links: Record<string, string> }> {
  const started = Date.now();
  last = command;
  exchange ??= await startSimulatedExchange();
  const frontEnds = exchange;
  const agents = await mapWithConcurrency(command.agents, startConcurrency, async (spec) => {
    const stateDirectory = join(command.stateRoot, spec.hybridConnection);
    const probeUrl = frontEnds.add({
      name: spec.hybridConnection,
      server: spec.server,
      stateFile: join(stateDirectory, 'simulated-server.json'),
    });
    const config = parseAgentConfig(
      {
        server: spec.server,
        build: spec.build,
        ...(command.siteLink
          ? {
              siteLink: {
                host: '127.0.0.1',
                port: ports.get(spec.server) ?? 0,
                certificate: command.siteLink.certificatePem,
                privateKey: command.siteLink.privateKeyPem,
                secret: command.siteLink.secret,
              },
            }
          : {
              relay: {
                namespace: '127.0.0.1',
                hybridConnection: spec.hybridConnection,
                endpoint: command.relayEndpoint,
                keyName: command.keyName,
                key: command.key,
              },
            }),
        trust: { anchors: [command.anchorPem] },
        applier: { kind: 'simulated' },
        stateDirectory,
        probes: { baseUrl: probeUrl, endpoints: ['/owa/healthcheck.htm'] },
      },
      command.stateRoot,
    );
    const agent = await startAgent(config, { logger: silentLogger });
    await agent.ready;
    if (agent.siteLink) ports.set(spec.server, Number(new URL(agent.siteLink.url).port));
    return agent;
  });
  running = [...running, ...agents];
  const links = Object.fromEntries(
    command.agents.flatMap((spec, index) =>
      agents[index]?.siteLink ? [[spec.server, agents[index].siteLink.url]] : [],
    ),
  );
  return { agents: agents.length, ms: Date.now() - started, links };
}

async function stop(): Promise<void> {
  const closing = running;
  running = [];
  await mapWithConcurrency(closing, startConcurrency, (agent) => agent.close());
}

serveCommands(async (command) => {
  switch (command.kind) {
    case 'start':
      return start(command as StartAgents);
    case 'reset': {
      // Every server as it was before any change: agents closed, their state wiped, started again.
      if (!last) throw new Error('reset before start');
      await stop();
      await rm(last.stateRoot, { recursive: true, force: true });
      return start(last);
    }
    case 'summary': {
      // What each agent reports applied, counted by the sorted list (e.g. {"EM1,EM2,EM3,PING1": 5000}).
      const applied: Record<string, number> = {};
      for (const agent of running) {
        const key = agent.service.status().applied.join(',');
        applied[key] = (applied[key] ?? 0) + 1;
      }
      return { agents: running.length, applied };
    }
    case 'stop':
      await stop();
      if (last) await rm(last.stateRoot, { recursive: true, force: true });
      last = undefined;
      await exchange?.stop();
      exchange = undefined;
      return { agents: 0 };
    default:
      throw new Error(`unknown command ${command.kind}`);
  }
});
