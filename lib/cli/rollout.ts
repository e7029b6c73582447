import { Command } from 'commander';
import { latestPackage } from '../fleet/packages.js';
import { readPolicy } from '../fleet/policy.js';
import { describeRowProblem } from '../fleet/rows.js';
import { listServers } from '../fleet/servers.js';
import { microsoftFeedName } from '../ocs/client.js';
import type { EocsPackage } from '../package/model.js';
import { verifyPackage } from '../package/verify.js';
import { defaultXmlLimits } from '../package/xml.js';
import { planRollout, type RolloutPlan } from '../rollout/plan.js';
import { addStorageOptions, fleetContext, formatTable, type FleetContext, type StorageFlags } from './fleet.js';
import { exitCodes, readInputFile, UsageError, type CliIo } from './io.js';
import { addTrustOptions, trustPolicyFromFlags } from './package.js';

export function rolloutCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  const command = new Command('rollout').description('rollouts of mitigation packages in waves');

  addTrustOptions(addStorageOptions(command.command('plan').description('show, without sending anything, which server gets what in which wave, and who is left out and why')))
    .option('--package <file>', 'plan this signed package (verified first)')
    .option('--latest', 'plan the latest accepted package of the feed')
    .option('--emergency', 'use the emergency wave profile (EMFLEET_EMERGENCY_WAVES)')
    .addHelpText('after', '\nExample:\n  emfleet rollout plan --package mitigations.xml --trust-anchor root.pem\n  emfleet rollout plan --latest --emergency --json')
    .action(async (flags: StorageFlags & { package?: string; latest?: boolean; emergency?: boolean; trustAnchor: string[] }) => {
      if (Boolean(flags.package) === Boolean(flags.latest)) throw new UsageError('give exactly one of --package FILE or --latest');
      const context = fleetContext(flags, io);
      const eocs = flags.package ? await verifiedFromFile(flags, io) : await latestFromTables(context);
      if (!eocs) {
        setExitCode(exitCodes.failed);
        return;
      }
      const [{ rows, problems }, policy] = await Promise.all([listServers(context.tables, context.org), readPolicy(context.tables, context.org)]);
      for (const problem of [...problems, ...policy.problems]) io.stderr(`warning: skipped invalid row: ${describeRowProblem(problem)}`);
      const plan = planRollout({
        operation: 'apply',
        mitigationIds: eocs.mitigations.map((mitigation) => mitigation.id),
        mitigations: eocs.mitigations,
        servers: rows.map((row) => ({ name: row.rowKey, build: row.build, reportedApplied: row.reportedApplied, ring: row.ring, site: row.site, hybridConnection: row.relayHybridConnection || row.rowKey })),
        orgPolicy: policy.org,
        serverPolicy: policy.servers,
        waves: flags.emergency ? context.settings.EMFLEET_EMERGENCY_WAVES : context.settings.EMFLEET_WAVES,
      });
      if (flags.json) io.stdout(JSON.stringify(plan));
      else for (const line of planLines(plan)) io.stdout(line);
    });

  return command;

  async function verifiedFromFile(flags: { package?: string; trustAnchor: string[] }, cliIo: CliIo): Promise<EocsPackage | undefined> {
    const trust = await trustPolicyFromFlags(flags, cliIo);
    const result = verifyPackage(await readInputFile(flags.package!, defaultXmlLimits.maxBytes), { trust });
    if (result.ok) return result.package;
    cliIo.stderr(`rejected: ${result.reason}: ${result.detail}`);
    return undefined;
  }

  async function latestFromTables(context: FleetContext): Promise<EocsPackage | undefined> {
    const stored = await latestPackage(context.tables, microsoftFeedName);
    if (!stored) throw new UsageError(`no package has been accepted from the ${microsoftFeedName} feed yet; use --package FILE`);
    const trust = await trustPolicyFromFlags({ trustAnchor: [] }, io);
    const result = verifyPackage(stored.bytes, { trust });
    if (result.ok) return result.package;
    io.stderr(`rejected: the stored package ${stored.sha256} no longer verifies: ${result.reason}: ${result.detail}`);
    return undefined;
  }
}

function planLines(plan: RolloutPlan): string[] {
  const lines: string[] = [];
  for (const wave of plan.waves) {
    lines.push(`wave ${wave.index + 1} ${wave.name}: ${wave.servers.length} servers, ${wave.maxConcurrency} at a time, halt after ${wave.maxErrors} failures, bake ${wave.bakeInMs / 60_000} min`);
    if (wave.servers.length > 0) {
      for (const line of formatTable(['SERVER', 'APPLY', 'REMOVE'], wave.servers.map((server) => [server.server, server.apply.join(',') || '-', server.remove.join(',') || '-']))) lines.push(`  ${line}`);
    }
  }
  lines.push(`left out: ${plan.leftOut.length} servers`);
  for (const server of plan.leftOut) lines.push(`  ${server.server}: ${server.reason}`);
  return lines;
}
