import { Command } from 'commander';
import { runConnectivityChecks, type ConnectivityCheck } from '../connectivity.js';
import { getServer, listServers } from '../fleet/servers.js';
import { serverName } from '../fleet/schemas.js';
import { fetchFeed } from '../ocs/client.js';
import { trustPolicyFromSettings } from '../package/trust.js';
import { agentClientFromSettings } from '../relay/settings.js';
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
      let client: Awaited<ReturnType<typeof agentClientFromSettings>> | undefined;
      const checks = await runConnectivityChecks(
        {
          feedUrl: settings.EMFLEET_OCS_URL,
          fetchFeed: async () => {
            const result = await fetchFeed({ url: settings.EMFLEET_OCS_URL });
            if (result.kind !== 'fetched') throw new Error('the feed answered 304 to an unconditional request');
            return result.bytes;
          },
          trust: () => trustPolicyFromSettings(settings),
          servers: async () => {
            if (!context.tables) throw new Error(context.storageProblem ?? 'no storage configured');
            const rows = server === undefined ? (await listServers(context.tables, context.org)).rows : [await getServer(context.tables, context.org, server)];
            return rows.map((row) => ({ name: row.rowKey, hybridConnection: row.relayHybridConnection || row.rowKey }));
          },
          ping: async (hybridConnection) => {
            client ??= await agentClientFromSettings(settings);
            return client.ping(hybridConnection);
          },
        },
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
