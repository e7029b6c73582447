import { CommanderError } from 'commander';
import { agentCommand } from '../cli/agent.js';
import { processIo, type CliIo } from '../cli/io.js';
import { ConfigError, EmfleetError } from '../errors.js';
import { emfleetVersion } from '../version.js';

/**
 * `emfleet-agent`: the agent alone, as shipped to Windows in the zip that `npm run package:agent`
 * builds (bundled into one file with esbuild, run by the Node.js runtime beside it). The same
 * command as `emfleet agent`, without the rest of the CLI.
 */
export async function agentMain(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const program = agentCommand(io)
    .name('emfleet-agent')
    .version(emfleetVersion, '--version', 'print the agent version')
    .exitOverride()
    .configureOutput({ writeOut: (text) => io.stdout(text.trimEnd()), writeErr: (text) => io.stderr(text.trimEnd()) });
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof ConfigError) {
      io.stderr(`emfleet-agent: ${error.message}`);
      return 2;
    }
    io.stderr(`emfleet-agent: ${error instanceof EmfleetError ? `${error.code}: ` : ''}${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
