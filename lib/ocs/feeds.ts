import { ConfigError } from '../errors.js';
import { createTrustPolicy, readPemSetting, type TrustPolicy } from '../package/trust.js';

/** A feed emfleet polls: where it is and whom its packages must be signed by. */
export interface Feed {
  readonly name: string;
  readonly url: string;
  readonly trust: TrustPolicy;
}

/**
 * One feed as the settings describe it (lib/config `feedSources`): its trust as text, and the
 * settings the text came from, so an error tells the admin which setting to fix.
 */
export interface FeedSource {
  readonly name: string;
  readonly url: string;
  /** PEM text or a file path; undefined when the setting is unset. */
  readonly trustAnchors: string | undefined;
  readonly anchorSha256: readonly string[];
  readonly timestampAnchors: string | undefined;
  readonly timestampAnchorSha256: readonly string[];
  readonly signerSubject: string;
  readonly signerEku: string;
  readonly revokedSerials: readonly string[];
  /** Where the trust anchors are set, e.g. `EMFLEET_TRUST_ANCHORS` or `EMFLEET_FEEDS contoso`. */
  readonly anchorsSetting: string;
  readonly timestampAnchorsSetting: string;
}

/** A configured feed whose settings cannot be used (an unreadable anchor, a pin that matches nothing). */
export interface FeedProblem {
  readonly feed: string;
  readonly error: string;
}

/** The feeds the settings describe: those that can be polled, and the problems of the others. */
export interface FeedSet {
  readonly feeds: readonly Feed[];
  readonly problems: readonly FeedProblem[];
}

/** A feed's trust policy. There is no built-in anchor: none is a configuration error, never "trust anything". */
export function feedTrust(source: FeedSource): TrustPolicy {
  if (!source.trustAnchors)
    throw new ConfigError(
      `no trust anchor configured: set ${source.anchorsSetting} or pass --trust-anchor PEM`,
    );
  if (!source.timestampAnchors && source.timestampAnchorSha256.length > 0)
    throw new ConfigError(
      `timestamp anchor SHA-256 pins are set but no timestamp anchor: set ${source.timestampAnchorsSetting} or pass --timestamp-anchor PEM`,
    );
  return createTrustPolicy({
    anchorPems: [readPemSetting(source.trustAnchors, source.anchorsSetting)],
    anchorSha256: source.anchorSha256,
    timestampAnchorPems: source.timestampAnchors
      ? [readPemSetting(source.timestampAnchors, source.timestampAnchorsSetting)]
      : [],
    timestampAnchorSha256: source.timestampAnchorSha256,
    signerSubjectCn: source.signerSubject,
    signerEku: source.signerEku,
    revokedSerials: source.revokedSerials,
  });
}

/**
 * Every configured feed with its trust, in order (Microsoft's first). A feed whose trust cannot be
 * built is a problem of that feed alone: the others are still polled.
 */
export function feedsOf(sources: readonly FeedSource[]): FeedSet {
  const feeds: Feed[] = [];
  const problems: FeedProblem[] = [];
  for (const source of sources) {
    try {
      feeds.push({ name: source.name, url: source.url, trust: feedTrust(source) });
    } catch (error) {
      problems.push({ feed: source.name, error: error instanceof Error ? error.message : String(error) });
    }
  }
  return { feeds, problems };
}
