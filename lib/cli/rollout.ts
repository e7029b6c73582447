import { settingNameOf } from '../config/index.js';
import { Command } from 'commander';
import { readFeedState } from '../fleet/feeds.js';
import { microsoftFeedName } from '../ocs/client.js';
import { rolloutActionJson, rolloutDetailJson, rolloutJson } from '../fleet/json.js';
import { listRollouts, readRollout } from '../fleet/rollouts.js';
import { silentLogger } from '../log.js';
import { renderReason } from '../model/reasons.js';
import { changeRollout } from '../rollout/admin.js';
import { rolloutActions, type RolloutAction } from '../rollout/state.js';
import { heldBy, holdEnds } from '../rollout/holds.js';
import { problemTable, rolloutProblems } from '../rollout/problems.js';
import { readPolicy } from '../fleet/policy.js';
import { describeRowProblem } from '../fleet/rows.js';
import { listServers } from '../fleet/servers.js';
import { currentPackage, NoPackageError, resolveFeed } from '../admin/feeds.js';
import { latestPackage } from '../fleet/packages.js';
import type { EocsPackage } from '../package/model.js';
import { verifyPackage } from '../package/verify.js';
import { defaultXmlLimits } from '../package/xml.js';
import { planRollout, type RolloutPlan } from '../rollout/plan.js';
import { formatTable } from '../text.js';
import {
  addActorOption,
  addStorageOptions,
  fleetContext,
  type FleetContext,
  type StorageFlags,
} from './fleet.js';
import { exitCodes, readInputFile, reportReason, UsageError, type CliIo } from './io.js';
import { addTrustOptions, trustPolicyFromFlags } from './package.js';
import { relayAddress } from '../relay/route.js';

export function rolloutCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  const command = new Command('rollout').description('rollouts of mitigation packages in waves');

  addTrustOptions(
    addStorageOptions(
      command
        .command('plan')
        .description(
          'show, without sending anything, which server gets what in which wave, and who is left out and why',
        ),
    ),
  )
    .option('--package <file>', 'plan this signed package (verified first)')
    .option('--latest', 'plan the current (latest accepted) package of the feed')
    .option(
      '--feed <name>',
      `with --latest: the feed (default microsoft; or a name from ${settingNameOf.orgFeeds})`,
    )
    .option('--emergency', `use the emergency wave profile (${settingNameOf.emergencyWaves})`)
    .addHelpText(
      'after',
      '\nExample:\n  emfleet rollout plan --package mitigations.xml --trust-anchor root.pem\n  emfleet rollout plan --latest --feed contoso --emergency --json',
    )
    .action(
      async (
        flags: StorageFlags & {
          package?: string;
          latest?: boolean;
          feed?: string;
          emergency?: boolean;
          trustAnchor: string[];
        },
      ) => {
        if (Boolean(flags.package) === Boolean(flags.latest))
          throw new UsageError('give exactly one of --package FILE or --latest');
        if (flags.feed !== undefined && !flags.latest) throw new UsageError('--feed goes with --latest');
        const context = fleetContext(flags, io);
        const eocs = flags.package
          ? await verifiedFromFile(flags, io)
          : await latestFromTables(context, flags.feed, io);
        if (!eocs) {
          setExitCode(exitCodes.failed);
          return;
        }
        const [{ rows, problems }, policy] = await Promise.all([
          listServers(context.tables, context.org),
          readPolicy(context.tables, context.org),
        ]);
        for (const problem of [...problems, ...policy.problems])
          io.stderr(`emfleet: warning: InvalidRow: skipped ${describeRowProblem(problem)}`);
        const plan = planRollout({
          operation: 'apply',
          mitigationIds: eocs.mitigations.map((mitigation) => mitigation.id),
          mitigations: eocs.mitigations,
          servers: rows.map((row) => ({
            name: row.rowKey,
            build: row.build,
            reportedApplied: row.reportedApplied,
            ring: row.ring,
            site: row.site,
            hybridConnection: relayAddress(row),
          })),
          orgPolicy: policy.org,
          serverPolicy: policy.servers,
          waves: flags.emergency ? context.config.emergencyWaves : context.config.waves,
        });
        const held = await heldPackages(context);
        if (flags.json) io.stdout(JSON.stringify({ ...plan, held }));
        else for (const line of [...planLines(plan), ...heldLines(held)]) io.stdout(line);
      },
    );

  addStorageOptions(command.command('list').description('rollouts, newest first'))
    .addHelpText('after', '\nExample:\n  emfleet rollout list --json')
    .action(async (flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const rollouts = await listRollouts(context.tables);
      if (flags.json) {
        io.stdout(JSON.stringify(rollouts.map(rolloutJson)));
        return;
      }
      if (rollouts.length === 0) return void io.stdout('no rollouts');
      for (const line of formatTable(
        ['ROLLOUT', 'OPERATION', 'STATE', 'WAVE', 'CREATED', 'REASON'],
        rollouts.map((row) => [
          row.partitionKey,
          row.operation,
          row.state,
          `${row.currentWave + 1}/${row.waveCount}`,
          row.createdAt.toISOString(),
          row.reasonCode ? renderReason(row) : '-',
        ]),
      ))
        io.stdout(line);
    });

  addStorageOptions(
    command
      .command('show')
      .description("one rollout: state, reason, and each wave's progress")
      .argument('<id>', 'rollout id'),
  )
    .addHelpText('after', '\nExample:\n  emfleet rollout show microsoft-000042-apply')
    .action(async (id: string, flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const { state, waves } = await readRollout(context.tables, id);
      const [problems, current] = await Promise.all([
        rolloutProblems(context.tables, id, waves),
        latestPackage(context.tables, state.feed),
      ]);
      const holds = heldBy(state, current?.content);
      if (flags.json) {
        io.stdout(JSON.stringify(rolloutDetailJson(state, waves, problems, holds)));
        return;
      }
      io.stdout(
        `${id}: ${state.operation} of ${state.feed} package ${state.packageSequence}, ${state.state}${state.reasonCode ? ` (${renderReason(state)})` : ''}, profile ${state.profile}`,
      );
      if (holds.length > 0)
        io.stdout(
          `holds ${holds.join(', ')}: ${holdEnds(state.state)}${state.state === 'Halted' ? ` (emfleet rollout retry ${id})` : ''}`,
        );
      for (const line of formatTable(
        ['WAVE', 'SERVERS', 'SUCCEEDED', 'FAILED', 'SKIPPED', 'PENDING', 'BUDGET'],
        waves.map((wave, index) => [
          `${index + 1} ${wave.name}`,
          String(wave.servers),
          String(wave.succeeded),
          String(wave.failed),
          String(wave.skipped),
          String(wave.servers - wave.succeeded - wave.failed - wave.skipped),
          String(wave.maxErrors),
        ]),
      ))
        io.stdout(`  ${line}`);
      if (problems.length === 0) return;
      io.stdout('failures (what the probes found, or why it failed):');
      for (const line of problemTable(problems)) io.stdout(`  ${line}`);
    });

  for (const action of rolloutActions) {
    const descriptions: Record<RolloutAction, string> = {
      pause: 'stop sending to more servers; queued work waits until resume',
      resume: 'carry on a paused rollout where it stopped',
      abort:
        'end the rollout (a halted one too): no further server is touched; queued work ends as Skipped; what is applied stays, and so does the hold on its mitigations',
      expedite: 'switch to the emergency profile: skip the rest of the current bake',
      retry:
        'run a halted wave again: its failed and unreached servers, with new operation ids and a fresh error count, then the remaining waves and gates; ends the hold',
    };
    addActorOption(
      addStorageOptions(
        command.command(action).description(descriptions[action]).argument('<id>', 'rollout id'),
      ),
    )
      .addHelpText('after', `\nExample:\n  emfleet rollout ${action} microsoft-000042-apply`)
      .action(async (id: string, flags: StorageFlags) => {
        const context = fleetContext(flags, io);
        const result = await changeRollout(
          { tables: context.tables, queues: context.queues, logger: silentLogger },
          id,
          action,
          context.actor,
          { emergencyWaves: context.config.emergencyWaves },
        );
        if (flags.json) io.stdout(JSON.stringify(rolloutActionJson(id, result)));
        if (result.refusal) {
          reportReason(io, result.refusal);
          setExitCode(exitCodes.failed);
        } else if (!flags.json)
          io.stdout(
            `${id}: ${result.state?.state}${result.state?.reasonCode ? ` (${renderReason(result.state)})` : ''}`,
          );
      });
  }

  return command;

  async function verifiedFromFile(
    flags: { package?: string; trustAnchor: string[] },
    cliIo: CliIo,
  ): Promise<EocsPackage | undefined> {
    const trust = await trustPolicyFromFlags(flags, cliIo);
    const result = verifyPackage(await readInputFile(flags.package!, defaultXmlLimits.maxBytes), { trust });
    if (result.ok) return result.package;
    reportReason(cliIo, { reasonCode: result.reason, reasonDetail: result.detail });
    return undefined;
  }
}

/** A package a feed holds for an admin instead of rolling it out (lib/rollout/poll.ts). */
interface HeldPackage {
  readonly feed: string;
  readonly sha256: string;
  readonly heldAt: string | null;
  readonly withdrawn: readonly string[];
  readonly approvedBy: string | null;
}

/** Every configured feed's held package: the plan is not the whole story while one waits for an admin. */
async function heldPackages(context: FleetContext): Promise<HeldPackage[]> {
  const names = [microsoftFeedName, ...context.config.orgFeeds.map((feed) => feed.name)];
  const states = await Promise.all(
    names.map(async (feed) => ({ feed, state: await readFeedState(context.tables, feed) })),
  );
  return states.flatMap(({ feed, state }) =>
    state?.heldSha256
      ? [
          {
            feed,
            sha256: state.heldSha256,
            heldAt: state.heldAt?.toISOString() ?? null,
            withdrawn: state.heldWithdrawn,
            approvedBy: state.approvedSha256 === state.heldSha256 ? state.approvedBy : null,
          },
        ]
      : [],
  );
}

function heldLines(held: readonly HeldPackage[]): string[] {
  return held.flatMap((item) => [
    `held for an admin: feed ${item.feed} package ${item.sha256} (since ${item.heldAt ?? 'unknown'}): no trusted signing time, and it would withdraw ${item.withdrawn.join(', ')}`,
    item.approvedBy
      ? `  approved by ${item.approvedBy}; it rolls out when the feed next serves it`
      : `  not rolled out; to approve: emfleet feed accept ${item.sha256} --feed ${item.feed}`,
  ]);
}

function planLines(plan: RolloutPlan): string[] {
  const lines: string[] = [];
  for (const wave of plan.waves) {
    lines.push(
      `wave ${wave.index + 1} ${wave.name}: ${wave.servers.length} servers, ${wave.maxConcurrency} at a time, halt after ${wave.maxErrors} failures, bake ${wave.bakeInMs / 60_000} min`,
    );
    if (wave.servers.length > 0) {
      for (const line of formatTable(
        ['SERVER', 'APPLY', 'REMOVE', 'ON-DEGRADED'],
        wave.servers.map((server) => [
          server.server,
          server.apply.join(',') || '-',
          server.remove.join(',') || '-',
          server.onDegraded,
        ]),
      ))
        lines.push(`  ${line}`);
    }
  }
  lines.push(`left out: ${plan.leftOut.length} servers`);
  for (const server of plan.leftOut) lines.push(`  ${server.server}: ${server.reason}`);
  return lines;
}

/** A feed's current package, verified again under today's trust settings (as reconcile does). */
export async function latestFromTables(
  context: FleetContext,
  feedName: string | undefined,
  io: CliIo,
): Promise<EocsPackage | undefined> {
  const feed = resolveFeed(context.config, feedName);
  const current = await currentPackage(context.tables, feed);
  if (!current) throw new NoPackageError(feed.name);
  if (current.verified.ok) return current.verified.package;
  reportReason(io, {
    reasonCode: current.verified.reason,
    reasonDetail: `the stored package ${current.stored.sequence} of feed ${feed.name} (sha256 ${current.stored.sha256}) no longer verifies: ${current.verified.detail}`,
  });
  return undefined;
}
