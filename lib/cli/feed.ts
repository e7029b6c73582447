import { Command } from 'commander';
import { feedSources } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import { silentLogger } from '../log.js';
import { microsoftFeedName } from '../ocs/client.js';
import { approveHeldPackage } from '../rollout/poll.js';
import { addActorOption, addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import { exitCodes, UsageError, type CliIo } from './io.js';

export function feedCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  const command = new Command('feed').description(
    "the feeds emfleet polls (Microsoft's and the organization's own)",
  );

  addActorOption(
    addStorageOptions(
      command
        .command('accept')
        .description(
          'approve a package held for an admin (it carries no trusted signing time and would withdraw mitigations), then poll the feed so it rolls out',
        )
        .argument(
          '<sha256>',
          "the held package's SHA-256, as `emfleet rollout plan` and the PackageHeld notification show it",
        ),
    ),
  )
    .option('--feed <name>', 'the feed holding it', microsoftFeedName)
    .addHelpText(
      'after',
      '\nThe approval is audited with --actor and the identity the CLI authenticated with.\n\nExample:\n  emfleet feed accept 815ff84cf91f3e9802de637a079e3eba3e64f6fd13ae4b31005a901ae4a1ffa9 --feed microsoft --actor alice',
    )
    .action(async (sha256: string, flags: StorageFlags & { feed: string }) => {
      if (!/^[0-9a-f]{64}$/i.test(sha256)) throw new UsageError(`sha256 "${sha256}" is not 64 hex digits`);
      const context = fleetContext(flags, io);
      const { feeds, problems } = feedsOf(feedSources(context.config));
      const feed = feeds.find((candidate) => candidate.name === flags.feed);
      if (!feed) {
        const problem = problems.find((candidate) => candidate.feed === flags.feed);
        throw new UsageError(
          problem
            ? `feed ${flags.feed} cannot be polled: ${problem.error}`
            : `no feed named ${flags.feed} in the settings (${feeds.map((candidate) => candidate.name).join(', ')})`,
        );
      }
      const outcome = await approveHeldPackage(
        {
          tables: context.tables,
          queues: context.queues,
          org: context.org,
          waves: context.config.waves,
          logger: silentLogger,
        },
        feed,
        sha256,
        context.actor,
      );
      if (flags.json) io.stdout(JSON.stringify({ feed: feed.name, sha256: sha256.toLowerCase(), outcome }));
      else if (outcome.kind === 'accepted')
        io.stdout(
          `${feed.name}: approved and accepted as package ${outcome.sequence}; withdrawn ${outcome.diff.withdrawn.join(', ') || 'nothing'}; rollouts ${outcome.rollouts.join(', ') || 'none'}`,
        );
      else
        io.stdout(
          `${feed.name}: approved; the feed's poll came to ${outcome.kind}${'reason' in outcome ? ` (${outcome.reason}: ${outcome.detail})` : 'error' in outcome ? ` (${outcome.error})` : ''}; the package rolls out when the feed serves it`,
        );
      if (outcome.kind !== 'accepted') setExitCode(exitCodes.failed);
    });

  return command;
}
