import { writeAudit } from '../fleet/audit.js';
import { readFeedState, updateFeedState } from '../fleet/feeds.js';
import { latestPackage, storePackage } from '../fleet/packages.js';
import type { QueueSender } from '../fleet/queues.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import { fetchFeed, type FetchFeedOptions, type FetchFeedResult } from '../ocs/client.js';
import type { TrustPolicy } from '../package/trust.js';
import { verifyPackage } from '../package/verify.js';
import { diffPackages, isEmptyDiff, type PackageDiff } from './diff.js';
import { contentHashes } from './holds.js';
import { planRollout } from './plan.js';
import { fleetSnapshot, startPlannedRollout } from './start.js';
import type { WaveProfile } from './waves.js';

export interface Feed {
  readonly name: string;
  readonly url: string;
  readonly trust: TrustPolicy;
}

export interface PollDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly org: string;
  readonly waves: WaveProfile;
  readonly logger: Logger;
  readonly notify?: Notify;
  readonly fetch?: (options: FetchFeedOptions) => Promise<FetchFeedResult>;
  readonly now?: () => Date;
}

export type PollOutcome =
  | { readonly kind: 'error'; readonly error: string }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'rejected'; readonly reason: string; readonly detail: string; readonly sha256: string }
  | { readonly kind: 'accepted'; readonly sequence: number; readonly sha256: string; readonly diff: PackageDiff; readonly rollouts: readonly string[] };

const system = 'emfleet';

/**
 * One poll of one feed (DESIGN §4, §7): fetch (conditional) → verify → freshness → store the
 * exact signed bytes → diff against the last accepted package → a rollout for what was added or
 * changed, another for what was withdrawn. A failure or a rejection changes nothing but the feed's
 * record: the last good package stays in force.
 */
export async function pollFeed(deps: PollDeps, feed: Feed): Promise<PollOutcome> {
  const now = deps.now ?? (() => new Date());
  const where = { feed: feed.name, url: feed.url };
  const state = await readFeedState(deps.tables, feed.name);
  let fetched: FetchFeedResult;
  try {
    fetched = await (deps.fetch ?? fetchFeed)({
      url: feed.url,
      ...(state?.etag ? { etag: state.etag } : {}),
      ...(state?.lastModified ? { lastModified: state.lastModified } : {}),
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    deps.logger.error('PollFailed', { ...where, error: message });
    await updateFeedState(deps.tables, feed.name, () => ({ lastPollAt: now(), lastErrorAt: now(), lastError: message }));
    return { kind: 'error', error: message };
  }
  const validators = { etag: fetched.etag ?? '', lastModified: fetched.lastModified ?? '' };
  if (fetched.kind === 'unchanged') {
    await updateFeedState(deps.tables, feed.name, () => ({ ...validators, lastPollAt: now(), lastSuccessAt: now() }));
    deps.logger.info('PollUnchanged', where);
    return { kind: 'unchanged' };
  }

  const previous = await latestPackage(deps.tables, feed.name);
  const previousModel = previous ? verifyPackage(previous.bytes, { trust: feed.trust }) : undefined;
  const lastAccepted = previousModel?.ok
    ? { ...(previousModel.package.signingTime ? { signingTime: previousModel.package.signingTime } : {}), ...(previousModel.package.sequence === undefined ? {} : { sequence: previousModel.package.sequence }) }
    : undefined;
  const verified = verifyPackage(fetched.bytes, { trust: feed.trust, now: now(), ...(lastAccepted ? { lastAccepted } : {}) });
  if (!verified.ok) {
    deps.logger.warn('PackageRejected', { ...where, reason: verified.reason, detail: verified.detail, sha256: verified.sha256 });
    await updateFeedState(deps.tables, feed.name, () => ({ ...validators, lastPollAt: now(), lastSuccessAt: now(), lastRejectedAt: now(), lastRejectedSha256: verified.sha256, lastRejectedReason: `${verified.reason}: ${verified.detail}` }));
    await writeAudit(deps.tables, [{ actor: system, action: 'package.rejected', target: `feed:${feed.name}`, source: 'ocs', before: null, after: { sha256: verified.sha256, reason: verified.reason, detail: verified.detail } }], now());
    await deps.notify?.({ kind: 'PackageRejected', feed: feed.name, sha256: verified.sha256, reason: verified.reason, detail: verified.detail });
    return { kind: 'rejected', reason: verified.reason, detail: verified.detail, sha256: verified.sha256 };
  }

  const stored = await storePackage(deps.tables, {
    feed: feed.name,
    bytes: fetched.bytes,
    mitigationIds: verified.package.mitigations.map((mitigation) => mitigation.id),
    content: contentHashes(verified.package.mitigations),
    ...(verified.package.signingTime ? { signingTime: verified.package.signingTime } : {}),
    ...(verified.package.sequence === undefined ? {} : { signedSequence: verified.package.sequence }),
  }, { now: now() });
  await updateFeedState(deps.tables, feed.name, () => ({ ...validators, lastPollAt: now(), lastSuccessAt: now() }));
  if (!stored.created) {
    deps.logger.info('PollUnchanged', { ...where, sha256: verified.sha256 });
    return { kind: 'unchanged' };
  }
  const diff = diffPackages(previousModel?.ok ? previousModel.package : undefined, verified.package);
  await writeAudit(deps.tables, [{ actor: system, action: 'package.accepted', target: `feed:${feed.name}`, source: 'ocs', before: previous ? { sequence: previous.sequence, sha256: previous.sha256 } : null, after: { sequence: stored.sequence, sha256: verified.sha256, ...diff } }], now());
  deps.logger.info('PackageAccepted', { ...where, sequence: stored.sequence, sha256: verified.sha256, added: diff.added, changed: diff.changed, withdrawn: diff.withdrawn });
  await deps.notify?.({ kind: 'PackageAccepted', feed: feed.name, sequence: stored.sequence, sha256: verified.sha256, added: diff.added, changed: diff.changed, withdrawn: diff.withdrawn });

  const rollouts: string[] = [];
  if (!isEmptyDiff(diff)) {
    const snapshot = await fleetSnapshot(deps.tables, deps.org, deps.logger);
    for (const [operation, mitigationIds] of [['apply', [...diff.added, ...diff.changed]], ['remove', diff.withdrawn]] as const) {
      if (mitigationIds.length === 0) continue;
      const plan = planRollout({ operation, mitigationIds, mitigations: verified.package.mitigations, ...snapshot, waves: deps.waves });
      const id = await startPlannedRollout(deps, { id: `${feed.name}-${String(stored.sequence).padStart(6, '0')}-${operation}`, feed: feed.name, packageSequence: stored.sequence, plan, content: contentHashes(verified.package.mitigations) }, now());
      if (id) rollouts.push(id);
    }
  }
  return { kind: 'accepted', sequence: stored.sequence, sha256: verified.sha256, diff, rollouts };
}

