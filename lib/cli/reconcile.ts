import { Command } from 'commander';
import { feedSources, relayTargetOf } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import { agentClientFor } from '../relay/settings.js';
import { runReconcileCycle } from '../rollout/reconcile-cycle.js';
import { silentLogger } from '../log.js';
import { createNotifier } from '../notify.js';
import { holdEnds } from '../rollout/holds.js';
import type { ReconcileReport } from '../rollout/reconcile.js';
import { addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import type { CliIo } from './io.js';

/** `emfleet reconcile [--dry-run] [--json]`: the hourly fix-up, now. */
export function reconcileCommand(io: CliIo): Command {
  return addStorageOptions(new Command('reconcile'))
    .description(
      'run the hourly fix-up now: ask every agent what is in place (when the relay is configured), then reapply what is missing and remove what is fixed, blocked or withdrawn, in a fix-up rollout; never reapply what a halted or aborted rollout holds',
    )
    .option(
      '--dry-run',
      'print, per server, what would be reapplied or removed and why, and what is held by which rollout; write, send and notify nothing',
    )
    .addHelpText('after', '\nExamples:\n  emfleet reconcile --dry-run\n  emfleet reconcile --json')
    .action(async (flags: StorageFlags & { dryRun?: boolean }) => {
      const context = fleetContext(flags, io);
      const dryRun = Boolean(flags.dryRun);
      // A real run notifies as the timer's does; a dry run tells no one.
      const notify = dryRun
        ? async () => {}
        : createNotifier({
            ...(context.config.notifyUrl ? { url: context.config.notifyUrl } : {}),
            logger: silentLogger,
          });
      const reports = await runReconcileCycle(
        {
          tables: context.tables,
          queues: context.queues,
          org: context.config.org,
          waves: context.config.waves,
          logger: silentLogger,
          notify,
          agents: async () => agentClientFor(relayTargetOf(context.config)),
        },
        feedsOf(feedSources(context.config)),
        { dryRun },
      );
      if (flags.json) return void io.stdout(JSON.stringify({ dryRun, feeds: reports }));
      if (reports.length === 0)
        io.stdout('no feed has a current package that verifies: nothing to reconcile');
      for (const report of reports) for (const line of reportLines(report)) io.stdout(line);
    });
}

function reportLines(report: ReconcileReport): string[] {
  const lines: string[] = [];
  const would = report.dryRun ? 'would ' : '';
  if (report.deferred)
    lines.push(`feed ${report.feed}: left for later, rollout ${report.deferred} is under way`);
  else if (report.changes.length === 0)
    lines.push(
      `feed ${report.feed}: no drift to fix${report.held.length > 0 ? ` (${report.held.length} servers held)` : ''}`,
    );
  else
    lines.push(
      `feed ${report.feed}: ${report.dryRun ? 'would start a fix-up rollout' : `fix-up rollout ${report.rolloutId ?? '(not started)'}`} for ${report.changes.length} servers`,
    );
  for (const hold of report.holds)
    lines.push(
      `  hold: ${hold.mitigation} held by ${hold.rolloutId} (${hold.state}, package ${hold.packageSequence}): ${holdEnds(hold.state)}`,
    );
  for (const change of report.changes) {
    for (const { mitigation, reason } of change.reapply)
      lines.push(`  ${change.server}: ${would}reapply ${mitigation} (${reason})`);
    for (const { mitigation, reason } of change.remove)
      lines.push(`  ${change.server}: ${would}remove ${mitigation} (${reason})`);
  }
  for (const server of report.held)
    for (const { mitigation, rolloutId } of server.holds)
      lines.push(`  ${server.server}: ${mitigation} held by ${rolloutId}`);
  for (const server of report.leftAlone)
    lines.push(
      `  ${server.server}: left alone (${server.reason}), though ${server.ids.join(', ')} ${server.ids.length === 1 ? 'is' : 'are'} applied there and withdrawn`,
    );
  return lines;
}
