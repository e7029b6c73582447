// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../package/format.js';

// Node's webcrypto is the standard Crypto at run time; its TypeScript type differs from the DOM one x509 names.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const keyAlgorithm = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

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
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Hex; random when absent. */
  readonly serialNumber?: string;
}

/** One X.509 certificate and its RSA-2048 key, made with @peculiar/x509 (Node has no builder). */
export async function issueCertificate(options: IssueOptions): Promise<IssuedCertificate> {
  const keys = (await webcrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  const notAfter = options.notAfter ?? new Date(notBefore.getTime() + 5 * 365 * 24 * 60 * 60 * 1000);
  const ca = options.ca ?? false;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(ca, undefined, true),
    new x509.KeyUsagesExtension(
      ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.extendedKeyUsages && options.extendedKeyUsages.length > 0) {
    extensions.push(new x509.ExtendedKeyUsageExtension([...options.extendedKeyUsages]));
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
      signingAlgorithm: keyAlgorithm,
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
}

export interface DevPkiOptions {
  readonly signerSubjectCn?: string;
  readonly signerExtendedKeyUsages?: readonly string[];
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  readonly label?: string;
}

/** root → intermediate → signer with Microsoft's signer subject and EKU, for local runs and tests. */
export async function createDevPki(options: DevPkiOptions = {}): Promise<DevPki> {
  const label = options.label ?? 'emfleet Dev';
  const validity = {
    ...(options.notBefore === undefined ? {} : { notBefore: options.notBefore }),
    ...(options.notAfter === undefined ? {} : { notAfter: options.notAfter }),
  };
  const root = await issueCertificate({ subjectCn: `${label} Root CA`, ca: true, ...validity });
  const intermediate = await issueCertificate({ subjectCn: `${label} Intermediate CA`, ca: true, issuer: root, ...validity });
  const signer = await issueCertificate({
    subjectCn: options.signerSubjectCn ?? microsoftSignerSubjectCn,
    issuer: intermediate,
    extendedKeyUsages: options.signerExtendedKeyUsages ?? [microsoftSignerEku],
    ...validity,
  });
  return { root, intermediate, signer };
}

export const devPkiFiles = {
  root: 'root.pem',
  intermediate: 'intermediate.pem',
  signer: 'signer.pem',
  signerKey: 'signer.key',
} as const;

export async function writeDevPki(pki: DevPki, directory: string): Promise<Record<keyof typeof devPkiFiles, string>> {
  await mkdir(directory, { recursive: true });
  const paths = {
    root: join(directory, devPkiFiles.root),
    intermediate: join(directory, devPkiFiles.intermediate),
    signer: join(directory, devPkiFiles.signer),
    signerKey: join(directory, devPkiFiles.signerKey),
  };
  await writeFile(paths.root, pki.root.certificatePem + '\n');
  await writeFile(paths.intermediate, pki.intermediate.certificatePem + '\n');
  await writeFile(paths.signer, pki.signer.certificatePem + '\n');
  await writeFile(paths.signerKey, pki.signer.privateKeyPem, { mode: 0o600 });
  return paths;
}
