import { createPrivateKey, createPublicKey, type X509Certificate } from 'node:crypto';
import { XMLSerializer } from '@xmldom/xmldom';
import { ConfigError } from '../errors.js';
import { algorithms, DSIG_NS, element } from './format.js';
import { parseEocs } from './parse.js';
import { PackageRejectedError } from './reasons.js';
import { restrictedSignedXml } from './signed-xml.js';
import { certificatesFromPem } from './trust.js';
import { parseXml } from './xml.js';

export interface SigningIdentity {
  readonly privateKeyPem: string;
  readonly certificatePem: string;
  /** Intermediates (and optionally the root) to put in KeyInfo after the signer. */
  readonly chainPems?: readonly string[];
}

export interface SignOptions {
  /** Stamped into `EOCS@signingTime`; defaults to now. */
  readonly signingTime?: Date;
  /** Stamped into `EOCS@sequence` (organization feeds). */
  readonly sequence?: number;
}

/**
 * Enveloped XML-DSig over the whole EOCS document: Reference URI="", enveloped-signature + C14N 1.0,
 * RSA-SHA256, SHA-256 digest, KeyInfo/X509Data with the signer then each chain certificate.
 * The input must already be a valid unsigned EOCS document; it is checked with the same parser
 * the verifier uses, so a package that signs is a package that can verify.
 */
export function signPackage(xml: string, identity: SigningIdentity, options: SignOptions = {}): string {
  const document = parseUnsigned(xml);
  const root = document.documentElement!;
  root.setAttribute('signingTime', (options.signingTime ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'));
  if (options.sequence !== undefined) {
    if (!Number.isSafeInteger(options.sequence) || options.sequence < 0) {
      throw new RangeError(`sequence must be a non-negative integer, got ${options.sequence}`);
    }
    root.setAttribute('sequence', String(options.sequence));
  }
  const [signer] = certificatesFromPem(identity.certificatePem, 'signer certificate');
  const chain = (identity.chainPems ?? []).flatMap((pem, index) => certificatesFromPem(pem, `chain certificate ${index + 1}`));
  checkKeyMatches(identity.privateKeyPem, signer!);

  const signedXml = restrictedSignedXml({
    privateKey: identity.privateKeyPem,
    signatureAlgorithm: algorithms.signature.rsaSha256,
    canonicalizationAlgorithm: algorithms.canonicalization.c14n,
    getKeyInfoContent: () =>
      `<X509Data>${[signer!, ...chain].map((certificate) => `<X509Certificate>${certificate.raw.toString('base64')}</X509Certificate>`).join('')}</X509Data>`,
  });
  signedXml.addReference({
    xpath: '/*',
    isEmptyUri: true,
    transforms: [algorithms.envelopedSignature, algorithms.canonicalization.c14n],
    digestAlgorithm: algorithms.digest.sha256,
  });
  signedXml.computeSignature(new XMLSerializer().serializeToString(document), {
    location: { reference: '/*', action: 'append' },
  });
  return signedXml.getSignedXml();
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

function checkKeyMatches(privateKeyPem: string, certificate: X509Certificate): void {
  let publicFromKey: string;
  try {
    publicFromKey = createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'pem' }).toString();
  } catch (error) {
    throw new ConfigError('the signing key is not a readable PEM private key', { cause: error });
  }
  if (publicFromKey !== certificate.publicKey.export({ type: 'spki', format: 'pem' }).toString()) {
    throw new ConfigError('the signing key does not belong to the signer certificate');
  }
}
