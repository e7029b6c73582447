import { Command } from 'commander';
import { listServers, registerServer, removeServer } from '../fleet/servers.js';
import { describeRowProblem } from '../fleet/rows.js';
import { serverJson } from '../fleet/json.js';
import { buildMismatch } from '../fleet/agent-facts.js';
import type { ServerRow } from '../fleet/schemas.js';
import { exchangeBuild } from '../model/build.js';
import { ringName, serverName, siteName } from '../model/names.js';
import { formatTable } from '../text.js';
import { addActorOption, addStorageOptions, checkedValue, fleetContext, type StorageFlags } from './fleet.js';
import type { CliIo } from './io.js';
import {
  addRelayManagementOptions,
  defaultRelayManagement,
  describeProvisioning,
  serverRelayPlacement,
  type RelayManagementFactory,
  type ServerRelayFlags,
} from './sites.js';
import { readServerView, type ServerView } from '../admin/server-view.js';
import { silentLogger } from '../log.js';
import { reasonLabel, renderReason } from '../model/reasons.js';

/** The build planned on, and the registered one beside it when the agent reports another. */
function buildText(row: ServerRow): string {
  const mismatch = buildMismatch(row);
  return mismatch ? `${mismatch.reported} ! registered ${mismatch.registered}` : row.build;
}

export function serversCommand(
  io: CliIo,
  relayManagement: RelayManagementFactory = defaultRelayManagement,
): Command {
  const command = new Command('servers').description('the Exchange servers emfleet manages (Servers table)');

  addRelayManagementOptions(
    addActorOption(
      addStorageOptions(
        command
          .command('add')
          .description('register a server, or update its registration (idempotent)')
          .argument('<name>', 'server name or FQDN (stored in lower case)')
          .requiredOption('--build <build>', 'Exchange build, e.g. 15.2.1544.4')
          .option('--ring <ring>', 'rollout ring (canary, early, broad...)')
          .option(
            '--site <site>',
            "its site: the server is reached through the site's relay hub (hybrid connection site-{site}, relay path the server name)",
          )
          .option(
            '--own-hybrid-connection',
            'reach it on a hybrid connection of its own instead, created now (with a Listen-only rule) through Azure Resource Manager',
          )
          .option(
            '--relay-hc <name>',
            "the hybrid connection: its own (default: the server name) or, with --site, the site's (default: site-{site})",
          )
          .option('--fqdn <fqdn>', 'fully qualified name (default: the name)'),
      ),
    ),
  )
    .addHelpText(
      'after',
      `
Examples:
  emfleet servers add ex01.contoso.com --build 15.2.1544.4 --ring canary --site Amsterdam
  emfleet servers add ex99.contoso.com --build 15.2.1544.4 --own-hybrid-connection --resource-group rg-emfleet`,
    )
    .action(
      async (
        name: string,
        flags: StorageFlags & ServerRelayFlags & { build: string; ring?: string; fqdn?: string },
      ) => {
        const server = checkedValue(serverName, name, 'server name').toLowerCase();
        const registration = {
          name: server,
          build: checkedValue(exchangeBuild, flags.build, '--build'),
          ...(flags.ring === undefined ? {} : { ring: checkedValue(ringName, flags.ring, '--ring') }),
          ...(flags.site === undefined ? {} : { site: checkedValue(siteName, flags.site, '--site') }),
          ...(flags.fqdn === undefined
            ? {}
            : { fqdn: checkedValue(serverName, flags.fqdn, '--fqdn').toLowerCase() }),
        };
        const context = fleetContext(flags, io);
        const { provisioned, ...placement } = await serverRelayPlacement(server, flags, io, relayManagement);
        const { change, row } = await registerServer(
          context.tables,
          context.org,
          { ...registration, ...placement },
          { actor: context.actor },
        );
        if (flags.json) {
          io.stdout(
            JSON.stringify({
              ok: true,
              change,
              server: serverJson(row),
              ...(provisioned ? { provisioned } : {}),
            }),
          );
          return;
        }
        if (provisioned) io.stdout(describeProvisioning(provisioned));
        const reported =
          row.registeredBuild !== '' && row.registeredBuild !== row.build
            ? `, the agent reports ${row.build}, which emfleet plans on`
            : '';
        io.stdout(
          `${change} server ${row.rowKey} (build ${row.registeredBuild || row.build}${reported}${row.ring ? `, ring ${row.ring}` : ''}${row.site ? `, site ${row.site}` : ''}${row.relayPath ? `, behind the hub on ${row.relayHybridConnection}` : ''})`,
        );
        if (row.relayPath)
          io.stdout(
            `Add it to the site hub's hub.json "agents": "${row.relayPath}": { "url": "https://${row.fqdn}:8443", "certificateSha256": "<its agent's certificate fingerprint>" }`,
          );
      },
    );

  addStorageOptions(command.command('list').description('list registered servers'))
    .addHelpText('after', '\nExample:\n  emfleet servers list --json')
    .action(async (flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const { rows, problems } = await listServers(context.tables, context.org);
      if (flags.json) {
        io.stdout(JSON.stringify({ servers: rows.map(serverJson), problems }));
        return;
      }
      for (const problem of problems)
        io.stderr(`emfleet: warning: InvalidRow: skipped ${describeRowProblem(problem)}`);
      if (rows.length === 0) {
        io.stdout(`no servers in org ${context.org}`);
        return;
      }
      const lines = formatTable(
        ['SERVER', 'BUILD', 'AGENT', 'RING', 'SITE', 'LAST SEEN', 'APPLIED'],
        rows.map((row) => [
          row.rowKey,
          buildText(row),
          row.agentVersion || '-',
          row.ring || '-',
          row.site || '-',
          row.lastSeen?.toISOString() ?? 'never',
          row.reportedApplied.join(',') || '-',
        ]),
      );
      for (const line of lines) io.stdout(line);
      const mismatched = rows.filter((row) => buildMismatch(row));
      if (mismatched.length > 0)
        io.stdout(
          `${mismatched.length} server(s) report another build than registered (marked !): emfleet plans on the reported build; re-run servers add --build to record it`,
        );
    });

  addStorageOptions(
    command
      .command('show')
      .description(
        "one server as EM's Get-Mitigations.ps1 shows it, for the fleet: registration and reported facts, then per mitigation of every current package the policy decision, the last outcome, who applied it, and what reconcile would do",
      )
      .argument('<name>', 'server name or FQDN'),
  )
    .addHelpText(
      'after',
      '\nThe same as GET /api/servers/{name}.\n\nExamples:\n  emfleet servers show ex01.contoso.com\n  emfleet servers show ex01.contoso.com --org contoso --json',
    )
    .action(async (name: string, flags: StorageFlags) => {
      const server = checkedValue(serverName, name, 'server name').toLowerCase();
      const context = fleetContext(flags, io);
      const view = await readServerView(
        { tables: context.tables, config: context.config, logger: silentLogger },
        server,
      );
      if (flags.json) io.stdout(JSON.stringify(view));
      else for (const line of serverViewLines(view)) io.stdout(line);
    });

  addActorOption(
    addStorageOptions(
      command.command('remove').description('unregister a server').argument('<name>', 'server name'),
    ),
  )
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

/** Facts first, then one row per mitigation, as Get-Mitigations.ps1 lists them. */
export function serverViewLines(view: ServerView): string[] {
  const { server } = view;
  const reported =
    server.reportedBuild === null
      ? 'the agent has not reported one'
      : server.reportedBuild === server.registeredBuild
        ? `reported the same`
        : `REPORTED ${server.reportedBuild}`;
  const lines = [
    `server ${server.name}${server.fqdn && server.fqdn !== server.name ? ` (${server.fqdn})` : ''}`,
    `  ring ${server.ring || '-'}, site ${server.site || '-'}, relay ${server.relayHybridConnection}${server.relayPath ? `/${server.relayPath}` : ''}`,
    `  build: registered ${server.registeredBuild}, ${reported}`,
    `  agent: version ${server.agentVersion ?? 'not reported'}, last seen ${server.lastSeen ?? 'never'}`,
    `  reported applied: ${server.reportedApplied.join(', ') || 'none'}; reported blocked: ${server.reportedBlocked.join(', ') || 'none'}`,
    `  policy: ${view.policy.leftAlone ? renderReason(view.policy.leftAlone) : 'enabled'}; on degraded ${view.policy.onDegraded.value} (${view.policy.onDegraded.scope})`,
  ];
  if (view.mitigations.length === 0) return [...lines, 'no current package: no mitigations'];
  lines.push(
    ...formatTable(
      ['FEED', 'MITIGATION', 'DECISION', 'REASON', 'LAST OUTCOME', 'AT', 'APPLIED BY', 'RECONCILE'],
      view.mitigations.map((row) => [
        row.feed,
        row.mitigation,
        row.decision,
        reasonLabel(row.reasonCode),
        row.lastOutcome?.outcome ?? row.pending ?? '-',
        row.lastOutcome?.at ?? '-',
        row.appliedBy ?? '-',
        `${row.reconcile.action} (${row.reconcile.why})`,
      ]),
    ),
  );
  // The agents' details are long (rules, endpoints, probes): one line each, under the table.
  for (const row of view.mitigations)
    if (row.lastOutcome?.detail)
      lines.push(`${row.mitigation} ${row.lastOutcome.outcome}: ${row.lastOutcome.detail}`);
  for (const row of view.withdrawn)
    lines.push(
      `withdrawn ${row.mitigation}: reconcile would ${row.reconcile.action === 'none' ? 'do nothing' : row.reconcile.action} (${row.reconcile.why})`,
    );
  return lines;
}
