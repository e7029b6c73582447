import { createHash } from 'node:crypto';
import type { Mitigation } from '../package/model.js';
import {
  decide,
  leftAlone,
  type PolicyDecision,
  type PolicyReason,
  type ServerFacts,
} from '../policy/decide.js';
import type { OnDegraded, ScopeRows } from '../model/policy.js';
import type { RolloutOperation } from '../model/rollout.js';
import { effectiveOnDegraded, effectiveScope } from '../policy/effective.js';
import { parseDurationInMs } from '../model/duration.js';
import { resolveCount, type WaveProfile, type WaveSelector } from '../model/waves.js';

/** A server as the planner sees it: policy facts plus where it sits and how it is reached. */
export interface PlannedServerFacts extends ServerFacts {
  readonly ring: string;
  readonly site: string;
  readonly hybridConnection: string;
}

/** A policy decision, or the rollout's own reason for a removal. */
export interface ServerDecision extends Omit<PolicyDecision, 'reason'> {
  readonly mitigation: string;
  readonly reason: PolicyReason | 'Withdrawn';
}

export interface PlannedServer {
  readonly server: string;
  readonly hybridConnection: string;
  readonly apply: readonly string[];
  readonly remove: readonly string[];
  readonly decisions: readonly ServerDecision[];
  /** The server's effective policy for a change that degrades it, sent to its agent with the apply. */
  readonly onDegraded: OnDegraded;
}

export interface PlannedWave {
  readonly index: number;
  readonly name: string;
  readonly maxConcurrency: number;
  readonly maxErrors: number;
  readonly bakeInMs: number;
  readonly servers: readonly PlannedServer[];
}

export interface LeftOutServer {
  readonly server: string;
  readonly reason: string;
  readonly decisions: readonly ServerDecision[];
}

export interface RolloutPlan {
  readonly operation: RolloutOperation;
  readonly mitigationIds: readonly string[];
  readonly waves: readonly PlannedWave[];
  readonly leftOut: readonly LeftOutServer[];
}

export interface PlanInput {
  readonly operation: RolloutOperation;
  /** The mitigations this rollout is about (added/changed for apply, withdrawn for remove). */
  readonly mitigationIds: readonly string[];
  /** The accepted package's mitigations; a withdrawn id is absent from it. */
  readonly mitigations: readonly Mitigation[];
  readonly servers: readonly PlannedServerFacts[];
  readonly orgPolicy: ScopeRows | undefined;
  readonly serverPolicy: ReadonlyMap<string, ScopeRows>;
  readonly waves: WaveProfile;
}

/**
 * Which server gets what, in which wave (pure, deterministic: the same input gives the same plan).
 * Servers with nothing to do are left out with the reason; the rest go into waves (assignWaves).
 */
export function planRollout(input: PlanInput): RolloutPlan {
  const org = effectiveScope(input.orgPolicy);
  const work: ServerWork[] = [];
  const leftOut: LeftOutServer[] = [];
  for (const server of [...input.servers].sort((a, b) => a.name.localeCompare(b.name))) {
    const scope = effectiveScope(input.serverPolicy.get(server.name));
    const decisions =
      input.operation === 'apply'
        ? applyDecisions(input, org, scope, server)
        : removeDecisions(input, org, scope, server);
    const apply = decisions
      .filter((decision) => decision.decision === 'Apply')
      .map((decision) => decision.mitigation);
    const remove = decisions
      .filter((decision) => decision.decision === 'Remove')
      .map((decision) => decision.mitigation);
    if (apply.length === 0 && remove.length === 0) {
      leftOut.push({
        server: server.name,
        reason:
          decisions.map((decision) => `${decision.mitigation}: ${decision.reason}`).join('; ') ||
          'no mitigation in scope',
        decisions,
      });
      continue;
    }
    const ring = scope.valid && scope.ring ? scope.ring.value : server.ring;
    work.push({
      server: server.name,
      hybridConnection: server.hybridConnection,
      apply,
      remove,
      decisions,
      onDegraded: effectiveOnDegraded(org, scope).value,
      ring,
    });
  }

  const waves = assignWaves(work, input.waves);
  return { operation: input.operation, mitigationIds: [...input.mitigationIds], waves, leftOut };
}

/** Servers with work, and the ring each belongs to for wave selection. */
export type ServerWork = PlannedServer & { readonly ring: string };

/**
 * Waves take, in order, the servers of a ring, named servers, or a share of the servers no earlier
 * wave took; the last wave takes whatever is left, so no server with work is ever dropped.
 */
export function assignWaves(work: readonly ServerWork[], profile: WaveProfile): PlannedWave[] {
  let rest = [...work].sort((a, b) => spreadKey(a.server).localeCompare(spreadKey(b.server)));
  return profile.map((spec, index): PlannedWave => {
    const isLast = index === profile.length - 1;
    const taken = isLast ? rest : select(spec.select, rest);
    rest = rest.filter((server) => !taken.includes(server));
    const servers = taken
      .map(({ ring: _ring, ...server }) => server)
      .sort((a, b) => a.server.localeCompare(b.server));
    return {
      index,
      name: spec.name,
      maxConcurrency: resolveCount(spec.maxConcurrency, servers.length, 1),
      maxErrors: resolveCount(spec.maxErrors, servers.length),
      bakeInMs: parseDurationInMs(spec.bake)!,
      servers,
    };
  });
}

function select<T extends { server: string; ring: string }>(selector: WaveSelector, rest: readonly T[]): T[] {
  if ('ring' in selector) return rest.filter((server) => server.ring === selector.ring);
  if ('servers' in selector) {
    const names = new Set(selector.servers.map((name) => name.toLowerCase()));
    return rest.filter((server) => names.has(server.server));
  }
  return rest.slice(0, Math.round((rest.length * selector.percent) / 100));
}

/**
 * Percent waves take servers in the order of a hash of their names: deterministic, yet spread
 * across sites and build lines instead of alphabetical runs (ex01…ex09 all in one datacenter).
 */
function spreadKey(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

function applyDecisions(
  input: PlanInput,
  org: ReturnType<typeof effectiveScope>,
  scope: ReturnType<typeof effectiveScope>,
  server: PlannedServerFacts,
): ServerDecision[] {
  return input.mitigationIds.flatMap((id) => {
    const mitigation = input.mitigations.find((candidate) => candidate.id === id);
    return mitigation ? [{ mitigation: id, ...decide(org, scope, server, mitigation) }] : [];
  });
}

/**
 * Withdrawn mitigations come off servers that report them applied, unless the server is left
 * alone by policy (disabled, or its policy invalid): those are reported, not touched.
 */
function removeDecisions(
  input: PlanInput,
  org: ReturnType<typeof effectiveScope>,
  scope: ReturnType<typeof effectiveScope>,
  server: PlannedServerFacts,
): ServerDecision[] {
  return input.mitigationIds
    .filter((id) => server.reportedApplied.includes(id))
    .map((id): ServerDecision => {
      const alone = leftAlone(org, scope, server.name);
      if (alone) return { mitigation: id, ...alone, detail: `${alone.detail}; ${id} stays` };
      return {
        mitigation: id,
        decision: 'Remove',
        reason: 'Withdrawn',
        detail: `${id} was withdrawn by a newer signed package`,
      };
    });
}
