import { Command } from 'commander';
import { listServers, registerServer, removeServer } from '../fleet/servers.js';
import { describeRowProblem } from '../fleet/rows.js';
import { serverJson } from '../fleet/json.js';
import { exchangeBuild, ringName, serverName, siteName } from '../fleet/schemas.js';
import { formatTable } from '../text.js';
import { addActorOption, addStorageOptions, checkedValue, fleetContext, type StorageFlags } from './fleet.js';
import type { CliIo } from './io.js';

export function serversCommand(io: CliIo): Command {
  const command = new Command('servers').description('the Exchange servers emfleet manages (Servers table)');

  addActorOption(
    addStorageOptions(
      command
        .command('add')
        .description('register a server, or update its registration (idempotent)')
        .argument('<name>', 'server name or FQDN (stored in lower case)')
        .requiredOption('--build <build>', 'Exchange build, e.g. 15.2.1544.4')
        .option('--ring <ring>', 'rollout ring (canary, early, broad...)')
        .option('--site <site>', 'AD site or datacenter')
        .option('--relay-hc <name>', 'Azure Relay hybrid connection the agent listens on (default: the server name)')
        .option('--fqdn <fqdn>', 'fully qualified name (default: the name)'),
    ),
  )
    .addHelpText('after', '\nExample:\n  emfleet servers add ex01.contoso.com --build 15.2.1544.4 --ring canary --site HQ')
    .action(async (name: string, flags: StorageFlags & { build: string; ring?: string; site?: string; relayHc?: string; fqdn?: string }) => {
      const registration = {
        name: checkedValue(serverName, name, 'server name').toLowerCase(),
        build: checkedValue(exchangeBuild, flags.build, '--build'),
        ...(flags.ring === undefined ? {} : { ring: checkedValue(ringName, flags.ring, '--ring') }),
        ...(flags.site === undefined ? {} : { site: checkedValue(siteName, flags.site, '--site') }),
        ...(flags.relayHc === undefined ? {} : { relayHybridConnection: flags.relayHc }),
        ...(flags.fqdn === undefined ? {} : { fqdn: checkedValue(serverName, flags.fqdn, '--fqdn').toLowerCase() }),
      };
      const context = fleetContext(flags, io);
      const { change, row } = await registerServer(context.tables, context.org, registration, { actor: context.actor });
      if (flags.json) io.stdout(JSON.stringify({ ok: true, change, server: serverJson(row) }));
      else io.stdout(`${change} server ${row.rowKey} (build ${row.build}${row.ring ? `, ring ${row.ring}` : ''}${row.site ? `, site ${row.site}` : ''})`);
    });

  addStorageOptions(command.command('list').description('list registered servers'))
    .addHelpText('after', '\nExample:\n  emfleet servers list --json')
    .action(async (flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const { rows, problems } = await listServers(context.tables, context.org);
      if (flags.json) {
        io.stdout(JSON.stringify({ servers: rows.map(serverJson), problems }));
        return;
      }
      for (const problem of problems) io.stderr(`warning: skipped invalid row: ${describeRowProblem(problem)}`);
      if (rows.length === 0) {
        io.stdout(`no servers in org ${context.org}`);
        return;
      }
      const lines = formatTable(
        ['SERVER', 'BUILD', 'RING', 'SITE', 'LAST SEEN', 'APPLIED'],
        rows.map((row) => [row.rowKey, row.build, row.ring || '-', row.site || '-', row.lastSeen?.toISOString() ?? 'never', row.reportedApplied.join(',') || '-']),
      );
      for (const line of lines) io.stdout(line);
    });

  addActorOption(addStorageOptions(command.command('remove').description('unregister a server').argument('<name>', 'server name')))
    .addHelpText('after', '\nExample:\n  emfleet servers remove ex01.contoso.com')
    .action(async (name: string, flags: StorageFlags) => {
      const server = checkedValue(serverName, name, 'server name').toLowerCase();
      const context = fleetContext(flags, io);
      await removeServer(context.tables, context.org, server, { actor: context.actor });
      if (flags.json) io.stdout(JSON.stringify({ ok: true, removed: server }));
      else io.stdout(`removed server ${server}`);
    });

  return command;
}
