/**
 * Adversarial inputs against verifyPackage. Each attack starts from a real package signed by a real
 * key and changes it as text, the way an attacker on the wire (or in the OCS path) would; each must be
 * rejected with its specific reason code, and no forged mitigation may ever reach a verified model.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { DOMParser } from '@xmldom/xmldom';
import { C14nCanonicalization } from 'xml-crypto';
import {
  createDevPki,
  devTimestampAuthority,
  issueCertificate,
  type DevPki,
  type IssuedCertificate,
} from '../../lib/package/dev-pki.js';
import { DSIG_NS, microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import type { EocsPackage } from '../../lib/package/model.js';
import type { RejectionReason } from '../../lib/package/reasons.js';
import { signPackage } from '../../lib/package/sign.js';
import type { TimestampAuthority } from '../../lib/package/timestamp.js';
import { createTrustPolicy, type TrustPolicy } from '../../lib/package/trust.js';
import { verifyPackage, type VerifyResult } from '../../lib/package/verify.js';
import { bytes, catalogueXml, createTestPki, ping1Xml, type TestPki } from '../helpers/packages.js';

const minute = 60_000;
const day = 24 * 60 * minute;

/** A forged mitigation that would stop IIS on every server. */
const evilConfig =
  '<Config id="EVIL" desc="Forged"><ActionList><Action type="DisableService" scope="Server" desc="Stop IIS"><Value>W3SVC</Value></Action></ActionList></Config>';

/** String replace that fails loudly when the text is not there, so an attack cannot silently become a no-op. */
function mutate(
  text: string,
  from: string | RegExp,
  to: string | ((match: string, ...groups: string[]) => string),
): string {
  const changed = typeof to === 'string' ? text.replace(from, to) : text.replace(from, to);
  if (changed === text) throw new Error(`test data: ${String(from)} not found`);
  return changed;
}

function between(text: string, pattern: RegExp): string {
  const match = pattern.exec(text);
  if (!match) throw new Error(`test data: ${String(pattern)} not found`);
  return match[0];
}

const signatureOf = (signed: string): string => between(signed, /<Signature[\s\S]*<\/Signature>/);
const keyInfoOf = (signed: string): string => between(signed, /<KeyInfo>[\s\S]*<\/KeyInfo>/);
const withoutDeclaration = (text: string): string => mutate(text, /^<\?xml[^>]*\?>\s*/, '');

function verifiedIds(result: VerifyResult): string[] {
  return result.ok ? result.package.mitigations.map((mitigation) => mitigation.id) : [];
}

/** The test TSA time-stamps whatever it is given, as a public TSA would an attacker's signature. */
let timestampAuthority: TimestampAuthority;

function signWith(
  xml: string,
  signer: IssuedCertificate,
  chain: readonly IssuedCertificate[],
  signingTime: Date,
): string {
  return signPackage(
    xml,
    {
      privateKeyPem: signer.privateKeyPem,
      certificatePem: signer.certificatePem,
      chainPems: chain.map((certificate) => certificate.certificatePem),
    },
    { signingTime, timestampAuthority },
  );
}

interface Fixtures {
  pki: TestPki;
  /** An attacker's own PKI with the same names as the real one. */
  attacker: DevPki;
  signedAt: Date;
  catalogue: string;
  ping1: string;
  /** The catalogue plus EVIL, signed by the attacker. */
  evilByAttacker: string;
  selfSigned: IssuedCertificate;
  wrongCn: IssuedCertificate;
  lowerCaseCn: IssuedCertificate;
  multiValuedCn: IssuedCertificate;
  noEku: IssuedCertificate;
  expired: IssuedCertificate;
  webServer: IssuedCertificate;
  signerUnderWebServer: IssuedCertificate;
}

let fx: Fixtures;
let original: EocsPackage;

beforeAll(async () => {
  const now = Date.now();
  const pki = await createTestPki('emfleet Attack Test');
  timestampAuthority = devTimestampAuthority(pki);
  const attacker = await createDevPki({ label: 'emfleet Attack Test' });
  const eku = { extendedKeyUsages: [microsoftSignerEku] };
  const [selfSigned, wrongCn, lowerCaseCn, multiValuedCn, noEku, expired, webServer] = await Promise.all([
    issueCertificate({ subjectCn: microsoftSignerSubjectCn, ...eku }),
    issueCertificate({ subjectCn: 'Fabrikam XML Signing', issuer: pki.intermediate, ...eku }),
    issueCertificate({ subjectCn: microsoftSignerSubjectCn.toLowerCase(), issuer: pki.intermediate, ...eku }),
    issueCertificate({ subjectCn: `Evil+CN=${microsoftSignerSubjectCn}`, issuer: pki.intermediate, ...eku }),
    issueCertificate({ subjectCn: microsoftSignerSubjectCn, issuer: pki.intermediate }),
    issueCertificate({
      subjectCn: microsoftSignerSubjectCn,
      issuer: pki.intermediate,
      ...eku,
      notBefore: new Date(now - 30 * day),
      notAfter: new Date(now - day),
    }),
    // An ordinary end-entity certificate from the trusted intermediate (not a CA).
    issueCertificate({ subjectCn: 'emfleet Attack Test Web Server', issuer: pki.intermediate }),
  ]);
  const signerUnderWebServer = await issueCertificate({
    subjectCn: microsoftSignerSubjectCn,
    issuer: webServer,
    ...eku,
  });
  const signedAt = new Date(Math.floor((now - minute) / 1000) * 1000);
  const catalogue = pki.sign(catalogueXml, { signingTime: signedAt, sequence: 7 });
  fx = {
    pki,
    attacker,
    signedAt,
    catalogue,
    ping1: pki.sign(ping1Xml, { signingTime: signedAt }),
    evilByAttacker: signWith(
      mutate(catalogueXml, '</EOCS>', `${evilConfig}\n</EOCS>`),
      attacker.signer,
      [attacker.intermediate],
      signedAt,
    ),
    selfSigned,
    wrongCn,
    lowerCaseCn,
    multiValuedCn,
    noEku,
    expired,
    webServer,
    signerUnderWebServer,
  };
  const result = verify(catalogue);
  if (!result.ok) throw new Error(`the untouched catalogue must verify: ${result.reason}: ${result.detail}`);
  original = result.package;
});

function verify(input: string | Uint8Array, trust?: TrustPolicy): VerifyResult {
  return verifyPackage(typeof input === 'string' ? bytes(input) : input, { trust: trust ?? fx.pki.trust });
}

describe('controls', () => {
  it('the untouched packages verify (so every rejection below is caused by the attack)', () => {
    expect(verifiedIds(verify(fx.catalogue))).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(verifiedIds(verify(fx.ping1))).toEqual(['PING1']);
  });

  it("the attacker's package is a valid signature, under the attacker's root", () => {
    const trust = createTrustPolicy({ anchorPems: [fx.attacker.root.certificatePem] });
    expect(verifiedIds(verify(fx.evilByAttacker, trust))).toContain('EVIL');
    expect(verify(fx.evilByAttacker).ok).toBe(false);
  });
});

interface Attack {
  readonly name: string;
  readonly reason: RejectionReason;
  readonly input: () => string | Uint8Array;
  readonly trust?: () => TrustPolicy;
}

const attacks: readonly Attack[] = [
  // Tampered signed content.
  {
    name: 'tampered text: a service name',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '<Value>MSExchangeUM</Value>', '<Value>W3SVC</Value>'),
  },
  {
    name: 'tampered text: an app-pool name',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'MSExchangeOWAAppPool', 'MSExchangeECPAppPool'),
  },
  {
    name: 'tampered text: one trailing space in a Value',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '<Value>MSExchangeUM</Value>', '<Value>MSExchangeUM </Value>'),
  },
  {
    name: 'tampered attribute: Config desc',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'desc="Disable UM service"', 'desc="Disable UM service!"'),
  },
  {
    name: 'tampered attribute: Range max (widening the builds)',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'max="15.2.1544.4"', 'max="15.2.9999.4"'),
  },
  {
    name: 'tampered attribute: the IIS rule pattern',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'url=".*autodiscover', 'url=".*nothing'),
  },
  {
    name: 'tampered attribute: action type',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'type="DisableService"', 'type="DoNothing"'),
  },
  {
    name: 'tampered attribute: sequence raised to beat rollback',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'sequence="7"', 'sequence="8"'),
  },
  {
    name: 'tampered attribute: sequence moved',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, 'sequence="7"', 'sequence="8"'),
  },
  {
    name: 'removed mitigation (EM3 withdrawn by an attacker)',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, /<Config id="EM3"[\s\S]*?<\/Config>/, ''),
  },
  {
    name: 'added attribute on the root',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '<EOCS version="1.0.4"', '<EOCS version="1.0.4" note="x"'),
  },

  // Tampered SignedInfo / signature.
  {
    name: 'changed DigestValue',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        /<DigestValue>[^<]+<\/DigestValue>/,
        `<DigestValue>${Buffer.alloc(32, 7).toString('base64')}</DigestValue>`,
      ),
  },
  {
    name: 'changed SignatureValue (one character)',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        /<SignatureValue>(.)/,
        (_: string, first: string) => `<SignatureValue>${first === 'A' ? 'B' : 'A'}`,
      ),
  },
  {
    name: 'transforms in the other order (C14N, then enveloped)',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        /(<Transform Algorithm="http:\/\/www\.w3\.org\/2000\/09\/xmldsig#enveloped-signature" \/>)(<Transform [^>]+\/>)/,
        '$2$1',
      ),
  },
  {
    name: 'enveloped-signature transform removed',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature" />',
        '',
      ),
  },
  {
    name: 'a third transform',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '</Transforms>',
        '<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></Transforms>',
      ),
  },
  {
    name: 'Reference without a URI',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '<Reference URI="">', '<Reference>'),
  },
  {
    name: 'Reference URI="#x" with id "x" on a Config',
    reason: 'BadSignature',
    input: () =>
      mutate(
        mutate(fx.catalogue, '<Reference URI="">', '<Reference URI="#x">'),
        '<Config id="EM3"',
        '<Config id="x"',
      ),
  },
  {
    name: 'Reference URI as an XPointer to the root',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '<Reference URI="">', '<Reference URI="#xpointer(/)">'),
  },
  {
    name: 'a second Reference in SignedInfo',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '</SignedInfo>',
        `${between(fx.catalogue, /<Reference[\s\S]*<\/Reference>/)}</SignedInfo>`,
      ),
  },
  {
    name: 'a second Signature appended after the first',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, '</Signature>', `</Signature>${signatureOf(fx.catalogue)}`),
  },
  {
    name: 'a second Signature nested in the first (in an Object)',
    reason: 'BadSignature',
    input: () =>
      mutate(fx.catalogue, '</KeyInfo>', `</KeyInfo><Object>${signatureOf(fx.catalogue)}</Object>`),
  },
  {
    name: 'a second Signature nested in a Config',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<Config id="EM3" desc="Disable UM service">',
        `<Config id="EM3" desc="Disable UM service">${signatureOf(fx.catalogue)}`,
      ),
  },
  {
    name: 'the Signature moved into a Config',
    reason: 'BadSignature',
    input: () => {
      const signature = signatureOf(fx.catalogue);
      return mutate(
        mutate(fx.catalogue, signature, ''),
        '<Config id="EM3" desc="Disable UM service">',
        `<Config id="EM3" desc="Disable UM service">${signature}`,
      );
    },
  },
  {
    name: 'the Signature removed',
    reason: 'BadSignature',
    input: () => mutate(fx.catalogue, signatureOf(fx.catalogue), ''),
  },
  {
    name: 'a Signature in another namespace only',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">',
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig-more#">',
      ),
  },
  {
    // xml-crypto reads the first SignatureMethod anywhere in the Signature; the allow-list must hold there too.
    name: 'decoy HMAC SignatureMethod in an Object ahead of SignedInfo',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<SignedInfo>',
        '<Object><SignatureMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"/></Object><SignedInfo>',
      ),
  },
  {
    name: 'decoy comment-preserving CanonicalizationMethod ahead of SignedInfo',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<SignedInfo>',
        '<Object><CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"/></Object><SignedInfo>',
      ),
  },
  {
    name: 'decoy SignatureValue ahead of SignedInfo',
    reason: 'BadSignature',
    input: () =>
      mutate(
        fx.catalogue,
        '<SignedInfo>',
        `<Object><SignatureValue>${Buffer.alloc(256, 1).toString('base64')}</SignatureValue></Object><SignedInfo>`,
      ),
  },
  {
    name: "key substitution: the attacker's SignedInfo and SignatureValue over EVIL, with the real certificates in KeyInfo",
    reason: 'BadSignature',
    input: () => mutate(fx.evilByAttacker, keyInfoOf(fx.evilByAttacker), keyInfoOf(fx.catalogue)),
  },

  // Algorithms outside the allow-list.
  {
    name: 'SignatureMethod changed to RSA-SHA1',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        'http://www.w3.org/2000/09/xmldsig#rsa-sha1',
      ),
  },
  {
    name: 'HMAC-SHA1 SignatureMethod (key confusion)',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
        'http://www.w3.org/2000/09/xmldsig#hmac-sha1',
      ),
  },
  {
    name: 'SHA-1 DigestMethod',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        'http://www.w3.org/2001/04/xmlenc#sha256',
        'http://www.w3.org/2000/09/xmldsig#sha1',
      ),
  },
  {
    name: 'comment-preserving CanonicalizationMethod',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        '<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />',
        '<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"/>',
      ),
  },
  {
    name: 'XSLT transform',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        '<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />',
        '<Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>',
      ),
  },
  {
    name: 'XPath transform',
    reason: 'UnsupportedAlgorithm',
    input: () =>
      mutate(
        fx.catalogue,
        '<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315" />',
        '<Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"/>',
      ),
  },
  {
    name: 'SignatureMethod without an Algorithm',
    reason: 'UnsupportedAlgorithm',
    input: () => mutate(fx.catalogue, /<SignatureMethod Algorithm="[^"]+" \/>/, '<SignatureMethod/>'),
  },

  // Who signed.
  {
    name: 'self-signed signer with the right CN and EKU',
    reason: 'UntrustedChain',
    input: () =>
      signWith(mutate(catalogueXml, '</EOCS>', `${evilConfig}</EOCS>`), fx.selfSigned, [], fx.signedAt),
  },
  {
    name: "a chain to another root with the same names (the attacker's PKI)",
    reason: 'UntrustedChain',
    input: () => fx.evilByAttacker,
  },
  {
    name: "the attacker's package with the real signer and intermediate added to KeyInfo",
    reason: 'UntrustedChain',
    input: () =>
      mutate(
        fx.evilByAttacker,
        '</X509Data>',
        `<X509Certificate>${fx.pki.signer.certificate.raw.toString('base64')}</X509Certificate><X509Certificate>${fx.pki.intermediate.certificate.raw.toString('base64')}</X509Certificate></X509Data>`,
      ),
  },
  {
    name: 'signer issued by an end-entity certificate of the trusted intermediate (not a CA)',
    reason: 'UntrustedChain',
    input: () =>
      signWith(ping1Xml, fx.signerUnderWebServer, [fx.webServer, fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'KeyInfo removed',
    reason: 'UntrustedChain',
    input: () => mutate(fx.catalogue, keyInfoOf(fx.catalogue), ''),
  },
  {
    name: 'KeyInfo certificate replaced by garbage base64',
    reason: 'Malformed',
    input: () =>
      mutate(
        fx.catalogue,
        /<X509Certificate>[^<]+<\/X509Certificate>/,
        `<X509Certificate>${Buffer.from('not a certificate at all').toString('base64')}</X509Certificate>`,
      ),
  },
  {
    name: 'KeyInfo certificate replaced by text that is not base64',
    reason: 'Malformed',
    input: () =>
      mutate(
        fx.catalogue,
        /<X509Certificate>[^<]+<\/X509Certificate>/,
        '<X509Certificate>!!! ~~~ ***</X509Certificate>',
      ),
  },
  {
    name: 'signer with the wrong subject CN',
    reason: 'WrongSigner',
    input: () => signWith(ping1Xml, fx.wrongCn, [fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'signer CN differing only in case',
    reason: 'WrongSigner',
    input: () => signWith(ping1Xml, fx.lowerCaseCn, [fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'signer CN in a multi-valued RDN (Evil+CN=Microsoft Exchange XML Signing)',
    reason: 'WrongSigner',
    input: () => signWith(ping1Xml, fx.multiValuedCn, [fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'signer without the EKU',
    reason: 'WrongSigner',
    input: () => signWith(ping1Xml, fx.noEku, [fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'expired signer (signingTime after notAfter)',
    reason: 'Expired',
    input: () => signWith(ping1Xml, fx.expired, [fx.pki.intermediate], fx.signedAt),
  },
  {
    name: 'revoked signer serial',
    reason: 'Revoked',
    input: () => fx.catalogue,
    trust: () =>
      createTrustPolicy({
        anchorPems: [fx.pki.root.certificatePem],
        revokedSerials: [fx.pki.signer.certificate.serialNumber],
      }),
  },

  // Broken input.
  {
    name: 'truncated: the signed text cut in half',
    reason: 'Malformed',
    input: () => fx.catalogue.slice(0, Math.floor(fx.catalogue.length / 2)),
  },
  {
    name: 'truncated: the closing root tag cut off',
    reason: 'Malformed',
    input: () => mutate(fx.catalogue, /<\/EOCS>\s*$/, ''),
  },
  {
    name: 'truncated: cut before the Signature',
    reason: 'Malformed',
    input: () => fx.catalogue.slice(0, fx.catalogue.indexOf('<Signature')),
  },
  { name: 'empty input', reason: 'Malformed', input: () => new Uint8Array(0) },
  {
    name: 'non-UTF-8: a Latin-1 0xE9 byte in a Value',
    reason: 'Malformed',
    input: () =>
      Buffer.from(
        mutate(fx.catalogue, '<Value>MSExchangeUM</Value>', '<Value>MSExchangeUM\u00e9</Value>'),
        'latin1',
      ),
  },
  {
    name: 'non-UTF-8: the whole package as UTF-16LE with a BOM',
    reason: 'Malformed',
    input: () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(fx.catalogue, 'utf16le')]),
  },
  {
    name: 'non-UTF-8: a UTF-16BE BOM before UTF-8 text',
    reason: 'Malformed',
    input: () => Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(fx.catalogue, 'utf8')]),
  },
  {
    name: 'a declared encoding other than UTF-8',
    reason: 'Malformed',
    input: () => mutate(fx.catalogue, 'encoding="utf-8"', 'encoding="ISO-8859-1"'),
  },
];

describe('attacks on a signed package', () => {
  it.each(attacks)('$name → $reason', ({ input, reason, trust }) => {
    const result = verify(input(), trust?.());
    expect(result.ok, result.ok ? `verified: ${verifiedIds(result).join(', ')}` : '').toBe(false);
    if (result.ok) return;
    expect(result.reason, result.detail).toBe(reason);
    expect(result.detail.length).toBeGreaterThan(0);
  });
});

describe('signature wrapping: a forged Config never reaches a verified model', () => {
  // Content inside the Signature is outside the digest (the enveloped transform removes it), so the
  // verifier reads the model only from the digested node set and refuses a Signature that holds
  // anything but SignedInfo, SignatureValue, KeyInfo and Objects (which are never read).
  const placements: readonly { name: string; input: () => string }[] = [
    {
      name: '(a) sibling before the signed Config',
      input: () => mutate(fx.catalogue, '<Config id="PING1"', `${evilConfig}<Config id="PING1"`),
    },
    {
      name: '(a2) sibling after the last signed Config',
      input: () => mutate(fx.catalogue, '<Signature ', `${evilConfig}<Signature `),
    },
    {
      name: '(b) appended after the Signature inside EOCS',
      input: () => mutate(fx.catalogue, '</Signature>', `</Signature>${evilConfig}`),
    },
    {
      name: '(c) the whole signed document wrapped in a new EOCS root with a forged Config',
      input: () =>
        `<?xml version="1.0" encoding="utf-8"?><EOCS version="1.0.4">${evilConfig}${withoutDeclaration(fx.catalogue)}</EOCS>`,
    },
    {
      name: '(c2) a forged EOCS root holding EVIL and the Signature, with the signed original moved into an Object',
      input: () => {
        const signature = signatureOf(fx.catalogue);
        const signedOriginal = withoutDeclaration(mutate(fx.catalogue, signature, ''));
        const wrapper = mutate(signature, '</KeyInfo>', `</KeyInfo><Object>${signedOriginal}</Object>`);
        return `<?xml version="1.0" encoding="utf-8"?><EOCS version="1.0.4" signingTime="${fx.signedAt.toISOString()}" sequence="7">${evilConfig}${wrapper}</EOCS>`;
      },
    },
    {
      name: '(d2) inside the Signature, in KeyInfo',
      input: () =>
        mutate(
          fx.catalogue,
          '<X509Data>',
          `${evilConfig.replace('<Config ', '<Config xmlns="" ')}<X509Data>`,
        ),
    },
    {
      name: '(d3) inside the Signature, directly',
      input: () =>
        mutate(
          fx.catalogue,
          '</Signature>',
          `${evilConfig.replace('<Config ', '<Config xmlns="" ')}</Signature>`,
        ),
    },
    {
      name: '(d4) inside the Signature, in SignedInfo (changes what is signed)',
      input: () =>
        mutate(
          fx.catalogue,
          '</SignedInfo>',
          `${evilConfig.replace('<Config ', '<Config xmlns="" ')}</SignedInfo>`,
        ),
    },
    {
      name: '(e) replacing a signed Config by the forged one',
      input: () => mutate(fx.catalogue, /<Config id="EM3"[\s\S]*?<\/Config>/, evilConfig),
    },
  ];

  it.each(placements)('$name → BadSignature', ({ input }) => {
    const forged = input();
    expect(forged).toContain('id="EVIL"');
    const result = verify(forged);
    expect(verifiedIds(result)).not.toContain('EVIL');
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toBe('BadSignature');
  });
});

describe("beside the signed content, where Microsoft's packages carry their own: verifies, ignored", () => {
  // Objects after KeyInfo are part of the real shape (the time-stamp countersignature), and KeyInfo
  // may carry more certificates than the chain: neither is signed content, and neither is ever read.
  it.each([
    {
      name: '(d1) a forged Config inside the Signature, in an Object (unsigned, outside the enveloped content)',
      input: () =>
        mutate(
          fx.catalogue,
          '</KeyInfo>',
          `</KeyInfo><Object>${evilConfig.replace('<Config ', '<Config xmlns="" ')}</Object>`,
        ),
    },
    {
      name: 'an unrelated certificate added to KeyInfo',
      input: () =>
        mutate(
          fx.catalogue,
          '</X509Data>',
          `<X509Certificate>${fx.selfSigned.certificate.raw.toString('base64')}</X509Certificate></X509Data>`,
        ),
    },
  ])('$name', ({ input }) => {
    const result = verify(input());
    if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
    expect(result.package).toEqual(original);
    expect(JSON.stringify(result)).not.toContain('EVIL');
    expect(result.chain).toHaveLength(3);
  });
});

describe('comments (and other C14N-equivalent edits) inside signed text', () => {
  // C14N without comments drops comments, turns CDATA into text and resolves character references, so
  // these edits leave the digest unchanged and the package verifies (observed). What matters is that the
  // model says what was signed: the value is whole, never cut at the comment.
  it.each([
    {
      name: 'empty comment in an app-pool name',
      from: '<Value>MSExchangeOWAAppPool</Value>',
      to: '<Value>MSExchange<!---->OWAAppPool</Value>',
    },
    {
      name: 'comment in a service name',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value>MSExchange<!-- W3SVC -->UM</Value>',
    },
    {
      name: 'comment at the start of a Value',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value><!--x-->MSExchangeUM</Value>',
    },
    {
      name: 'CDATA in an app-pool name',
      from: '<Value>MSExchangeOWAAppPool</Value>',
      to: '<Value>MSExchange<![CDATA[OWA]]>AppPool</Value>',
    },
    {
      name: 'character reference in a service name',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value>MSExchange&#85;M</Value>',
    },
    {
      name: 'comment inside the IIS rule',
      from: '<action type="AbortRequest"/>',
      to: '<!-- allow --><action type="AbortRequest"/>',
    },
    {
      name: 'comment between Configs',
      from: '<Config id="EM3"',
      to: '<!-- <Config id="EVIL"/> --><Config id="EM3"',
    },
    {
      name: 'CDATA holding markup-like text in a service name',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value><![CDATA[MSExchange]]>UM</Value>',
    },
    {
      name: 'attributes swapped and single-quoted in the IIS rule',
      from: '<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true">',
      to: "<rule stopProcessing='true'  name='EEMS EM1 - Autodiscover Rule' >",
    },
    {
      name: 'an empty rule element written with an end tag',
      from: '<action type="AbortRequest"/>',
      to: '<action type="AbortRequest" ></action>',
    },
  ])('$name: verifies with the whole, original model', ({ from, to }) => {
    const result = verify(mutate(fx.catalogue, from, to));
    if (!result.ok) throw new Error(`${result.reason}: ${result.detail}`);
    expect(result.package).toEqual(original);
    const [, , em2, em3] = result.package.mitigations;
    expect(em2!.actions[0]).toMatchObject({ kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool' });
    expect(em3!.actions[0]).toMatchObject({ kind: 'DisableService', service: 'MSExchangeUM' });
  });
});

describe('edits the canonical form does not see are refused, not read', () => {
  // The model is read from the DOM that was canonicalized, so wherever xml-crypto's C14N writes two
  // different DOMs the same way, a change there would keep the digest: each edit below is first shown
  // to leave the canonical form as it was (or to be one EOCS never has), then to be refused.
  const canonicalWithoutSignature = (signed: string): string => {
    const document = new DOMParser().parseFromString(signed, 'text/xml');
    const root = document.documentElement!;
    root.removeChild(root.getElementsByTagNameNS(DSIG_NS, 'Signature').item(0)!);
    return String(new C14nCanonicalization().process(root as never, {}));
  };

  it.each([
    {
      name: 'a processing instruction standing for the end of a service name',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value>MSExchange<?x UM?></Value>',
      sameCanonical: true,
    },
    {
      name: 'an attribute named xmlns… on an action (left out of the canonical form)',
      from: '<Action type="DisableService"',
      to: '<Action xmlnsUnsupported="1" type="DisableService"',
      sameCanonical: true,
    },
    {
      name: 'an empty processing instruction (xml-crypto cannot canonicalize it)',
      from: '<Value>MSExchangeUM</Value>',
      to: '<Value>MSExchangeUM<?x?></Value>',
      sameCanonical: false,
    },
    {
      name: 'a namespace declaration below the root',
      from: '<rule name=',
      to: '<rule xmlns:x="urn:x" name=',
      sameCanonical: false,
    },
    // Inclusive C14N carries the root's namespaces into SignedInfo, so trust (checked first) already fails.
    {
      name: 'a namespace URI with a quote on the root (written unescaped, it reads as an attribute)',
      from: '<EOCS version="1.0.4"',
      to: '<EOCS xmlns:a="urn:x&quot; b=&quot;1" version="1.0.4"',
      sameCanonical: false,
      reason: 'BadSignature',
    },
  ])('$name → refused', ({ from, to, sameCanonical, reason }) => {
    const edited = mutate(fx.catalogue, from, to);
    if (sameCanonical)
      expect(canonicalWithoutSignature(edited)).toBe(canonicalWithoutSignature(fx.catalogue));
    const result = verify(edited);
    expect(result.ok, result.ok ? `verified: ${verifiedIds(result).join(', ')}` : '').toBe(false);
    expect(!result.ok && result.reason).toBe(reason ?? 'Malformed');
    if (reason === undefined)
      expect(!result.ok && result.detail).toMatch(/processing instruction|reserved|namespace/);
  });
});

describe('hostile input: rejected quickly, without expanding or recursing', () => {
  const declaration = '<?xml version="1.0" encoding="utf-8"?>';
  const withDoctype = (doctype: string, reference?: string): string => {
    const declared = mutate(fx.catalogue, declaration, `${declaration}\n${doctype}`);
    return reference === undefined ? declared : mutate(declared, 'desc="Ping"', `desc="Ping${reference}"`);
  };
  const laughs = Array.from({ length: 10 }, (_, level) =>
    level === 0 ? '<!ENTITY lol0 "lol">' : `<!ENTITY lol${level} "${`&lol${level - 1};`.repeat(10)}">`,
  ).join('');

  /**
   * A sanity bound for hostile input, not a benchmark: the CPU time this process spent (user +
   * system), which other processes busy on the same cores do not inflate, as they do wall time.
   */
  const quick = 1000;
  const cpuMs = <T>(run: () => T): { result: T; elapsed: number } => {
    const before = process.cpuUsage();
    const result = run();
    const used = process.cpuUsage(before);
    return { result, elapsed: (used.user + used.system) / 1000 };
  };

  it.each([
    {
      name: 'DOCTYPE with an internal entity',
      input: () => withDoctype('<!DOCTYPE EOCS [<!ENTITY name "PING">]>', '&name;'),
    },
    {
      name: 'XXE: SYSTEM entity to a local file',
      input: () => withDoctype('<!DOCTYPE EOCS [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', '&xxe;'),
    },
    {
      name: 'XXE: parameter entity to a URL',
      input: () =>
        withDoctype('<!DOCTYPE EOCS [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">%remote;]>'),
    },
    { name: 'billion laughs', input: () => withDoctype(`<!DOCTYPE EOCS [${laughs}]>`, '&lol9;') },
    { name: 'bare DOCTYPE', input: () => withDoctype('<!DOCTYPE EOCS>') },
    {
      name: 'DOCTYPE after a comment and a processing instruction',
      input: () => withDoctype('<!-- hi --><?pi x?><!DOCTYPE EOCS SYSTEM "eocs.dtd">'),
    },
  ])('$name → Malformed, fast', ({ input }) => {
    const text = input();
    const { result, elapsed } = cpuMs(() => verify(text));
    expect(!result.ok && result.reason).toBe('Malformed');
    expect(!result.ok && result.detail).toContain('DOCTYPE');
    expect(elapsed).toBeLessThan(quick);
  });

  it('6 MiB input → TooLarge, fast', () => {
    const huge = mutate(fx.catalogue, 'desc="Ping"', `desc="${'A'.repeat(6 * 1024 * 1024)}"`);
    const input = bytes(huge);
    expect(input.byteLength).toBeGreaterThan(6 * 1024 * 1024);
    const { result, elapsed } = cpuMs(() => verifyPackage(input, { trust: fx.pki.trust }));
    expect(!result.ok && result.reason).toBe('TooLarge');
    expect(elapsed).toBeLessThan(quick);
  });

  it.each([
    { name: '10,000 nested <a>', depth: 10_000 },
    { name: '100,000 nested <a> (just under 1 MiB)', depth: 100_000 },
  ])('$name → TooLarge without a stack overflow', ({ depth }) => {
    const nested = mutate(
      fx.catalogue,
      '<Value>DoNothing</Value>',
      `<Value>${'<a>'.repeat(depth)}${'</a>'.repeat(depth)}</Value>`,
    );
    const { result, elapsed } = cpuMs(() => verify(nested));
    expect(!result.ok && result.reason).toBe('TooLarge');
    expect(!result.ok && result.detail).toContain('deeper');
    expect(elapsed).toBeLessThan(quick);
  });

  it('unclosed deep nesting (no end tags) → TooLarge', () => {
    const result = verify(`<EOCS version="1.0.4">${'<a>'.repeat(50_000)}`);
    expect(!result.ok && result.reason).toBe('TooLarge');
  });

  it('more than 10,000 elements (flat) → TooLarge', () => {
    const flood = mutate(fx.catalogue, '<Value>DoNothing</Value>', `<Value>${'<a/>'.repeat(10_001)}</Value>`);
    const result = verify(flood);
    expect(!result.ok && result.reason).toBe('TooLarge');
    expect(!result.ok && result.detail).toContain('elements');
  });
});

describe('encodings', () => {
  it('a package signed with non-ASCII text verifies as UTF-8, and is Malformed once transcoded to Latin-1', () => {
    const signed = fx.pki.sign(mutate(catalogueXml, 'desc="Ping"', 'desc="Ping – café"'), {
      signingTime: fx.signedAt,
    });
    const asUtf8 = verify(signed);
    expect(asUtf8.ok && asUtf8.package.mitigations[0]!.description).toBe('Ping – café');
    const asLatin1 = verify(Buffer.from(signed.replace('–', '-'), 'latin1'));
    expect(!asLatin1.ok && asLatin1.reason).toBe('Malformed');
  });

  it('a UTF-8 byte-order mark is accepted', () => {
    const result = verify(
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(fx.catalogue, 'utf8')]),
    );
    expect(verifiedIds(result)).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
  });
});
