import { EmfleetError } from '../errors.js';
import type { MitigationAction } from '../package/model.js';

/** The actions an applier can carry out (Unsupported ones never reach it). */
export type ApplicableAction = Exclude<MitigationAction, { kind: 'Unsupported' }>;

export type ServiceStartType = 'Automatic' | 'AutomaticDelayedStart' | 'Manual' | 'Disabled';

/**
 * What one action is about to change, read before the change and kept in the journal, so that
 * `restore` puts back exactly what was there.
 */
export type PriorState =
  | { readonly kind: 'DoNothing' }
  | {
      readonly kind: 'IisUrlRewrite';
      readonly site: string;
      readonly ruleName: string;
      /** The rule of that name that was there before (its XML), or null when there was none. */
      readonly previousRuleXml: string | null;
      /** Where that rule stood in the site's rule list: IIS evaluates rules in order. */
      readonly previousRulePosition?: number;
    }
  | { readonly kind: 'DisableAppPool'; readonly appPool: string; readonly state: 'Started' | 'Stopped'; readonly autoStart: boolean }
  | { readonly kind: 'DisableService'; readonly service: string; readonly status: 'Running' | 'Stopped'; readonly startType: ServiceStartType };

/**
 * Carries out mitigation actions on one Exchange server. Implementations: PowerShellApplier
 * (Windows: IIS WebAdministration, service control) and SimulatedApplier (a file-backed model for
 * tests and local runs). The agent journals `capture` before `apply`, and calls `restore` to undo.
 */
export interface Applier {
  readonly kind: string;
  /** Reads the state the action would change. */
  capture(action: ApplicableAction): Promise<PriorState>;
  /** Whether the action's effect is already in place (a rewrite rule is found by content, not only name). */
  isApplied(action: ApplicableAction): Promise<boolean>;
  apply(action: ApplicableAction): Promise<void>;
  /** Puts back exactly what `capture` read. */
  restore(prior: PriorState): Promise<void>;
}

/** A failure of the applier itself (PowerShell error, IIS refused, timeout); the change may not have happened. */
export class ApplierError extends EmfleetError {
  override readonly name = 'ApplierError';

  constructor(code: string, message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super(code, message, options);
  }
}
