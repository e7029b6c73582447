/**
 * RFC 5280 path checks (issue 19, "The verifier"): each chain below is cryptographically valid and
 * reaches the configured anchor; only its basic constraints, key usage, path length or a critical
 * extension make it unacceptable.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { issueCertificate, type IssuedCertificate } from '../../lib/package/dev-pki.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import { signPackage } from '../../lib/package/sign.js';
import { createTrustPolicy } from '../../lib/package/trust.js';
import { verifyPackage, type VerifyResult } from '../../lib/package/verify.js';
import { bytes, ping1Xml } from '../helpers/packages.js';

const signer = { subjectCn: microsoftSignerSubjectCn, extendedKeyUsages: [microsoftSignerEku] };

interface Chain {
  readonly root: IssuedCertificate;
  readonly issuers: readonly IssuedCertificate[];
  readonly signer: IssuedCertificate;
}

const chains: Record<string, Chain> = {};

beforeAll(async () => {
  const root = await issueCertificate({ subjectCn: 'emfleet Path Root CA', ca: true });
  const rootPathZero = await issueCertificate({
    subjectCn: 'emfleet Path Root CA (pathLen 0)',
    ca: true,
    pathLength: 0,
  });
  const [intermediate, underPathZero, noCertSign] = await Promise.all([
    issueCertificate({ subjectCn: 'emfleet Path Intermediate CA', ca: true, issuer: root }),
    issueCertificate({
      subjectCn: 'emfleet Path Intermediate CA under pathLen 0',
      ca: true,
      issuer: rootPathZero,
    }),
    issueCertificate({
      subjectCn: 'emfleet Path CA without keyCertSign',
      ca: true,
      issuer: root,
      keyUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign,
    }),
  ]);
  const [
    good,
    caSigner,
    noDigitalSignature,
    unknownCritical,
    underPathLimit,
    underNoCertSign,
    knownCritical,
  ] = await Promise.all([
    issueCertificate({ ...signer, issuer: intermediate }),
    issueCertificate({ ...signer, issuer: intermediate, ca: true }),
    issueCertificate({ ...signer, issuer: intermediate, keyUsages: x509.KeyUsageFlags.keyEncipherment }),
    issueCertificate({
      ...signer,
      issuer: intermediate,
      extraExtensions: [new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([0x05, 0x00]))],
    }),
    issueCertificate({ ...signer, issuer: underPathZero }),
    issueCertificate({ ...signer, issuer: noCertSign }),
    issueCertificate({
      ...signer,
      issuer: intermediate,
      extraExtensions: [
        new x509.Extension(
          '2.5.29.32',
          true,
          new Uint8Array([0x30, 0x06, 0x30, 0x04, 0x06, 0x02, 0x55, 0x1d]),
        ),
      ],
    }),
  ]);
  Object.assign(chains, {
    good: { root, issuers: [intermediate], signer: good },
    caSigner: { root, issuers: [intermediate], signer: caSigner },
    noDigitalSignature: { root, issuers: [intermediate], signer: noDigitalSignature },
    unknownCritical: { root, issuers: [intermediate], signer: unknownCritical },
    knownCritical: { root, issuers: [intermediate], signer: knownCritical },
    pathLength: { root: rootPathZero, issuers: [underPathZero], signer: underPathLimit },
    noCertSign: { root, issuers: [noCertSign], signer: underNoCertSign },
  } satisfies Record<string, Chain>);
});

function verifyChain(name: string): VerifyResult {
  const chain = chains[name]!;
  const signed = signPackage(ping1Xml, {
    privateKeyPem: chain.signer.privateKeyPem,
    certificatePem: chain.signer.certificatePem,
    chainPems: chain.issuers.map((issuer) => issuer.certificatePem),
  });
  return verifyPackage(bytes(signed), {
    trust: createTrustPolicy({ anchorPems: [chain.root.certificatePem] }),
  });
}

describe('path validation', () => {
  it.each([
    { name: 'a well-formed chain', chain: 'good' },
    { name: 'a critical certificatePolicies (as Microsoft Time-Stamp PCA 2010 has)', chain: 'knownCritical' },
  ])('$name verifies', ({ chain }) => {
    const result = verifyChain(chain);
    expect(result.ok, result.ok ? '' : `${result.reason}: ${result.detail}`).toBe(true);
  });

  it.each([
    {
      name: 'the signer is a CA (basicConstraints cA)',
      chain: 'caSigner',
      reason: 'WrongSigner',
      detail: 'is a CA',
    },
    {
      name: 'the signer keyUsage lacks digitalSignature',
      chain: 'noDigitalSignature',
      reason: 'UntrustedChain',
      detail: 'digitalSignature',
    },
    {
      name: 'the signer carries a critical extension emfleet does not process',
      chain: 'unknownCritical',
      reason: 'UntrustedChain',
      detail: '1.3.6.1.4.1.99999.1',
    },
    {
      name: "the root's pathLenConstraint 0 is exceeded by an intermediate",
      chain: 'pathLength',
      reason: 'UntrustedChain',
      detail: 'pathLenConstraint',
    },
    {
      name: 'an issuer whose keyUsage lacks keyCertSign',
      chain: 'noCertSign',
      reason: 'UntrustedChain',
      detail: 'keyCertSign',
    },
  ])('$name: $reason', ({ chain, reason, detail }) => {
    const result = verifyChain(chain);
    expect(result.ok ? 'ok' : result.reason, result.ok ? '' : result.detail).toBe(reason);
    expect(result.ok ? '' : result.detail).toContain(detail);
  });
});
