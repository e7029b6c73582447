/**
 * Packages signed by xmlsec1 with an openssl-made PKI (test/package/fixtures/xmlsec1/README.md):
 * emfleet's verifier must accept signatures it did not produce, and reject the same way as for its own.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { issueCertificate } from '../../lib/package/dev-pki.js';
import type { Mitigation } from '../../lib/package/model.js';
import { createTrustPolicy, type TrustPolicy } from '../../lib/package/trust.js';
import { verifyPackage, type VerifyOptions, type VerifyResult } from '../../lib/package/verify.js';
import { bytes } from '../helpers/packages.js';

const fixture = (name: string): string =>
  readFileSync(fileURLToPath(new URL(`./fixtures/xmlsec1/${name}`, import.meta.url)), 'utf8');

const rootPem = fixture('root.pem');
const ping1 = fixture('ping1.signed.xml');
const full = fixture('full.signed.xml');
const sha1 = fixture('sha1.signed.xml');

/** A fixed clock inside the fixtures' validity (2025–2045) and after their signing times. */
const now = new Date('2026-11-15T00:00:00Z');
const trust: TrustPolicy = createTrustPolicy({ anchorPems: [rootPem] });

function verify(text: string, options: Partial<VerifyOptions> = {}): VerifyResult {
  return verifyPackage(bytes(text), { trust, now, ...options });
}

function verified(text: string, options: Partial<VerifyOptions> = {}): Extract<VerifyResult, { ok: true }> {
  const result = verify(text, options);
  if (!result.ok) throw new Error(`expected the fixture to verify: ${result.reason}: ${result.detail}`);
  return result;
}

function mutate(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`test data: "${from}" not found`);
  return text.replace(from, to);
}

const chain = [
  'CN=Microsoft Exchange XML Signing',
  'CN=emfleet Interop Intermediate CA',
  'CN=emfleet Interop Root CA',
];

describe('xmlsec1 fixtures', () => {
  it('ping1.signed.xml verifies to [PING1]', () => {
    const result = verified(ping1);
    expect(result.package.mitigations.map((mitigation) => mitigation.id)).toEqual(['PING1']);
    expect(result.package.mitigations[0]!.actions).toEqual([
      { kind: 'DoNothing', scope: 'Server', description: 'Does nothing', value: 'DoNothing' },
    ]);
    // Their signingTime attribute predates time stamps: not trusted, listed, certificates checked at `now`.
    expect(result.package.signingTime).toBeUndefined();
    expect(result.timestamp).toEqual({ status: 'absent' });
    expect(result.package.sequence).toBeUndefined();
    expect(result.package.unknown).toEqual(['EOCS@signingTime']);
    expect(result.chain).toEqual(chain);
  });

  it('full.signed.xml verifies with every kind, range, sequence and signing time', () => {
    const result = verified(full);
    expect(result.package.version).toBe('1.0.4');
    expect(result.package.sequence).toBe(12);
    expect(result.package.signingTime).toBeUndefined();
    expect(result.package.unknown).toEqual(['EOCS@signingTime']);
    expect(result.chain).toEqual(chain);
    expect(result.signer.subject).toBe('CN=Microsoft Exchange XML Signing');
    expect(result.signer.issuer).toBe('CN=emfleet Interop Intermediate CA');
    expect(result.signer.validFrom).toBe('2025-01-01T00:00:00.000Z');
    expect(result.signer.validTo).toBe('2045-01-01T00:00:00.000Z');

    const byId = new Map<string, Mitigation>(
      result.package.mitigations.map((mitigation) => [mitigation.id, mitigation]),
    );
    expect([...byId.keys()]).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(
      result.package.mitigations.map((mitigation) => mitigation.actions.map((action) => action.kind)),
    ).toEqual([['DoNothing'], ['IisUrlRewrite'], ['DisableAppPool'], ['DisableService']]);

    const em1 = byId.get('EM1')!;
    expect(em1.description).toBe('URL rewrite mitigation for CVE-2022-41040');
    expect(em1.applicability).toEqual([
      { min: [15, 1, 0, 0], max: [15, 1, 2507, 15] },
      { min: [15, 2, 0, 0], max: [15, 2, 1118, 19] },
    ]);
    const rewrite = em1.actions[0]!;
    expect(rewrite).toMatchObject({
      kind: 'IisUrlRewrite',
      scope: 'Server',
      description: 'Block autodiscover SSRF',
      site: 'Default Web Site',
      ruleName: 'EEMS EM1 - Autodiscover Rule',
    });
    if (rewrite.kind !== 'IisUrlRewrite') throw new Error('unreachable');
    expect(rewrite.ruleXml).toMatch(/^<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true">/);
    expect(rewrite.ruleXml).toContain('<match url=".*autodiscover\\.json.*Powershell.*"');
    expect(rewrite.ruleXml).toContain('pattern=".*autodiscover\\.json.*\\@.*Powershell.*"');
    expect(rewrite.ruleXml).toContain('<action type="AbortRequest"');

    expect(byId.get('EM2')).toEqual({
      id: 'EM2',
      description: 'Disable OWA app pool',
      applicability: [{ min: [15, 2, 0, 0], max: [15, 2, 1544, 4] }],
      actions: [
        { kind: 'DisableAppPool', scope: 'Server', description: 'Stop OWA', appPool: 'MSExchangeOWAAppPool' },
      ],
    });
    expect(byId.get('EM3')).toEqual({
      id: 'EM3',
      description: 'Disable UM service',
      applicability: [],
      actions: [{ kind: 'DisableService', scope: 'Server', description: 'Stop UM', service: 'MSExchangeUM' }],
    });
  });

  it('verifies with the root pinned by the SHA-256 fingerprint the README documents', () => {
    const readme = fixture('README.md');
    const pin = /```\s*\n((?:[0-9A-F]{2}:){31}[0-9A-F]{2})\s*\n```/.exec(readme)?.[1];
    expect(pin).toBeDefined();
    const pinned = createTrustPolicy({ anchorPems: [rootPem], anchorSha256: [pin!] });
    expect(verify(full, { trust: pinned }).ok).toBe(true);
  });

  it('the real clock is fine too (the fixtures are valid until 2045)', () => {
    expect(verifyPackage(bytes(full), { trust }).ok).toBe(true);
  });

  it('sha1.signed.xml (RSA-SHA1 / SHA-1, cryptographically valid) → UnsupportedAlgorithm', () => {
    const result = verify(sha1);
    expect(!result.ok && result.reason).toBe('UnsupportedAlgorithm');
    expect(!result.ok && result.detail).toContain('sha1');
  });

  it.each([
    { name: 'a Value changed', from: '<Value>MSExchangeUM</Value>', to: '<Value>W3SVC</Value>' },
    { name: 'the max build widened', from: 'max="15.2.1544.4"', to: 'max="15.2.9999.4"' },
    { name: 'the sequence raised', from: 'sequence="12"', to: 'sequence="13"' },
    {
      name: 'a forged Config added',
      from: '<Config id="EM3"',
      to: '<Config id="EVIL" desc="x"><ActionList/></Config><Config id="EM3"',
    },
  ])('tampered copy of full.signed.xml: $name → BadSignature', ({ from, to }) => {
    const result = verify(mutate(full, from, to));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toBe('BadSignature');
  });

  it('tampered copy of ping1.signed.xml: the description changed → BadSignature', () => {
    const result = verify(mutate(ping1, 'validate the EM service', 'validate the XX service'));
    expect(!result.ok && result.reason).toBe('BadSignature');
  });

  it('is a rollback after a later sequence from the same feed', () => {
    const result = verify(full, { lastAccepted: { sequence: 13 } });
    expect(!result.ok && result.reason).toBe('Rollback');
    expect(verify(full, { lastAccepted: { sequence: 12 } }).ok).toBe(true);
  });

  describe('with an unrelated anchor', () => {
    let unrelated: TrustPolicy;

    beforeAll(async () => {
      const root = await issueCertificate({ subjectCn: 'emfleet Interop Root CA', ca: true });
      unrelated = createTrustPolicy({ anchorPems: [root.certificatePem] });
    });

    it.each([
      { name: 'ping1', text: ping1 },
      { name: 'full', text: full },
    ])('$name → UntrustedChain, even with the same root name', ({ text }) => {
      const result = verify(text, { trust: unrelated });
      expect(result.ok).toBe(false);
      expect(!result.ok && result.reason).toBe('UntrustedChain');
    });
  });
});
