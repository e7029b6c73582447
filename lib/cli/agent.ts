import { Command } from 'commander';
import { loadAgentConfig } from '../agent/config.js';
import { startAgent } from '../agent/run.js';
import { jsonLogger } from '../log.js';
import type { CliIo } from './io.js';

const exampleConfig = `{
  "server": "ex01.contoso.com",
  "build": "15.2.1544.4",
  "relay": { "namespace": "contoso-emfleet.servicebus.windows.net", "hybridConnection": "ex01",
             "keyName": "listen", "keyFile": "C:\\\\ProgramData\\\\emfleet\\\\listen.key" },
  "trust": { "anchors": ["MicrosoftRootCA2011.pem"],
             "anchorSha256": ["847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61"] },
  "applier": { "kind": "powershell" },
  "stateDirectory": "C:\\\\ProgramData\\\\emfleet\\\\state"
}`;

export function agentCommand(io: CliIo): Command {
  return new Command('agent')
    .description('run the on-prem agent: listen on the server\'s Azure Relay hybrid connection and apply verified mitigations')
    .requiredOption('--config <agent.json>', 'the agent configuration (paths in it are relative to the file)')
    .addHelpText(
      'after',
      `
The agent re-verifies every package with its own trust anchors, applies only mitigations that
apply to its own build, journals the prior state before each change, and runs until Ctrl-C or
SIGTERM. Logs are JSON lines on stdout.

Example agent.json:
${exampleConfig}

Example:
  emfleet agent --config C:\\ProgramData\\emfleet\\agent.json`,
    )
    .action(async (flags: { config: string }) => {
      const config = await loadAgentConfig(flags.config);
      const logger = jsonLogger(io.stdout);
      const agent = await startAgent(config, { logger, onState: (state) => logger.info('RelayListener', { state, server: config.server }) });
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          logger.info('AgentStopping', { server: config.server, signal });
          resolve();
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      await agent.close();
    });
}
