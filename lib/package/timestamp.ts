import {
  createHash,
  createPrivateKey,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  id_contentType,
  id_messageDigest,
  id_signedData,
} from '@peculiar/asn1-cms';
import {
  Constructed,
  fromBER,
  ObjectIdentifier,
  OctetString as OctetStringBlock,
  Sequence,
  type AsnType as AsnBlock,
} from 'asn1js';
import {
  AsnArray,
  AsnConvert,
  AsnParser,
  AsnProp,
  AsnPropTypes,
  AsnType,
  AsnTypeTypes,
  OctetString,
} from '@peculiar/asn1-schema';
import { id_ct_tstInfo, MessageImprint, TSTInfo } from '@peculiar/asn1-tsp';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { validatePath } from './path.js';
import { PackageRejectedError, reject } from './reasons.js';

/** The time-stamp authority's extended key usage (RFC 3161 §2.3). */
export const timeStampingEku = '1.3.6.1.5.5.7.3.8';
/** `CounterSignature` of Microsoft's packages: `<Object Id="ts-countersig">` in the Signature. */
export const counterSignature = {
  namespace: 'http://schemas.microsoft.com/xmldsig/timestamp/2003',
  element: 'CounterSignature',
  format: 'cms-timestamp-message',
  objectId: 'ts-countersig',
} as const;
/** The policy Microsoft's time-stamp service names; emfleet's own TSA uses it too. */
export const microsoftTimestampPolicy = '1.3.6.1.4.1.601.10.3.1';

/** Hashes a token may use for its imprint and its signature. SHA-1 and MD5 are refused. */
const hashes: Readonly<Record<string, string>> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
const sha256Oid = '2.16.840.1.101.3.4.2.1';
/** Signature algorithms of the SignerInfo: the key type they need and the hash they imply (none: the digestAlgorithm's). */
const signatureAlgorithms: Readonly<Record<string, { keyType: string; hash?: string }>> = {
  '1.2.840.113549.1.1.1': { keyType: 'rsa' },
  '1.2.840.113549.1.1.11': { keyType: 'rsa', hash: 'sha256' },
  '1.2.840.113549.1.1.12': { keyType: 'rsa', hash: 'sha384' },
  '1.2.840.113549.1.1.13': { keyType: 'rsa', hash: 'sha512' },
  '1.2.840.10045.4.3.2': { keyType: 'ec', hash: 'sha256' },
  '1.2.840.10045.4.3.3': { keyType: 'ec', hash: 'sha384' },
  '1.2.840.10045.4.3.4': { keyType: 'ec', hash: 'sha512' },
};
const sha256WithRsa = '1.2.840.113549.1.1.11';

/** The DER SET OF the signed attributes: what the SignerInfo's signature covers (RFC 5652 §5.4). */
class SignedAttributes extends AsnArray<Attribute> {
  constructor(items?: Attribute[]) {
    super(items);
    Object.setPrototypeOf(this, SignedAttributes.prototype);
  }
}
AsnType({ type: AsnTypeTypes.Set, itemType: Attribute })(SignedAttributes);

export interface VerifiedTimestamp {
  /** TSTInfo genTime: when the TSA saw the SignatureValue (milliseconds kept). */
  readonly time: Date;
  readonly policy: string;
  /** Subjects from the TSA certificate to the timestamp anchor. */
  readonly chain: readonly string[];
}

export interface TimestampCheck {
  /** The token: a CMS ContentInfo, DER or BER (indefinite lengths). */
  readonly token: Uint8Array;
  /** The decoded bytes of the package's SignatureValue: what the imprint must be a hash of. */
  readonly signatureValue: Uint8Array;
  /** Certificates beside the token (the Object's X509Data), used as candidates with the token's own. */
  readonly certificates: readonly X509Certificate[];
  /**
   * Builds the chain from the TSA certificate to a timestamp anchor and checks it against the
   * deny-list: the verifier's, so both chains follow the same rules.
   */
  readonly chainTo: (leaf: X509Certificate, intermediates: readonly X509Certificate[]) => X509Certificate[];
}

/**
 * Verifies an RFC 3161 time-stamp token over a package's SignatureValue, with @peculiar/asn1-cms
 * and @peculiar/asn1-tsp for the structures and Node's crypto for the signature: the token's
 * SignedData holds one SignerInfo whose signed attributes name TSTInfo and carry the digest of the
 * encapsulated TSTInfo; its signature verifies under a certificate with the timestamping EKU that
 * chains to a timestamp anchor and is valid at genTime; the imprint is the hash (SHA-256 or
 * stronger, from the token) of the SignatureValue bytes. Any failure is `BadTimestamp`. The
 * result depends on nothing but its input (no clock), so the caller may keep it.
 */
export function verifyTimestamp(check: TimestampCheck): VerifiedTimestamp {
  try {
    return verifyTimestampOrThrow(check);
  } catch (error) {
    if (error instanceof PackageRejectedError) {
      if (error.reason === 'BadTimestamp') throw error;
      return reject('BadTimestamp', `the time-stamp authority: ${error.detail}`, error);
    }
    return reject(
      'BadTimestamp',
      `the CounterSignature is not a readable RFC 3161 token: ${error instanceof Error ? oneLine(error.message) : String(error)}`,
      error,
    );
  }
}

function verifyTimestampOrThrow(check: TimestampCheck): VerifiedTimestamp {
  const { signedData, tokenCertificates } = signedDataOf(check.token);
  const encapsulated = signedData.encapContentInfo;
  if (encapsulated.eContentType !== id_ct_tstInfo)
    bad(`the token encapsulates ${encapsulated.eContentType}, not TSTInfo`);
  const content = encapsulated.eContent?.single?.buffer ?? encapsulated.eContent?.any;
  if (!content) bad('the token encapsulates no TSTInfo');
  const tstInfoBytes = Buffer.from(content);
  const tstInfo = AsnConvert.parse(tstInfoBytes, TSTInfo);

  const imprintHash = hashes[tstInfo.messageImprint.hashAlgorithm.algorithm];
  if (!imprintHash)
    bad(
      `the imprint uses hash ${tstInfo.messageImprint.hashAlgorithm.algorithm}; SHA-256, SHA-384 or SHA-512 is required`,
    );
  const imprint = Buffer.from(tstInfo.messageImprint.hashedMessage.buffer);
  if (!createHash(imprintHash).update(check.signatureValue).digest().equals(imprint)) {
    bad('the token time-stamps another value: its imprint is not the hash of this SignatureValue');
  }

  if (signedData.signerInfos.length !== 1)
    bad(`the token has ${signedData.signerInfos.length} SignerInfos; a time-stamp token has exactly one`);
  const signerInfo = signedData.signerInfos[0]!;
  const digestHash = hashes[signerInfo.digestAlgorithm.algorithm];
  if (!digestHash)
    bad(
      `the token's signature uses digest ${signerInfo.digestAlgorithm.algorithm}; SHA-256, SHA-384 or SHA-512 is required`,
    );
  const attributes = signerInfo.signedAttrs;
  if (!attributes || attributes.length === 0) bad('the token has no signed attributes');
  const contentType = singleAttribute(attributes, id_contentType);
  if (objectIdentifierOf(contentType) !== id_ct_tstInfo)
    bad('the signed content-type attribute is not TSTInfo');
  const messageDigest = Buffer.from(
    AsnConvert.parse(singleAttribute(attributes, id_messageDigest), OctetString).buffer,
  );
  if (!createHash(digestHash).update(tstInfoBytes).digest().equals(messageDigest))
    bad('the signed message-digest attribute does not match the TSTInfo');

  const algorithm = signatureAlgorithms[signerInfo.signatureAlgorithm.algorithm];
  if (!algorithm)
    bad(`the token's signature algorithm ${signerInfo.signatureAlgorithm.algorithm} is not allowed`);
  if (algorithm.hash !== undefined && algorithm.hash !== digestHash)
    bad(
      `the token's signature algorithm hashes with ${algorithm.hash}, its digestAlgorithm is ${digestHash}`,
    );
  const signedBytes = Buffer.from(AsnConvert.serialize(new SignedAttributes(attributes)));
  const signature = Buffer.from(signerInfo.signature.buffer);

  const candidates = [...tokenCertificates, ...check.certificates];
  const tsa = candidates.find(
    (candidate) =>
      identifies(signerInfo.sid, candidate) &&
      keyVerifies(candidate.publicKey, algorithm.keyType, digestHash, signedBytes, signature),
  );
  if (!tsa) bad('no certificate in the token or its X509Data is the one that signed it');

  checkSigningCertificate(attributes, tsa);
  if (!(tsa.keyUsage ?? []).includes(timeStampingEku))
    bad(
      `the TSA certificate "${oneLine(tsa.subject)}" lacks extended key usage ${timeStampingEku} (timeStamping)`,
    );
  const time = tstInfo.genTime;
  const chain = check.chainTo(
    tsa,
    candidates.filter((candidate) => candidate !== tsa),
  );
  validatePath(chain, 'BadTimestamp');
  for (const certificate of chain) {
    if (time < certificate.validFromDate || time > certificate.validToDate) {
      bad(
        `certificate "${oneLine(certificate.subject)}" is valid ${certificate.validFromDate.toISOString()} to ${certificate.validToDate.toISOString()}, not at the time stamp ${time.toISOString()}`,
      );
    }
  }
  return { time, policy: tstInfo.policy, chain: chain.map((certificate) => oneLine(certificate.subject)) };
}

/** ESS signing-certificate attributes (RFC 2634, RFC 5816): the signed hash of the TSA's certificate. */
const id_aa_signingCertificate = '1.2.840.113549.1.9.16.2.12';
const id_aa_signingCertificateV2 = '1.2.840.113549.1.9.16.2.47';

/**
 * A token names the certificate of its signer in a signed ESS attribute (Microsoft's carry
 * signingCertificateV2): when it does, the first ESSCertID's hash must be the hash of the
 * certificate whose key verified, so a certificate with the same key cannot be swapped in.
 */
function checkSigningCertificate(attributes: readonly Attribute[], tsa: X509Certificate): void {
  for (const [type, defaultHash] of [
    [id_aa_signingCertificateV2, 'sha256'],
    [id_aa_signingCertificate, 'sha1'],
  ] as const) {
    const attribute = attributes.find((candidate) => candidate.attrType === type);
    if (!attribute) continue;
    const essCertId = firstEssCertId(attribute.attrValues[0]);
    const [first, second] = essCertId;
    const hashOid =
      first instanceof Sequence
        ? objectIdentifierOf(first.valueBlock.value[0]?.toBER() ?? new ArrayBuffer(0))
        : undefined;
    const hash = hashOid === undefined ? defaultHash : hashes[hashOid];
    const certHash = first instanceof Sequence ? second : first;
    if (!hash || !(certHash instanceof OctetStringBlock))
      bad(`the signed ${type} attribute is not an ESSCertID the verifier can check`);
    if (!createHash(hash).update(tsa.raw).digest().equals(Buffer.from(certHash.valueBlock.valueHexView))) {
      bad(
        `the signed ${type} attribute names another certificate than "${oneLine(tsa.subject)}", whose key signed the token`,
      );
    }
    return;
  }
}

/** SigningCertificate(V2) ::= SEQUENCE { certs SEQUENCE OF ESSCertID(v2), … }: the elements of the first ESSCertID. */
function firstEssCertId(value: ArrayBuffer | undefined): AsnBlock[] {
  const decoded = value === undefined ? undefined : fromBER(value).result;
  const certs = decoded instanceof Sequence ? decoded.valueBlock.value[0] : undefined;
  const first = certs instanceof Sequence ? certs.valueBlock.value[0] : undefined;
  if (!(first instanceof Sequence)) bad('a signed signing-certificate attribute holds no ESSCertID');
  return first.valueBlock.value;
}

/**
 * The token decoded once (asn1js reads BER, indefinite lengths included), its ContentInfo
 * unwrapped to the SignedData node for @peculiar/asn1-cms. The certificate set is taken from the
 * decoded node as it is: X.509 certificates (universal SEQUENCEs) as their bytes for Node's
 * X509Certificate, the other CertificateChoices ([0] extended certificates, [1] version 1 attribute
 * certificates as Microsoft's tokens carry, [2], [3]) skipped. asn1-cms would re-encode each
 * certificate and does not know [0] and [1]; decoding a part again would double its cost.
 */
function signedDataOf(token: Uint8Array): { signedData: SignedData; tokenCertificates: X509Certificate[] } {
  const decoded = fromBER(new Uint8Array(token));
  if (decoded.offset === -1) bad(`the token is not BER/DER: ${decoded.result.error}`);
  if (decoded.offset !== token.byteLength)
    bad(`the token has ${token.byteLength - decoded.offset} bytes after its end`);
  const contentInfo = AsnParser.fromASN(decoded.result, ContentInfoShape);
  if (contentInfo.contentType !== id_signedData)
    bad(`the token is a CMS ${contentInfo.contentType}, not SignedData`);
  const node = contentInfo.content;
  if (!(node instanceof Sequence)) bad("the token's SignedData is not a SEQUENCE");
  const isCertificateSet = (child: AsnBlock): boolean =>
    child.idBlock.tagClass === 3 && child.idBlock.tagNumber === 0;
  const certificateSet = node.valueBlock.value.find(isCertificateSet);
  node.valueBlock.value = node.valueBlock.value.filter((child) => !isCertificateSet(child));
  const choices = certificateSet instanceof Constructed ? certificateSet.valueBlock.value : [];
  const tokenCertificates = choices.flatMap((choice) =>
    choice instanceof Sequence ? x509OrNothing(choice.valueBeforeDecodeView) : [],
  );
  return { signedData: AsnParser.fromASN(node, SignedData), tokenCertificates };
}

/** ContentInfo with its content left decoded (asn1-cms's keeps it as bytes to decode again). */
class ContentInfoShape {
  contentType = '';
  content!: AsnBlock;
}
AsnProp({ type: AsnPropTypes.ObjectIdentifier })(ContentInfoShape.prototype, 'contentType');
AsnProp({
  type: AsnPropTypes.Any,
  context: 0,
  converter: { fromASN: (value: AsnBlock) => value, toASN: (value: unknown) => value as AsnBlock },
})(ContentInfoShape.prototype, 'content');
AsnType({ type: AsnTypeTypes.Sequence })(ContentInfoShape);

/** A SEQUENCE in the certificate set that is not an X.509 certificate is skipped like the other choices. */
function x509OrNothing(bytes: Uint8Array): X509Certificate[] {
  try {
    return [new X509Certificate(Buffer.from(bytes))];
  } catch {
    return [];
  }
}

function objectIdentifierOf(value: ArrayBuffer): string | undefined {
  const parsed = fromBER(value).result;
  return parsed instanceof ObjectIdentifier ? parsed.getValue() : undefined;
}

function singleAttribute(attributes: readonly Attribute[], type: string): ArrayBuffer {
  const matching = attributes.filter((attribute) => attribute.attrType === type);
  if (matching.length !== 1 || matching[0]!.attrValues.length !== 1)
    bad(`the token must have exactly one signed ${type} attribute with one value`);
  return matching[0]!.attrValues[0]!;
}

function identifies(sid: SignerIdentifier, certificate: X509Certificate): boolean {
  if (sid.issuerAndSerialNumber) {
    const serial = Buffer.from(sid.issuerAndSerialNumber.serialNumber)
      .toString('hex')
      .toUpperCase()
      .replace(/^0+(?=.)/, '');
    return serial === certificate.serialNumber.toUpperCase().replace(/^0+(?=.)/, '');
  }
  if (sid.subjectKeyIdentifier) {
    const wanted = Buffer.from(sid.subjectKeyIdentifier.buffer).toString('hex').toUpperCase();
    const parsed = AsnConvert.parse(certificate.raw, Certificate);
    const ski = parsed.tbsCertificate.extensions?.find((extension) => extension.extnID === '2.5.29.14');
    return (
      ski !== undefined &&
      Buffer.from(AsnConvert.parse(ski.extnValue, OctetString).buffer).toString('hex').toUpperCase() ===
        wanted
    );
  }
  return false;
}

function keyVerifies(
  key: KeyObject,
  keyType: string,
  hash: string,
  data: Buffer,
  signature: Buffer,
): boolean {
  if (key.asymmetricKeyType !== keyType) return false;
  try {
    return cryptoVerify(hash, data, key, signature);
  } catch {
    return false;
  }
}

function bad(detail: string): never {
  return reject('BadTimestamp', detail);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** What a TSA may hash the message with; SHA-1 only so tests can show the verifier refuses it. */
export type ImprintHash = 'sha1' | 'sha256' | 'sha384' | 'sha512';
const imprintHashOids: Readonly<Record<ImprintHash, string>> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};

export interface TimestampAuthority {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
  /** Its issuers, carried in the Object's X509Data as Microsoft's packages carry theirs. */
  readonly chainPems?: readonly string[];
}

/**
 * An RFC 3161 token over `message` (the SignatureValue bytes), as a time-stamp authority answers:
 * TSTInfo with a SHA-256 imprint and `time` as genTime, signed (RSA, SHA-256) by the TSA key with
 * the TSA certificate in the token, and encoded with the outer indefinite lengths Microsoft's
 * tokens use (BER), so every verifier test reads BER.
 */
export function createTimestampToken(
  message: Uint8Array,
  authority: TimestampAuthority,
  time: Date,
  options: {
    readonly imprintHash?: ImprintHash /** The certificate the token names as its signer; the TSA's own unless a test says otherwise. */;
    readonly namedCertificatePem?: string;
  } = {},
): Buffer {
  const certificate = new X509Certificate(authority.certificatePem);
  const key = createPrivateKey(authority.privateKeyPem);
  const imprintHash = options.imprintHash ?? 'sha256';
  const tstInfo = new TSTInfo({
    policy: microsoftTimestampPolicy,
    messageImprint: new MessageImprint({
      hashAlgorithm: new AlgorithmIdentifier({ algorithm: imprintHashOids[imprintHash], parameters: null }),
      hashedMessage: new OctetString(createHash(imprintHash).update(message).digest()),
    }),
    serialNumber: toArrayBuffer(Buffer.concat([Buffer.from([0x01]), randomBytes(8)])),
    genTime: time,
  });
  const tstInfoBytes = Buffer.from(AsnConvert.serialize(tstInfo));
  const named =
    options.namedCertificatePem === undefined
      ? certificate
      : new X509Certificate(options.namedCertificatePem);
  const attributes = [
    new Attribute({
      attrType: id_contentType,
      attrValues: [new ObjectIdentifier({ value: id_ct_tstInfo }).toBER()],
    }),
    new Attribute({ attrType: id_aa_signingCertificateV2, attrValues: [signingCertificateV2(named)] }),
    new Attribute({
      attrType: id_messageDigest,
      attrValues: [AsnConvert.serialize(new OctetString(createHash('sha256').update(tstInfoBytes).digest()))],
    }),
  ];
  const parsedCertificate = AsnConvert.parse(certificate.raw, Certificate);
  const signerInfo = new SignerInfo({
    version: 1,
    sid: new SignerIdentifier({
      issuerAndSerialNumber: new IssuerAndSerialNumber({
        issuer: parsedCertificate.tbsCertificate.issuer,
        serialNumber: parsedCertificate.tbsCertificate.serialNumber,
      }),
    }),
    digestAlgorithm: new AlgorithmIdentifier({ algorithm: sha256Oid, parameters: null }),
    signedAttrs: attributes,
    signatureAlgorithm: new AlgorithmIdentifier({ algorithm: sha256WithRsa, parameters: null }),
    signature: new OctetString(
      cryptoSign('sha256', Buffer.from(AsnConvert.serialize(new SignedAttributes(attributes))), key),
    ),
  });
  const signedData = new SignedData({
    version: 3,
    digestAlgorithms: new DigestAlgorithmIdentifiers([
      new AlgorithmIdentifier({ algorithm: sha256Oid, parameters: null }),
    ]),
    encapContentInfo: new EncapsulatedContentInfo({
      eContentType: id_ct_tstInfo,
      eContent: new EncapsulatedContent({ single: new OctetString(tstInfoBytes) }),
    }),
    certificates: new CertificateSet([new CertificateChoices({ certificate: parsedCertificate })]),
    signerInfos: new SignerInfos([signerInfo]),
  });
  return indefiniteContentInfo(Buffer.from(AsnConvert.serialize(signedData)));
}

/** SigningCertificateV2 with one ESSCertIDv2: the SHA-256 of the certificate (the default hash, so not written). */
function signingCertificateV2(certificate: X509Certificate): ArrayBuffer {
  const essCertIdV2 = new Sequence({
    value: [new OctetStringBlock({ valueHex: createHash('sha256').update(certificate.raw).digest() })],
  });
  return new Sequence({ value: [new Sequence({ value: [essCertIdV2] })] }).toBER();
}

/** `SEQUENCE { signedData OID, [0] { SignedData } }` with both outer lengths indefinite, as in Microsoft's tokens. */
function indefiniteContentInfo(signedData: Buffer): Buffer {
  const signedDataOid = Buffer.from('06092a864886f70d010702', 'hex');
  const endOfContents = Buffer.from([0, 0]);
  return Buffer.concat([
    Buffer.from([0x30, 0x80]),
    signedDataOid,
    Buffer.from([0xa0, 0x80]),
    signedData,
    endOfContents,
    endOfContents,
  ]);
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
