import { EmfleetError } from '../errors.js';

/** Why a package is rejected. These codes are a contract: CLI output, API, logs, Audit rows. */
export const rejectionReasons = {
  Malformed: 'the package is not a well-formed EOCS document',
  TooLarge: 'the package exceeds a size, depth or element limit',
  BadSignature: 'the XML signature is missing, misplaced or does not match the content',
  UnsupportedAlgorithm: 'the signature uses an algorithm outside the allow-list',
  UntrustedChain: 'the signer certificate does not chain to a configured trust anchor',
  WrongSigner: 'the signer certificate has the wrong subject or extended key usage',
  Expired: 'a certificate in the chain was not valid at signing time',
  Revoked: 'a certificate in the chain is on the revoked-serials deny-list',
  BadTimestamp: 'the RFC 3161 time stamp of the signature is present but not valid or not trusted',
  Rollback: 'the package is older than the last accepted package from the same feed',
} as const;

export type RejectionReason = keyof typeof rejectionReasons;

export const rejectionReasonCodes = Object.keys(rejectionReasons) as RejectionReason[];

export class PackageRejectedError extends EmfleetError {
  override readonly name = 'PackageRejectedError';
  readonly reason: RejectionReason;
  readonly detail: string;

  constructor(
    reason: RejectionReason,
    detail: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(reason, `${reason}: ${detail}`, options);
    this.reason = reason;
    this.detail = detail;
  }
}

export function reject(reason: RejectionReason, detail: string, cause?: unknown): never {
  throw new PackageRejectedError(reason, detail, cause === undefined ? {} : { cause });
}
