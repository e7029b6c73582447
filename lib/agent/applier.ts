import { EmfleetError } from '../errors.js';
import type { ReasonCode } from '../model/reasons.js';
import type { MitigationAction } from '../package/model.js';

/** The actions an applier can carry out (Unsupported ones never reach it). */
export type ApplicableAction = Exclude<MitigationAction, { kind: 'Unsupported' }>;

export type ServiceStartType = 'Automatic' | 'AutomaticDelayedStart' | 'Manual' | 'Disabled';

/**
 * The Exchange services that restart what a pool or service mitigation stops (Managed
 * Availability's responders: `autoStart=false` does not stop an explicit start). Microsoft stops
 * and disables both before each pool or UM mitigation and brings them back only when no remaining
 * mitigation needs them (ExchangeMitigations.ps1, StopAndCheckHM and StartAndCheckHM; see
 * docs/agent.md). MSExchangeHMRecovery does not exist on Exchange 2013.
 */
export const healthManagerServices = ['MSExchangeHM', 'MSExchangeHMRecovery'] as const;

export interface ServiceState {
  readonly service: string;
  readonly status: 'Running' | 'Stopped';
  readonly startType: ServiceStartType;
}

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
      /** Where that rule stood among the site's own rules (its web.config): IIS evaluates rules in order. */
      readonly previousRulePosition?: number;
    }
  | {
      readonly kind: 'DisableAppPool';
      readonly appPool: string;
      readonly state: 'Started' | 'Stopped';
      readonly autoStart: boolean;
      /** Microsoft sets OnDemand with autoStart off (ExchangeMitigations.ps1); AlwaysRunning would start the pool again. */
      readonly startMode?: 'OnDemand' | 'AlwaysRunning';
    }
  | {
      readonly kind: 'DisableService';
      readonly service: string;
      readonly status: 'Running' | 'Stopped';
      readonly startType: ServiceStartType;
      /** Services that depend on it and were running: stopping it stops them, restoring it starts them again. */
      readonly runningDependents?: readonly string[];
    }
  /** MSExchangeHM and MSExchangeHMRecovery (those the server has) before the first pool or service mitigation held them. */
  | { readonly kind: 'HealthManager'; readonly services: readonly ServiceState[] };

/** What an apply found after the change: places where it is not in force (a rule cancelled by an application's web.config). */
export interface ApplyReport {
  readonly notInForce: readonly string[];
}

/**
 * Carries out mitigation actions on one Exchange server. Implementations: PowerShellApplier
 * (Windows: IIS WebAdministration, service control) and SimulatedApplier (a file-backed model for
 * tests and local runs). The agent journals `capture` before `apply`, and calls `restore` to undo.
 */
export interface Applier {
  readonly kind: string;
  /** Reads the state the action would change. */
  capture(action: ApplicableAction): Promise<PriorState>;
  /**
   * Whether the action's effect is in force (a rewrite rule is found by content, not only name, and
   * in every application of its site: a `<clear/>` or `<remove>` below the site root cancels it).
   */
  isApplied(action: ApplicableAction): Promise<boolean>;
  /**
   * The name of the site's rule that does what this action's rule does (found by content), or
   * undefined; used to adopt a rule found in place (lib/agent/adoption.ts).
   */
  ruleInPlace(action: Extract<ApplicableAction, { kind: 'IisUrlRewrite' }>): Promise<string | undefined>;
  apply(action: ApplicableAction): Promise<ApplyReport>;
  /** Puts back exactly what `capture` (or `captureHealthManager`) read. */
  restore(prior: PriorState): Promise<void>;
  /** Reads MSExchangeHM and MSExchangeHMRecovery, so that `restore` can put them back. */
  captureHealthManager(): Promise<Extract<PriorState, { kind: 'HealthManager' }>>;
  /** Stops and disables MSExchangeHM and MSExchangeHMRecovery, each wait bounded. */
  holdHealthManager(): Promise<void>;
  /** What shows that Exchange setup (a cumulative or security update) is running now, or undefined. */
  exchangeSetupRunning(): Promise<string | undefined>;
  /** A Windows service's status as the service controller names it (Running, StartPending, Stopped...). */
  serviceStatus(service: string): Promise<string>;
}

/** A failure of the applier itself (PowerShell error, IIS refused, timeout); the change may not have happened. */
export class ApplierError extends EmfleetError {
  override readonly name = 'ApplierError';

  constructor(
    code: ReasonCode,
    message: string,
    options: { cause?: unknown; context?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}
