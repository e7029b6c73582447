import { evaluateApplicability, parseBuild } from '../model/build.js';
import type { Mitigation } from '../package/model.js';
import type { EffectiveScope } from './effective.js';

/** Why a server gets (or does not get) a mitigation; these strings are what admins see. */
export const policyReasons = [
  'Disabled (org)',
  'Disabled (server)',
  'Blocked (org)',
  'Blocked (server)',
  'NotApplicable',
  'NotApplicable (fixed)',
  'PolicyError',
  'Unsupported',
  'Applicable',
] as const;
export type PolicyReason = (typeof policyReasons)[number];

export type PolicyDecisionKind = 'Apply' | 'Remove' | 'Skip';

export interface PolicyDecision {
  readonly decision: PolicyDecisionKind;
  readonly reason: PolicyReason;
  readonly detail: string;
}

/**
 * Steps 1 and 2 of `decide`: a server that policy says to leave alone (invalid policy, disabled at
 * org or server) gets Skip, whatever the mitigation and whatever the operation.
 */
export function leftAlone(
  org: EffectiveScope,
  server: EffectiveScope,
  serverName: string,
): PolicyDecision | undefined {
  if (!org.valid)
    return { decision: 'Skip', reason: 'PolicyError', detail: `org policy is invalid: ${org.problem}` };
  if (!org.mitigationsEnabled.value) {
    return {
      decision: 'Skip',
      reason: 'Disabled (org)',
      detail: `mitigations are disabled for the organization (${org.mitigationsEnabled.source})`,
    };
  }
  if (!server.valid)
    return {
      decision: 'Skip',
      reason: 'PolicyError',
      detail: `policy of ${serverName} is invalid: ${server.problem}`,
    };
  if (!server.mitigationsEnabled.value) {
    return {
      decision: 'Skip',
      reason: 'Disabled (server)',
      detail: `mitigations are disabled on ${serverName} (${server.mitigationsEnabled.source})`,
    };
  }
  return undefined;
}

/** What the policy needs to know about a server. */
export interface ServerFacts {
  readonly name: string;
  /** Exchange build as reported, e.g. 15.2.1544.4. */
  readonly build: string;
  /** Mitigation ids the agent last reported as applied. */
  readonly reportedApplied: readonly string[];
}

/**
 * The effective decision for one server and one mitigation (DESIGN §6), first match wins:
 * 1. org policy invalid → PolicyError; org disabled → Disabled (org)
 * 2. server policy invalid → PolicyError (nothing is applied or removed there); server disabled → Disabled (server)
 * 3. blocked at org, then at server → Blocked; removed if the server reports it applied
 * 4. build outside every range → NotApplicable; above a range's max on its line → NotApplicable (fixed), removed if applied
 * 5. an action emfleet cannot apply → Unsupported
 * 6. otherwise → Apply
 * Disabled means "leave this server alone": nothing is applied or removed.
 */
export function decide(
  org: EffectiveScope,
  server: EffectiveScope,
  facts: ServerFacts,
  mitigation: Mitigation,
): PolicyDecision {
  const applied = facts.reportedApplied.includes(mitigation.id);
  const removeIfApplied = (reason: PolicyReason, detail: string): PolicyDecision =>
    applied
      ? { decision: 'Remove', reason, detail: `${detail}; it is applied, so it is removed` }
      : { decision: 'Skip', reason, detail };

  const alone = leftAlone(org, server, facts.name);
  // leftAlone answers for every invalid scope; the second test only narrows the types.
  if (alone || !org.valid || !server.valid) return alone!;
  if (org.blockedMitigations.value.includes(mitigation.id)) {
    return removeIfApplied(
      'Blocked (org)',
      `${mitigation.id} is blocked for the organization (${org.blockedMitigations.source})`,
    );
  }
  if (server.blockedMitigations.value.includes(mitigation.id)) {
    return removeIfApplied(
      'Blocked (server)',
      `${mitigation.id} is blocked on ${facts.name} (${server.blockedMitigations.source})`,
    );
  }
  const build = parseBuild(facts.build);
  if (!build)
    return {
      decision: 'Skip',
      reason: 'PolicyError',
      detail: `${facts.name} reports build "${facts.build}", which is not an Exchange build`,
    };
  const applicability = evaluateApplicability(mitigation.applicability, build);
  if (applicability === 'NotApplicable') {
    return {
      decision: 'Skip',
      reason: 'NotApplicable',
      detail: `build ${facts.build} is outside the ranges of ${mitigation.id}`,
    };
  }
  if (applicability === 'Fixed') {
    return removeIfApplied(
      'NotApplicable (fixed)',
      `build ${facts.build} includes the fix for ${mitigation.id}`,
    );
  }
  const unsupported = mitigation.actions.find((action) => action.kind === 'Unsupported');
  if (unsupported) {
    return {
      decision: 'Skip',
      reason: 'Unsupported',
      detail: `${mitigation.id} has an action emfleet cannot apply (${unsupported.why})`,
    };
  }
  return {
    decision: 'Apply',
    reason: 'Applicable',
    detail: `${mitigation.id} applies to build ${facts.build}`,
  };
}
