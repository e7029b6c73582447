import { z } from 'zod';
import { mitigationId, operationId } from '../model/names.js';
import { mitigationOutcome as storedOutcome } from '../model/outcomes.js';
import { onDegradedPolicies } from '../model/policy.js';
import type { ReasonCode } from '../model/reasons.js';
import { operationStatuses } from '../model/rollout.js';

/**
 * What the cloud and the agent say to each other through the relay. Both sides validate every
 * message with these schemas; a message that fails is answered 400 (agent) or treated as an
 * unusable reply (cloud), never half-understood.
 */
/** The largest request body an agent reads: an apply with the largest packageBase64, and room for its JSON. */
export const maxRequestBodyBytes = 2 * 1024 * 1024 + 64 * 1024;

export const agentPaths = { apply: '/apply', remove: '/remove', status: '/status', ping: '/ping' } as const;

export const applyRequest = z
  .object({
    operationId,
    /** The signed package exactly as accepted, base64; the agent verifies it itself. */
    packageBase64: z
      .string()
      .min(1)
      .max(2 * 1024 * 1024),
    mitigationIds: z.array(mitigationId).min(1).max(100),
    /**
     * The server's policy for a change that degrades it; absent means `rollback`. The cloud sends it
     * only when it is `keep`, so agents that predate it keep working under the default.
     */
    onDegraded: z.enum(onDegradedPolicies).optional(),
  })
  .strict();
export type ApplyRequest = z.infer<typeof applyRequest>;

export const removeRequest = z
  .object({
    operationId,
    mitigationIds: z.array(mitigationId).min(1).max(100),
  })
  .strict();
export type RemoveRequest = z.infer<typeof removeRequest>;

export const pingRequest = z.object({ nonce: z.string().max(128).optional() }).strict();

/**
 * A mitigation's outcome as an agent reports it: lib/model's shape, with the detail capped so a
 * reply cannot bloat the Results row it becomes.
 */
export const mitigationOutcome = storedOutcome.extend({ detail: z.string().max(2000).default('') });

export const operationStatus = z.enum(operationStatuses);

/**
 * What every agent reply carries about the agent: its Exchange build as it detected it ('' when it
 * could not), its version, and its clock. Optional on operation replies, so agents that predate
 * them keep working.
 */
export const agentFacts = {
  build: z.string().max(32),
  agentVersion: z.string().max(64),
  time: z.string().max(40).optional(),
};

/** The reply to apply/remove: done (200) or still working (202; ask GET /status later). */
export const operationReply = z.object({
  operationId,
  status: operationStatus,
  outcomes: z.record(mitigationId, mitigationOutcome).default({}),
  build: agentFacts.build.optional(),
  agentVersion: agentFacts.agentVersion.optional(),
  time: agentFacts.time,
});
export type OperationReply = z.infer<typeof operationReply>;

export const statusReply = z.object({
  server: z.string().min(1).max(253),
  ...agentFacts,
  applied: z.array(mitigationId),
  blocked: z.array(mitigationId).default([]),
  /** With `?verify=true`: journalled as applied but no longer in place on the server (changed by hand). */
  drifted: z.array(mitigationId).default([]),
  journal: z.object({ entries: z.number().int().nonnegative(), pending: z.number().int().nonnegative() }),
  operations: z.array(operationReply).max(1000).default([]),
});
export type StatusReply = z.infer<typeof statusReply>;

export const pingReply = z.object({
  server: z.string().min(1).max(253),
  ...agentFacts,
  nonce: z.string().max(128).optional(),
});
export type PingReply = z.infer<typeof pingReply>;

/**
 * What a site relay hub answers when it cannot hand a request on to the server's agent (as
 * errorReply codes). The cloud treats the last two as it treats a relay that found no listener:
 * retried, then Unreachable, with the hub's words as the detail.
 */
export const hubRefusals = {
  /** 404: the hub has no agent of that name (the Servers row's relayPath names a server of another site). */
  notBehindHub: 'NotBehindThisHub',
  /** 503: the hub could not reach the agent over the site LAN (refused, reset, pin or secret mismatch). */
  agentUnreachable: 'AgentUnreachable',
  /** 503: the agent did not answer within the hub's forward deadline. */
  agentTimeout: 'AgentTimeout',
} as const satisfies Record<string, ReasonCode>;

/** Every error reply carries a code and one line saying what was wrong. */
export const errorReply = z.object({ error: z.string().max(64), detail: z.string().max(2000) });
export type ErrorReply = z.infer<typeof errorReply>;

/**
 * The body of every refusal the agent (or its site hub) sends: the field names are the wire's
 * (deployed agents and the cloud's parser read them), the code is one of the reason catalogue.
 */
export function errorReplyBody(error: ReasonCode, detail: string): string {
  return JSON.stringify({ error, detail: detail.slice(0, 2000) } satisfies ErrorReply);
}
