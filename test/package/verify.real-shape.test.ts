import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { C14nCanonicalization } from 'xml-crypto';
import { findAncestorNsForElement } from 'xml-crypto/lib/utils.js';
import {
  createDevPki,
  devTimestampAuthority,
  issueCertificate,
  type DevPki,
  type IssuedCertificate,
} from '../../lib/package/dev-pki.js';
import { DSIG_NS, microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import { createTimestampToken, timeStampingEku } from '../../lib/package/timestamp.js';
import { signPackage } from '../../lib/package/sign.js';
import { createTrustPolicy, type TrustPolicy } from '../../lib/package/trust.js';
import { verifyPackage, type VerifyResult } from '../../lib/package/verify.js';
import { parseXml } from '../../lib/package/xml.js';
import { parseEocs } from '../../lib/package/parse.js';
import { bytes, catalogueXml, createTestPki, ping1Xml, type TestPki } from '../helpers/packages.js';

const fixtures = new URL('./fixtures/microsoft/', import.meta.url);
const microsoftPackage = readFileSync(new URL('getexchangemitigations-2021-09-29.xml', fixtures));
const microsoftRoot2011 = readFileSync(
  new URL('MicrosoftRootCertificateAuthority2011.pem', fixtures),
  'utf8',
);
const microsoftRoot2010 = readFileSync(
  new URL('MicrosoftRootCertificateAuthority2010.pem', fixtures),
  'utf8',
);
const microsoftTrust = createTrustPolicy({
  anchorPems: [microsoftRoot2011],
  anchorSha256: ['847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61'],
  timestampAnchorPems: [microsoftRoot2010],
  timestampAnchorSha256: [
    'DF:54:5B:F9:19:A2:43:9C:36:98:3B:54:CD:FC:90:3D:FA:4F:37:D3:99:6D:8D:84:B4:C3:1E:EC:6F:3C:16:3E',
  ],
});

function reasonOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.reason;
}

function failure(result: VerifyResult): string {
  return result.ok ? '' : `${result.reason}: ${result.detail}`;
}

function tokenOf(xml: string): Buffer {
  return Buffer.from(/<CounterSignature[^>]*>([^<]+)<\/CounterSignature>/.exec(xml)![1]!, 'base64');
}

function withToken(xml: string, token: Uint8Array): string {
  return xml.replace(
    /(<CounterSignature[^>]*>)[^<]+(<\/CounterSignature>)/,
    `$1${Buffer.from(token).toString('base64')}$2`,
  );
}

function signatureValueOf(xml: string): Buffer {
  return Buffer.from(/<SignatureValue>([^<]+)<\/SignatureValue>/.exec(xml)![1]!, 'base64');
}

describe("Microsoft's genuine package (GetExchangeMitigations, 2021-09-29)", () => {
  it('verifies with its real roots: signer chain expired long ago, dated by its RFC 3161 time stamp', () => {
    const result = verifyPackage(microsoftPackage, { trust: microsoftTrust });
    expect(result.ok, failure(result)).toBe(true);
    if (!result.ok) return;
    expect(result.package.mitigations.map((mitigation) => mitigation.id)).toEqual(['PING1']);
    expect(result.package.signingTime?.toISOString()).toBe('2021-09-15T16:42:08.621Z');
    expect(result.signer.subject).toContain('CN=Microsoft Exchange XML Signing');
    expect(result.chain.map((subject) => /CN=([^,]+)/.exec(subject)![1])).toEqual([
      'Microsoft Exchange XML Signing',
      'Microsoft Code Signing PCA 2011',
      'Microsoft Root Certificate Authority 2011',
    ]);
    expect(result.timestamp).toMatchObject({ status: 'verified', policy: '1.3.6.1.4.1.601.10.3.1' });
    expect(
      result.timestamp.status === 'verified' &&
        result.timestamp.chain.map((subject) => /CN=([^,]+)/.exec(subject)![1]),
    ).toEqual([
      'Microsoft Time-Stamp Service',
      'Microsoft Time-Stamp PCA 2010',
      'Microsoft Root Certificate Authority 2010',
    ]);
  });

  it('is BER with indefinite lengths and a non-X.509 certificate choice ([1]) in its token', () => {
    const token = tokenOf(microsoftPackage.toString('utf8'));
    expect([...token.subarray(0, 2)]).toEqual([0x30, 0x80]);
    expect(token.includes(Buffer.from([0xa1, 0x82]))).toBe(true);
  });

  it('without a timestamp anchor its certificates are checked now: Expired', () => {
    const result = verifyPackage(microsoftPackage, {
      trust: createTrustPolicy({ anchorPems: [microsoftRoot2011] }),
    });
    expect(reasonOf(result)).toBe('Expired');
    expect(result.ok ? undefined : result.detail).toContain('Microsoft Exchange XML Signing');
  });

  it('with the signing root configured as the timestamp anchor (the TSA chains elsewhere): BadTimestamp', () => {
    const result = verifyPackage(microsoftPackage, {
      trust: createTrustPolicy({ anchorPems: [microsoftRoot2011], timestampAnchorPems: [microsoftRoot2011] }),
    });
    expect(reasonOf(result)).toBe('BadTimestamp');
  });

  it('with its CRLF line ends turned into LF it still verifies', () => {
    const lf = microsoftPackage.toString('utf8').replace(/\r\n/g, '\n');
    expect(lf.length).toBeLessThan(microsoftPackage.length);
    expect(reasonOf(verifyPackage(bytes(lf), { trust: microsoftTrust }))).toBe('ok');
  });

  it('one changed byte in the token is BadTimestamp', () => {
    const text = microsoftPackage.toString('utf8');
    const token = tokenOf(text);
    token[token.length - 40]! ^= 0x01;
    expect(reasonOf(verifyPackage(bytes(withToken(text, token)), { trust: microsoftTrust }))).toBe(
      'BadTimestamp',
    );
  });

  it('a changed mitigation is BadSignature, even with a valid time stamp', () => {
    const text = microsoftPackage
      .toString('utf8')
      .replace('<Value>DoNothing</Value>', '<Value>DoSomething</Value>');
    expect(reasonOf(verifyPackage(bytes(text), { trust: microsoftTrust }))).toBe('BadSignature');
  });
});

interface Fixtures {
  pki: TestPki;
  /** A chain whose every certificate expired years ago, and a TSA that was valid then. */
  old: DevPki;
  oldTrust: TrustPolicy;
  tsaWithoutEku: IssuedCertificate;
  otherTsa: DevPki;
  ecSigner: IssuedCertificate;
  unrelated: IssuedCertificate;
}
let fx: Fixtures;

beforeAll(async () => {
  const pki = await createTestPki('emfleet Real Shape');
  const old = await createDevPki({
    label: 'emfleet Old',
    notBefore: new Date('2021-01-01T00:00:00Z'),
    notAfter: new Date('2022-01-01T00:00:00Z'),
  });
  const [tsaWithoutEku, otherTsa, ecSigner, unrelated] = await Promise.all([
    issueCertificate({ subjectCn: 'emfleet Real Shape Time-Stamp Service', issuer: pki.timestampRoot }),
    createDevPki({ label: 'emfleet Other TSA' }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      issuer: pki.intermediate,
      extendedKeyUsages: [microsoftSignerEku],
      keyAlgorithm: 'ECDSA',
    }),
    issueCertificate({ subjectCn: 'Unrelated Leaf' }),
  ]);
  fx = {
    pki,
    old,
    oldTrust: createTrustPolicy({
      anchorPems: [old.root.certificatePem],
      timestampAnchorPems: [old.timestampRoot.certificatePem],
    }),
    tsaWithoutEku,
    otherTsa,
    ecSigner,
    unrelated,
  };
});

function verify(
  xml: string,
  trust: TrustPolicy = fx.pki.trust,
  options: { lastAccepted?: { signingTime: Date } } = {},
): VerifyResult {
  return verifyPackage(bytes(xml), { trust, ...options });
}

describe('packages in the real shape from emfleet package sign', () => {
  it('are laid out as Microsoft lays them out', () => {
    const signed = fx.pki.sign(ping1Xml);
    expect(signed.startsWith('<?xml version="1.0" encoding="utf-8"?>\r\n<EOCS version="1.0.4">\r\n')).toBe(
      true,
    );
    expect(signed.replace(/\r\n/g, '')).not.toContain('\n');
    expect(signed).toMatch(
      /<\/Config>\r\n<Signature xmlns="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#"><SignedInfo><CanonicalizationMethod Algorithm="http:\/\/www\.w3\.org\/TR\/2001\/REC-xml-c14n-20010315" \/>/,
    );
    expect(signed).toMatch(
      /<\/SignatureValue><KeyInfo><KeyValue><RSAKeyValue><Modulus>[^<]+<\/Modulus><Exponent>AQAB<\/Exponent><\/RSAKeyValue><\/KeyValue><X509Data>(<X509Certificate>[^<]+<\/X509Certificate>){3}<\/X509Data><\/KeyInfo>/,
    );
    expect(signed).toMatch(
      /<\/KeyInfo><Object Id="ts-countersig"><X509Data><X509Certificate>[^<]+<\/X509Certificate><\/X509Data><CounterSignature ts-format="cms-timestamp-message" xmlns="http:\/\/schemas\.microsoft\.com\/xmldsig\/timestamp\/2003">[^<]+<\/CounterSignature><\/Object><\/Signature><\/EOCS>$/,
    );
    expect(signed).not.toContain('signingTime');
    expect([...tokenOf(signed).subarray(0, 2)]).toEqual([0x30, 0x80]);
  });

  it('verify, with the time stamp as the signing time (milliseconds kept)', () => {
    const at = new Date(Date.now() - 90_123);
    const result = verify(fx.pki.sign(catalogueXml, { signingTime: at }));
    expect(result.ok, failure(result)).toBe(true);
    expect(result.ok && result.package.signingTime?.toISOString()).toBe(at.toISOString());
    expect(result.ok && result.timestamp.status).toBe('verified');
  });

  it('a signer whose whole chain expired years ago verifies: the time stamp falls inside its validity', () => {
    const signed = signPackage(
      catalogueXml,
      {
        privateKeyPem: fx.old.signer.privateKeyPem,
        certificatePem: fx.old.signer.certificatePem,
        chainPems: [fx.old.intermediate.certificatePem, fx.old.root.certificatePem],
      },
      {
        timestampAuthority: devTimestampAuthority(fx.old),
        signingTime: new Date('2021-06-01T12:00:00.250Z'),
      },
    );
    const result = verify(signed, fx.oldTrust);
    expect(result.ok, failure(result)).toBe(true);
    expect(result.ok && result.package.signingTime?.toISOString()).toBe('2021-06-01T12:00:00.250Z');

    const withoutTimestamp = signed.replace(/<Object Id="ts-countersig">.*<\/Object>/, '');
    expect(withoutTimestamp).not.toContain('CounterSignature');
    expect(reasonOf(verify(withoutTimestamp, fx.oldTrust))).toBe('Expired');
  });

  it('a time stamp outside the signer validity is Expired', () => {
    const signed = signPackage(
      ping1Xml,
      {
        privateKeyPem: fx.old.signer.privateKeyPem,
        certificatePem: fx.old.signer.certificatePem,
        chainPems: [fx.old.intermediate.certificatePem],
      },
      { timestampAuthority: devTimestampAuthority(fx.pki), signingTime: new Date(Date.now() - 60_000) },
    );
    expect(
      reasonOf(
        verify(
          signed,
          createTrustPolicy({
            anchorPems: [fx.old.root.certificatePem],
            timestampAnchorPems: [fx.pki.timestampRoot.certificatePem],
          }),
        ),
      ),
    ).toBe('Expired');
  });

  it.each<{ name: string; mutate: (signed: string) => string }>([
    {
      name: 'token bytes altered (its signature)',
      mutate: (signed) => {
        const token = tokenOf(signed);
        token[token.length - 20]! ^= 0x40;
        return withToken(signed, token);
      },
    },
    { name: 'token truncated', mutate: (signed) => withToken(signed, tokenOf(signed).subarray(0, 200)) },
    {
      name: 'token that is not ASN.1',
      mutate: (signed) => withToken(signed, Buffer.from('not a token at all')),
    },
    {
      name: 'imprint of another value (a genuine token over other bytes)',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(
            Buffer.from('another SignatureValue'),
            devTimestampAuthority(fx.pki),
            new Date(),
          ),
        ),
    },
    {
      name: 'a SHA-1 imprint (of the right SignatureValue)',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(signatureValueOf(signed), devTimestampAuthority(fx.pki), new Date(), {
            imprintHash: 'sha1',
          }),
        ),
    },
    {
      name: 'a token whose signed signingCertificateV2 names another certificate than its signer',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(signatureValueOf(signed), devTimestampAuthority(fx.pki), new Date(), {
            namedCertificatePem: fx.otherTsa.timestampAuthority.certificatePem,
          }),
        ),
    },
    {
      name: 'TSA without the timestamping EKU',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(
            signatureValueOf(signed),
            {
              privateKeyPem: fx.tsaWithoutEku.privateKeyPem,
              certificatePem: fx.tsaWithoutEku.certificatePem,
            },
            new Date(),
          ),
        ),
    },
    {
      name: 'TSA chaining to another root',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(signatureValueOf(signed), devTimestampAuthority(fx.otherTsa), new Date()),
        ),
    },
    {
      name: 'time stamp more than 5 minutes in the future',
      mutate: (signed) =>
        withToken(
          signed,
          createTimestampToken(
            signatureValueOf(signed),
            devTimestampAuthority(fx.pki),
            new Date(Date.now() + 10 * 60_000),
          ),
        ),
    },
    {
      name: 'another ts-format',
      mutate: (signed) => signed.replace('ts-format="cms-timestamp-message"', 'ts-format="authenticode"'),
    },
    {
      name: 'two CounterSignatures',
      mutate: (signed) => {
        const object = /<Object Id="ts-countersig">.*<\/Object>/.exec(signed)![0];
        return signed.replace(object, object + object.replace('ts-countersig', 'ts-countersig-2'));
      },
    },
  ])('$name: BadTimestamp', ({ mutate }) => {
    const signed = fx.pki.sign(ping1Xml);
    expect(reasonOf(verify(signed))).toBe('ok');
    const result = verify(mutate(signed));
    expect(reasonOf(result), failure(result)).toBe('BadTimestamp');
  });

  it("a SHA-512 imprint verifies: the hash is the token's", () => {
    const signed = fx.pki.sign(ping1Xml);
    const sha512 = withToken(
      signed,
      createTimestampToken(
        signatureValueOf(signed),
        devTimestampAuthority(fx.pki),
        new Date(Date.now() - 1000),
        { imprintHash: 'sha512' },
      ),
    );
    expect(reasonOf(verify(sha512))).toBe('ok');
  });

  it('a time stamp is not checked without a timestamp anchor (certificates then checked now)', () => {
    const result = verify(
      fx.pki.sign(ping1Xml),
      createTrustPolicy({ anchorPems: [fx.pki.root.certificatePem] }),
    );
    expect(result.ok, failure(result)).toBe(true);
    expect(result.ok && result.timestamp.status).toBe('unchecked');
    expect(result.ok && result.package.signingTime).toBeUndefined();
  });

  it('an Object holding a forged Config: verifies, and its content is never in the result', () => {
    const signed = fx.pki.sign(ping1Xml);
    const forged = signed.replace(
      '</Signature>',
      '<Object Id="extra"><Config xmlns="" id="EVIL" desc="forged"><ActionList><Action type="DisableService" scope="Server" desc="x"><Value>MSExchangeTransport</Value></Action></ActionList></Config></Object></Signature>',
    );
    const result = verify(forged);
    expect(result.ok, failure(result)).toBe(true);
    expect(JSON.stringify(result)).not.toContain('EVIL');
    expect(JSON.stringify(result)).not.toContain('MSExchangeTransport');
    expect(result.ok && result.package.mitigations.map((mitigation) => mitigation.id)).toEqual(['PING1']);
  });

  it('Objects are capped in number', () => {
    const signed = fx.pki.sign(ping1Xml);
    const many = signed.replace('</Signature>', `${'<Object/>'.repeat(4)}</Signature>`);
    expect(reasonOf(verify(many))).toBe('TooLarge');
  });

  it('anything but Objects after KeyInfo is BadSignature', () => {
    const signed = fx.pki.sign(ping1Xml);
    expect(reasonOf(verify(signed.replace('</Signature>', '<Manifest/></Signature>')))).toBe('BadSignature');
    expect(reasonOf(verify(signed.replace('<KeyInfo>', '<Object/><KeyInfo>')))).toBe('BadSignature');
  });

  it('a KeyValue of another key is BadSignature', () => {
    const signed = fx.pki.sign(ping1Xml);
    const otherModulus = fx.unrelated.certificate.publicKey.export({ format: 'jwk' }).n!;
    const swapped = signed.replace(
      /<Modulus>[^<]+<\/Modulus>/,
      `<Modulus>${Buffer.from(otherModulus, 'base64url').toString('base64')}</Modulus>`,
    );
    const result = verify(swapped);
    expect(reasonOf(result)).toBe('BadSignature');
    expect(failure(result)).toContain('KeyValue');
  });

  it('KeyInfo certificates in any order, with the root and an unrelated certificate: the signer is found by its key', () => {
    const signed = fx.pki.sign(catalogueXml);
    const certificates = [...signed.matchAll(/<X509Certificate>([^<]+)<\/X509Certificate>/g)]
      .slice(0, 3)
      .map((match) => match[0]);
    const shuffled = [
      certificates[2],
      `<X509Certificate>${fx.unrelated.certificate.raw.toString('base64')}</X509Certificate>`,
      certificates[1],
      certificates[0],
    ].join('');
    const reordered = signed.replace(certificates.join(''), shuffled);
    expect(reordered).not.toBe(signed);
    const result = verify(reordered);
    expect(result.ok, failure(result)).toBe(true);
    expect(result.ok && result.chain).toHaveLength(3);
  });

  it('a rollback by timestamp: a package time-stamped before the last accepted one is Rollback', () => {
    const earlier = new Date(Date.now() - 20 * 60_000);
    const later = new Date(Date.now() - 10 * 60_000);
    const older = fx.pki.sign(catalogueXml, { signingTime: earlier });
    expect(reasonOf(verify(older, fx.pki.trust, { lastAccepted: { signingTime: later } }))).toBe('Rollback');
    expect(
      reasonOf(
        verify(fx.pki.sign(catalogueXml, { signingTime: later }), fx.pki.trust, {
          lastAccepted: { signingTime: earlier },
        }),
      ),
    ).toBe('ok');
  });

  it('a rollback by timestamp cannot be dressed up: a signingTime attribute the signer writes is not trusted', () => {
    const older = fx.pki.sign(
      catalogueXml.replace(
        '<EOCS version="1.0.4">',
        '<EOCS version="1.0.4" signingTime="2099-01-01T00:00:00Z">',
      ),
      { signingTime: new Date(Date.now() - 20 * 60_000) },
    );
    const result = verify(older, fx.pki.trust, {
      lastAccepted: { signingTime: new Date(Date.now() - 10 * 60_000) },
    });
    expect(reasonOf(result)).toBe('Rollback');
  });

  it('CRLF converted to LF still verifies', () => {
    const signed = fx.pki.sign(catalogueXml);
    expect(reasonOf(verify(signed.replace(/\r\n/g, '\n')))).toBe('ok');
  });

  it('an EC certificate never verifies under the RSA SignatureMethod (the key type must match)', () => {
    const signed = fx.pki.sign(ping1Xml).replace(/<KeyValue>.*<\/KeyValue>/, '');
    const document = parseXml(signed);
    const signedInfo = document.getElementsByTagNameNS(DSIG_NS, 'SignedInfo').item(0)!;
    const canonical = String(
      new C14nCanonicalization().process(signedInfo as never, {
        ancestorNamespaces: findAncestorNsForElement(signedInfo as never),
      }),
    );
    const ecdsa = cryptoSign(
      'sha256',
      Buffer.from(canonical, 'utf8'),
      createPrivateKey(fx.ecSigner.privateKeyPem),
    ).toString('base64');
    const signerCertificate = /<X509Certificate>[^<]+<\/X509Certificate>/.exec(signed)![0];
    const forged = signed
      .replace(/<SignatureValue>[^<]+<\/SignatureValue>/, `<SignatureValue>${ecdsa}</SignatureValue>`)
      .replace(
        signerCertificate,
        `<X509Certificate>${fx.ecSigner.certificate.raw.toString('base64')}</X509Certificate>`,
      )
      .replace(/<Object Id="ts-countersig">.*<\/Object>/, '');
    const result = verify(forged);
    expect(reasonOf(result)).toBe('BadSignature');
    expect(failure(result)).toContain('needs an RSA key');
  });

  it.each([
    { name: 'in CDATA', wrap: (rule: string) => `<![CDATA[${rule}]]>` },
    {
      name: 'escaped',
      wrap: (rule: string) => rule.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'),
    },
    {
      name: 'escaped, with other attribute order and quotes',
      wrap: (rule: string) =>
        rule
          .replace(
            '<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true">',
            "<rule stopProcessing='true' name='EEMS EM1 - Autodiscover Rule'>",
          )
          .replace(/</g, '&lt;'),
    },
  ])('an IisUrlRewrite rule given as text ($name) gives the same model as the element', ({ wrap }) => {
    const rule = /<rule [\s\S]*?<\/rule>/.exec(catalogueXml)![0];
    const asText = catalogueXml.replace(rule, wrap(rule));
    expect(asText).not.toBe(catalogueXml);
    const element = verify(fx.pki.sign(catalogueXml));
    const text = verify(fx.pki.sign(asText));
    expect(text.ok, failure(text)).toBe(true);
    expect(text.ok && text.package.mitigations).toEqual(element.ok && element.package.mitigations);
  });

  it.each([
    { name: 'text that is not XML', value: '&lt;rule name="x"' },
    { name: 'text holding another element', value: '&lt;action type="AbortRequest"/&gt;' },
    { name: 'text with a DOCTYPE', value: '&lt;!DOCTYPE rule&gt;&lt;rule name="x"/&gt;' },
    { name: 'text declaring a namespace', value: '&lt;rule xmlns:x="urn:x" name="x"/&gt;' },
    { name: 'text beside a rule element', value: 'junk<rule name="x"/>' },
  ])('an IisUrlRewrite Value with $name is Malformed', ({ value }) => {
    const xml = catalogueXml.replace(
      /<Value site="Default Web Site">[\s\S]*?<\/rule>\s*<\/Value>/,
      `<Value site="Default Web Site">${value}</Value>`,
    );
    expect(xml).not.toBe(catalogueXml);
    // The signer refuses such a document, as it refuses anything the verifier would.
    expect(() => fx.pki.sign(xml)).toThrow(/Malformed|not a valid EOCS document/);
    expect(() => parseEocs(parseXml(xml))).toThrow(
      expect.objectContaining({ reason: 'Malformed', detail: expect.stringContaining('Value') }),
    );
  });

  it('the dev TSA certificate carries the timestamping EKU, critical', () => {
    expect(fx.pki.timestampAuthority.certificate.keyUsage).toEqual([timeStampingEku]);
  });
});
