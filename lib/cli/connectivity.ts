import { Command } from 'commander';
import { connectivityProbesFromSettings, connectivityTargets, runConnectivityChecks, type ConnectivityCheck } from '../connectivity.js';
import { serverName } from '../fleet/schemas.js';
import { addStorageOptions, checkedValue, optionalFleetContext, type StorageFlags } from './fleet.js';
import { exitCodes, type CliIo } from './io.js';

export function connectivityCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  return addStorageOptions(new Command('test-connectivity'))
    .description('check, in order: OCS over HTTPS (through HTTPS_PROXY if set), the package verifies, and each agent answers ping through Azure Relay')
    .option('--server <name>', 'ping only this server')
    .addHelpText(
      'after',
      `
Each check prints "Result: Success." or "Result: Failed. <reason>", as Exchange's own
Test-MitigationServiceConnectivity does; a check that could not run is Failed, never Success.
Exit 1 when any check failed.

Example:
  emfleet test-connectivity --server ex01.contoso.com`,
    )
    .action(async (flags: StorageFlags & { server?: string }) => {
      const server = flags.server === undefined ? undefined : checkedValue(serverName, flags.server, '--server').toLowerCase();
      const context = optionalFleetContext(flags, io);
      const { settings } = context;
      const checks = await runConnectivityChecks(
        connectivityProbesFromSettings(settings, async () => {
          if (!context.tables) throw new Error(context.storageProblem ?? 'no storage configured');
          return connectivityTargets(context.tables, context.org, server);
        }),
        flags.json ? undefined : (check) => printCheck(io, check),
      );
      const failed = checks.filter((check) => check.result === 'Failed').length;
      if (flags.json) io.stdout(JSON.stringify({ ok: failed === 0, checks }));
      else io.stdout(failed === 0 ? `All ${checks.length} checks passed.` : `${failed} of ${checks.length} checks failed.`);
      setExitCode(failed === 0 ? exitCodes.ok : exitCodes.failed);
    });
}

function printCheck(io: CliIo, check: ConnectivityCheck): void {
  io.stdout(`${check.name}${check.server ? `: ${check.server}` : ''}`);
  io.stdout(check.result === 'Success' ? `Result: Success. ${check.detail}` : `Result: Failed. ${check.detail}`);
}
