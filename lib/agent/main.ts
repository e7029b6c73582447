import { Command, CommanderError } from 'commander';
import { loadAgentConfig } from './config.js';
import { restoreAll } from './restore-all.js';
import { jsonLogger } from '../log.js';
import { agentCommand, type AgentIo } from './command.js';
import { ConfigError, EmfleetError } from '../errors.js';
import { emfleetVersion } from '../version.js';

/**
 * `emfleet-agent`: the agent alone, as shipped to Windows in the zip that `npm run package:agent`
 * builds (bundled into one file with esbuild, run by the Node.js runtime beside it). The same
 * command as `emfleet agent`, without the rest of the CLI.
 */
const processIo: AgentIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

export async function agentMain(argv: readonly string[], io: AgentIo = processIo): Promise<number> {
  let exitCode = 0;
  const output = {
    writeOut: (text: string) => io.stdout(text.trimEnd()),
    writeErr: (text: string) => io.stderr(text.trimEnd()),
  };
  const program = new Command('emfleet-agent')
    .description(
      'the emfleet agent: `emfleet-agent --config agent.json` runs it; `emfleet-agent restore-all --config agent.json` undoes every mitigation it applied',
    )
    .version(emfleetVersion, '--version', 'print the agent version')
    .exitOverride()
    .configureOutput(output);
  // Running is the default command, so `emfleet-agent --config agent.json` is all the scheduled task says.
  program.addCommand(agentCommand(io).name('run').exitOverride().configureOutput(output), {
    isDefault: true,
  });
  program.addCommand(
    new Command('restore-all')
      .description(
        'with the agent stopped: put back everything every journaled mitigation changed, and empty the journal (Install-EmfleetAgent.ps1 -Uninstall runs it)',
      )
      .requiredOption('--config <agent.json>', 'the agent configuration')
      .exitOverride()
      .configureOutput(output)
      .action(async (flags: { config: string }) => {
        const config = await loadAgentConfig(flags.config);
        const report = await restoreAll(config, jsonLogger(io.stderr));
        io.stdout(JSON.stringify(report));
        if (report.failed.length > 0) exitCode = 1;
      }),
  );
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    // As the emfleet CLI: `<Code>: <detail>`, the code from the reason catalogue.
    io.stderr(
      `emfleet-agent: ${error instanceof EmfleetError ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}`,
    );
    return error instanceof ConfigError ? 2 : 1;
  }
}
