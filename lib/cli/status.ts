import { Command } from 'commander';
import { fleetStatus } from '../fleet/status.js';
import { silentLogger } from '../log.js';
import { holdEnds } from '../rollout/holds.js';
import { addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import type { CliIo } from './io.js';

export function statusCommand(io: CliIo): Command {
  return addStorageOptions(new Command('status'))
    .description('the fleet at a glance: each feed (last poll, current package, last rejection), servers by ring, rollouts by state')
    .addHelpText('after', '\nExample:\n  emfleet status --json')
    .action(async (flags: StorageFlags) => {
      const context = fleetContext(flags, io);
      const status = await fleetStatus({ tables: context.tables, settings: context.settings, logger: silentLogger });
      if (flags.json) return void io.stdout(JSON.stringify(status));
      io.stdout(`org ${status.org}`);
      for (const feed of status.feeds) {
        const current = feed.package ? `package ${feed.package.sequence} (${feed.package.sha256.slice(0, 12)}…, ${feed.package.mitigationIds.join(', ')})` : 'no package accepted yet';
        io.stdout(`feed ${feed.name}: ${current}`);
        io.stdout(`  last poll ${feed.lastPollAt ?? 'never'}, last success ${feed.lastSuccessAt ?? 'never'}${feed.lastError ? `, last error ${feed.lastErrorAt}: ${feed.lastError}` : ''}`);
        if (feed.frozen) io.stdout(`  FROZEN since ${feed.frozen.since ?? 'unknown'}: ${feed.frozen.reason}: ${feed.frozen.detail} (nothing of this feed is applied or removed until a verified package of it arrives)`);
        if (feed.lastRejected) io.stdout(`  last rejected ${feed.lastRejected.at}: ${feed.lastRejected.reason} (sha256 ${feed.lastRejected.sha256.slice(0, 12)}…)`);
      }
      const counts = (record: Record<string, number>): string => Object.entries(record).filter(([, count]) => count > 0).map(([name, count]) => `${name} ${count}`).join(', ') || 'none';
      io.stdout(`servers: ${status.servers.total} (${counts(status.servers.byRing)})${status.servers.invalidRows ? `, ${status.servers.invalidRows} invalid rows skipped` : ''}`);
      if (status.servers.buildMismatches > 0) {
        const named = status.servers.buildMismatchServers.map((entry) => `${entry.server} reports ${entry.reported}, registered ${entry.registered}`).join('; ');
        io.stdout(`build mismatch: ${status.servers.buildMismatches} server(s): ${named}${status.servers.buildMismatches > status.servers.buildMismatchServers.length ? '; …' : ''}`);
      }
      io.stdout(`rollouts: ${status.rollouts.total} (${counts(status.rollouts.byState)})`);
      for (const hold of status.holds) io.stdout(`  hold: ${hold.mitigation} of feed ${hold.feed} held by ${hold.rolloutId} (${hold.state}): ${holdEnds(hold.state)}`);
    });
}
