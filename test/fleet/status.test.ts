import { describe, expect, it } from 'vitest';
import { feedStateRow } from '../../lib/fleet/feeds.js';
import { feedStatusOf } from '../../lib/fleet/status.js';
import { renderReason } from '../../lib/model/reasons.js';

const at = (second: number): Date => new Date(Date.UTC(2026, 10, 1, 12, 0, second));

describe("a feed record's last rejection: code and detail apart, or an earlier release's text", () => {
  const base = {
    partitionKey: 'microsoft',
    rowKey: 'feed',
    lastRejectedAt: at(10),
    lastRejectedSha256: 'ab'.repeat(32),
  };
  it.each([
    {
      name: 'this release: the code and the detail as written',
      row: {
        lastRejectedReasonCode: 'BadSignature',
        lastRejectedReasonDetail: 'the SignatureValue does not match',
      },
      read: { reasonCode: 'BadSignature', reasonDetail: 'the SignatureValue does not match' },
      text: 'BadSignature: the SignatureValue does not match',
    },
    {
      name: 'an earlier release: one text, kept whole as a Legacy detail, never split',
      row: { lastRejectedReason: 'Rollback: signed 2026-01-01: older than the last' },
      read: { reasonCode: 'Legacy', reasonDetail: 'Rollback: signed 2026-01-01: older than the last' },
      text: 'Rollback: signed 2026-01-01: older than the last',
    },
    {
      name: 'a newer release’s code passes as it is',
      row: { lastRejectedReasonCode: 'SomethingNew', lastRejectedReasonDetail: 'as written' },
      read: { reasonCode: 'SomethingNew', reasonDetail: 'as written' },
      text: 'SomethingNew: as written',
    },
  ])('$name', ({ row, read, text }) => {
    const state = feedStateRow.parse({ ...base, ...row });
    const status = feedStatusOf({ name: 'microsoft', url: 'https://ocs.example' }, state, undefined);
    expect(status.lastRejected).toEqual({ at: at(10).toISOString(), sha256: 'ab'.repeat(32), ...read });
    expect(renderReason(status.lastRejected!)).toBe(text);
  });
});
