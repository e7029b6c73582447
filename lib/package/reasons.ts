import { EmfleetError } from '../errors.js';
import { reasonCodesOf, renderReason, type ReasonCodeOf } from '../model/reasons.js';

/**
 * Why a package is rejected: the `package` codes of the reason catalogue (lib/model/reasons.ts).
 * These codes are a contract: CLI output, API, logs, Audit rows.
 */
export type RejectionReason = ReasonCodeOf<'package'>;

export const rejectionReasonCodes: readonly RejectionReason[] = reasonCodesOf('package');

export class PackageRejectedError extends EmfleetError {
  override readonly name = 'PackageRejectedError';
  readonly reason: RejectionReason;
  readonly detail: string;

  constructor(
    reason: RejectionReason,
    detail: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(reason, renderReason({ reasonCode: reason, reasonDetail: detail }), options);
    this.reason = reason;
    this.detail = detail;
  }
}

export function reject(reason: RejectionReason, detail: string, cause?: unknown): never {
  throw new PackageRejectedError(reason, detail, cause === undefined ? {} : { cause });
}
