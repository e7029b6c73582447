import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from './format.js';
import { reject } from './reasons.js';

/** Who may sign packages for one feed. */
export interface TrustPolicy {
  readonly anchors: readonly X509Certificate[];
  /**
   * Roots of the time-stamp authorities whose RFC 3161 countersignature is trusted as the signing
   * time (Microsoft Root Certificate Authority 2010 for Microsoft's feed). Empty: time stamps are
   * not checked and certificates must be valid now.
   */
  readonly timestampAnchors: readonly X509Certificate[];
  readonly signerSubjectCn: string;
  readonly signerEku: string;
  /** Upper-case hex serials without leading zeros. */
  readonly revokedSerials: ReadonlySet<string>;
}

export interface TrustPolicyInput {
  /** PEM texts; each may hold several certificates. */
  readonly anchorPems: readonly string[];
  /** SHA-256 fingerprints (hex, colons optional); when given, every anchor must match one. */
  readonly anchorSha256?: readonly string[];
  /** PEM texts of timestamp anchors; none: time stamps are not checked. */
  readonly timestampAnchorPems?: readonly string[];
  /** SHA-256 fingerprints; when given, every timestamp anchor must match one. */
  readonly timestampAnchorSha256?: readonly string[];
  readonly signerSubjectCn?: string;
  readonly signerEku?: string;
  readonly revokedSerials?: readonly string[];
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** There is no built-in trust: no anchor is a configuration error, never "trust anything". */
export function createTrustPolicy(input: TrustPolicyInput): TrustPolicy {
  const anchors = input.anchorPems.flatMap((pem, index) =>
    certificatesFromPem(pem, `trust anchor ${index + 1}`),
  );
  if (anchors.length === 0) {
    throw new ConfigError('no trust anchor configured');
  }
  checkPins(anchors, input.anchorSha256 ?? [], 'trust anchor');
  const timestampAnchors = (input.timestampAnchorPems ?? []).flatMap((pem, index) =>
    certificatesFromPem(pem, `timestamp anchor ${index + 1}`),
  );
  if (timestampAnchors.length === 0 && (input.timestampAnchorSha256 ?? []).length > 0) {
    throw new ConfigError('timestamp anchor SHA-256 pins are set but no timestamp anchor');
  }
  checkPins(timestampAnchors, input.timestampAnchorSha256 ?? [], 'timestamp anchor');
  const revoked = (input.revokedSerials ?? []).map((serial) => {
    const normalized = normalizeSerial(serial);
    if (!/^[0-9A-F]+$/.test(normalized))
      throw new ConfigError(`revoked serial "${serial}" is not hexadecimal`);
    return normalized;
  });
  return {
    anchors,
    timestampAnchors,
    signerSubjectCn: input.signerSubjectCn ?? microsoftSignerSubjectCn,
    signerEku: input.signerEku ?? microsoftSignerEku,
    revokedSerials: new Set(revoked),
  };
}

/** When pins are given, every anchor must match one: a swapped file is a configuration error, not trust. */
function checkPins(anchors: readonly X509Certificate[], pinTexts: readonly string[], what: string): void {
  const pins = pinTexts.map(normalizeFingerprint);
  for (const pin of pins) {
    if (!/^[0-9A-F]{64}$/.test(pin))
      throw new ConfigError(`${what} SHA-256 pin "${pin}" is not 64 hex digits`);
  }
  if (pins.length === 0) return;
  for (const anchor of anchors) {
    const actual = normalizeFingerprint(anchor.fingerprint256);
    if (!pins.includes(actual)) {
      throw new ConfigError(
        `${what} "${anchor.subject.replace(/\n/g, ', ')}" has SHA-256 ${actual}, which matches no configured pin`,
      );
    }
  }
}

/** A setting that is either PEM text or a file path (DESIGN: the trust anchors); `what` names it in errors. */
export function readPemSetting(value: string, what: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value.trim(), 'utf8');
  } catch (error) {
    throw new ConfigError(`${what}: "${value.trim()}" is neither PEM text nor a readable file`, {
      cause: error,
    });
  }
}

export function certificatesFromPem(pem: string, what: string): X509Certificate[] {
  const blocks = pem.match(pemCertificate) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${what} holds no PEM certificate`);
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new ConfigError(`${what}: certificate ${index + 1} is not valid X.509`, { cause: error });
    }
  });
}

/** Serial lists: one hex serial per line; `#` starts a comment; colons and spaces are ignored. */
export function parseSerialList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '');
}

export function normalizeSerial(serial: string): string {
  return serial
    .replace(/[\s:]/g, '')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
}

export function normalizeFingerprint(fingerprint: string): string {
  return fingerprint.replace(/[\s:]/g, '').toUpperCase();
}

const maxChainLength = 8;

/**
 * Signer → intermediates (from the package) → anchor (from configuration). Each link is checked
 * by name and by signature; every issuer must be a CA. Returns the chain, anchor last.
 */
export function buildChain(
  signer: X509Certificate,
  intermediates: readonly X509Certificate[],
  anchors: readonly X509Certificate[],
): X509Certificate[] {
  const chain = [signer];
  let current = signer;
  while (chain.length <= maxChainLength) {
    if (anchors.some((anchor) => anchor.fingerprint256 === current.fingerprint256)) return chain;
    const anchor = anchors.find((candidate) => issues(candidate, current));
    if (anchor) return [...chain, anchor];
    const issuer = intermediates.find(
      (candidate) => !chain.includes(candidate) && issues(candidate, current),
    );
    if (!issuer) {
      if (chain.length > 1 && current.checkIssued(current)) {
        reject(
          'UntrustedChain',
          `the chain ends at the root "${describe(current)}" (issuer of "${describe(chain[chain.length - 2]!)}"), which is not a configured trust anchor`,
        );
      }
      reject(
        'UntrustedChain',
        `no configured trust anchor or supplied intermediate issued "${describe(current)}" (issuer "${oneLine(current.issuer)}")`,
      );
    }
    chain.push(issuer);
    current = issuer;
  }
  return reject('UntrustedChain', `certificate chain is longer than ${maxChainLength}`);
}

function issues(issuer: X509Certificate, subject: X509Certificate): boolean {
  return issuer.ca && subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
}

export function checkRevocation(chain: readonly X509Certificate[], policy: TrustPolicy): void {
  for (const certificate of chain) {
    if (policy.revokedSerials.has(normalizeSerial(certificate.serialNumber))) {
      reject(
        'Revoked',
        `certificate "${describe(certificate)}" serial ${normalizeSerial(certificate.serialNumber)} is revoked`,
      );
    }
  }
}

export function checkValidity(chain: readonly X509Certificate[], at: Date): void {
  for (const certificate of chain) {
    if (at < certificate.validFromDate || at > certificate.validToDate) {
      reject(
        'Expired',
        `certificate "${describe(certificate)}" is valid ${certificate.validFromDate.toISOString()} to ${certificate.validToDate.toISOString()}, not at ${at.toISOString()}`,
      );
    }
  }
}

export function checkSignerIdentity(signer: X509Certificate, policy: TrustPolicy): void {
  const commonNames = subjectCommonNames(signer);
  if (!commonNames.includes(policy.signerSubjectCn)) {
    reject(
      'WrongSigner',
      `signer subject CN is "${commonNames.join('", "')}"; required "${policy.signerSubjectCn}"`,
    );
  }
  const usages = signer.keyUsage ?? [];
  if (!usages.includes(policy.signerEku)) {
    reject(
      'WrongSigner',
      `signer certificate lacks extended key usage ${policy.signerEku} (has ${usages.length > 0 ? usages.join(', ') : 'none'})`,
    );
  }
}

export function subjectCommonNames(certificate: X509Certificate): string[] {
  return certificate.subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
}

export function describe(certificate: X509Certificate): string {
  return oneLine(certificate.subject);
}

function oneLine(distinguishedName: string): string {
  return distinguishedName.split('\n').join(', ');
}
