import { createHash, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { C14nCanonicalization, ExclusiveCanonicalization } from 'xml-crypto';
import { findAncestorNsForElement } from 'xml-crypto/lib/utils.js';
import type { Document, Element } from '@xmldom/xmldom';
import { algorithms, DSIG_NS, element } from './format.js';
import { isRollback, type AcceptedMark } from './freshness.js';
import type { EocsPackage } from './model.js';
import { elementChildren, parseEocs } from './parse.js';
import { PackageRejectedError, reject, type RejectionReason } from './reasons.js';
import { reduceToSignedNodes } from './signed-nodes.js';
import {
  buildChain,
  checkRevocation,
  checkSignerIdentity,
  checkValidity,
  describe,
  findSigner,
  normalizeSerial,
  type TrustPolicy,
} from './trust.js';
import { decodePackageText, defaultXmlLimits, parseXml, type XmlLimits } from './xml.js';

export interface VerifyOptions {
  readonly trust: TrustPolicy;
  readonly limits?: XmlLimits;
  /** When the package carries no signing time, certificates must be valid now. */
  readonly now?: Date;
  /** The last package accepted from the same feed; an older one is `Rollback`. */
  readonly lastAccepted?: AcceptedMark;
}

export interface SignerInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly sha256: string;
  readonly validFrom: string;
  readonly validTo: string;
}

export interface VerifiedPackage {
  readonly ok: true;
  /** SHA-256 of the exact bytes that were verified (hex). */
  readonly sha256: string;
  readonly package: EocsPackage;
  readonly signer: SignerInfo;
  /** Subjects from signer to anchor. */
  readonly chain: readonly string[];
}

export interface RejectedPackage {
  readonly ok: false;
  readonly sha256: string;
  readonly reason: RejectionReason;
  readonly detail: string;
}

export type VerifyResult = VerifiedPackage | RejectedPackage;

/** How far ahead of our clock a signing time may be before it is refused. */
const clockSkewInMs = 5 * 60 * 1000;
const maxKeyInfoCertificates = 10;

/**
 * The one verifier, used by the cloud and by the agent (DESIGN §4). Never throws for anything
 * the package contains: every problem becomes a rejection with a reason code and a detail.
 * The model is read from the very DOM that was canonicalized and digested, after it was brought to
 * the node set the digest covers (signed-nodes.ts): no unsigned DOM, no second parser.
 */
export function verifyPackage(bytes: Uint8Array, options: VerifyOptions): VerifyResult {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  try {
    return { ok: true, sha256, ...verifyOrThrow(bytes, options) };
  } catch (error) {
    if (error instanceof PackageRejectedError) return { ok: false, sha256, reason: error.reason, detail: error.detail };
    throw error;
  }
}

function verifyOrThrow(bytes: Uint8Array, options: VerifyOptions): Omit<VerifiedPackage, 'ok' | 'sha256'> {
  const limits = options.limits ?? defaultXmlLimits;
  const now = options.now ?? new Date();
  const text = decodePackageText(bytes, limits);
  const document = parseXml(text, limits);
  const signature = findTheSignature(document);
  checkSignedInfo(signature);
  const certificates = keyInfoCertificates(signature);
  const signer = findSigner(certificates);

  checkSignatureValue(document, signature, signer);
  const eocs = parseEocs(document);

  if (eocs.signingTime && eocs.signingTime.getTime() > now.getTime() + clockSkewInMs) {
    reject('Malformed', `signingTime ${eocs.signingTime.toISOString()} is in the future`);
  }
  const chain = buildChain(signer, certificates.filter((certificate) => certificate !== signer), options.trust);
  checkRevocation(chain, options.trust);
  checkValidity(chain, eocs.signingTime ?? now);
  checkSignerIdentity(signer, options.trust);
  if (options.lastAccepted && isRollback(eocs, options.lastAccepted)) {
    reject('Rollback', `package (${describeMark(eocs)}) is older than the last accepted one (${describeMark(options.lastAccepted)})`);
  }
  return { package: eocs, signer: signerInfo(signer), chain: chain.map(describe) };
}

function findTheSignature(document: Document): Element {
  const root = document.documentElement!;
  if (root.localName !== element.root || root.namespaceURI) {
    reject('Malformed', `root element must be <${element.root}>, found <${root.nodeName}>`);
  }
  const signatures = document.getElementsByTagNameNS(DSIG_NS, element.signature);
  if (signatures.length === 0) reject('BadSignature', 'package is not signed (no ds:Signature element)');
  if (signatures.length > 1) reject('BadSignature', `found ${signatures.length} Signature elements; exactly one is allowed`);
  const signature = signatures.item(0)!;
  if (signature.parentNode !== root) reject('BadSignature', `the Signature must be a child of <${element.root}>`);
  return signature;
}

/**
 * xml-crypto finds SignatureMethod, CanonicalizationMethod, SignatureValue and KeyInfo by local
 * name anywhere under the Signature, first in document order; so there must be exactly one of
 * each, in its place, and nothing else for a decoy to hide in.
 */
function checkSignatureShape(signature: Element): void {
  const children = elementChildren(signature);
  const names = children.map((child) => (child.namespaceURI === DSIG_NS ? child.localName : `{${child.namespaceURI ?? ''}}${child.localName}`));
  const expected = names.length === 3 ? ['SignedInfo', 'SignatureValue', 'KeyInfo'] : ['SignedInfo', 'SignatureValue'];
  if (names.join() !== expected.join()) {
    reject('BadSignature', `Signature must hold SignedInfo, SignatureValue and KeyInfo, found ${names.join(', ') || 'nothing'}`);
  }
  for (const localName of ['SignedInfo', 'CanonicalizationMethod', 'SignatureMethod', 'SignatureValue', 'Reference', 'KeyInfo', 'Signature']) {
    const count = countByLocalName(signature, localName);
    const allowed = localName === 'KeyInfo' ? count <= 1 : localName === 'Signature' ? count === 0 : count === 1;
    if (!allowed) reject('BadSignature', `Signature holds ${count} <${localName}> elements`);
  }
  checkKeyInfoShape(signature);
}

/**
 * KeyInfo may carry X.509 data, and the key name and value that .NET's SignedXml often adds
 * (never used: the key is the chain-checked certificate's), and nothing else.
 */
function checkKeyInfoShape(signature: Element): void {
  const x509Children = ['X509Certificate', 'X509IssuerSerial', 'X509SubjectName', 'X509SKI'];
  for (const keyInfo of dsigChildren(signature, 'KeyInfo')) {
    for (const child of elementChildren(keyInfo)) {
      const name = child.namespaceURI === DSIG_NS ? child.localName : undefined;
      if (name === 'X509Data') {
        for (const item of elementChildren(child)) {
          if (item.namespaceURI !== DSIG_NS || !x509Children.includes(item.localName ?? '')) {
            reject('BadSignature', `X509Data may hold only X.509 elements, found <${item.nodeName}>`);
          }
        }
      } else if (name === 'KeyValue' || name === 'KeyName') {
        const foreign = descendants(child).find((node) => node.namespaceURI !== DSIG_NS && node.namespaceURI !== DSIG11_NS);
        if (foreign) reject('BadSignature', `${name} may hold only XML-DSig key elements, found <${foreign.nodeName}>`);
      } else {
        reject('BadSignature', `KeyInfo may hold only X509Data, KeyValue or KeyName, found <${child.nodeName}>`);
      }
    }
  }
}

function descendants(node: Element): Element[] {
  return elementChildren(node).flatMap((child) => [child, ...descendants(child)]);
}

const DSIG11_NS = 'http://www.w3.org/2009/xmldsig11#';

function countByLocalName(node: Element, localName: string): number {
  return elementChildren(node).reduce((count, child) => count + (child.localName === localName ? 1 : 0) + countByLocalName(child, localName), 0);
}

/** The signature must cover the whole document with allow-listed algorithms and nothing else. */
function checkSignedInfo(signature: Element): void {
  checkSignatureShape(signature);
  const signedInfo = onlyChild(signature, 'SignedInfo', 'Signature');
  const canonicalization = algorithmOf(onlyChild(signedInfo, 'CanonicalizationMethod', 'SignedInfo'));
  allow(canonicalization, Object.values(algorithms.canonicalization), 'canonicalization');
  allow(algorithmOf(onlyChild(signedInfo, 'SignatureMethod', 'SignedInfo')), Object.values(algorithms.signature), 'signature');

  const references = dsigChildren(signedInfo, 'Reference');
  if (references.length !== 1) reject('BadSignature', `SignedInfo must hold exactly one Reference, found ${references.length}`);
  const reference = references[0]!;
  const uri = reference.getAttribute('URI');
  if (uri !== '') {
    reject('BadSignature', `the Reference must cover the whole document (URI=""), found ${uri === null ? 'no URI' : `URI="${uri}"`}`);
  }
  const transforms = dsigChildren(onlyChild(reference, 'Transforms', 'Reference'), 'Transform').map(algorithmOf);
  for (const transform of transforms) {
    allow(transform, [algorithms.envelopedSignature, ...Object.values(algorithms.canonicalization)], 'transform');
  }
  if (transforms.length !== 2 || transforms[0] !== algorithms.envelopedSignature) {
    reject('BadSignature', `Reference transforms must be enveloped-signature then canonicalization, found ${transforms.join(', ') || 'none'}`);
  }
  allow(algorithmOf(onlyChild(reference, 'DigestMethod', 'Reference')), Object.values(algorithms.digest), 'digest');
}

function allow(uri: string, allowed: readonly string[], what: string): void {
  if (!allowed.includes(uri)) reject('UnsupportedAlgorithm', `${what} algorithm ${uri || '(none)'} is not allowed`);
}

function algorithmOf(node: Element): string {
  return node.getAttribute('Algorithm') ?? '';
}

function dsigChildren(parent: Element, localName: string): Element[] {
  return elementChildren(parent).filter((child) => child.localName === localName && child.namespaceURI === DSIG_NS);
}

function onlyChild(parent: Element, localName: string, parentName: string): Element {
  const children = dsigChildren(parent, localName);
  if (children.length !== 1) reject('BadSignature', `${parentName} must hold exactly one ${localName}, found ${children.length}`);
  return children[0]!;
}

function keyInfoCertificates(signature: Element): X509Certificate[] {
  const values = dsigChildren(signature, 'KeyInfo')
    .flatMap((keyInfo) => dsigChildren(keyInfo, 'X509Data'))
    .flatMap((data) => dsigChildren(data, 'X509Certificate'));
  if (values.length === 0) reject('UntrustedChain', 'the Signature carries no KeyInfo/X509Data/X509Certificate');
  if (values.length > maxKeyInfoCertificates) reject('TooLarge', `KeyInfo holds more than ${maxKeyInfoCertificates} certificates`);
  return values.map((value, index) => {
    const base64 = (value.textContent ?? '').replace(/\s+/g, '');
    try {
      return new X509Certificate(Buffer.from(base64, 'base64'));
    } catch (error) {
      return reject('Malformed', `KeyInfo certificate ${index + 1} is not a valid X.509 certificate`, error);
    }
  });
}

/**
 * Checks the one Reference's digest over the document without its Signature, then SignatureValue
 * over SignedInfo, on the document parsed and shape-checked above (so what is verified is what
 * was checked: no second parser). Canonicalization is xml-crypto's; the rest is Node's crypto over
 * emfleet's allow-list (checkSignedInfo ran first). Order as in XML-DSig core validation: reference,
 * then signature. Leaves the document as the node set that was digested: the Signature detached,
 * the rest reduced by reduceToSignedNodes.
 */
function checkSignatureValue(document: Document, signature: Element, signer: X509Certificate): void {
  const signedInfo = onlyChild(signature, 'SignedInfo', 'Signature');
  const signedInfoCanonical = canonicalize(algorithmOf(onlyChild(signedInfo, 'CanonicalizationMethod', 'SignedInfo')), signedInfo, findAncestorNsForElement(signedInfo));
  const reference = onlyChild(signedInfo, 'Reference', 'SignedInfo');
  const [, referenceCanonicalization] = dsigChildren(onlyChild(reference, 'Transforms', 'Reference'), 'Transform').map(algorithmOf);
  const digestAlgorithm = digestHashes[algorithmOf(onlyChild(reference, 'DigestMethod', 'Reference'))]!;
  const digestValue = base64Of(onlyChild(reference, 'DigestValue', 'Reference'));
  const signatureHash = signatureHashes[algorithmOf(onlyChild(signedInfo, 'SignatureMethod', 'SignedInfo'))]!;
  const signatureValue = base64Of(onlyChild(signature, 'SignatureValue', 'Signature'));

  // The enveloped-signature transform: the whole document (URI="") without the Signature.
  const root = document.documentElement!;
  root.removeChild(signature);
  reduceToSignedNodes(root);
  const signedContent = canonicalize(referenceCanonicalization!, root, []);
  if (!createHash(digestAlgorithm).update(signedContent, 'utf8').digest().equals(digestValue)) {
    reject('BadSignature', 'the digest of the signed content does not match');
  }
  let valid: boolean;
  try {
    valid = cryptoVerify(signatureHash, Buffer.from(signedInfoCanonical, 'utf8'), signer.publicKey, signatureValue);
  } catch (error) {
    return reject('BadSignature', `the signer certificate key cannot check the SignatureValue: ${error instanceof Error ? oneLine(error.message) : String(error)}`, error);
  }
  if (!valid) reject('BadSignature', 'the SignatureValue does not match SignedInfo under the signer certificate key');
}

const canonicalizers: Readonly<Record<string, C14nCanonicalization | ExclusiveCanonicalization>> = {
  [algorithms.canonicalization.c14n]: new C14nCanonicalization(),
  [algorithms.canonicalization.excC14n]: new ExclusiveCanonicalization(),
};
const digestHashes: Readonly<Record<string, string>> = { [algorithms.digest.sha256]: 'sha256', [algorithms.digest.sha512]: 'sha512' };
const signatureHashes: Readonly<Record<string, string>> = { [algorithms.signature.rsaSha256]: 'sha256', [algorithms.signature.rsaSha512]: 'sha512' };

function canonicalize(algorithm: string, node: Element, ancestorNamespaces: ReturnType<typeof findAncestorNsForElement>): string {
  const canonicalizer = canonicalizers[algorithm];
  if (!canonicalizer) return reject('UnsupportedAlgorithm', `canonicalization algorithm ${algorithm || '(none)'} is not allowed`);
  // xml-crypto's canonicalizers are typed for its own xmldom; ours is the same DOM shape.
  return String(canonicalizer.process(node as never, { ancestorNamespaces, defaultNsForPrefix: { ds: DSIG_NS } }));
}

function base64Of(node: Element): Buffer {
  const text = (node.textContent ?? '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) reject('BadSignature', `${node.localName} is not base64`);
  return Buffer.from(text, 'base64');
}

function signerInfo(signer: X509Certificate): SignerInfo {
  return {
    subject: describe(signer),
    issuer: signer.issuer.split('\n').join(', '),
    serialNumber: normalizeSerial(signer.serialNumber),
    sha256: signer.fingerprint256.replace(/:/g, '').toLowerCase(),
    validFrom: signer.validFromDate.toISOString(),
    validTo: signer.validToDate.toISOString(),
  };
}

function describeMark(mark: AcceptedMark): string {
  const parts = [];
  if (mark.sequence !== undefined) parts.push(`sequence ${mark.sequence}`);
  if (mark.signingTime !== undefined) parts.push(`signed ${mark.signingTime.toISOString()}`);
  return parts.join(', ') || 'no sequence or signing time';
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}
