import { lastRejection, type FeedState } from './feeds.js';
import type { StoredPackage } from './packages.js';

const iso = (date: Date | undefined): string | null => date?.toISOString() ?? null;

export interface FeedStatus {
  readonly name: string;
  readonly url: string;
  readonly lastPollAt: string | null;
  readonly lastSuccessAt: string | null;
  readonly lastErrorAt: string | null;
  readonly lastError: string | null;
  readonly lastRejected: {
    readonly at: string | null;
    readonly sha256: string;
    /** A `package` code of lib/model/reasons.ts (`Legacy` for a record an earlier release wrote). */
    readonly reasonCode: string;
    readonly reasonDetail: string;
  } | null;
  readonly package: {
    readonly sequence: number;
    readonly sha256: string;
    readonly signingTime: string | null;
    readonly acceptedAt: string | null;
    readonly mitigationIds: readonly string[];
  } | null;
  /** Set while reconcile keeps the feed frozen (lib/rollout/frozen.ts): nothing of it is applied or removed. */
  readonly frozen: {
    readonly since: string | null;
    readonly reasonCode: string;
    readonly reasonDetail: string;
  } | null;
}

/** Each feed's current content as stored with its package; a feed without it (no package, an older row) keeps its holds. */
export function currentContent(
  feeds: readonly string[],
  packages: ReadonlyMap<string, StoredPackage | undefined>,
): Map<string, Readonly<Record<string, string>>> {
  return new Map(
    feeds.flatMap((feed) => {
      const content = packages.get(feed)?.content;
      return content ? [[feed, content] as const] : [];
    }),
  );
}

/** A feed's record and current package as `emfleet status` shows them (the dashboard adds to it). */
export function feedStatusOf(
  feed: { name: string; url: string },
  state: FeedState | undefined,
  current: StoredPackage | undefined,
): FeedStatus {
  const rejected = state?.lastRejectedSha256 ? lastRejection(state) : undefined;
  return {
    name: feed.name,
    url: feed.url,
    lastPollAt: iso(state?.lastPollAt),
    lastSuccessAt: iso(state?.lastSuccessAt),
    lastErrorAt: iso(state?.lastErrorAt),
    lastError: state?.lastError || null,
    lastRejected: state?.lastRejectedSha256
      ? {
          at: iso(state.lastRejectedAt),
          sha256: state.lastRejectedSha256,
          reasonCode: rejected?.reasonCode ?? 'Legacy',
          reasonDetail: rejected?.reasonDetail ?? '',
        }
      : null,
    package: current
      ? {
          sequence: current.sequence,
          sha256: current.sha256,
          signingTime: iso(current.signingTime),
          acceptedAt: iso(current.acceptedAt),
          mitigationIds: current.mitigationIds,
        }
      : null,
    frozen: state?.frozenReason
      ? { since: iso(state.frozenAt), reasonCode: state.frozenReason, reasonDetail: state.frozenDetail }
      : null,
  };
}
