import { settingNameOf, type AppConfig } from '../config/index.js';
import { configuredFeedNames, feedSources } from '../config/sources.js';
import { feedsOf, type Feed } from '../ocs/feeds.js';
import { EmfleetError } from '../errors.js';
import { latestPackage, type StoredPackage } from '../fleet/packages.js';
import type { FleetTables } from '../fleet/storage.js';
import { microsoftFeedName } from '../ocs/client.js';
import { verifyPackage, type VerifiedPackage, type VerifyResult } from '../package/verify.js';
import { formatBuild } from '../model/build.js';
import type { Mitigation, MitigationAction } from '../package/model.js';

/** A `--feed` (or `feed`) that no setting names. */
export class UnknownFeedError extends EmfleetError {
  override readonly name = 'UnknownFeedError';

  constructor(feed: string, known: readonly string[]) {
    super(
      'UnknownFeed',
      `no feed "${feed}" is configured (feeds: ${known.join(', ')}; organization feeds come from ${settingNameOf.orgFeeds})`,
      { context: { feed } },
    );
  }
}

/**
 * The feed a command names (default: Microsoft's), with its trust; a feed whose settings cannot be
 * used is an error that says why.
 */
export function resolveFeed(config: AppConfig, name: string = microsoftFeedName): Feed {
  const names = configuredFeedNames(config);
  if (!names.includes(name)) throw new UnknownFeedError(name, names);
  const { feeds, problems } = feedsOf(feedSources(config));
  const feed = feeds.find((candidate) => candidate.name === name);
  if (feed) return feed;
  throw new EmfleetError(
    'FeedMisconfigured',
    `feed ${name} cannot be used: ${problems.find((problem) => problem.feed === name)?.error ?? 'unknown problem'}`,
    { context: { feed: name } },
  );
}

/** A feed's current package and how it verifies today; undefined when none was accepted yet. */
export async function currentPackage(
  tables: FleetTables,
  feed: Feed,
): Promise<{ stored: StoredPackage; verified: VerifyResult } | undefined> {
  const stored = await latestPackage(tables, feed.name);
  return stored && { stored, verified: verifyPackage(stored.bytes, { trust: feed.trust }) };
}

/** No package from the feed yet: what to do instead. */
export class NoPackageError extends EmfleetError {
  override readonly name = 'NoPackageError';

  constructor(feed: string) {
    super(
      'NoPackage',
      `no package has been accepted from the ${feed} feed yet (run emfleet poll --feed ${feed}, or use --package FILE)`,
      { context: { feed } },
    );
  }
}

/** `package show --json` and `GET /api/packages/{feed}` (which adds the XML). */
export function storedPackageJson(
  feed: string,
  current: { stored: StoredPackage; verified: VerifyResult },
): {
  feed: string;
  sequence: number;
  sha256: string;
  bytes: number;
  signingTime: string | null;
  signedSequence: number | null;
  acceptedAt: string;
  mitigationIds: readonly string[];
  verification: Record<string, unknown>;
} {
  const { stored, verified } = current;
  return {
    feed,
    sequence: stored.sequence,
    sha256: stored.sha256,
    bytes: stored.bytes.byteLength,
    signingTime: stored.signingTime?.toISOString() ?? null,
    signedSequence: stored.signedSequence ?? null,
    acceptedAt: stored.acceptedAt.toISOString(),
    mitigationIds: stored.mitigationIds,
    verification: verified.ok
      ? verifiedJson(verified)
      : { ok: false, sha256: verified.sha256, reason: verified.reason, detail: verified.detail },
  };
}

/** `package verify --json`'s summary of a verified package. */
export function verifiedJson(result: VerifiedPackage): Record<string, unknown> {
  return {
    ok: true,
    sha256: result.sha256,
    version: result.package.version,
    signingTime: result.package.signingTime?.toISOString() ?? null,
    timestamp:
      result.timestamp.status === 'verified'
        ? { ...result.timestamp, time: result.timestamp.time.toISOString() }
        : { status: result.timestamp.status },
    sequence: result.package.sequence ?? null,
    mitigations: result.package.mitigations.map(mitigationJson),
    unknown: result.package.unknown,
    signer: result.signer,
    chain: result.chain,
  };
}

/** Builds as text: what admins read and what other tools parse. */
export function mitigationJson(mitigation: Mitigation): Record<string, unknown> {
  return {
    id: mitigation.id,
    description: mitigation.description,
    applicability: mitigation.applicability.map((range) => ({
      min: formatBuild(range.min),
      max: formatBuild(range.max),
    })),
    actions: mitigation.actions.map((action: MitigationAction) => ({ ...action })),
  };
}
