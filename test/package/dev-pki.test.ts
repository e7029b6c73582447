import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createDevPki,
  devPkiFiles,
  devTimestampAuthority,
  issueCertificate,
  writeDevPki,
  type DevPki,
} from '../../lib/package/dev-pki.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import { timeStampingEku } from '../../lib/package/timestamp.js';

/** The development PKI behind `emfleet dev pki`, `package sign --dev-tsa`, `npm start` and the tests. */

let pki: DevPki;
let directory: string;

beforeAll(async () => {
  pki = await createDevPki({ label: 'Test' });
  directory = await mkdtemp(join(tmpdir(), 'emfleet-dev-pki-'));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('createDevPki', () => {
  it.each([
    { name: 'root', cert: 'root', issuer: 'root', subject: 'CN=Test Root CA', ca: true, eku: undefined },
    {
      name: 'intermediate',
      cert: 'intermediate',
      issuer: 'root',
      subject: 'CN=Test Intermediate CA',
      ca: true,
      eku: undefined,
    },
    {
      name: "signer, with Microsoft's subject and EKU",
      cert: 'signer',
      issuer: 'intermediate',
      subject: `CN=${microsoftSignerSubjectCn}`,
      ca: false,
      eku: [microsoftSignerEku],
    },
    {
      name: 'time-stamp root, apart from the signing root',
      cert: 'timestampRoot',
      issuer: 'timestampRoot',
      subject: 'CN=Test Time-Stamp Root CA',
      ca: true,
      eku: undefined,
    },
    {
      name: 'time-stamp authority',
      cert: 'timestampAuthority',
      issuer: 'timestampRoot',
      subject: 'CN=Test Time-Stamp Service',
      ca: false,
      eku: [timeStampingEku],
    },
  ] as const)('$name', ({ cert, issuer, subject, ca, eku }) => {
    const certificate = pki[cert].certificate;
    expect(certificate.subject).toBe(subject);
    expect(certificate.ca).toBe(ca);
    expect(certificate.checkIssued(pki[issuer].certificate)).toBe(true);
    expect(certificate.verify(pki[issuer].certificate.publicKey)).toBe(true);
    expect(certificate.keyUsage).toEqual(eku);
  });

  it('hands its TSA over as signPackage takes it', () => {
    expect(devTimestampAuthority(pki)).toEqual({
      privateKeyPem: pki.timestampAuthority.privateKeyPem,
      certificatePem: pki.timestampAuthority.certificatePem,
    });
  });
});

describe('writeDevPki', () => {
  it('writes the files devPkiFiles names, the keys readable by the owner only', async () => {
    const paths = await writeDevPki(pki, directory);
    expect(paths).toEqual(
      Object.fromEntries(Object.entries(devPkiFiles).map(([key, name]) => [key, join(directory, name)])),
    );
    expect(new X509Certificate(await readFile(paths.signer)).fingerprint256).toBe(
      pki.signer.certificate.fingerprint256,
    );
    expect(await readFile(paths.timestampAuthorityKey, 'utf8')).toBe(pki.timestampAuthority.privateKeyPem);
    for (const key of [paths.signerKey, paths.timestampAuthorityKey])
      if (process.platform !== 'win32') expect((await stat(key)).mode & 0o777).toBe(0o600);
  });
});

describe('issueCertificate', () => {
  it.each([
    { name: 'RSA by default', options: {}, keyType: 'rsa' },
    { name: 'an ECDSA P-256 key', options: { keyAlgorithm: 'ECDSA' as const }, keyType: 'ec' },
  ])('$name', async ({ options, keyType }) => {
    const issued = await issueCertificate({ subjectCn: 'Leaf', issuer: pki.intermediate, ...options });
    expect(issued.certificate.publicKey.asymmetricKeyType).toBe(keyType);
    expect(issued.certificate.checkIssued(pki.intermediate.certificate)).toBe(true);
  });

  it('takes the serial number and validity it is given', async () => {
    const notBefore = new Date('2025-01-01T00:00:00Z');
    const notAfter = new Date('2026-01-01T00:00:00Z');
    const issued = await issueCertificate({
      subjectCn: 'Dated',
      serialNumber: '0a0b0c',
      notBefore,
      notAfter,
    });
    expect(issued.certificate.serialNumber).toBe('0A0B0C');
    expect(new Date(issued.certificate.validFrom).toISOString()).toBe(notBefore.toISOString());
    expect(new Date(issued.certificate.validTo).toISOString()).toBe(notAfter.toISOString());
  });
});
