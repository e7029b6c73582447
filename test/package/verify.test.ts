import { describe, it, expect, beforeAll } from 'vitest';
import { createHash } from 'node:crypto';
import { SignedXml } from 'xml-crypto';
import { ConfigError } from '../../lib/errors.js';
import {
  createDevPki,
  devTimestampAuthority,
  issueCertificate,
  type DevPki,
  type IssuedCertificate,
} from '../../lib/package/dev-pki.js';
import type { AcceptedMark } from '../../lib/package/freshness.js';
import { algorithms, microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import { parseEocs } from '../../lib/package/parse.js';
import { rejectionReasonCodes, type RejectionReason } from '../../lib/package/reasons.js';
import { signPackage, type SignOptions } from '../../lib/package/sign.js';
import { createTrustPolicy, normalizeSerial } from '../../lib/package/trust.js';
import { verifyPackage, type VerifyOptions, type VerifyResult } from '../../lib/package/verify.js';
import { parseXml } from '../../lib/package/xml.js';
import { bytes, catalogueXml, createTestPki, ping1Xml, type TestPki } from '../helpers/packages.js';

const label = 'emfleet Verify Test';
const minute = 60_000;
const day = 24 * 60 * minute;
const codeSigningEku = '1.3.6.1.5.5.7.3.3';

/** Whole seconds: signPackage stamps signingTime without milliseconds. */
const wholeSeconds = (time: number): Date => new Date(Math.floor(time / 1000) * 1000);

/** Signs in the real shape, time-stamped by the test TSA. */
function signWith(
  xml: string,
  signer: IssuedCertificate,
  chain: readonly IssuedCertificate[],
  options: SignOptions = {},
): string {
  return signPackage(
    xml,
    {
      privateKeyPem: signer.privateKeyPem,
      certificatePem: signer.certificatePem,
      chainPems: chain.map((certificate) => certificate.certificatePem),
    },
    { timestampAuthority: devTimestampAuthority(fx.pki), ...options },
  );
}

/** Stamps signingTime the way signPackage does, for packages signed by other means. */
function stamp(xml: string, signingTime: Date): string {
  const root = '<EOCS version="1.0.4">';
  if (!xml.includes(root)) throw new Error('test data: no EOCS start tag to stamp');
  return xml.replace(
    root,
    `<EOCS version="1.0.4" signingTime="${signingTime.toISOString().replace(/\.\d{3}Z$/, 'Z')}">`,
  );
}

/**
 * A real enveloped signature made with xml-crypto's own (unrestricted) algorithm maps, so algorithms
 * outside emfleet's allow-list can be produced with valid cryptography.
 */
function signWithAlgorithms(
  xml: string,
  signer: IssuedCertificate,
  chain: readonly IssuedCertificate[],
  chosen: { signature: string; digest: string; canonicalization: string },
): string {
  const certificates = [signer, ...chain].map(
    (certificate) => `<X509Certificate>${certificate.certificate.raw.toString('base64')}</X509Certificate>`,
  );
  const signedXml = new SignedXml({
    privateKey: signer.privateKeyPem,
    signatureAlgorithm: chosen.signature,
    canonicalizationAlgorithm: chosen.canonicalization,
    getKeyInfoContent: () => `<X509Data>${certificates.join('')}</X509Data>`,
  });
  signedXml.addReference({
    xpath: '/*',
    isEmptyUri: true,
    transforms: [algorithms.envelopedSignature, chosen.canonicalization],
    digestAlgorithm: chosen.digest,
  });
  signedXml.computeSignature(xml, { location: { reference: '/*', action: 'append' } });
  return signedXml.getSignedXml();
}

function ids(result: VerifyResult): string[] {
  return result.ok ? result.package.mitigations.map((mitigation) => mitigation.id) : [];
}

/** Everything the cases need; made once (RSA key generation is slow). */
interface Fixtures {
  pki: TestPki;
  /** Same subject names as `pki`, other keys: a look-alike PKI. */
  lookAlike: DevPki;
  signedAt: Date;
  catalogue: string;
  ping1: string;
  wrongCn: IssuedCertificate;
  noEku: IssuedCertificate;
  otherEku: IssuedCertificate;
  expired: IssuedCertificate;
  notYetValid: IssuedCertificate;
  oldIntermediate: IssuedCertificate;
  signerUnderOldIntermediate: IssuedCertificate;
  serialSigner: IssuedCertificate;
}

let fx: Fixtures;

beforeAll(async () => {
  const now = Date.now();
  const pki = await createTestPki(label);
  const lookAlike = await createDevPki({ label });
  const underIntermediate = { issuer: pki.intermediate };
  const [wrongCn, noEku, otherEku, expired, notYetValid, oldIntermediate, serialSigner] = await Promise.all([
    issueCertificate({
      subjectCn: 'Contoso XML Signing',
      ...underIntermediate,
      extendedKeyUsages: [microsoftSignerEku],
    }),
    issueCertificate({ subjectCn: microsoftSignerSubjectCn, ...underIntermediate }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      ...underIntermediate,
      extendedKeyUsages: [codeSigningEku],
    }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      ...underIntermediate,
      extendedKeyUsages: [microsoftSignerEku],
      notBefore: new Date(now - 30 * day),
      notAfter: new Date(now - day),
    }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      ...underIntermediate,
      extendedKeyUsages: [microsoftSignerEku],
      notBefore: new Date(now + day),
      notAfter: new Date(now + 30 * day),
    }),
    issueCertificate({
      subjectCn: `${label} Old Intermediate CA`,
      ca: true,
      issuer: pki.root,
      notBefore: new Date(now - 30 * day),
      notAfter: new Date(now - day),
    }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      ...underIntermediate,
      extendedKeyUsages: [microsoftSignerEku],
      serialNumber: '7e57ab1e',
    }),
  ]);
  const signerUnderOldIntermediate = await issueCertificate({
    subjectCn: microsoftSignerSubjectCn,
    issuer: oldIntermediate,
    extendedKeyUsages: [microsoftSignerEku],
  });
  const signedAt = wholeSeconds(now - minute);
  fx = {
    pki,
    lookAlike,
    signedAt,
    catalogue: pki.sign(catalogueXml, { signingTime: signedAt, sequence: 42 }),
    ping1: pki.sign(ping1Xml, { signingTime: signedAt }),
    wrongCn,
    noEku,
    otherEku,
    expired,
    notYetValid,
    oldIntermediate,
    signerUnderOldIntermediate,
    serialSigner,
  };
});

function verify(text: string | Uint8Array, options: Partial<VerifyOptions> = {}): VerifyResult {
  return verifyPackage(typeof text === 'string' ? bytes(text) : text, { trust: fx.pki.trust, ...options });
}

describe('verifyPackage: round trip sign → verify', () => {
  it('the catalogue verifies, and the model is exactly what was signed', () => {
    const result = verify(fx.catalogue);
    expect(result.ok, JSON.stringify(result)).toBe(true);
    if (!result.ok) return;
    expect(result.package).toEqual({
      ...parseEocs(parseXml(catalogueXml)),
      signingTime: fx.signedAt,
      sequence: 42,
    });
    expect(
      result.package.mitigations.flatMap((mitigation) => mitigation.actions.map((action) => action.kind)),
    ).toEqual(['DoNothing', 'IisUrlRewrite', 'DisableAppPool', 'DisableService']);
  });

  it('sha256 is the SHA-256 of the exact bytes verified', () => {
    const input = bytes(fx.catalogue);
    const result = verifyPackage(input, { trust: fx.pki.trust });
    expect(result.sha256).toBe(createHash('sha256').update(input).digest('hex'));
    expect(result.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Different bytes with the same meaning (a trailing newline) verify too, with their own hash.
    const other = verify(`${fx.catalogue}\n`);
    expect(other.ok).toBe(true);
    expect(other.sha256).not.toBe(result.sha256);
    expect(other.sha256).toBe(
      createHash('sha256')
        .update(bytes(`${fx.catalogue}\n`))
        .digest('hex'),
    );
  });

  it('a rejection carries the SHA-256 of the bytes too', () => {
    const input = bytes(ping1Xml);
    const result = verifyPackage(input, { trust: fx.pki.trust });
    expect(result.ok).toBe(false);
    expect(result.sha256).toBe(createHash('sha256').update(input).digest('hex'));
  });

  it('reports the signer and the chain of 3, signer to anchor', () => {
    const result = verify(fx.catalogue);
    if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
    const signer = fx.pki.signer.certificate;
    expect(result.signer).toEqual({
      subject: `CN=${microsoftSignerSubjectCn}`,
      issuer: `CN=${label} Intermediate CA`,
      serialNumber: normalizeSerial(signer.serialNumber),
      sha256: signer.fingerprint256.replace(/:/g, '').toLowerCase(),
      validFrom: signer.validFromDate.toISOString(),
      validTo: signer.validToDate.toISOString(),
    });
    expect(result.chain).toEqual([
      `CN=${microsoftSignerSubjectCn}`,
      `CN=${label} Intermediate CA`,
      `CN=${label} Root CA`,
    ]);
  });

  it('PING1 verifies to exactly [PING1]', () => {
    const result = verify(fx.ping1);
    expect(ids(result)).toEqual(['PING1']);
    expect(result.ok && result.package.signingTime).toEqual(fx.signedAt);
    expect(result.ok && 'sequence' in result.package).toBe(false);
  });

  it('certificates are checked at signing time: the package still verifies long after', () => {
    const result = verify(fx.catalogue, { now: new Date(fx.signedAt.getTime() + 20 * 365 * day) });
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });

  it('a signing time up to 5 minutes ahead of the clock is accepted (clock skew)', () => {
    const result = verify(fx.catalogue, { now: new Date(fx.signedAt.getTime() - 4 * minute) });
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });

  it('the intermediate may be the anchor (chain of 2)', () => {
    const trust = createTrustPolicy({ anchorPems: [fx.pki.intermediate.certificatePem] });
    const result = verify(fx.catalogue, { trust });
    if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
    expect(result.chain).toEqual([`CN=${microsoftSignerSubjectCn}`, `CN=${label} Intermediate CA`]);
  });

  it('the root may also travel in KeyInfo', () => {
    const signed = signWith(ping1Xml, fx.pki.signer, [fx.pki.intermediate, fx.pki.root], {
      signingTime: fx.signedAt,
    });
    const result = verify(signed);
    expect(result.ok && result.chain).toHaveLength(3);
  });

  it('an anchor pinned by its SHA-256 fingerprint verifies', () => {
    const trust = createTrustPolicy({
      anchorPems: [fx.pki.root.certificatePem],
      anchorSha256: [fx.pki.root.certificate.fingerprint256],
    });
    expect(verify(fx.catalogue, { trust }).ok).toBe(true);
  });

  it('an anchor that matches no pin is a configuration error, not a trust decision', () => {
    expect(() =>
      createTrustPolicy({ anchorPems: [fx.pki.root.certificatePem], anchorSha256: ['00'.repeat(32)] }),
    ).toThrow(ConfigError);
    expect(() => createTrustPolicy({ anchorPems: [] })).toThrow(ConfigError);
  });

  it("an organization's own feed: its subject and EKU, configured", () => {
    const signed = signWith(ping1Xml, fx.wrongCn, [fx.pki.intermediate], { signingTime: fx.signedAt });
    const trust = createTrustPolicy({
      anchorPems: [fx.pki.root.certificatePem],
      signerSubjectCn: 'Contoso XML Signing',
    });
    const result = verify(signed, { trust });
    expect(result.ok && result.signer.subject).toBe('CN=Contoso XML Signing');
  });

  it('allowed algorithms other than the default verify: RSA-SHA512, SHA-512, exclusive C14N', () => {
    const signed = signWithAlgorithms(stamp(ping1Xml, fx.signedAt), fx.pki.signer, [fx.pki.intermediate], {
      signature: algorithms.signature.rsaSha512,
      digest: algorithms.digest.sha512,
      canonicalization: algorithms.canonicalization.excC14n,
    });
    expect(signed).toContain(algorithms.signature.rsaSha512);
    const result = verify(signed);
    expect(ids(result), JSON.stringify(result)).toEqual(['PING1']);
  });

  it('a revoked-serials list that does not name the chain changes nothing', () => {
    const trust = createTrustPolicy({
      anchorPems: [fx.pki.root.certificatePem],
      revokedSerials: ['01', 'DEADBEEF'],
    });
    expect(verify(fx.catalogue, { trust }).ok).toBe(true);
  });

  it.each<{ name: string; lastAccepted: () => AcceptedMark }>([
    { name: 'same sequence (re-polling the same package)', lastAccepted: () => ({ sequence: 42 }) },
    { name: 'older sequence', lastAccepted: () => ({ sequence: 41 }) },
    {
      name: 'older sequence, newer signing time',
      lastAccepted: () => ({ sequence: 41, signingTime: new Date(fx.signedAt.getTime() + day) }),
    },
    { name: 'same signing time', lastAccepted: () => ({ signingTime: fx.signedAt }) },
    {
      name: 'older signing time',
      lastAccepted: () => ({ signingTime: new Date(fx.signedAt.getTime() - 1000) }),
    },
  ])('not a rollback: $name', ({ lastAccepted }) => {
    const result = verify(fx.catalogue, { lastAccepted: lastAccepted() });
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });
});

interface ReasonCase {
  readonly name: string;
  readonly reason: RejectionReason;
  /** Text the detail must contain (case-insensitive). */
  readonly detail: string;
  readonly run: () => VerifyResult;
}

/** Every case is a real input (signed by a real key where a signature matters), not a mock. */
const cases: readonly ReasonCase[] = [
  {
    name: 'not XML at all',
    reason: 'Malformed',
    detail: 'well-formed',
    run: () => verify('This is not a package.'),
  },
  {
    name: 'a root other than EOCS',
    reason: 'Malformed',
    detail: 'EOCS',
    run: () => verify('<Package version="1.0.4"/>'),
  },
  {
    name: 'time stamp more than 5 minutes ahead of the clock',
    reason: 'BadTimestamp',
    detail: 'future',
    run: () => verify(fx.catalogue, { now: new Date(fx.signedAt.getTime() - 6 * minute) }),
  },
  {
    name: 'over 1 MiB (a signed package padded with whitespace)',
    reason: 'TooLarge',
    detail: 'bytes',
    run: () => verify(`${fx.catalogue}${' '.repeat(1024 * 1024)}`),
  },
  {
    name: 'more than 10 certificates in KeyInfo',
    reason: 'TooLarge',
    detail: 'certificates',
    run: () =>
      verify(
        signWith(
          ping1Xml,
          fx.pki.signer,
          Array.from({ length: 10 }, () => fx.pki.intermediate),
          { signingTime: fx.signedAt },
        ),
      ),
  },
  {
    name: 'an unsigned package',
    reason: 'BadSignature',
    detail: 'not signed',
    run: () => verify(catalogueXml),
  },
  {
    name: 'a signed package whose content was changed',
    reason: 'BadSignature',
    detail: 'digest',
    run: () => verify(fx.catalogue.replace('MSExchangeUM', 'MSExchangeIS')),
  },
  {
    name: 'a real RSA-SHA1 / SHA-1 signature',
    reason: 'UnsupportedAlgorithm',
    detail: 'sha1',
    run: () =>
      verify(
        signWithAlgorithms(stamp(ping1Xml, fx.signedAt), fx.pki.signer, [fx.pki.intermediate], {
          signature: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
          digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
          canonicalization: algorithms.canonicalization.c14n,
        }),
      ),
  },
  {
    name: 'a real signature with comment-preserving C14N',
    reason: 'UnsupportedAlgorithm',
    detail: 'WithComments',
    run: () =>
      verify(
        signWithAlgorithms(stamp(ping1Xml, fx.signedAt), fx.pki.signer, [fx.pki.intermediate], {
          signature: algorithms.signature.rsaSha256,
          digest: algorithms.digest.sha256,
          canonicalization: 'http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments',
        }),
      ),
  },
  {
    name: 'signed by a look-alike PKI (same names, other keys)',
    reason: 'UntrustedChain',
    detail: 'no configured trust anchor',
    run: () =>
      verify(
        signWith(ping1Xml, fx.lookAlike.signer, [fx.lookAlike.intermediate], { signingTime: fx.signedAt }),
      ),
  },
  {
    name: 'the configured anchor is another root',
    reason: 'UntrustedChain',
    detail: 'Intermediate CA',
    run: () =>
      verify(fx.catalogue, { trust: createTrustPolicy({ anchorPems: [fx.lookAlike.root.certificatePem] }) }),
  },
  {
    name: 'the intermediate is missing from KeyInfo',
    reason: 'UntrustedChain',
    detail: microsoftSignerSubjectCn,
    run: () => verify(signWith(ping1Xml, fx.pki.signer, [], { signingTime: fx.signedAt })),
  },
  {
    name: 'signer with another subject CN',
    reason: 'WrongSigner',
    detail: 'Contoso XML Signing',
    run: () => verify(signWith(ping1Xml, fx.wrongCn, [fx.pki.intermediate], { signingTime: fx.signedAt })),
  },
  {
    name: 'signer without any extended key usage',
    reason: 'WrongSigner',
    detail: microsoftSignerEku,
    run: () => verify(signWith(ping1Xml, fx.noEku, [fx.pki.intermediate], { signingTime: fx.signedAt })),
  },
  {
    name: 'signer with the code-signing EKU instead',
    reason: 'WrongSigner',
    detail: codeSigningEku,
    run: () => verify(signWith(ping1Xml, fx.otherEku, [fx.pki.intermediate], { signingTime: fx.signedAt })),
  },
  {
    name: 'signer expired before the signing time',
    reason: 'Expired',
    detail: microsoftSignerSubjectCn,
    run: () => verify(signWith(ping1Xml, fx.expired, [fx.pki.intermediate], { signingTime: fx.signedAt })),
  },
  {
    name: 'signer not yet valid at the signing time',
    reason: 'Expired',
    detail: microsoftSignerSubjectCn,
    run: () =>
      verify(signWith(ping1Xml, fx.notYetValid, [fx.pki.intermediate], { signingTime: fx.signedAt })),
  },
  {
    name: 'intermediate expired before the signing time',
    reason: 'Expired',
    detail: 'Old Intermediate CA',
    run: () =>
      verify(
        signWith(ping1Xml, fx.signerUnderOldIntermediate, [fx.oldIntermediate], { signingTime: fx.signedAt }),
      ),
  },
  {
    name: 'signer serial on the deny-list (written with colons, leading zeros, lower case)',
    reason: 'Revoked',
    detail: '7E57AB1E',
    run: () =>
      verify(signWith(ping1Xml, fx.serialSigner, [fx.pki.intermediate], { signingTime: fx.signedAt }), {
        trust: createTrustPolicy({
          anchorPems: [fx.pki.root.certificatePem],
          revokedSerials: ['00:7e:57:ab:1e'],
        }),
      }),
  },
  {
    name: 'intermediate serial on the deny-list',
    reason: 'Revoked',
    detail: 'Intermediate CA',
    run: () =>
      verify(fx.catalogue, {
        trust: createTrustPolicy({
          anchorPems: [fx.pki.root.certificatePem],
          revokedSerials: [fx.pki.intermediate.certificate.serialNumber],
        }),
      }),
  },
  {
    name: 'rollback by sequence (42 after 43)',
    reason: 'Rollback',
    detail: 'sequence 43',
    run: () => verify(fx.catalogue, { lastAccepted: { sequence: 43 } }),
  },
  {
    name: 'rollback by sequence even with a newer signing time',
    reason: 'Rollback',
    detail: 'sequence 43',
    run: () => verify(fx.catalogue, { lastAccepted: { sequence: 43, signingTime: new Date(0) } }),
  },
  {
    name: 'rollback by signing time (no sequence)',
    reason: 'Rollback',
    detail: 'signed',
    run: () => verify(fx.ping1, { lastAccepted: { signingTime: new Date(fx.signedAt.getTime() + 1000) } }),
  },
];

describe('verifyPackage: every reason code from a real case', () => {
  it.each(cases)('$reason: $name', ({ reason, detail, run }) => {
    const result = run();
    expect(result.ok, JSON.stringify(result)).toBe(false);
    if (result.ok) return;
    expect(result.reason, result.detail).toBe(reason);
    expect(result.detail.toLowerCase()).toContain(detail.toLowerCase());
  });

  it('the SHA-1 case is cryptographically valid: only the allow-list rejects it', () => {
    const signed = signWithAlgorithms(stamp(ping1Xml, fx.signedAt), fx.pki.signer, [fx.pki.intermediate], {
      signature: 'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
      digest: 'http://www.w3.org/2000/09/xmldsig#sha1',
      canonicalization: algorithms.canonicalization.c14n,
    });
    const unrestricted = new SignedXml({ publicCert: fx.pki.signer.certificatePem });
    const signature = /<Signature[\s\S]*<\/Signature>/.exec(signed)?.[0];
    expect(signature).toBeDefined();
    unrestricted.loadSignature(signature!);
    expect(unrestricted.checkSignature(signed)).toBe(true);
  });

  it('every rejection reason code is produced by some case in this file', () => {
    const seen = new Set<string>();
    for (const reasonCase of cases) {
      const result = reasonCase.run();
      if (!result.ok) seen.add(result.reason);
    }
    const missing = rejectionReasonCodes.filter((code) => !seen.has(code));
    expect(missing, `reason codes without a real case: ${missing.join(', ')}`).toEqual([]);
    expect(rejectionReasonCodes.length).toBeGreaterThanOrEqual(9);
  });
});
