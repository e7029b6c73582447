import { EmfleetError } from '../errors.js';
import { writeAudit } from '../fleet/audit.js';
import { readFeedState, updateFeedState } from '../fleet/feeds.js';
import { acceptedWithSha256, latestPackage, storePackage, type StoredPackage } from '../fleet/packages.js';
import type { QueueSender } from '../fleet/queues.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import { fetchFeed, type FetchFeedOptions, type FetchFeedResult } from '../ocs/client.js';
import type { Feed } from '../ocs/feeds.js';
import { compareFreshness, supersededBy, type AcceptedMark } from '../package/freshness.js';
import type { RejectionReason } from '../package/reasons.js';
import { verifyPackage } from '../package/verify.js';
import { diffAgainstIds, diffPackages, isEmptyDiff, type PackageDiff } from './diff.js';
import { contentHashes } from './holds.js';
import { planRollout } from './plan.js';
import { fleetSnapshot, startPlannedRollout } from './start.js';
import type { WaveProfile } from '../model/waves.js';

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
  | { readonly kind: 'held'; readonly sha256: string; readonly withdrawn: readonly string[] }
  | {
      readonly kind: 'accepted';
      readonly sequence: number;
      readonly sha256: string;
      readonly diff: PackageDiff;
      readonly rollouts: readonly string[];
    };

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
      ...(state?.feedEtag ? { etag: state.feedEtag } : {}),
      ...(state?.lastModified ? { lastModified: state.lastModified } : {}),
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    deps.logger.error('PollFailed', { ...where, error: message });
    await updateFeedState(deps.tables, feed.name, () => ({
      lastPollAt: now(),
      lastErrorAt: now(),
      lastError: message,
    }));
    return { kind: 'error', error: message };
  }
  const validators = { feedEtag: fetched.etag ?? '', lastModified: fetched.lastModified ?? '' };
  if (fetched.kind === 'unchanged') {
    await updateFeedState(deps.tables, feed.name, () => ({
      ...validators,
      lastPollAt: now(),
      lastSuccessAt: now(),
    }));
    deps.logger.info('PollUnchanged', where);
    return { kind: 'unchanged' };
  }

  const previous = await latestPackage(deps.tables, feed.name);
  const previousModel = previous
    ? verifyPackage(previous.bytes, { trust: feed.trust, now: now() })
    : undefined;
  // The marks recorded when the current package was accepted are the rollback baseline, also when
  // that package no longer verifies under today's trust settings (a revoked signer, a new anchor).
  const lastAccepted = previous ? acceptedMark(previous) : undefined;
  const verified = verifyPackage(fetched.bytes, {
    trust: feed.trust,
    now: now(),
    ...(lastAccepted ? { lastAccepted } : {}),
  });
  const reject = async ({
    reason,
    detail,
    sha256,
  }: {
    reason: string;
    detail: string;
    sha256: string;
  }): Promise<PollOutcome> => {
    deps.logger.warn('PackageRejected', { ...where, reason, detail, sha256 });
    await updateFeedState(deps.tables, feed.name, () => ({
      ...validators,
      lastPollAt: now(),
      lastSuccessAt: now(),
      lastRejectedAt: now(),
      lastRejectedSha256: sha256,
      lastRejectedReason: `${reason}: ${detail}`,
    }));
    await writeAudit(
      deps.tables,
      [
        {
          actor: system,
          action: 'package.rejected',
          target: `feed:${feed.name}`,
          source: 'ocs',
          before: null,
          after: { sha256, reason, detail },
        },
      ],
      now(),
      { logger: deps.logger },
    );
    await deps.notify?.({ kind: 'PackageRejected', feed: feed.name, sha256, reason, detail });
    return { kind: 'rejected', reason, detail, sha256 };
  };
  if (!verified.ok) return reject(verified);
  const replay = await replayRejection(deps, feed.name, verified.sha256, previous);
  if (replay) return reject(replay);

  const diff = previousModel?.ok
    ? diffPackages(previousModel.package, verified.package)
    : previous
      ? diffAgainstIds(previous.mitigationIds, verified.package)
      : diffPackages(undefined, verified.package);
  const approvedBy = state?.approvedSha256 === verified.sha256 ? state.approvedBy : undefined;
  if (
    previous &&
    lastAccepted &&
    compareFreshness(verified.package, lastAccepted) === 'unknown' &&
    diff.withdrawn.length > 0 &&
    approvedBy === undefined
  ) {
    return holdForAdmin(deps, feed, { sha256: verified.sha256, diff, previous }, now());
  }

  const stored = await storePackage(
    deps.tables,
    {
      feed: feed.name,
      bytes: fetched.bytes,
      mitigationIds: verified.package.mitigations.map((mitigation) => mitigation.id),
      content: contentHashes(verified.package.mitigations),
      ...(verified.package.signingTime ? { signingTime: verified.package.signingTime } : {}),
      ...(verified.package.sequence === undefined ? {} : { signedSequence: verified.package.sequence }),
    },
    { now: now() },
  );
  // A newer accepted package ends any hold: the held one was not rolled out, and now never will be as such.
  await updateFeedState(deps.tables, feed.name, () => ({
    ...validators,
    lastPollAt: now(),
    lastSuccessAt: now(),
    ...(stored.created ? noHold : {}),
  }));
  if (!stored.created) {
    deps.logger.info('PollUnchanged', { ...where, sha256: verified.sha256 });
    return { kind: 'unchanged' };
  }
  await writeAudit(
    deps.tables,
    [
      {
        actor: system,
        action: 'package.accepted',
        target: `feed:${feed.name}`,
        source: 'ocs',
        before: previous ? { sequence: previous.sequence, sha256: previous.sha256 } : null,
        after: {
          sequence: stored.sequence,
          sha256: verified.sha256,
          ...diff,
          ...(approvedBy ? { approvedBy } : {}),
        },
      },
    ],
    now(),
    { logger: deps.logger },
  );
  deps.logger.info('PackageAccepted', {
    ...where,
    sequence: stored.sequence,
    sha256: verified.sha256,
    added: diff.added,
    changed: diff.changed,
    withdrawn: diff.withdrawn,
    ...(approvedBy ? { approvedBy } : {}),
  });
  await deps.notify?.({
    kind: 'PackageAccepted',
    feed: feed.name,
    sequence: stored.sequence,
    sha256: verified.sha256,
    added: diff.added,
    changed: diff.changed,
    withdrawn: diff.withdrawn,
  });

  const rollouts: string[] = [];
  if (!isEmptyDiff(diff)) {
    const snapshot = await fleetSnapshot(deps.tables, deps.org, deps.logger);
    for (const [operation, mitigationIds] of [
      ['apply', [...diff.added, ...diff.changed]],
      ['remove', diff.withdrawn],
    ] as const) {
      if (mitigationIds.length === 0) continue;
      const plan = planRollout({
        operation,
        mitigationIds,
        mitigations: verified.package.mitigations,
        ...snapshot,
        waves: deps.waves,
      });
      const id = await startPlannedRollout(
        deps,
        {
          id: `${feed.name}-${String(stored.sequence).padStart(6, '0')}-${operation}`,
          feed: feed.name,
          packageSequence: stored.sequence,
          plan,
          content: contentHashes(verified.package.mitigations),
        },
        now(),
      );
      if (id) rollouts.push(id);
    }
  }
  return { kind: 'accepted', sequence: stored.sequence, sha256: verified.sha256, diff, rollouts };
}

const noHold = { heldSha256: '', heldAt: undefined, heldWithdrawn: [], approvedSha256: '', approvedBy: '' };

/** What the Packages row recorded of the package when it was accepted (its signing time was trusted then). */
function acceptedMark(stored: StoredPackage): AcceptedMark {
  return {
    ...(stored.signingTime ? { signingTime: stored.signingTime } : {}),
    ...(stored.signedSequence === undefined ? {} : { sequence: stored.signedSequence }),
  };
}

/** A package the feed already accepted and then replaced, served again: `Rollback`, whatever marks it carries. */
async function replayRejection(
  deps: PollDeps,
  feed: string,
  sha256: string,
  current: StoredPackage | undefined,
): Promise<{ reason: RejectionReason; detail: string; sha256: string } | undefined> {
  if (!current || current.sha256 === sha256) return undefined;
  const replay = supersededBy(sha256, await acceptedWithSha256(deps.tables, feed, sha256), current);
  if (!replay) return undefined;
  return {
    reason: 'Rollback',
    detail: `the package has the same SHA-256 as package ${replay.replayed.sequence}, superseded by package ${replay.current.sequence}: a replay`,
    sha256,
  };
}

/**
 * A verified package whose age cannot be told (no trusted signing time or sequence it shares with
 * the current package) may be a replay of an older one: it is not rolled out when it would
 * withdraw mitigations, but held until an admin approves it (`emfleet feed accept SHA`). The
 * validators are cleared, so the next poll fetches it in full and finds the approval.
 */
async function holdForAdmin(
  deps: PollDeps,
  feed: Feed,
  held: { sha256: string; diff: PackageDiff; previous: StoredPackage },
  now: Date,
): Promise<PollOutcome> {
  const state = await readFeedState(deps.tables, feed.name);
  const again = state?.heldSha256 === held.sha256;
  const fields = {
    feed: feed.name,
    sha256: held.sha256,
    current: held.previous.sequence,
    added: held.diff.added,
    changed: held.diff.changed,
    withdrawn: held.diff.withdrawn,
  };
  deps.logger.warn('PackageHeld', {
    ...fields,
    url: feed.url,
    reason:
      'the package carries no trusted signing time or sequence to show it is newer, and it would withdraw mitigations',
    approve: `emfleet feed accept ${held.sha256} --feed ${feed.name}`,
  });
  await updateFeedState(deps.tables, feed.name, () => ({
    feedEtag: '',
    lastModified: '',
    lastPollAt: now,
    lastSuccessAt: now,
    heldSha256: held.sha256,
    heldAt: again ? state.heldAt : now,
    heldWithdrawn: [...held.diff.withdrawn],
  }));
  if (!again) {
    await writeAudit(
      deps.tables,
      [
        {
          actor: system,
          action: 'package.held',
          target: `feed:${feed.name}`,
          source: 'ocs',
          before: { sequence: held.previous.sequence, sha256: held.previous.sha256 },
          after: fields,
        },
      ],
      now,
      { logger: deps.logger },
    );
    await deps.notify?.({
      kind: 'PackageHeld',
      feed: feed.name,
      sha256: held.sha256,
      withdrawn: held.diff.withdrawn,
    });
  }
  return { kind: 'held', sha256: held.sha256, withdrawn: held.diff.withdrawn };
}

export class HeldPackageError extends EmfleetError {
  override readonly name = 'HeldPackageError';

  constructor(message: string, context: Record<string, unknown>) {
    super('NotHeld', message, { context });
  }
}

/**
 * An admin approves the held package `sha256` of a feed (audited with who), then the feed is
 * polled at once: if it still serves that package, it is accepted and rolled out.
 */
export async function approveHeldPackage(
  deps: PollDeps,
  feed: Feed,
  sha256: string,
  actor: string,
): Promise<PollOutcome> {
  const now = deps.now?.() ?? new Date();
  const wanted = sha256.toLowerCase();
  const state = await readFeedState(deps.tables, feed.name);
  if (!state?.heldSha256 || state.heldSha256 !== wanted) {
    const held = state?.heldSha256 ? `; the package held is ${state.heldSha256}` : '; no package is held';
    throw new HeldPackageError(`feed ${feed.name} holds no package with SHA-256 ${wanted}${held}`, {
      feed: feed.name,
      sha256: wanted,
    });
  }
  await updateFeedState(deps.tables, feed.name, () => ({ approvedSha256: wanted, approvedBy: actor }));
  await writeAudit(
    deps.tables,
    [
      {
        actor,
        action: 'package.approved',
        target: `feed:${feed.name}`,
        source: 'admin',
        before: { heldSha256: state.heldSha256, withdrawn: state.heldWithdrawn },
        after: { sha256: wanted },
      },
    ],
    now,
    { logger: deps.logger },
  );
  deps.logger.info('PackageApproved', {
    feed: feed.name,
    sha256: wanted,
    actor,
    withdrawn: state.heldWithdrawn,
  });
  return pollFeed(deps, feed);
}
