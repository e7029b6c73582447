import { Command } from 'commander';
import { readStatus, type FleetStatus } from '../admin/status.js';
import { silentLogger } from '../log.js';
import { renderReason } from '../model/reasons.js';
import { holdEnds } from '../rollout/holds.js';
import { addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import type { CliIo } from './io.js';

export function statusCommand(io: CliIo): Command {
  return addStorageOptions(new Command('status'))
    .description(
      'the whole story: each feed (last poll and result, current package and signer, last rejection, frozen or held), rollouts in flight with their waves, servers by ring and outcome, build mismatches, silent agents',
    )
    .addHelpText(
      'after',
      '\nThe same as GET /api/status.\n\nExamples:\n  emfleet status\n  emfleet status --org contoso --json',
    )
    .action(async (flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const status = await readStatus({
        tables: context.tables,
        config: context.config,
        logger: silentLogger,
      });
      if (flags.json) return void io.stdout(JSON.stringify(status));
      for (const line of statusLines(status)) io.stdout(line);
    });
}

const counts = (record: Record<string, number>): string =>
  Object.entries(record)
    .filter(([, count]) => count > 0)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ') || 'none';

/** The text form, top to bottom in the order an admin asks: feeds, what is moving, the fleet, what needs a look. */
export function statusLines(status: FleetStatus): string[] {
  const lines = [`org ${status.org} (at ${status.generatedAt})`];
  for (const feed of status.feeds) {
    lines.push(`feed ${feed.name}: ${feed.url}`);
    if (feed.problem) lines.push(`  NOT POLLED: ${feed.problem}`);
    lines.push(
      `  last poll: ${feed.lastPollAt ? `${feed.lastPollAt}, ${feed.lastPollResult}` : 'never'}${feed.lastError && feed.lastPollResult === 'Failed' ? ` (${feed.lastError})` : ''}`,
    );
    const pkg = feed.package;
    if (pkg) {
      lines.push(`  current package: sequence ${pkg.sequence}, sha256 ${pkg.sha256}`);
      lines.push(
        `    signed ${pkg.signingTime ?? '(no signing time)'} by ${pkg.signer ? `${pkg.signer.subject} (issuer ${pkg.signer.issuer})` : `? (${pkg.verifyProblem ?? 'not verified'})`}`,
      );
      lines.push(`    mitigations: ${pkg.mitigationIds.join(', ') || 'none'}`);
    } else {
      lines.push('  current package: none accepted yet');
    }
    if (feed.lastRejected)
      lines.push(
        `  last rejected: ${feed.lastRejected.at ?? '?'} ${renderReason(feed.lastRejected)} (sha256 ${feed.lastRejected.sha256})`,
      );
    if (feed.frozen)
      lines.push(
        `  FROZEN since ${feed.frozen.since ?? '?'}: ${renderReason(feed.frozen)} (nothing of this feed is applied or removed until a verified package of it arrives)`,
      );
    for (const hold of feed.held)
      lines.push(
        `  hold: ${hold.mitigation} held by ${hold.rolloutId} (${hold.state}, package ${hold.packageSequence}): ${holdEnds(hold.state)}`,
      );
  }
  lines.push(`rollouts: ${status.rollouts.total} (${counts(status.rollouts.byState)})`);
  for (const rollout of status.rolloutsInFlight) {
    lines.push(
      `  ${rollout.id}: ${rollout.operation} of ${rollout.feed} package ${rollout.packageSequence}, ${rollout.state}, wave ${rollout.currentWave + 1}/${rollout.waveCount}${rollout.reasonCode ? ` (${renderReason(rollout)})` : ''}`,
    );
    for (const wave of rollout.waves) {
      lines.push(
        `    ${wave.index + 1} ${wave.name}: ${wave.succeeded} succeeded, ${wave.failed} failed, ${wave.skipped} skipped, ${wave.pending} pending of ${wave.servers} (${wave.phase}${wave.bakeEndsAt ? `, bake ends ${wave.bakeEndsAt}` : ''})`,
      );
    }
  }
  const { servers } = status;
  lines.push(
    `servers: ${servers.total} by ring (${counts(servers.byRing)})${servers.invalidRows ? `, ${servers.invalidRows} invalid rows skipped` : ''}`,
  );
  lines.push(`  by outcome (server × mitigation): ${counts(servers.byOutcome)}`);
  lines.push(`build mismatches (registered ≠ reported): ${servers.buildMismatchCount}`);
  for (const mismatch of servers.buildMismatches)
    lines.push(`  ${mismatch.server}: registered ${mismatch.registered}, reported ${mismatch.reported}`);
  lines.push(
    `agents not seen for more than two reconciles (${hoursOrMinutes(servers.silentAfterMs)}): ${servers.silentAgentCount}`,
  );
  for (const agent of servers.silentAgents)
    lines.push(`  ${agent.server}: last seen ${agent.lastSeen ?? 'never'}`);
  return lines;
}

const hoursOrMinutes = (ms: number): string =>
  ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 60_000)} min`;
