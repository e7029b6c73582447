import type { Applier, ApplicableAction, PriorState } from './applier.js';

/**
 * Adoption (docs/agent.md, "Living with EM"): a change found already in place on the server, such
 * as Exchange Emergency Mitigation's own `EEMS …` rewrite rule or an admin's stopped pool, is taken
 * over as if emfleet had applied it: journaled as found, reported as applied, never re-applied.
 * What it replaced is unknown, so its prior state is "absent": removing it removes the change.
 */
export const adoptedDetail =
  'found in place on this server (not applied by emfleet) and adopted: journaled as found; removing it removes it';

/** The state that removing an adopted action restores: the change absent. */
export async function absentPriors(
  applier: Applier,
  actions: readonly ApplicableAction[],
): Promise<PriorState[]> {
  const priors: PriorState[] = [];
  for (const action of actions) priors.push(await absentPrior(applier, action));
  return priors;
}

async function absentPrior(applier: Applier, action: ApplicableAction): Promise<PriorState> {
  switch (action.kind) {
    case 'DoNothing':
      return { kind: 'DoNothing' };
    case 'IisUrlRewrite':
      // The rule found by content may carry another name (an admin's copy); that one is what removal deletes.
      return {
        kind: 'IisUrlRewrite',
        site: action.site,
        ruleName: (await applier.ruleInPlace(action)) ?? action.ruleName,
        previousRuleXml: null,
      };
    case 'DisableAppPool':
      return { kind: 'DisableAppPool', appPool: action.appPool, state: 'Started', autoStart: true };
    case 'DisableService':
      return { kind: 'DisableService', service: action.service, status: 'Running', startType: 'Automatic' };
  }
}
