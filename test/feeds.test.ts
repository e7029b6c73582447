/** The trust of each feed as the app settings configure it (lib/app.ts feedsFromSettings). */
import { beforeAll, describe, expect, it } from 'vitest';
import { feedsFromSettings } from '../lib/app.js';
import { loadSettings } from '../lib/config/index.js';
import { createDevPki, type DevPki } from '../lib/local/pki.js';

let microsoft: DevPki;
let contoso: DevPki;

beforeAll(async () => {
  [microsoft, contoso] = await Promise.all([createDevPki({ label: 'emfleet Feeds Microsoft' }), createDevPki({ label: 'emfleet Feeds Contoso' })]);
});

describe('feedsFromSettings', () => {
  it('an organization feed has its own revoked serials and timestamp anchors, apart from the Microsoft feed', () => {
    const settings = loadSettings({
      EMFLEET_TRUST_ANCHORS: microsoft.root.certificatePem,
      EMFLEET_TIMESTAMP_ANCHORS: microsoft.timestampRoot.certificatePem,
      EMFLEET_REVOKED_SERIALS: '0A0B',
      EMFLEET_FEEDS: JSON.stringify([
        {
          name: 'contoso',
          url: 'https://mitigations.contoso.com/feed.xml',
          trustAnchors: contoso.root.certificatePem,
          signerSubject: 'Contoso Mitigations',
          signerEku: '1.3.6.1.5.5.7.3.3',
          revokedSerials: ['00:C0:FF:EE'],
          timestampAnchors: contoso.timestampRoot.certificatePem,
        },
      ]),
    });
    const { feeds, problems } = feedsFromSettings(settings);
    expect(problems).toEqual([]);
    const [microsoftFeed, contosoFeed] = feeds;
    expect([...microsoftFeed!.trust.revokedSerials]).toEqual(['A0B']);
    expect([...contosoFeed!.trust.revokedSerials]).toEqual(['C0FFEE']);
    expect(microsoftFeed!.trust.timestampAnchors.map((anchor) => anchor.fingerprint256)).toEqual([microsoft.timestampRoot.certificate.fingerprint256]);
    expect(contosoFeed!.trust.timestampAnchors.map((anchor) => anchor.fingerprint256)).toEqual([contoso.timestampRoot.certificate.fingerprint256]);
  });

  it('a timestamp anchor that matches no pin makes the feed a configuration problem', () => {
    const settings = loadSettings({
      EMFLEET_TRUST_ANCHORS: microsoft.root.certificatePem,
      EMFLEET_TIMESTAMP_ANCHORS: microsoft.timestampRoot.certificatePem,
      EMFLEET_TIMESTAMP_ANCHOR_SHA256: 'AB'.repeat(32),
    });
    const { problems } = feedsFromSettings(settings);
    expect(problems).toEqual([{ feed: 'microsoft', error: expect.stringMatching(/timestamp anchor .* matches no configured pin/) }]);
  });
});
