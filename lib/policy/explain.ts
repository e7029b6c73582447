import type { Mitigation } from '../package/model.js';
import { decide, type PolicyDecision, type ServerFacts } from './decide.js';
import { effectiveOnDegraded, effectiveScope, type EffectiveOnDegraded } from './effective.js';
import type { ScopeRows } from '../model/policy.js';

export interface ExplainedDecision extends PolicyDecision {
  readonly server: string;
  readonly mitigation: string;
  /** What the agent does if applying it degrades the server, and which scope said so. */
  readonly onDegraded: EffectiveOnDegraded;
}

/** Every server × every mitigation of a package, with the decision, its reason and the onDegraded policy; servers by name. */
export function explainPackage(
  orgRows: ScopeRows | undefined,
  serverRows: ReadonlyMap<string, ScopeRows>,
  servers: readonly ServerFacts[],
  mitigations: readonly Mitigation[],
): ExplainedDecision[] {
  const org = effectiveScope(orgRows);
  return [...servers]
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((facts) => {
      const server = effectiveScope(serverRows.get(facts.name));
      const onDegraded = effectiveOnDegraded(org, server);
      return mitigations.map((mitigation) => ({
        server: facts.name,
        mitigation: mitigation.id,
        ...decide(org, server, facts, mitigation),
        onDegraded,
      }));
    });
}
