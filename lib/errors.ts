import type { ReasonCode } from './model/reasons.js';

/**
 * The one error base of emfleet. `code` is stable (logs, CLI, API say the same thing);
 * `context` carries what the failure concerns (server, mitigation id, package sequence, file...).
 * Subclasses exist only where a caller acts differently.
 */
export class EmfleetError extends Error {
  override readonly name: string = 'EmfleetError';
  readonly code: ReasonCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(
    code: ReasonCode,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = options.context ?? {};
  }
}

/** A setting or argument that makes the requested work impossible; fix the configuration, do not retry. */
export class ConfigError extends EmfleetError {
  override readonly name = 'ConfigError';

  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super('Config', message, options);
  }
}
