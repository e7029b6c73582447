import { settingNameOf } from '../config/index.js';
import { Command } from 'commander';
import { describePollOutcome, pollNow } from '../admin/poll.js';
import { jsonLogger, silentLogger } from '../log.js';
import { createNotifier } from '../notify.js';
import { addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import { exitCodes, type CliIo } from './io.js';

export function pollCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  return addStorageOptions(new Command('poll'))
    .description(
      'poll OCS (and the organization feeds) now, as the hourly timer does: fetch, verify, store, start rollouts',
    )
    .option('--feed <name>', `only this feed (microsoft, or a name from ${settingNameOf.orgFeeds})`)
    .addHelpText(
      'after',
      `
Prints per feed: unchanged, accepted (with the rollouts it started), rejected (with the reason
code), or failed. Exit 1 when a feed was rejected, failed or is misconfigured. The same as
POST /api/poll. EM's equivalent is restarting MSExchangeMitigation on each server.

Examples:
  emfleet poll
  emfleet poll --feed contoso --json`,
    )
    .action(async (flags: StorageFlags & { feed?: string }) => {
      const context = fleetContext(flags, io);
      // A webhook that fails is said on stderr; the poll's own events are what stdout prints.
      const notify = createNotifier({
        url: context.config.notifyUrl,
        logger: jsonLogger((line) => io.stderr(line)),
      });
      const outcomes = await pollNow(
        {
          tables: context.tables,
          queues: context.queues,
          config: context.config,
          logger: silentLogger,
          notify,
        },
        flags.feed === undefined ? {} : { feed: flags.feed },
      );
      if (flags.json) io.stdout(JSON.stringify({ outcomes }));
      else for (const outcome of outcomes) io.stdout(describePollOutcome(outcome));
      setExitCode(
        outcomes.every((outcome) => outcome.kind === 'unchanged' || outcome.kind === 'accepted')
          ? exitCodes.ok
          : exitCodes.failed,
      );
    });
}
