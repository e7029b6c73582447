/** The trust of each feed as the app settings configure it (lib/config feedSources, lib/ocs/feeds.ts feedsOf). */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { feedSources } from '../../lib/config/sources.js';
import { feedsOf } from '../../lib/ocs/feeds.js';
import { readFileSync } from 'node:fs';
import { createDevPki, type DevPki } from '../../lib/package/dev-pki.js';
import { verifyPackage } from '../../lib/package/verify.js';

let microsoft: DevPki;
let contoso: DevPki;

beforeAll(async () => {
  [microsoft, contoso] = await Promise.all([
    createDevPki({ label: 'emfleet Feeds Microsoft' }),
    createDevPki({ label: 'emfleet Feeds Contoso' }),
  ]);
});

describe('feedsOf(feedSources(config))', () => {
  it('an organization feed has its own revoked serials and timestamp anchors, apart from the Microsoft feed', () => {
    const settings = loadConfig({
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
    const { feeds, problems } = feedsOf(feedSources(settings));
    expect(problems).toEqual([]);
    const [microsoftFeed, contosoFeed] = feeds;
    expect([...microsoftFeed!.trust.revokedSerials]).toEqual(['A0B']);
    expect([...contosoFeed!.trust.revokedSerials]).toEqual(['C0FFEE']);
    expect(microsoftFeed!.trust.timestampAnchors.map((anchor) => anchor.fingerprint256)).toEqual([
      microsoft.timestampRoot.certificate.fingerprint256,
    ]);
    expect(contosoFeed!.trust.timestampAnchors.map((anchor) => anchor.fingerprint256)).toEqual([
      contoso.timestampRoot.certificate.fingerprint256,
    ]);
  });

  it("the cloud's Microsoft feed, configured as infra/main.bicepparam does, verifies Microsoft's genuine 2021 package", () => {
    const fixtures = new URL('../package/fixtures/microsoft/', import.meta.url);
    const settings = loadConfig({
      EMFLEET_TRUST_ANCHORS: new URL('MicrosoftRootCertificateAuthority2011.pem', fixtures).pathname,
      EMFLEET_TRUST_ANCHOR_SHA256: '847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61',
      EMFLEET_TIMESTAMP_ANCHORS: new URL('MicrosoftRootCertificateAuthority2010.pem', fixtures).pathname,
      EMFLEET_TIMESTAMP_ANCHOR_SHA256: 'DF545BF919A2439C36983B54CDFC903DFA4F37D3996D8D84B4C31EEC6F3C163E',
    });
    const [feed] = feedsOf(feedSources(settings)).feeds;
    const result = verifyPackage(readFileSync(new URL('getexchangemitigations-2021-09-29.xml', fixtures)), {
      trust: feed!.trust,
    });
    expect(result.ok && result.package.signingTime?.toISOString()).toBe('2021-09-15T16:42:08.621Z');
  });

  it('a timestamp anchor that matches no pin makes the feed a configuration problem', () => {
    const settings = loadConfig({
      EMFLEET_TRUST_ANCHORS: microsoft.root.certificatePem,
      EMFLEET_TIMESTAMP_ANCHORS: microsoft.timestampRoot.certificatePem,
      EMFLEET_TIMESTAMP_ANCHOR_SHA256: 'AB'.repeat(32),
    });
    const { problems } = feedsOf(feedSources(settings));
    expect(problems).toEqual([
      { feed: 'microsoft', error: expect.stringMatching(/timestamp anchor .* matches no configured pin/) },
    ]);
  });
});
