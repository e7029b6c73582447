import { cliEnvironmentNames } from '../config/index.js';
import { Command } from 'commander';
import { z } from 'zod';
import {
  connectivityProbesOf,
  connectivityTargets,
  runConnectivityChecks,
  type ConnectivityCheck,
} from '../admin/connectivity.js';
import { serverName } from '../model/names.js';
import { adminApiFromFlags, callAdminApi, type AdminApiFlags } from './api-client.js';
import { addStorageOptions, checkedValue, optionalFleetContext, type StorageFlags } from './fleet.js';
import { exitCodes, type CliIo } from './io.js';

const checksReply = z.object({
  ok: z.boolean(),
  checks: z.array(
    z.object({
      name: z.string(),
      server: z.string().optional(),
      hybridConnection: z.string().optional(),
      result: z.enum(['Success', 'Failed']),
      detail: z.string(),
      message: z.string(),
    }),
  ),
});

export function connectivityCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  return addStorageOptions(new Command('test-connectivity'))
    .description(
      'check, in order: OCS over HTTPS (through HTTPS_PROXY if set), the package verifies, and each agent answers ping through Azure Relay',
    )
    .option('--server <name>', 'ping only this server')
    .option(
      '--from-cloud',
      "run the same checks inside the function app (POST /api/connectivity), so the cloud's network path is tested",
    )
    .option(
      '--api-url <url>',
      `with --from-cloud: the function app, e.g. https://func-emfleet.azurewebsites.net (default: ${cliEnvironmentNames.apiUrl})`,
    )
    .option(
      '--api-key <key>',
      `with --from-cloud: a function key of the app (default: ${cliEnvironmentNames.apiKey})`,
    )
    .addHelpText(
      'after',
      `
Each check prints its name, then "Result: Success." or "Result: Failed." and a "Message:" line
saying what was checked, from where, and what failed, as Exchange's own
Test-MitigationServiceConnectivity.ps1 does; a check that could not run is Failed, never Success.
Exit 1 when any check failed.

Examples:
  emfleet test-connectivity --server ex01.contoso.com
  emfleet test-connectivity --from-cloud --api-url https://func-emfleet.azurewebsites.net --api-key KEY`,
    )
    .action(async (flags: StorageFlags & AdminApiFlags & { server?: string; fromCloud?: boolean }) => {
      const server =
        flags.server === undefined
          ? undefined
          : checkedValue(serverName, flags.server, '--server').toLowerCase();
      const onCheck = flags.json ? undefined : (check: ConnectivityCheck) => printCheck(io, check);
      let checks: readonly ConnectivityCheck[];
      if (flags.fromCloud) {
        const reply = await callAdminApi(
          adminApiFromFlags(flags, io),
          'POST',
          'connectivity',
          server === undefined ? {} : { server },
          checksReply,
        );
        checks = reply.checks;
        if (onCheck) for (const check of checks) onCheck(check);
      } else {
        const context = optionalFleetContext(flags, io);
        checks = await runConnectivityChecks(
          connectivityProbesOf(context.config, async () => {
            if (!context.tables) throw new Error(context.storageProblem ?? 'no storage configured');
            return connectivityTargets(context.tables, context.org, server);
          }),
          onCheck,
        );
      }
      const failed = checks.filter((check) => check.result === 'Failed').length;
      if (flags.json)
        io.stdout(JSON.stringify({ ok: failed === 0, from: flags.fromCloud ? 'cloud' : 'here', checks }));
      else
        io.stdout(
          failed === 0
            ? `All ${checks.length} checks passed.`
            : `${failed} of ${checks.length} checks failed.`,
        );
      setExitCode(failed === 0 ? exitCodes.ok : exitCodes.failed);
    });
}

function printCheck(io: CliIo, check: ConnectivityCheck): void {
  io.stdout(`${check.name}${check.server ? `: ${check.server}` : ''}`);
  io.stdout(`Result: ${check.result}.`);
  io.stdout(`Message: ${check.message}`);
}
