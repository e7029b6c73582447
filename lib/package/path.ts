import type { X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  Certificate,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  KeyUsage,
  KeyUsageFlags,
} from '@peculiar/asn1-x509';
import { reject, type RejectionReason } from './reasons.js';

/** What path validation needs from a certificate and Node's X509Certificate does not expose. */
interface CertificateProfile {
  readonly ca: boolean;
  readonly pathLength?: number;
  /** Key usage bits (KeyUsageFlags); absent: no keyUsage extension, so every usage is allowed. */
  readonly keyUsage?: number;
  /** OIDs of critical extensions emfleet does not process. */
  readonly unknownCritical: readonly string[];
}

/**
 * Extensions that may be critical: the ones path validation processes, and ones that restrict
 * nothing emfleet relies on (identifiers, names, where to fetch CRLs and issuers, and certificate
 * policies, since any policy is acceptable: Microsoft's Time-Stamp PCA 2010 marks its policies critical).
 * Anything else marked critical (name constraints, policy constraints, ...) rejects the chain.
 */
const understoodExtensions = new Set([
  id_ce_basicConstraints,
  id_ce_keyUsage,
  '2.5.29.37', // extKeyUsage: checked for the signer and the time-stamp authority
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.17', // subjectAltName
  '2.5.29.18', // issuerAltName
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.32', // certificatePolicies
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
]);

/** Certificates repeat across packages (the same signer and CAs every hour); parse each once. */
const profiles = new Map<string, CertificateProfile>();
const maxCachedProfiles = 256;

function profileOf(certificate: X509Certificate, reason: RejectionReason): CertificateProfile {
  const cached = profiles.get(certificate.fingerprint256);
  if (cached) return cached;
  let profile: CertificateProfile;
  try {
    const extensions = AsnConvert.parse(certificate.raw, Certificate).tbsCertificate.extensions ?? [];
    let ca = false;
    let pathLength: number | undefined;
    let keyUsage: number | undefined;
    const unknownCritical: string[] = [];
    for (const extension of extensions) {
      if (extension.extnID === id_ce_basicConstraints) {
        const constraints = AsnConvert.parse(extension.extnValue, BasicConstraints);
        ca = constraints.cA;
        pathLength = constraints.pathLenConstraint;
      } else if (extension.extnID === id_ce_keyUsage) {
        keyUsage = AsnConvert.parse(extension.extnValue, KeyUsage).toNumber();
      } else if (extension.critical && !understoodExtensions.has(extension.extnID)) {
        unknownCritical.push(extension.extnID);
      }
    }
    profile = {
      ca,
      ...(pathLength === undefined ? {} : { pathLength }),
      ...(keyUsage === undefined ? {} : { keyUsage }),
      unknownCritical,
    };
  } catch (error) {
    return reject(
      reason,
      `certificate "${oneLine(certificate.subject)}" has extensions that cannot be read`,
      error,
    );
  }
  if (profiles.size >= maxCachedProfiles) profiles.clear();
  profiles.set(certificate.fingerprint256, profile);
  return profile;
}

/**
 * RFC 5280 path checks over a chain built end-entity first, anchor last: every issuer is a CA
 * (basicConstraints cA) allowed to sign certificates (keyUsage keyCertSign when present) within
 * its pathLenConstraint; the end entity is not a CA and may make signatures (keyUsage
 * digitalSignature when present); no certificate carries a critical extension emfleet does not
 * process. `reason` is the code a failure gets (UntrustedChain for the signer's chain,
 * BadTimestamp for the time-stamp authority's).
 */
export function validatePath(chain: readonly X509Certificate[], reason: RejectionReason): void {
  chain.forEach((certificate, index) => {
    const profile = profileOf(certificate, reason);
    const name = `"${oneLine(certificate.subject)}"`;
    if (profile.unknownCritical.length > 0) {
      reject(
        reason,
        `certificate ${name} has critical extension${profile.unknownCritical.length === 1 ? '' : 's'} ${profile.unknownCritical.join(', ')} that emfleet does not process`,
      );
    }
    if (index === 0) {
      if (profile.ca)
        reject(
          reason,
          `the end certificate ${name} is a CA (basicConstraints cA); a CA certificate may not sign packages or time stamps`,
        );
      if (profile.keyUsage !== undefined && !(profile.keyUsage & KeyUsageFlags.digitalSignature)) {
        reject(reason, `the end certificate ${name} has keyUsage without digitalSignature`);
      }
      return;
    }
    if (!profile.ca) reject(reason, `issuer ${name} is not a CA (basicConstraints cA is not set)`);
    if (profile.keyUsage !== undefined && !(profile.keyUsage & KeyUsageFlags.keyCertSign)) {
      reject(reason, `issuer ${name} has keyUsage without keyCertSign`);
    }
    const intermediatesBelow = index - 1;
    if (profile.pathLength !== undefined && intermediatesBelow > profile.pathLength) {
      reject(
        reason,
        `issuer ${name} allows ${profile.pathLength} intermediate CA${profile.pathLength === 1 ? '' : 's'} below it (pathLenConstraint), the chain has ${intermediatesBelow}`,
      );
    }
  });
}

function oneLine(distinguishedName: string): string {
  return distinguishedName.split('\n').join(', ');
}
