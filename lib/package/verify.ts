import { createHash, verify as cryptoVerify, X509Certificate } from 'node:crypto';
import { C14nCanonicalization, ExclusiveCanonicalization } from 'xml-crypto';
import { findAncestorNsForElement } from 'xml-crypto/lib/utils.js';
import type { Document, Element } from '@xmldom/xmldom';
import { algorithms, DSIG_NS, element } from './format.js';
import { describeMark, isRollback, type AcceptedMark } from './freshness.js';
import type { EocsPackage } from './model.js';
import { elementChildren, parseEocs } from './parse.js';
import { PackageRejectedError, reject, type RejectionReason } from './reasons.js';
import { reduceToSignedNodes } from './signed-nodes.js';
import { validatePath } from './path.js';
import { counterSignature, verifyTimestamp, type VerifiedTimestamp } from './timestamp.js';
import {
  buildChain,
  checkRevocation,
  checkSignerIdentity,
  checkValidity,
  describe,
  normalizeSerial,
  type TrustPolicy,
} from './trust.js';
import { decodePackageText, defaultXmlLimits, parseXml, type XmlLimits } from './xml.js';

export interface VerifyOptions {
  readonly trust: TrustPolicy;
  readonly limits?: XmlLimits;
  /** The current time: certificates are checked at it when the package has no trusted time stamp. */
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

/**
 * What became of the package's RFC 3161 countersignature: `verified` (its time is the signing
 * time), `absent` (the package has none), or `unchecked` (no timestamp anchor is configured, so it
 * proves nothing and certificates are checked at the current time).
 */
export type TimestampOutcome =
  | ({ readonly status: 'verified' } & VerifiedTimestamp)
  | { readonly status: 'absent' }
  | { readonly status: 'unchecked' };

export interface VerifiedPackage {
  readonly ok: true;
  /** SHA-256 of the exact bytes that were verified (hex). */
  readonly sha256: string;
  /** The model; its `signingTime` is the trusted time (the verified time stamp's), absent without one. */
  readonly package: EocsPackage;
  readonly signer: SignerInfo;
  /** Subjects from signer to anchor. */
  readonly chain: readonly string[];
  readonly timestamp: TimestampOutcome;
}

export interface RejectedPackage {
  readonly ok: false;
  readonly sha256: string;
  readonly reason: RejectionReason;
  readonly detail: string;
}

export type VerifyResult = VerifiedPackage | RejectedPackage;

/** How far ahead of our clock a time stamp may be before it is refused. */
const clockSkewInMs = 5 * 60 * 1000;
const maxKeyInfoCertificates = 10;
/** Objects in the Signature (Microsoft's packages carry one, the countersignature) and the text each may hold. */
const maxObjects = 4;
const maxObjectCharacters = 64 * 1024;

/**
 * The one verifier, used by the cloud and by the agent (DESIGN §4). Never throws for anything
 * the package contains: every problem becomes a rejection with a reason code and a detail.
 * Trust before meaning: the Signature's structure, SignatureValue, signer chain, identity,
 * revocation and time stamp are checked first; then the digest of the content; the model is read
 * last, from the very DOM that was canonicalized and digested, after it was brought to the node set
 * the digest covers (signed-nodes.ts): no unsigned DOM, no second parser, nothing of the Signature.
 */
export function verifyPackage(bytes: Uint8Array, options: VerifyOptions): VerifyResult {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  try {
    return { ok: true, sha256, ...verifyOrThrow(bytes, options) };
  } catch (error) {
    if (error instanceof PackageRejectedError)
      return { ok: false, sha256, reason: error.reason, detail: error.detail };
    throw error;
  }
}

/**
 * Verifies against several trust policies, each binding its anchors to its own signer identity
 * (an agent serving Microsoft's feed and an organization's): accepted when one accepts. Otherwise
 * the rejection reported is that of the first policy the chain reached (not UntrustedChain), so a
 * package signed under feed A's anchor by feed B's signer is WrongSigner, not UntrustedChain.
 */
export function verifyPackageWithAny(
  bytes: Uint8Array,
  policies: readonly TrustPolicy[],
  options: Omit<VerifyOptions, 'trust'> = {},
): VerifyResult {
  if (policies.length === 0) throw new RangeError('verifyPackageWithAny needs at least one trust policy');
  const rejections: RejectedPackage[] = [];
  for (const trust of policies) {
    const result = verifyPackage(bytes, { ...options, trust });
    if (result.ok) return result;
    rejections.push(result);
  }
  return rejections.find((rejection) => rejection.reason !== 'UntrustedChain') ?? rejections[0]!;
}

function verifyOrThrow(bytes: Uint8Array, options: VerifyOptions): Omit<VerifiedPackage, 'ok' | 'sha256'> {
  const limits = options.limits ?? defaultXmlLimits;
  const now = options.now ?? new Date();
  const trust = options.trust;
  const text = decodePackageText(bytes, limits);
  const document = parseXml(text, limits);
  const signature = findTheSignature(document);
  checkSignedInfo(signature);
  const signatureValue = base64Of(onlyChild(signature, 'SignatureValue', 'Signature'));
  const certificates = keyInfoCertificates(signature);
  const signer = findSigner(signature, certificates, signatureValue);
  checkKeyValue(signature, signer);

  const chain = buildChain(
    signer,
    certificates.filter((certificate) => certificate !== signer),
    trust.anchors,
  );
  validatePath(chain, 'UntrustedChain');
  checkRevocation(chain, trust);
  const timestamp = checkTimestamp(signature, signatureValue, trust, now);
  const signingTime = timestamp.status === 'verified' ? timestamp.time : undefined;
  checkValidity(chain, signingTime ?? now);
  checkSignerIdentity(signer, trust);

  checkDigest(document, signature);
  const eocs = parseEocs(document);
  const model: EocsPackage = { ...eocs, ...(signingTime === undefined ? {} : { signingTime }) };
  if (options.lastAccepted && isRollback(model, options.lastAccepted)) {
    reject(
      'Rollback',
      `package (${describeMark(model)}) is older than the last accepted one (${describeMark(options.lastAccepted)})`,
    );
  }
  return { package: model, signer: signerInfo(signer), chain: chain.map(describe), timestamp };
}

function findTheSignature(document: Document): Element {
  const root = document.documentElement!;
  if (root.localName !== element.root || root.namespaceURI) {
    reject('Malformed', `root element must be <${element.root}>, found <${root.nodeName}>`);
  }
  const signatures = document.getElementsByTagNameNS(DSIG_NS, element.signature);
  if (signatures.length === 0) reject('BadSignature', 'package is not signed (no ds:Signature element)');
  if (signatures.length > 1)
    reject('BadSignature', `found ${signatures.length} Signature elements; exactly one is allowed`);
  const signature = signatures.item(0)!;
  if (signature.parentNode !== root)
    reject('BadSignature', `the Signature must be a child of <${element.root}>`);
  return signature;
}

/**
 * The Signature holds SignedInfo, SignatureValue, KeyInfo, then Objects (Microsoft's packages carry
 * the time-stamp countersignature in one). The signature elements must each appear once, in their
 * place, so no decoy can hide in an Object or anywhere else. Objects are never read into the model.
 */
function checkSignatureShape(signature: Element): void {
  const children = elementChildren(signature);
  const names = children.map((child) =>
    child.namespaceURI === DSIG_NS ? child.localName : `{${child.namespaceURI ?? ''}}${child.localName}`,
  );
  const head =
    names.slice(0, 3).join() === 'SignedInfo,SignatureValue,KeyInfo'
      ? 3
      : names.slice(0, 2).join() === 'SignedInfo,SignatureValue'
        ? 2
        : 0;
  if (head === 0 || names.slice(head).some((name) => name !== 'Object')) {
    reject(
      'BadSignature',
      `Signature must hold SignedInfo, SignatureValue, KeyInfo, then Object elements; found ${names.join(', ') || 'nothing'}`,
    );
  }
  const objects = children.slice(head);
  if (objects.length > maxObjects)
    reject('TooLarge', `Signature holds ${objects.length} Object elements; at most ${maxObjects}`);
  for (const object of objects) {
    if ((object.textContent ?? '').length > maxObjectCharacters)
      reject('TooLarge', `a Signature Object holds more than ${maxObjectCharacters} characters`);
  }
  for (const localName of [
    'SignedInfo',
    'CanonicalizationMethod',
    'SignatureMethod',
    'SignatureValue',
    'Reference',
    'KeyInfo',
    'Signature',
  ]) {
    const count = countByLocalName(signature, localName);
    const allowed =
      localName === 'KeyInfo' ? count <= 1 : localName === 'Signature' ? count === 0 : count === 1;
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
        const foreign = descendants(child).find(
          (node) => node.namespaceURI !== DSIG_NS && node.namespaceURI !== DSIG11_NS,
        );
        if (foreign)
          reject('BadSignature', `${name} may hold only XML-DSig key elements, found <${foreign.nodeName}>`);
      } else {
        reject(
          'BadSignature',
          `KeyInfo may hold only X509Data, KeyValue or KeyName, found <${child.nodeName}>`,
        );
      }
    }
  }
}

function descendants(node: Element): Element[] {
  return elementChildren(node).flatMap((child) => [child, ...descendants(child)]);
}

const DSIG11_NS = 'http://www.w3.org/2009/xmldsig11#';

function countByLocalName(node: Element, localName: string): number {
  return elementChildren(node).reduce(
    (count, child) => count + (child.localName === localName ? 1 : 0) + countByLocalName(child, localName),
    0,
  );
}

/** The signature must cover the whole document with allow-listed algorithms and nothing else. */
function checkSignedInfo(signature: Element): void {
  checkSignatureShape(signature);
  const signedInfo = onlyChild(signature, 'SignedInfo', 'Signature');
  const canonicalization = algorithmOf(onlyChild(signedInfo, 'CanonicalizationMethod', 'SignedInfo'));
  allow(canonicalization, Object.values(algorithms.canonicalization), 'canonicalization');
  allow(
    algorithmOf(onlyChild(signedInfo, 'SignatureMethod', 'SignedInfo')),
    Object.values(algorithms.signature),
    'signature',
  );

  const references = dsigChildren(signedInfo, 'Reference');
  if (references.length !== 1)
    reject('BadSignature', `SignedInfo must hold exactly one Reference, found ${references.length}`);
  const reference = references[0]!;
  const uri = reference.getAttribute('URI');
  if (uri !== '') {
    reject(
      'BadSignature',
      `the Reference must cover the whole document (URI=""), found ${uri === null ? 'no URI' : `URI="${uri}"`}`,
    );
  }
  const transforms = dsigChildren(onlyChild(reference, 'Transforms', 'Reference'), 'Transform').map(
    algorithmOf,
  );
  for (const transform of transforms) {
    allow(
      transform,
      [algorithms.envelopedSignature, ...Object.values(algorithms.canonicalization)],
      'transform',
    );
  }
  if (transforms.length !== 2 || transforms[0] !== algorithms.envelopedSignature) {
    reject(
      'BadSignature',
      `Reference transforms must be enveloped-signature then canonicalization, found ${transforms.join(', ') || 'none'}`,
    );
  }
  allow(
    algorithmOf(onlyChild(reference, 'DigestMethod', 'Reference')),
    Object.values(algorithms.digest),
    'digest',
  );
}

function allow(uri: string, allowed: readonly string[], what: string): void {
  if (!allowed.includes(uri))
    reject('UnsupportedAlgorithm', `${what} algorithm ${uri || '(none)'} is not allowed`);
}

function algorithmOf(node: Element): string {
  return node.getAttribute('Algorithm') ?? '';
}

function dsigChildren(parent: Element, localName: string): Element[] {
  return elementChildren(parent).filter(
    (child) => child.localName === localName && child.namespaceURI === DSIG_NS,
  );
}

function onlyChild(parent: Element, localName: string, parentName: string): Element {
  const children = dsigChildren(parent, localName);
  if (children.length !== 1)
    reject('BadSignature', `${parentName} must hold exactly one ${localName}, found ${children.length}`);
  return children[0]!;
}

function keyInfoCertificates(signature: Element): X509Certificate[] {
  const values = dsigChildren(signature, 'KeyInfo')
    .flatMap((keyInfo) => dsigChildren(keyInfo, 'X509Data'))
    .flatMap((data) => dsigChildren(data, 'X509Certificate'));
  if (values.length === 0)
    reject('UntrustedChain', 'the Signature carries no KeyInfo/X509Data/X509Certificate');
  if (values.length > maxKeyInfoCertificates)
    reject('TooLarge', `KeyInfo holds more than ${maxKeyInfoCertificates} certificates`);
  return values.map((value, index) => certificateOf(value, `KeyInfo certificate ${index + 1}`, 'Malformed'));
}

/** The same certificates come in every package of a feed (signer, CAs, TSA): each is decoded once. */
const decodedCertificates = new Map<string, X509Certificate>();
const maxDecodedCertificates = 64;

function certificateOf(value: Element, what: string, reason: RejectionReason): X509Certificate {
  const base64 = (value.textContent ?? '').replace(/\s+/g, '');
  const known = decodedCertificates.get(base64);
  if (known) return known;
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(Buffer.from(base64, 'base64'));
  } catch (error) {
    return reject(reason, `${what} is not a valid X.509 certificate`, error);
  }
  if (decodedCertificates.size >= maxDecodedCertificates) decodedCertificates.clear();
  decodedCertificates.set(base64, certificate);
  return certificate;
}

/** The key type each allowed SignatureMethod needs: an EC key never verifies under an RSA URI. */
const signatureKeyTypes: Readonly<Record<string, string>> = {
  [algorithms.signature.rsaSha256]: 'rsa',
  [algorithms.signature.rsaSha512]: 'rsa',
};

/**
 * The signer is the KeyInfo certificate, not a CA, whose key (of the type the SignatureMethod
 * needs) verifies SignatureValue over the canonical SignedInfo; the order of the certificates and
 * any others beside it (its issuers, the root, unrelated ones) do not matter.
 */
function findSigner(
  signature: Element,
  certificates: readonly X509Certificate[],
  signatureValue: Buffer,
): X509Certificate {
  const signedInfo = onlyChild(signature, 'SignedInfo', 'Signature');
  const signedInfoCanonical = Buffer.from(
    canonicalize(
      algorithmOf(onlyChild(signedInfo, 'CanonicalizationMethod', 'SignedInfo')),
      signedInfo,
      findAncestorNsForElement(signedInfo),
    ),
    'utf8',
  );
  const method = algorithmOf(onlyChild(signedInfo, 'SignatureMethod', 'SignedInfo'));
  const hash = signatureHashes[method]!;
  const keyType = signatureKeyTypes[method]!;
  const verifies = (certificate: X509Certificate): boolean => {
    if (certificate.publicKey.asymmetricKeyType !== keyType) return false;
    try {
      return cryptoVerify(hash, signedInfoCanonical, certificate.publicKey, signatureValue);
    } catch {
      return false;
    }
  };
  // End certificates first: the signer is usually the first one, and each try is an RSA verify.
  const signer = certificates.find((certificate) => !certificate.ca && verifies(certificate));
  if (signer) return signer;
  const caSigner = certificates.find((certificate) => certificate.ca && verifies(certificate));
  if (caSigner)
    reject(
      'WrongSigner',
      `the certificate whose key made the signature, "${describe(caSigner)}", is a CA; packages are signed by an end certificate`,
    );
  const mismatched = certificates.filter(
    (certificate) => !certificate.ca && certificate.publicKey.asymmetricKeyType !== keyType,
  );
  const why =
    mismatched.length > 0
      ? ` (SignatureMethod ${method} needs an ${keyType.toUpperCase()} key; ${mismatched.map((certificate) => `"${describe(certificate)}" has an ${certificate.publicKey.asymmetricKeyType?.toUpperCase()} key`).join(', ')})`
      : '';
  return reject(
    'BadSignature',
    `the SignatureValue does not match SignedInfo under the key of any KeyInfo certificate${why}`,
  );
}

/**
 * A KeyValue (Microsoft's packages carry the signer's RSAKeyValue) must be the signer
 * certificate's key; the key used is always the certificate's, whose chain is checked.
 */
function checkKeyValue(signature: Element, signer: X509Certificate): void {
  const keyInfo = dsigChildren(signature, 'KeyInfo')[0];
  if (!keyInfo) return;
  const signerKey = signer.publicKey.export({ format: 'jwk' });
  for (const keyValue of dsigChildren(keyInfo, 'KeyValue')) {
    const values = elementChildren(keyValue);
    const rsa =
      values.length === 1 && values[0]!.namespaceURI === DSIG_NS && values[0]!.localName === 'RSAKeyValue'
        ? values[0]!
        : undefined;
    if (!rsa || signerKey.kty !== 'RSA') {
      reject(
        'BadSignature',
        `KeyValue holds ${values.map((value) => `<${value.nodeName}>`).join(', ') || 'nothing'}, not the signer certificate's ${signer.publicKey.asymmetricKeyType?.toUpperCase()} key`,
      );
    }
    const modulus = unsigned(base64Of(onlyChild(rsa, 'Modulus', 'RSAKeyValue')));
    const exponent = unsigned(base64Of(onlyChild(rsa, 'Exponent', 'RSAKeyValue')));
    if (
      !modulus.equals(unsigned(Buffer.from(signerKey.n!, 'base64url'))) ||
      !exponent.equals(unsigned(Buffer.from(signerKey.e!, 'base64url')))
    ) {
      reject('BadSignature', `KeyValue is another key than the signer certificate's ("${describe(signer)}")`);
    }
  }
}

/** XML-DSig CryptoBinary and JWK integers, without leading zero octets, so both compare. */
function unsigned(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

/**
 * The `<Object>` holding Microsoft's `CounterSignature`: an RFC 3161 token over the SignatureValue
 * bytes, with the time-stamp authority's certificates in the Object's X509Data. Checked only when
 * the feed has timestamp anchors; then a present but invalid one rejects the package.
 */
function checkTimestamp(
  signature: Element,
  signatureValue: Buffer,
  trust: TrustPolicy,
  now: Date,
): TimestampOutcome {
  const counterSignatures = dsigChildren(signature, 'Object').flatMap((object) =>
    elementChildren(object)
      .filter(
        (child) =>
          child.namespaceURI === counterSignature.namespace && child.localName === counterSignature.element,
      )
      .map((node) => ({ object, node })),
  );
  if (counterSignatures.length === 0) return { status: 'absent' };
  if (trust.timestampAnchors.length === 0) return { status: 'unchecked' };
  if (counterSignatures.length > 1)
    reject(
      'BadTimestamp',
      `the Signature holds ${counterSignatures.length} CounterSignature elements; at most one is allowed`,
    );
  const { object, node } = counterSignatures[0]!;
  const format = node.getAttribute('ts-format');
  if (format !== counterSignature.format)
    reject(
      'BadTimestamp',
      `CounterSignature@ts-format is "${format ?? ''}", not "${counterSignature.format}"`,
    );
  for (const child of elementChildren(object)) {
    const known = child === node || (child.namespaceURI === DSIG_NS && child.localName === 'X509Data');
    if (!known)
      reject(
        'BadTimestamp',
        `the countersignature Object may hold only X509Data and CounterSignature, found <${child.nodeName}>`,
      );
  }
  const certificates = dsigChildren(object, 'X509Data')
    .flatMap((data) => dsigChildren(data, 'X509Certificate'))
    .map((value, index) => certificateOf(value, `countersignature certificate ${index + 1}`, 'BadTimestamp'));
  if (certificates.length > maxKeyInfoCertificates)
    reject('TooLarge', `the countersignature Object holds more than ${maxKeyInfoCertificates} certificates`);
  const token = base64Of(node, 'BadTimestamp');
  const key = createHash('sha256')
    .update(token)
    .update(signatureValue)
    .update(certificates.map((certificate) => certificate.fingerprint256).join())
    .digest('base64');
  const verified =
    verifiedTimestamps.get(trust)?.get(key) ??
    remember(
      trust,
      key,
      verifyTimestamp({
        token,
        signatureValue,
        certificates,
        chainTo: (leaf, intermediates) => {
          const chain = buildChain(leaf, intermediates, trust.timestampAnchors);
          checkRevocation(chain, trust);
          return chain;
        },
      }),
    );
  if (verified.time.getTime() > now.getTime() + clockSkewInMs)
    reject('BadTimestamp', `the time stamp ${verified.time.toISOString()} is in the future`);
  return { status: 'verified', ...verified };
}

/**
 * Verified time stamps per trust policy, by token, SignatureValue and certificates: the same
 * package is verified again and again (every poll checks the stored one, reconcile, the
 * dashboard), and decoding the token is the largest part of verifying it. The verdict depends on
 * nothing else (the clock check above is made each time); rejections are not kept.
 */
const verifiedTimestamps = new WeakMap<TrustPolicy, Map<string, VerifiedTimestamp>>();
const maxVerifiedTimestampsPerPolicy = 32;

function remember(trust: TrustPolicy, key: string, verified: VerifiedTimestamp): VerifiedTimestamp {
  let entries = verifiedTimestamps.get(trust);
  if (!entries) verifiedTimestamps.set(trust, (entries = new Map()));
  if (entries.size >= maxVerifiedTimestampsPerPolicy) entries.clear();
  entries.set(key, verified);
  return verified;
}

/**
 * The one Reference's digest over the document without its Signature (the enveloped-signature
 * transform), on the document parsed and shape-checked above (so what is verified is what was
 * checked: no second parser). Canonicalization is xml-crypto's; the rest is Node's crypto over
 * emfleet's allow-list (checkSignedInfo ran first). Leaves the document as the node set that was
 * digested: the Signature detached, the rest reduced by reduceToSignedNodes.
 */
function checkDigest(document: Document, signature: Element): void {
  const signedInfo = onlyChild(signature, 'SignedInfo', 'Signature');
  const reference = onlyChild(signedInfo, 'Reference', 'SignedInfo');
  const [, referenceCanonicalization] = dsigChildren(
    onlyChild(reference, 'Transforms', 'Reference'),
    'Transform',
  ).map(algorithmOf);
  const digestAlgorithm = digestHashes[algorithmOf(onlyChild(reference, 'DigestMethod', 'Reference'))]!;
  const digestValue = base64Of(onlyChild(reference, 'DigestValue', 'Reference'));
  const root = document.documentElement!;
  root.removeChild(signature);
  reduceToSignedNodes(root);
  const signedContent = canonicalize(referenceCanonicalization!, root, []);
  if (!createHash(digestAlgorithm).update(signedContent, 'utf8').digest().equals(digestValue)) {
    reject('BadSignature', 'the digest of the signed content does not match');
  }
}

const canonicalizers: Readonly<Record<string, C14nCanonicalization | ExclusiveCanonicalization>> = {
  [algorithms.canonicalization.c14n]: new C14nCanonicalization(),
  [algorithms.canonicalization.excC14n]: new ExclusiveCanonicalization(),
};
const digestHashes: Readonly<Record<string, string>> = {
  [algorithms.digest.sha256]: 'sha256',
  [algorithms.digest.sha512]: 'sha512',
};
const signatureHashes: Readonly<Record<string, string>> = {
  [algorithms.signature.rsaSha256]: 'sha256',
  [algorithms.signature.rsaSha512]: 'sha512',
};

function canonicalize(
  algorithm: string,
  node: Element,
  ancestorNamespaces: ReturnType<typeof findAncestorNsForElement>,
): string {
  const canonicalizer = canonicalizers[algorithm];
  if (!canonicalizer)
    return reject(
      'UnsupportedAlgorithm',
      `canonicalization algorithm ${algorithm || '(none)'} is not allowed`,
    );
  // xml-crypto's canonicalizers are typed for its own xmldom; ours is the same DOM shape.
  return String(
    canonicalizer.process(node as never, { ancestorNamespaces, defaultNsForPrefix: { ds: DSIG_NS } }),
  );
}

function base64Of(node: Element, reason: RejectionReason = 'BadSignature'): Buffer {
  const text = (node.textContent ?? '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0)
    reject(reason, `${node.localName} is not base64`);
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
