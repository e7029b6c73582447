import { feedSources } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import type { AppConfig } from '../config/index.js';
import { readFeedState, type FeedState } from '../fleet/feeds.js';
import { latestPackage, type StoredPackage } from '../fleet/packages.js';
import { feedStatusOf } from '../fleet/status.js';
import type { FleetTables } from '../fleet/storage.js';
import { microsoftFeedName } from '../ocs/client.js';
import { rejectionReasonCodes } from '../package/reasons.js';
import { verifyPackage, type VerifyResult } from '../package/verify.js';
import type { FeedView, PollResult } from './types.js';

/** One configured feed as it stands: its polling record, its current package, that package verified today. */
export interface CurrentFeed {
  readonly name: string;
  readonly url: string;
  /** Why the feed's settings cannot be used (it is not polled). */
  readonly problem: string | undefined;
  readonly state: FeedState | undefined;
  readonly stored: StoredPackage | undefined;
  /** The stored package verified under today's trust settings; undefined without package or trust. */
  readonly verified: VerifyResult | undefined;
}

/**
 * Every feed the settings name (Microsoft's, then the organization's), in that order. Each stored
 * package is verified again, as reconcile does: that gives its signer and its mitigation model, and
 * shows at once when an anchor change means the current package would no longer be accepted.
 */
export async function readCurrentFeeds(deps: {
  tables: FleetTables;
  config: AppConfig;
}): Promise<CurrentFeed[]> {
  const { feeds, problems } = feedsOf(feedSources(deps.config));
  const configured = [
    { name: microsoftFeedName, url: deps.config.ocsUrl },
    ...deps.config.orgFeeds.map(({ name, url }) => ({ name, url })),
  ];
  return Promise.all(
    configured.map(async ({ name, url }) => {
      const [state, stored] = await Promise.all([
        readFeedState(deps.tables, name),
        latestPackage(deps.tables, name),
      ]);
      const trust = feeds.find((feed) => feed.name === name)?.trust;
      return {
        name,
        url,
        problem: problems.find((problem) => problem.feed === name)?.error,
        state,
        stored,
        verified: stored && trust ? verifyPackage(stored.bytes, { trust }) : undefined,
      };
    }),
  );
}

export function feedView(current: CurrentFeed): FeedView {
  const status = feedStatusOf(current, current.state, current.stored);
  const { verified } = current;
  const rejected = status.lastRejected ? splitReason(status.lastRejected.reason) : undefined;
  return {
    name: status.name,
    url: status.url,
    problem: current.problem ?? null,
    lastPollAt: status.lastPollAt,
    lastPollResult: pollResultOf(current.state),
    lastSuccessAt: status.lastSuccessAt,
    lastErrorAt: status.lastErrorAt,
    lastError: status.lastError,
    package: status.package && {
      ...status.package,
      signer: verified?.ok
        ? {
            subject: verified.signer.subject,
            issuer: verified.signer.issuer,
            serialNumber: verified.signer.serialNumber,
            sha256: verified.signer.sha256,
            validTo: verified.signer.validTo,
          }
        : null,
      verifyProblem:
        verified === undefined
          ? (current.problem ?? null)
          : verified.ok
            ? null
            : `${verified.reason}: ${verified.detail}`,
    },
    frozen: status.frozen,
    lastRejected:
      status.lastRejected && rejected
        ? { at: status.lastRejected.at, sha256: status.lastRejected.sha256, ...rejected }
        : null,
  };
}

/**
 * What the last poll came to. A poll stamps `lastPollAt` first and, in the same write, an error or
 * a rejection (lib/rollout/poll.ts), so a stamp at or after `lastPollAt` belongs to the last poll.
 */
export function pollResultOf(
  state: Pick<FeedState, 'lastPollAt' | 'lastErrorAt' | 'lastRejectedAt'> | undefined,
): PollResult | null {
  if (!state?.lastPollAt) return null;
  if (state.lastErrorAt && state.lastErrorAt >= state.lastPollAt) return 'Failed';
  if (state.lastRejectedAt && state.lastRejectedAt >= state.lastPollAt) return 'Rejected';
  return 'Success';
}

/** The feed record keeps a rejection as `Code: detail`; the codes are a fixed list, so the split is exact. */
export function splitReason(reason: string): { code: string | null; detail: string } {
  const code = rejectionReasonCodes.find((candidate) => reason.startsWith(`${candidate}: `));
  return code ? { code, detail: reason.slice(code.length + 2) } : { code: null, detail: reason };
}
