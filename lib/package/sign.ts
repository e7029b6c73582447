import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type X509Certificate,
} from 'node:crypto';
import { XMLSerializer, type Element } from '@xmldom/xmldom';
import { C14nCanonicalization } from 'xml-crypto';
import { findAncestorNsForElement } from 'xml-crypto/lib/utils.js';
import { ConfigError } from '../errors.js';
import { algorithms, DSIG_NS, element } from './format.js';
import { elementChildren, parseEocs } from './parse.js';
import { PackageRejectedError } from './reasons.js';
import { reduceToSignedNodes } from './signed-nodes.js';
import { counterSignature, createTimestampToken, type TimestampAuthority } from './timestamp.js';
import { certificatesFromPem } from './trust.js';
import { parseXml } from './xml.js';

export interface SigningIdentity {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
  /** Issuers (intermediates, and the root as Microsoft's packages carry it) to put in KeyInfo after the signer. */
  readonly chainPems?: readonly string[];
}

export interface SignOptions {
  /**
   * Countersigns the SignatureValue with an RFC 3161 time stamp from this authority, in
   * `<Object Id="ts-countersig">` as Microsoft's packages do. Without one the package has no
   * trusted signing time.
   */
  readonly timestampAuthority?: TimestampAuthority;
  /** The time stamp's time (genTime); defaults to now. Only with a timestamp authority. */
  readonly signingTime?: Date;
  /** Stamped into `EOCS@sequence` (organization feeds). */
  readonly sequence?: number;
}

const xmlDeclaration = '<?xml version="1.0" encoding="utf-8"?>';

/**
 * Signs an EOCS document in the shape of Microsoft's packages (docs/package-format.md): the XML
 * declaration and CRLF line ends; an enveloped Signature, last child of EOCS, over the whole
 * document (Reference URI="", enveloped-signature + C14N 1.0, SHA-256, RSA-SHA256) whose KeyInfo
 * holds the signer's RSAKeyValue and X509Data with the signer and then each chain certificate;
 * then, with a timestamp authority, `<Object Id="ts-countersig">` with the TSA's certificates and a
 * CounterSignature: an RFC 3161 token over the SignatureValue bytes.
 * The input must be a valid unsigned EOCS document; it is checked with the parser the verifier
 * uses, and the digest is taken the way the verifier takes it, so a package that signs verifies.
 */
export function signPackage(xml: string, identity: SigningIdentity, options: SignOptions = {}): string {
  if (options.signingTime !== undefined && options.timestampAuthority === undefined) {
    throw new TypeError("signingTime is the time stamp's time: give a timestampAuthority with it");
  }
  const [signer] = certificatesFromPem(identity.certificatePem, 'signer certificate');
  const chain = (identity.chainPems ?? []).flatMap((pem, index) =>
    certificatesFromPem(pem, `chain certificate ${index + 1}`),
  );
  checkKeyMatches(identity.privateKeyPem, signer!, 'signing');
  const signerKey = signer!.publicKey.export({ format: 'jwk' });
  if (signerKey.kty !== 'RSA')
    throw new ConfigError(
      `the signer certificate has an ${signer!.publicKey.asymmetricKeyType} key; packages are signed with RSA-SHA256`,
    );

  const unsigned = unsignedText(xml, options.sequence);
  const digest = createHash('sha256').update(canonicalContent(unsigned), 'utf8').digest('base64');
  const signedInfo =
    `<SignedInfo><CanonicalizationMethod Algorithm="${algorithms.canonicalization.c14n}" />` +
    `<SignatureMethod Algorithm="${algorithms.signature.rsaSha256}" />` +
    `<Reference URI=""><Transforms><Transform Algorithm="${algorithms.envelopedSignature}" />` +
    `<Transform Algorithm="${algorithms.canonicalization.c14n}" /></Transforms>` +
    `<DigestMethod Algorithm="${algorithms.digest.sha256}" /><DigestValue>${digest}</DigestValue></Reference></SignedInfo>`;
  const keyInfo =
    `<KeyInfo><KeyValue><RSAKeyValue><Modulus>${base64OfJwk(signerKey.n!)}</Modulus><Exponent>${base64OfJwk(signerKey.e!)}</Exponent></RSAKeyValue></KeyValue>` +
    `<X509Data>${[signer!, ...chain].map(certificateElement).join('')}</X509Data></KeyInfo>`;
  const placeholder = 'SIGNATURE-VALUE';
  const withSignature = (signatureValue: string, objects: string): string =>
    insertBeforeRootEnd(
      unsigned,
      `<Signature xmlns="${DSIG_NS}">${signedInfo}<SignatureValue>${signatureValue}</SignatureValue>${keyInfo}${objects}</Signature>`,
    );

  const signatureValue = cryptoSign(
    'sha256',
    Buffer.from(canonicalSignedInfo(withSignature(placeholder, '')), 'utf8'),
    identity.privateKeyPem,
  );
  const authority = options.timestampAuthority;
  const objects = authority
    ? countersignatureObject(signatureValue, authority, options.signingTime ?? new Date())
    : '';
  return withSignature(signatureValue.toString('base64'), objects);
}

/** The document with the standard declaration and CRLF line ends (what OCS serves), and the sequence stamped. */
function unsignedText(xml: string, sequence: number | undefined): string {
  const document = parseUnsigned(xml);
  const root = document.documentElement!;
  if (sequence !== undefined) {
    if (!Number.isSafeInteger(sequence) || sequence < 0)
      throw new RangeError(`sequence must be a non-negative integer, got ${sequence}`);
    root.setAttribute('sequence', String(sequence));
  }
  for (let node = document.firstChild; node; ) {
    const next = node.nextSibling;
    if (node.nodeType === node.PROCESSING_INSTRUCTION_NODE && node.nodeName === 'xml')
      document.removeChild(node);
    node = next;
  }
  // The serializer escapes line breaks in attribute values, so every literal LF is a line end or text, where CRLF reads back the same.
  const text = new XMLSerializer()
    .serializeToString(document)
    .replace(/^\s+/, '')
    .replace(/\s+$/, '')
    .replace(/\r?\n/g, '\r\n');
  return `${xmlDeclaration}\r\n${text}`;
}

/** The canonical form the verifier digests: the document element, reduced to its signed node set, in C14N 1.0. */
function canonicalContent(text: string): string {
  const root = parseXml(text).documentElement!;
  reduceToSignedNodes(root);
  return String(new C14nCanonicalization().process(root as never, { ancestorNamespaces: [] }));
}

function canonicalSignedInfo(text: string): string {
  const signature = parseXml(text).getElementsByTagNameNS(DSIG_NS, element.signature).item(0)!;
  const signedInfo = elementChildren(signature)[0] as Element;
  return String(
    new C14nCanonicalization().process(signedInfo as never, {
      ancestorNamespaces: findAncestorNsForElement(signedInfo as never),
      defaultNsForPrefix: { ds: DSIG_NS },
    }),
  );
}

/** Microsoft's packages end `…</Config>\r\n<Signature …>…</Signature></EOCS>`: the Signature goes right before the root's end tag. */
function insertBeforeRootEnd(text: string, signature: string): string {
  const end = text.lastIndexOf(`</${element.root}`);
  if (end < 0)
    throw new ConfigError(`the EOCS document must end with </${element.root}>, not a self-closing root`);
  return text.slice(0, end) + signature + text.slice(end);
}

function countersignatureObject(signatureValue: Buffer, authority: TimestampAuthority, time: Date): string {
  const certificates = [authority.certificatePem, ...(authority.chainPems ?? [])].flatMap((pem, index) =>
    certificatesFromPem(pem, `time-stamp authority certificate ${index + 1}`),
  );
  checkKeyMatches(authority.privateKeyPem, certificates[0]!, 'time-stamp authority');
  const token = createTimestampToken(signatureValue, authority, time);
  return (
    `<Object Id="${counterSignature.objectId}"><X509Data>${certificates.map(certificateElement).join('')}</X509Data>` +
    `<${counterSignature.element} ts-format="${counterSignature.format}" xmlns="${counterSignature.namespace}">${token.toString('base64')}</${counterSignature.element}></Object>`
  );
}

function certificateElement(certificate: X509Certificate): string {
  return `<X509Certificate>${certificate.raw.toString('base64')}</X509Certificate>`;
}

function base64OfJwk(value: string): string {
  return Buffer.from(value, 'base64url').toString('base64');
}

function parseUnsigned(xml: string): ReturnType<typeof parseXml> {
  try {
    const document = parseXml(xml);
    parseEocs(document);
    if (document.getElementsByTagNameNS(DSIG_NS, element.signature).length > 0) {
      throw new ConfigError('the input is already signed; sign the unsigned EOCS document');
    }
    return document;
  } catch (error) {
    if (error instanceof PackageRejectedError) {
      throw new ConfigError(`the input is not a valid EOCS document: ${error.detail}`, { cause: error });
    }
    throw error;
  }
}

function checkKeyMatches(privateKeyPem: string, certificate: X509Certificate, which: string): void {
  let publicFromKey: string;
  try {
    publicFromKey = createPublicKey(createPrivateKey(privateKeyPem))
      .export({ type: 'spki', format: 'pem' })
      .toString();
  } catch (error) {
    throw new ConfigError(`the ${which} key is not a readable PEM private key`, { cause: error });
  }
  if (publicFromKey !== certificate.publicKey.export({ type: 'spki', format: 'pem' }).toString()) {
    throw new ConfigError(`the ${which} key does not belong to its certificate`);
  }
}
