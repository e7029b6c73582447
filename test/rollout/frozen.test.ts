import { describe, expect, it } from 'vitest';
import { frozenFeeds, frozenIds, type StoredFeedCheck } from '../../lib/rollout/frozen.js';

const stored = { sequence: 3, sha256: 'a'.repeat(64) };
const verified = { ok: true as const, package: { mitigations: [] } as never };
const check = (
  feed: string,
  mitigationIds: string[],
  verdict: StoredFeedCheck['verdict'],
): StoredFeedCheck => ({ feed, ...stored, mitigationIds, verdict });

describe('frozenFeeds', () => {
  it.each<{ name: string; checks: StoredFeedCheck[]; applied: string[]; frozen: string[] }>([
    {
      name: 'a feed that verifies is not frozen',
      checks: [check('microsoft', ['EM1'], verified)],
      applied: ['EM1'],
      frozen: [],
    },
    {
      name: 'a revoked signer freezes the feed',
      checks: [check('microsoft', ['EM1'], { ok: false, reason: 'Revoked', detail: 'serial 01' })],
      applied: ['EM1'],
      frozen: ['microsoft:Revoked'],
    },
    {
      name: 'a package that no longer verifies freezes the feed even with nothing applied',
      checks: [check('microsoft', ['EM1'], { ok: false, reason: 'UntrustedChain', detail: 'x' })],
      applied: [],
      frozen: ['microsoft:UntrustedChain'],
    },
    {
      name: 'unusable settings freeze the feed',
      checks: [check('contoso', ['ORG1'], { ok: false, reason: 'Misconfigured', detail: 'no such file' })],
      applied: [],
      frozen: ['contoso:Misconfigured'],
    },
    {
      name: 'a feed gone from the settings with applied mitigations is frozen',
      checks: [check('contoso', ['ORG1', 'ORG2'], { ok: false, reason: 'NotConfigured', detail: 'x' })],
      applied: ['ORG2'],
      frozen: ['contoso:NotConfigured'],
    },
    {
      name: 'a feed gone from the settings with nothing applied is retired, not frozen',
      checks: [check('contoso', ['ORG1'], { ok: false, reason: 'NotConfigured', detail: 'x' })],
      applied: ['EM1'],
      frozen: [],
    },
  ])('$name', ({ checks, applied, frozen }) => {
    expect(frozenFeeds(checks, new Set(applied)).map((feed) => `${feed.feed}:${feed.reason}`)).toEqual(
      frozen,
    );
  });

  it('keeps every id of every frozen feed from being withdrawn', () => {
    const frozen = frozenFeeds(
      [
        check('microsoft', ['EM1', 'EM2'], { ok: false, reason: 'Expired', detail: 'x' }),
        check('contoso', ['ORG1'], verified),
      ],
      new Set(),
    );
    expect([...frozenIds(frozen)]).toEqual(['EM1', 'EM2']);
  });
});
