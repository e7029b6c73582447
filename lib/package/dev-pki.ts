// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { microsoftSignerEku, microsoftSignerSubjectCn } from './format.js';
import { devPkiFiles } from './dev-pki-files.js';
import { timeStampingEku, type TimestampAuthority } from './timestamp.js';

/*
 * The development PKI: the signing side's counterpart of the trust checks in this folder, made for
 * `emfleet dev pki` (a CLI contract, DESIGN §10), `emfleet package sign --dev-tsa`, `npm start` and
 * the tests. It lives beside the signer rather than in lib/local because the shipped CLI uses it:
 * it makes certificates and keys and nothing else, trusts nothing by itself (a package it signs
 * verifies only where its root is configured as a pinned anchor), and reaches no storage or
 * network. The agent bundle never imports it.
 */

// Node's webcrypto is the standard Crypto at run time; its TypeScript type differs from the DOM one x509 names.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const keyAlgorithms = {
  RSA: {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  },
  ECDSA: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
} as const;
type KeyAlgorithmName = keyof typeof keyAlgorithms;

export interface IssuedCertificate {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly certificate: X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

export interface IssueOptions {
  readonly subjectCn: string;
  /** Absent: self-signed. */
  readonly issuer?: IssuedCertificate;
  readonly ca?: boolean;
  readonly extendedKeyUsages?: readonly string[];
  /** Marks the extended key usage critical (RFC 3161 asks that of a time-stamp authority). */
  readonly extendedKeyUsageCritical?: boolean;
  /** basicConstraints pathLenConstraint of a CA. */
  readonly pathLength?: number;
  /** Key usage bits (x509.KeyUsageFlags); default keyCertSign + cRLSign for a CA, digitalSignature otherwise. */
  readonly keyUsages?: number;
  /** More extensions, e.g. a critical one no verifier knows (tests). */
  readonly extraExtensions?: readonly x509.Extension[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Hex; random when absent. */
  readonly serialNumber?: string;
  /** The certified key's type; RSA-2048 by default (tests make ECDSA P-256 ones). */
  readonly keyAlgorithm?: KeyAlgorithmName;
}

/** One X.509 certificate and its key (RSA-2048 by default), made with @peculiar/x509 (Node has no builder). */
export async function issueCertificate(options: IssueOptions): Promise<IssuedCertificate> {
  const keyAlgorithm = keyAlgorithms[options.keyAlgorithm ?? 'RSA'];
  const keys = (await webcrypto.subtle.generateKey(keyAlgorithm, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 5 * 365 * 24 * 60 * 60 * 1000);
  const ca = options.ca ?? false;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(ca, options.pathLength, true),
    new x509.KeyUsagesExtension(
      options.keyUsages ??
        (ca
          ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
          : x509.KeyUsageFlags.digitalSignature),
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ...(options.extraExtensions ?? []),
  ];
  if (options.extendedKeyUsages && options.extendedKeyUsages.length > 0) {
    extensions.push(
      new x509.ExtendedKeyUsageExtension(
        [...options.extendedKeyUsages],
        options.extendedKeyUsageCritical ?? false,
      ),
    );
  }
  const subject = `CN=${options.subjectCn}`;
  const serial = options.serialNumber === undefined ? {} : { serialNumber: options.serialNumber };
  let certificate: x509.X509Certificate;
  if (options.issuer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.issuer.keys.publicKey));
    certificate = await x509.X509CertificateGenerator.create({
      ...serial,
      subject,
      issuer: options.issuer.certificate.subject.split('\n').join(', '),
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: options.issuer.keys.privateKey,
      signingAlgorithm:
        options.issuer.keys.privateKey.algorithm.name === 'ECDSA' ? keyAlgorithms.ECDSA : keyAlgorithms.RSA,
      extensions,
    });
  } else {
    certificate = await x509.X509CertificateGenerator.createSelfSigned({
      ...serial,
      name: subject,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: keyAlgorithm,
      extensions,
    });
  }
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const certificatePem = certificate.toString('pem');
  return {
    certificatePem,
    privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    certificate: new X509Certificate(certificatePem),
    keys,
  };
}

export interface DevPki {
  readonly root: IssuedCertificate;
  readonly intermediate: IssuedCertificate;
  readonly signer: IssuedCertificate;
  /** A time-stamp authority under its own root, as Microsoft's (Root Certificate Authority 2010) is apart from the signer's. */
  readonly timestampRoot: IssuedCertificate;
  readonly timestampAuthority: IssuedCertificate;
}

export interface DevPkiOptions {
  readonly signerSubjectCn?: string;
  readonly signerExtendedKeyUsages?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly label?: string;
}

/**
 * root → intermediate → signer with Microsoft's signer subject and EKU, and a time-stamp authority
 * (timestamping EKU) under a second root, for local runs and tests.
 */
export async function createDevPki(options: DevPkiOptions = {}): Promise<DevPki> {
  const label = options.label ?? 'emfleet Dev';
  const validity = {
    ...(options.notBefore === undefined ? {} : { notBefore: options.notBefore }),
    ...(options.notAfter === undefined ? {} : { notAfter: options.notAfter }),
  };
  const root = await issueCertificate({ subjectCn: `${label} Root CA`, ca: true, ...validity });
  const intermediate = await issueCertificate({
    subjectCn: `${label} Intermediate CA`,
    ca: true,
    issuer: root,
    ...validity,
  });
  const signer = await issueCertificate({
    subjectCn: options.signerSubjectCn ?? microsoftSignerSubjectCn,
    issuer: intermediate,
    extendedKeyUsages: options.signerExtendedKeyUsages ?? [microsoftSignerEku],
    ...validity,
  });
  const timestampRoot = await issueCertificate({
    subjectCn: `${label} Time-Stamp Root CA`,
    ca: true,
    ...validity,
  });
  const timestampAuthority = await issueCertificate({
    subjectCn: `${label} Time-Stamp Service`,
    issuer: timestampRoot,
    extendedKeyUsages: [timeStampingEku],
    extendedKeyUsageCritical: true,
    ...validity,
  });
  return { root, intermediate, signer, timestampRoot, timestampAuthority };
}

/** The dev TSA as `signPackage` takes it. */
export function devTimestampAuthority(pki: Pick<DevPki, 'timestampAuthority'>): TimestampAuthority {
  return {
    privateKeyPem: pki.timestampAuthority.privateKeyPem,
    certificatePem: pki.timestampAuthority.certificatePem,
  };
}

export { devPkiFiles };

export async function writeDevPki(
  pki: DevPki,
  directory: string,
): Promise<Record<keyof typeof devPkiFiles, string>> {
  await mkdir(directory, { recursive: true });
  const paths = Object.fromEntries(
    Object.entries(devPkiFiles).map(([key, name]) => [key, join(directory, name)]),
  ) as Record<keyof typeof devPkiFiles, string>;
  await writeFile(paths.root, pki.root.certificatePem + '\n');
  await writeFile(paths.intermediate, pki.intermediate.certificatePem + '\n');
  await writeFile(paths.signer, pki.signer.certificatePem + '\n');
  await writeFile(paths.signerKey, pki.signer.privateKeyPem, { mode: 0o600 });
  await writeFile(paths.timestampRoot, pki.timestampRoot.certificatePem + '\n');
  await writeFile(paths.timestampAuthority, pki.timestampAuthority.certificatePem + '\n');
  await writeFile(paths.timestampAuthorityKey, pki.timestampAuthority.privateKeyPem, { mode: 0o600 });
  return paths;
}
