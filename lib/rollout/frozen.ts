import { settingNameOf } from '../config/index.js';
import { readFeedState, updateFeedState } from '../fleet/feeds.js';
import { latestPackage, listStoredFeeds } from '../fleet/packages.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import type { EocsPackage } from '../package/model.js';
import type { RejectionReason } from '../package/reasons.js';
import { verifyPackage } from '../package/verify.js';
import type { Feed } from '../ocs/feeds.js';

/**
 * Why a feed is frozen: its stored package fails verification under today's trust settings (the
 * rejection code: `Revoked`, `UntrustedChain`, `Expired`…), or the settings no longer serve it.
 */
export const frozenReasons = {
  NotConfigured: 'the feed is no longer in the settings, but servers still have its mitigations',
  Misconfigured:
    "the feed's settings cannot be used (an unreadable trust anchor or Key Vault reference, a pin that matches no anchor)",
} as const;

export type FrozenReason = RejectionReason | keyof typeof frozenReasons;

/** One stored feed as reconcile finds it: its current package, and whether that package still verifies. */
export interface StoredFeedCheck {
  readonly feed: string;
  readonly sequence: number;
  readonly sha256: string;
  /** As recorded when the package was accepted (a frozen feed's package cannot be read again). */
  readonly mitigationIds: readonly string[];
  readonly verdict:
    | { readonly ok: true; readonly package: EocsPackage }
    | { readonly ok: false; readonly reason: FrozenReason; readonly detail: string };
}

export interface FrozenFeed {
  readonly feed: string;
  readonly sequence: number;
  readonly sha256: string;
  readonly mitigationIds: readonly string[];
  readonly reason: FrozenReason;
  readonly detail: string;
}

/**
 * Fail closed means "change nothing" (DESIGN §4): a feed whose current package no longer verifies
 * is frozen; so is a feed gone from the settings while any server still has one of its
 * mitigations (one that has none is simply retired). Nothing of a frozen feed is applied, and its
 * ids are never withdrawn: only a newer verified package of the same feed may do that (pure).
 *
 * @example frozenFeeds([{ feed: 'microsoft', verdict: { ok: false, reason: 'Revoked', … }, mitigationIds: ['EM1'], … }], new Set()) → [{ feed: 'microsoft', reason: 'Revoked', … }]
 */
export function frozenFeeds(
  checks: readonly StoredFeedCheck[],
  reportedApplied: ReadonlySet<string>,
): FrozenFeed[] {
  return checks.flatMap(({ verdict, ...check }) => {
    if (verdict.ok) return [];
    if (verdict.reason === 'NotConfigured' && !check.mitigationIds.some((id) => reportedApplied.has(id)))
      return [];
    return [{ ...check, reason: verdict.reason, detail: verdict.detail }];
  });
}

/** The mitigation ids no fix-up may withdraw because a frozen feed holds them. */
export function frozenIds(frozen: readonly FrozenFeed[]): Set<string> {
  return new Set(frozen.flatMap((feed) => feed.mitigationIds));
}

/**
 * Every feed with a stored package, configured or not, its current package verified under the
 * feed's trust settings as they are now (`now` for certificate validity).
 */
export async function checkStoredFeeds(
  tables: FleetTables,
  feeds: readonly Feed[],
  problems: readonly { feed: string; error: string }[],
  now: Date,
): Promise<StoredFeedCheck[]> {
  const names = [...new Set([...feeds.map((feed) => feed.name), ...(await listStoredFeeds(tables))])];
  const checks = await Promise.all(
    names.map(async (name): Promise<StoredFeedCheck | undefined> => {
      const stored = await latestPackage(tables, name);
      if (!stored) return undefined;
      const base = {
        feed: name,
        sequence: stored.sequence,
        sha256: stored.sha256,
        mitigationIds: stored.mitigationIds,
      };
      const feed = feeds.find((candidate) => candidate.name === name);
      if (!feed) {
        const problem = problems.find((candidate) => candidate.feed === name);
        return {
          ...base,
          verdict: problem
            ? { ok: false, reason: 'Misconfigured', detail: problem.error }
            : {
                ok: false,
                reason: 'NotConfigured',
                detail: `${name} is not in ${settingNameOf.ocsUrl} or ${settingNameOf.orgFeeds}`,
              },
        };
      }
      const verified = verifyPackage(stored.bytes, { trust: feed.trust, now });
      return {
        ...base,
        verdict: verified.ok
          ? { ok: true, package: verified.package }
          : { ok: false, reason: verified.reason, detail: verified.detail },
      };
    }),
  );
  return checks.filter((check) => check !== undefined);
}

/**
 * Keeps each feed's frozen state on its record (what `status`, the API and the dashboard show):
 * `FeedFrozen` is logged on every pass while it lasts, the channel is told when it starts or its
 * reason changes, and `FeedThawed` when the feed's package verifies again (or it is retired).
 * A dry run only logs.
 */
export async function recordFrozenFeeds(
  deps: { tables: FleetTables; logger: Logger; notify?: Notify | undefined },
  checks: readonly StoredFeedCheck[],
  frozen: readonly FrozenFeed[],
  now: Date,
  options: { dryRun?: boolean } = {},
): Promise<void> {
  for (const check of checks) {
    const freeze = frozen.find((feed) => feed.feed === check.feed);
    const state = await readFeedState(deps.tables, check.feed);
    if (freeze) {
      const { feed, ...fields } = freeze;
      deps.logger.warn('FeedFrozen', {
        feed,
        ...fields,
        meaning: frozenMeaning(freeze.reason),
        ...(options.dryRun ? { dryRun: true } : {}),
      });
      if (options.dryRun || (state?.frozenReason === freeze.reason && state.frozenDetail === freeze.detail))
        continue;
      await updateFeedState(deps.tables, feed, () => ({
        frozenAt: state?.frozenReason ? state.frozenAt : now,
        frozenReason: freeze.reason,
        frozenDetail: freeze.detail,
      }));
      await deps.notify?.({
        kind: 'FeedFrozen',
        feed,
        sequence: freeze.sequence,
        sha256: freeze.sha256,
        reason: freeze.reason,
        detail: freeze.detail,
        mitigationIds: freeze.mitigationIds,
      });
    } else if (state?.frozenReason && !options.dryRun) {
      await updateFeedState(deps.tables, check.feed, () => ({
        frozenAt: undefined,
        frozenReason: '',
        frozenDetail: '',
      }));
      deps.logger.info('FeedThawed', {
        feed: check.feed,
        sequence: check.sequence,
        sha256: check.sha256,
        wasFrozenFor: state.frozenReason,
      });
      await deps.notify?.({ kind: 'FeedThawed', feed: check.feed, sequence: check.sequence });
    }
  }
}

function frozenMeaning(reason: FrozenReason): string {
  return reason in frozenReasons
    ? frozenReasons[reason as keyof typeof frozenReasons]
    : 'the current package no longer verifies under the trust settings';
}
