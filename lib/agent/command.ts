import { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { jsonLogger, type Logger } from '../log.js';
import { loadAgentConfig, loadHubConfig, readConfigMode } from './config.js';
import { agentLogger, noEventLog, rotatingFile, windowsEventLog, type EventLogSink } from './logging.js';
import { startAgent, startHub } from './run.js';

/**
 * Where the agent's command writes: the `emfleet` CLI's io, or the packaged emfleet-agent's own
 * (lib/agent/main.ts). Declared here so the agent does not depend on the CLI.
 */
export interface AgentIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}

const exampleConfig = `{
  "server": "ex01.contoso.com",
  "relay": { "namespace": "contoso-emfleet.servicebus.windows.net", "hybridConnection": "ex01.contoso.com",
             "keyName": "listen", "keyFile": "C:\\\\ProgramData\\\\emfleet\\\\listen.key" },
  "trust": { "anchors": ["MicrosoftRootCA2011.pem"],
             "anchorSha256": ["847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61"] },
  "applier": { "kind": "powershell" },
  "stateDirectory": "C:\\\\ProgramData\\\\emfleet\\\\state"
}`;

const exampleHubConfig = `{
  "mode": "hub",
  "site": "Amsterdam",
  "relay": { "namespace": "contoso-emfleet.servicebus.windows.net", "hybridConnection": "site-amsterdam",
             "keyName": "listen", "keyFile": "C:\\\\ProgramData\\\\emfleet\\\\listen.key" },
  "secretFile": "C:\\\\ProgramData\\\\emfleet\\\\site.secret",
  "agents": {
    "ex01.contoso.com": { "url": "https://ex01.contoso.com:8443", "certificateSha256": "9F:86:D0:...:0A:08" }
  }
}`;

export function agentCommand(io: AgentIo): Command {
  return new Command('agent')
    .description(
      "run the on-prem agent: listen on the server's Azure Relay hybrid connection (or for its site hub) and apply verified mitigations; with --hub, run a site relay hub",
    )
    .requiredOption(
      '--config <agent.json>',
      'the agent (or hub) configuration (paths in it are relative to the file)',
    )
    .option(
      '--hub',
      'run as the site relay hub: the config must say "mode": "hub"; the hub forwards, it never applies',
    )
    .addHelpText(
      'after',
      `
The agent re-verifies every package with its own trust anchors, applies only mitigations that
apply to its own Exchange build (which it reads from ExSetup.exe and the Setup registry key at
start and on every status request; "build" in agent.json overrides it), adopts a mitigation it
finds already in place (Exchange Emergency Mitigation's own EEMS rules, an admin's), journals the prior state before each change, and runs until Ctrl-C or
SIGTERM. Logs are JSON lines in {stateDirectory}\\logs\\agent.log (rotated at 10 MB, 5 files
kept) and on stdout; the important events also go to the Windows Application event log under the
source emfleet-agent (ids in docs/agent.md).

Example agent.json:
${exampleConfig}

A server behind its site's relay hub has "siteLink" (certificate, privateKey, secretFile, port)
in place of (or beside) "relay"; its Servers row then has the site's hybrid connection and a
relayPath. The site hub (the same program, --hub) listens on the site's hybrid connection and
forwards /{relayPath}/... to that agent over the LAN: HTTPS pinned to the agent's certificate,
each request signed with the secret the site's agents and hub share. It holds no signing key and
no state; two hubs on one hybrid connection share the load.

Example hub.json:
${exampleHubConfig}

Examples:
  emfleet agent --config C:\\ProgramData\\emfleet\\agent.json
  emfleet agent --hub --config C:\\ProgramData\\emfleet\\hub.json`,
    )
    .action(async (flags: { config: string; hub?: boolean }) =>
      runAgentUntilStopped(flags.config, io, flags.hub === true),
    );
}

/**
 * Runs the agent (or site hub) of the configuration until SIGINT or SIGTERM (the scheduled task
 * stopping it). An agent logs to the rotating file under its state directory, to the Windows event
 * log for the important events, and to standard output (seen when run by hand); a hub to stdout.
 */
export async function runAgentUntilStopped(configPath: string, io: AgentIo, hub = false): Promise<void> {
  const mode = await readConfigMode(configPath);
  if (hub && mode !== 'hub')
    throw new ConfigError(`${configPath}: --hub needs a hub configuration ("mode": "hub")`);
  let logger: Logger;
  let eventLog: EventLogSink = noEventLog;
  let running: { close(): Promise<void> };
  if (mode === 'hub') {
    logger = jsonLogger(io.stdout);
    const config = await loadHubConfig(configPath);
    const hubLogger = logger;
    running = await startHub(config, {
      logger,
      onState: (state) => hubLogger.info('RelayListener', { state, site: config.site }),
    });
  } else {
    const config = await loadAgentConfig(configPath);
    const file = rotatingFile(config.logs.directory!, {
      maxBytes: config.logs.maxBytes,
      keep: config.logs.keep,
    });
    if (process.platform === 'win32') {
      eventLog = windowsEventLog({
        onError: (message) =>
          file.write(
            JSON.stringify({
              time: new Date().toISOString(),
              level: 'warn',
              event: 'EventLogFailed',
              error: message,
            }),
          ),
      });
    }
    const agentLog = agentLogger({ file, eventLog, echo: io.stdout });
    logger = agentLog;
    running = await startAgent(config, {
      logger,
      onState: (state) => agentLog.info('RelayListener', { state, server: config.server }),
    });
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      logger.info('AgentStopping', { mode, signal });
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await running.close();
  eventLog.close();
}
