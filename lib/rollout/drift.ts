import type { Mitigation } from '../package/model.js';
import { decide, leftAlone } from '../policy/decide.js';
import { effectiveOnDegraded, effectiveScope } from '../policy/effective.js';
import type { ScopeRows } from '../model/policy.js';
import type { PlannedServerFacts, ServerDecision, ServerWork } from './plan.js';

export interface DriftInput {
  readonly servers: readonly PlannedServerFacts[];
  readonly orgPolicy: ScopeRows | undefined;
  readonly serverPolicy: ReadonlyMap<string, ScopeRows>;
  /** The current package of the feed being reconciled. */
  readonly mitigations: readonly Mitigation[];
  /** Ids in any feed's current package: a reported id outside them was withdrawn. */
  readonly knownIds: ReadonlySet<string>;
  /** Whether this feed's fix-up also removes withdrawn ids (one feed does, so it happens once). */
  readonly removeWithdrawn: boolean;
}

export interface LeftAlone {
  readonly server: string;
  readonly ids: readonly string[];
  readonly reason: string;
}

/**
 * Desired state (package × policy × build) against what each server reports applied (pure):
 * what to reapply (applicable but missing: removed by hand, a new server), what to remove
 * (withdrawn, fixed by an update, blocked). Servers that policy leaves alone are reported with
 * what differs, never touched.
 */
export function findDrift(input: DriftInput): { work: ServerWork[]; leftAlone: LeftAlone[] } {
  const org = effectiveScope(input.orgPolicy);
  const work: ServerWork[] = [];
  const alone: LeftAlone[] = [];
  for (const server of [...input.servers].sort((a, b) => a.name.localeCompare(b.name))) {
    const scope = effectiveScope(input.serverPolicy.get(server.name));
    const decisions: ServerDecision[] = input.mitigations.map((mitigation) => ({
      mitigation: mitigation.id,
      ...decide(org, scope, server, mitigation),
    }));
    const apply = decisions
      .filter(
        (decision) => decision.decision === 'Apply' && !server.reportedApplied.includes(decision.mitigation),
      )
      .map((decision) => decision.mitigation);
    const remove = decisions
      .filter((decision) => decision.decision === 'Remove')
      .map((decision) => decision.mitigation);
    const withdrawn = input.removeWithdrawn
      ? server.reportedApplied.filter((id) => !input.knownIds.has(id))
      : [];
    for (const id of withdrawn)
      decisions.push({
        mitigation: id,
        decision: 'Remove',
        reason: 'Withdrawn',
        detail: `${id} is in no current package`,
      });
    const leave = leftAlone(org, scope, server.name);
    if (leave) {
      if (withdrawn.length > 0) alone.push({ server: server.name, ids: withdrawn, reason: leave.reason });
      continue;
    }
    if (apply.length + remove.length + withdrawn.length === 0) continue;
    const ring = scope.valid && scope.ring ? scope.ring.value : server.ring;
    work.push({
      server: server.name,
      hybridConnection: server.hybridConnection,
      apply,
      remove: [...remove, ...withdrawn],
      decisions,
      onDegraded: effectiveOnDegraded(org, scope).value,
      ring,
    });
  }
  return { work, leftAlone: alone };
}
