import { Command, CommanderError } from 'commander';
import { NoPackageError, UnknownFeedError } from '../admin/feeds.js';
import { ConfigError, EmfleetError } from '../errors.js';
import { PackageRejectedError } from '../package/reasons.js';
import { agentCommand } from '../agent/command.js';
import { connectivityCommand } from './connectivity.js';
import { devCommand } from './dev.js';
import { feedCommand } from './feed.js';
import { exitCodes, processIo, UsageError, type CliIo } from './io.js';
import { packageCommand } from './package.js';
import { policyCommand } from './policy.js';
import { reconcileCommand } from './reconcile.js';
import { pollCommand } from './poll.js';
import { rolloutCommand } from './rollout.js';
import { serversCommand } from './servers.js';
import { sitesCommand } from './sites.js';
import { statusCommand } from './status.js';

/** Runs `emfleet` with `argv` (as process.argv: node, script, ...) and returns the exit code. */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let exitCode: number = exitCodes.ok;
  const program = new Command('emfleet')
    .description('Exchange Emergency Mitigation for a whole fleet, from Azure')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text.trimEnd()),
      writeErr: (text) => io.stderr(text.trimEnd()),
    })
    .showSuggestionAfterError();
  program.addCommand(packageCommand(io, (code) => (exitCode = code)));
  program.addCommand(statusCommand(io));
  program.addCommand(pollCommand(io, (code) => (exitCode = code)));
  program.addCommand(serversCommand(io));
  program.addCommand(sitesCommand(io));
  program.addCommand(policyCommand(io, (code) => (exitCode = code)));
  program.addCommand(rolloutCommand(io, (code) => (exitCode = code)));
  program.addCommand(reconcileCommand(io));
  program.addCommand(feedCommand(io, (code) => (exitCode = code)));
  program.addCommand(agentCommand(io));
  program.addCommand(connectivityCommand(io, (code) => (exitCode = code)));
  program.addCommand(devCommand(io));
  for (const command of program.commands) {
    command.exitOverride().configureOutput(program.configureOutput());
    for (const subcommand of command.commands)
      subcommand.exitOverride().configureOutput(program.configureOutput());
  }

  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    }
    if (
      error instanceof UsageError ||
      error instanceof ConfigError ||
      error instanceof UnknownFeedError ||
      error instanceof NoPackageError
    ) {
      reportError(io, error);
      return exitCodes.usage;
    }
    if (error instanceof EmfleetError) {
      reportError(io, error);
      return exitCodes.failed;
    }
    io.stderr(`emfleet: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
    return exitCodes.failed;
  }
}

/** Every failure as every refusal: `emfleet: <Code>: <detail>` (a rejection's message already starts with its code). */
function reportError(io: CliIo, error: EmfleetError): void {
  io.stderr(
    `emfleet: ${error.code}: ${error instanceof PackageRejectedError ? error.detail : error.message}`,
  );
}
