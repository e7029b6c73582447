import type { Mitigation } from '../package/model.js';
import { decide, type PolicyDecision, type ServerFacts } from './decide.js';
import { effectiveScope, type ScopeRows } from './effective.js';

export interface ExplainedDecision extends PolicyDecision {
  readonly server: string;
  readonly mitigation: string;
}

/** Every server × every mitigation of a package, with the decision and its reason; servers by name. */
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
      return mitigations.map((mitigation) => ({ server: facts.name, mitigation: mitigation.id, ...decide(org, server, facts, mitigation) }));
    });
}
