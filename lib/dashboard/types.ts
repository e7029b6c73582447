import type { Outcome } from '../model/outcomes.js';
import type { OnDegraded, ValueSource } from '../model/policy.js';
import type { Reason, ReasonCode } from '../model/reasons.js';
import type { RolloutOperation, RolloutProfile, RolloutState } from '../model/rollout.js';

/*
 * What the dashboard's endpoints answer (GET /api/overview, /api/grid, /api/policy): one definition
 * for the handlers that build it and for the page that reads it (web/dashboard.ts imports these
 * types only). Its imports are lib/model's, type-only: the browser build compiles this file and
 * those too. Times are ISO-8601 UTC.
 */

/**
 * A reason as the API sends it: a code of the catalogue (lib/model/reasons.ts; a row an earlier
 * release wrote reads `Legacy`, a newer release's code passes as it is) and its detail. The page
 * renders the words with the catalogue's `renderReason`, as the CLI does.
 */
export type ReasonView = Reason<ReasonCode | (string & {})>;

/** The admin actions on a rollout, as POST /api/rollouts/{id}/{action} takes them. */
export type RolloutActionName = 'pause' | 'resume' | 'abort' | 'expedite' | 'retry';

export interface SignerView {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  /** SHA-256 of the signer certificate (hex). */
  readonly sha256: string;
  readonly validTo: string;
}

/**
 * How the last poll went: `Success` (fetched, unchanged or accepted), `Rejected` (fetched, but
 * the package failed verification), `Failed` (the feed could not be fetched).
 */
export type PollResult = 'Success' | 'Rejected' | 'Failed';

export interface FeedView {
  readonly name: string;
  readonly url: string;
  /** Set when the feed's settings are wrong (no trust anchor…): it is not polled. */
  readonly problem: string | null;
  readonly lastPollAt: string | null;
  readonly lastPollResult: PollResult | null;
  readonly lastSuccessAt: string | null;
  readonly lastErrorAt: string | null;
  readonly lastError: string | null;
  readonly package: {
    readonly sequence: number;
    readonly sha256: string;
    readonly signingTime: string | null;
    readonly acceptedAt: string | null;
    readonly mitigationIds: readonly string[];
    /** From verifying the stored package under today's trust settings; null when it no longer verifies. */
    readonly signer: SignerView | null;
    /** Why the stored package no longer verifies (`UntrustedChain` after an anchor change, `Misconfigured`), else null. */
    readonly verifyProblem: ReasonView | null;
  } | null;
  /** Set while reconcile keeps the feed frozen: nothing of it is applied or removed (lib/rollout/frozen.ts). */
  readonly frozen: ({ readonly since: string | null } & ReasonView) | null;
  /** The last rejected package, with its rejection code (`BadSignature`, `Rollback`…). */
  readonly lastRejected: ({ readonly at: string | null; readonly sha256: string } & ReasonView) | null;
}

export type WavePhase = 'Done' | 'Current' | 'NotStarted';

export interface WaveView {
  readonly index: number;
  readonly name: string;
  readonly servers: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
  /** Servers with no counted result yet. */
  readonly pending: number;
  readonly maxConcurrency: number;
  readonly maxErrors: number;
  readonly bakeInMs: number;
  readonly phase: WavePhase;
  /** While the rollout bakes this wave: when the gate judges it. */
  readonly bakeEndsAt: string | null;
  readonly failedServers: readonly string[];
}

/** A rollout; its reason (`WaveHalted`, `PausedByAdmin`…) empty when its state needs none. */
export interface RolloutView extends ReasonView {
  readonly id: string;
  readonly feed: string;
  readonly packageSequence: number;
  readonly operation: RolloutOperation;
  readonly state: RolloutState;
  readonly profile: RolloutProfile;
  readonly currentWave: number;
  readonly waveCount: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** The actions the state machine would accept now. */
  readonly actions: readonly RolloutActionName[];
  /** The mitigations it holds (Halted or Aborted): reconcile does not reapply them. */
  readonly holds: readonly string[];
  /** How many servers a retry would send again (the halted wave's failed and unreached ones); 0 unless Halted. */
  readonly retryServers: number;
  readonly waves: readonly WaveView[];
}

/** GET /api/overview: the feeds and the rollouts (every active one, then the latest that ended). */
export interface Overview {
  readonly org: string;
  readonly generatedAt: string;
  readonly feeds: readonly FeedView[];
  readonly rollouts: readonly RolloutView[];
  /** Ended rollouts left out of `rollouts` (older than the latest few). */
  readonly olderRollouts: number;
}

/**
 * A cell's outcome: a stored result's outcome, or, where a server has no result for a mitigation,
 * what policy decides (`NotApplicable`, `Blocked`, `Disabled`, `PolicyError`, `Unsupported`),
 * `Pending` for work not done yet, `NotStarted` for work a halted or aborted rollout never reached,
 * `Unknown` when the package no longer verifies.
 */
export type CellOutcome = Outcome | 'Pending' | 'NotStarted' | 'Unknown';

export interface GridCell {
  readonly outcome: CellOutcome;
  /**
   * Why: a result's outcome says it, with the agent's detail (no code); a cell without a result
   * carries policy's reason code (`BlockedByOrg`, `NotApplicableFixed`…) and its detail.
   */
  readonly reasonCode: ReasonCode | null;
  readonly reasonDetail: string;
  readonly source: 'result' | 'policy';
  /** When the result was recorded, and by which rollout (results only). */
  readonly at: string | null;
  readonly rolloutId: string | null;
}

export interface GridRow {
  readonly server: string;
  readonly fqdn: string;
  readonly site: string;
  readonly ring: string;
  readonly build: string;
  /** The registered build when the agent reports another (`build`); null when they agree. */
  readonly registeredBuild: string | null;
  readonly lastSeen: string | null;
  /** By mitigation id, one per column. */
  readonly cells: Readonly<Record<string, GridCell>>;
}

export interface RowProblemView {
  readonly table: string;
  readonly partitionKey: string;
  readonly rowKey: string;
  readonly field: string;
  readonly message: string;
}

/** GET /api/grid: one page of servers × the current packages' mitigations. */
export interface GridPage {
  readonly mitigations: readonly string[];
  readonly rows: readonly GridRow[];
  /** Pass back to get the next page; null at the end. */
  readonly continuationToken: string | null;
  /** Servers looked at for this page (the filters may have passed over most of them). */
  readonly scanned: number;
  readonly problems: readonly RowProblemView[];
}

export interface Sourced<T> {
  readonly value: T;
  readonly source: ValueSource;
}

export type ScopePolicyView =
  | {
      readonly name: string;
      readonly valid: true;
      readonly mitigationsEnabled: Sourced<boolean>;
      readonly blockedMitigations: Sourced<readonly string[]>;
      /** What the agent does with a change that degrades the server: roll it back or keep it. */
      readonly onDegraded: Sourced<OnDegraded>;
      readonly ring: Sourced<string> | null;
    }
  | { readonly name: string; readonly valid: false; readonly problem: string };

/** GET /api/policy: the org's settings and each server that has settings of its own. */
export interface PolicyView {
  readonly org: ScopePolicyView;
  readonly servers: readonly ScopePolicyView[];
  /** Servers with settings of their own, of which `servers` holds the first (by name). */
  readonly serverScopes: number;
}
