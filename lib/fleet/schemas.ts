import { z } from 'zod';
import { exchangeBuild } from '../model/build.js';
import { mitigationId, orgName, ringName, siteName, storedServerName, tableKey } from '../model/names.js';
import { mitigationOutcome } from '../model/outcomes.js';
import { defaultOnDegraded, onDegradedPolicies, policyScopes, policySources } from '../model/policy.js';
import { storedReason } from '../model/reasons.js';
import {
  operationStatuses,
  resumableStates,
  rolloutOperations,
  rolloutProfiles,
  rolloutStates,
} from '../model/rollout.js';
import { jsonText } from '../json-text.js';
import { maxPackageBytes } from '../package/xml.js';

/*
 * The rows of emfleet's Tables, validated on every read. The words the rows are made of (names,
 * builds, outcomes, states, policy terms) are lib/model's; what is here is how they are stored.
 */

/** Tables have no arrays: lists are stored as JSON text and validated on read. */
export const mitigationIdList = jsonText(z.array(mitigationId));

export const serverRow = z.object({
  partitionKey: orgName,
  rowKey: storedServerName,
  fqdn: z.string().max(253).default(''),
  /** The build policy is judged on: registered, then kept in step with what the agent reports (lib/fleet/agent-facts.ts). */
  build: exchangeBuild,
  /** What `servers add --build` said; '' on rows older than it. A difference from `build` is shown as a mismatch. */
  registeredBuild: z.union([exchangeBuild, z.literal('')]).default(''),
  site: siteName.default(''),
  ring: z.union([ringName, z.literal('')]).default(''),
  relayHybridConnection: z.string().max(260).default(''),
  relayPath: z.string().max(260).default(''),
  agentVersion: z.string().max(64).default(''),
  lastSeen: z.date().optional(),
  reportedApplied: mitigationIdList.default([]),
  reportedBlocked: mitigationIdList.default([]),
});
export type ServerRow = z.infer<typeof serverRow>;

/** Declared (Bicep) rows carry this row-key suffix so they sit beside the Tables-edited row of the same scope. */
export const declaredRowKeySuffix = '|bicep';

export const policyRow = z
  .object({
    partitionKey: z.enum(policyScopes),
    rowKey: tableKey,
    source: z.enum(policySources),
    mitigationsEnabled: z.boolean().optional(),
    blockedMitigations: mitigationIdList.optional(),
    ring: ringName.optional(),
    onDegraded: z.enum(onDegradedPolicies).optional(),
    changedBy: z.string().max(256).default(''),
    changedAt: z.date().optional(),
  })
  .superRefine((row, context) => {
    const declared = row.rowKey.endsWith(declaredRowKeySuffix);
    if (declared !== (row.source === 'bicep')) {
      context.addIssue({
        code: 'custom',
        path: ['source'],
        message: `"${row.source}" does not match the row key (declared rows end with ${declaredRowKeySuffix})`,
      });
    }
    const name = declared ? row.rowKey.slice(0, -declaredRowKeySuffix.length) : row.rowKey;
    const nameCheck = (row.partitionKey === 'org' ? orgName : storedServerName).safeParse(name);
    if (!nameCheck.success)
      context.addIssue({ code: 'custom', path: ['rowKey'], message: nameCheck.error.issues[0]!.message });
    if (row.partitionKey === 'org' && row.ring !== undefined) {
      context.addIssue({
        code: 'custom',
        path: ['ring'],
        message: 'a ring is set per server, not for the org',
      });
    }
  });
export type PolicyRow = z.infer<typeof policyRow>;

export const auditRow = z.object({
  partitionKey: z.string().regex(/^\d{8}$/),
  rowKey: tableKey,
  at: z.date(),
  actor: z.string().min(1).max(256),
  action: z.string().min(1).max(128),
  target: z.string().max(512),
  source: z.string().max(32),
  before: z.string().default(''),
  after: z.string().default(''),
});
export type AuditRow = z.infer<typeof auditRow>;

/** Tables caps a binary property at 64 KiB; the verifier's size cap is sized to fit one row. */
export const packageChunkBytes = 64 * 1024;
export const maxStoredPackageBytes = maxPackageBytes;
export const packageChunkProperties = Array.from(
  { length: Math.ceil(maxPackageBytes / packageChunkBytes) },
  (_, index) => `xml${String(index).padStart(2, '0')}`,
);

export const packageRow = z.object({
  partitionKey: tableKey,
  rowKey: z.string().regex(/^\d{10}$/, 'must be a 10-digit sequence'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  signingTime: z.date().optional(),
  signedSequence: z.number().int().nonnegative().optional(),
  mitigationIds: mitigationIdList,
  /** By mitigation id, the SHA-256 of its content: what tells a hold whether the feed changed it. */
  content: jsonText(z.record(mitigationId, z.string().regex(/^[0-9a-f]{64}$/))).optional(),
  acceptedAt: z.date(),
  xmlBytes: z.number().int().min(1).max(maxStoredPackageBytes),
  ...Object.fromEntries(packageChunkProperties.map((name) => [name, z.instanceof(Uint8Array).optional()])),
});

export const packagePointerRow = z.object({
  partitionKey: tableKey,
  rowKey: z.literal('latest'),
  sequence: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const rolloutStateRow = z
  .object({
    partitionKey: tableKey,
    rowKey: z.literal('state'),
    feed: tableKey,
    packageSequence: z.number().int().nonnegative(),
    operation: z.enum(rolloutOperations),
    state: z.enum(rolloutStates),
    /** Why the rollout is in its state: a code of lib/model/reasons.ts and its detail; empty when none. */
    reasonCode: z.string().default(''),
    reasonDetail: z.string().default(''),
    /** The reason as one text, as releases before reason codes wrote it: read as a Legacy reason, never written. */
    reason: z.string().optional(),
    waveCount: z.number().int().min(1).max(99),
    currentWave: z.number().int().nonnegative(),
    profile: z.enum(rolloutProfiles).default('default'),
    resumeTo: z.enum(resumableStates).optional(),
    /** Retries of the current wave (0: its first pass); messages and operation ids carry it. */
    attempt: z.number().int().nonnegative().default(0),
    /** How often the rollout halted. */
    halts: z.number().int().nonnegative().default(0),
    /**
     * The mitigations the rollout applies, each with the SHA-256 of its content in the package: what
     * a halt or an abort holds (lib/rollout/holds.ts). Rows written before holds existed hold nothing.
     */
    applies: jsonText(z.record(mitigationId, z.string().regex(/^[0-9a-f]{64}$/))).default({}),
    createdAt: z.date(),
    updatedAt: z.date(),
  })
  .transform(({ reason: legacyText, ...row }) => ({
    ...row,
    ...(storedReason({ reasonCode: row.reasonCode, reasonDetail: row.reasonDetail, legacyText }) ?? {}),
  }));
export type RolloutStateRow = z.infer<typeof rolloutStateRow>;

export const waveRow = z.object({
  partitionKey: tableKey,
  rowKey: z.string().regex(/^wave-\d{2}$/),
  name: z.string().min(1).max(64),
  servers: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative().default(0),
  failed: z.number().int().nonnegative().default(0),
  skipped: z.number().int().nonnegative().default(0),
  maxConcurrency: z.number().int().min(1).default(1),
  maxErrors: z.number().int().nonnegative().default(0),
  bakeInMs: z.number().int().nonnegative().default(0),
  /** Servers (by plan index) sent so far: the window of `maxConcurrency` slides over the plan. */
  dispatched: z.number().int().nonnegative().default(0),
  /** Base64 bitset of the plan indices already counted, so a redelivered result never counts twice. */
  counted: z.string().default(''),
  /** Retries of this wave (0: its first pass, which sends every plan index). */
  attempt: z.number().int().nonnegative().default(0),
  /** Base64 bitset of the plan indices a retry sends (the first pass sends them all). */
  pass: z.string().default(''),
  /** Base64 bitset of the plan indices counted failed or skipped in this pass: what a retry sends again. */
  failedIndices: z.string().default(''),
  /** The first failing servers, named in the halt reason. */
  failedServers: jsonText(z.array(z.string())).default([]),
  /** What the probes found on those servers ("EM2 RolledBack: ecp"), by server, for the halt reason. */
  failureNotes: jsonText(z.record(z.string(), z.string())).optional(),
});
export type WaveRow = z.infer<typeof waveRow>;

export const resultRow = z.object({
  partitionKey: storedServerName,
  rowKey: tableKey,
  rolloutId: z.string().default(''),
  operation: z.enum(rolloutOperations),
  status: z.enum(operationStatuses),
  outcomes: jsonText(z.record(mitigationId, mitigationOutcome)),
  at: z.date(),
  expiresAt: z.date().optional(),
});
export type ResultRow = z.infer<typeof resultRow>;

export const planRow = z.object({
  partitionKey: tableKey,
  rowKey: z.string().regex(/^plan-\d{2}-\d{6}$/),
  server: storedServerName,
  hybridConnection: z.string().min(1),
  apply: mitigationIdList,
  remove: mitigationIdList,
  /** The server's effective onDegraded when the rollout was planned; rows written before it existed mean rollback. */
  onDegraded: z.enum(onDegradedPolicies).default(defaultOnDegraded),
});
export type PlanRowEntity = z.infer<typeof planRow>;
