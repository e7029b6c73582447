import { evaluateApplicability, parseBuild } from '../model/build.js';
import type { Mitigation } from '../package/model.js';
import { reasonCodesOf, type Reason, type ReasonCodeOf } from '../model/reasons.js';
import type { EffectiveScope } from './effective.js';

/**
 * Why a server gets (or does not get) a mitigation: the `policy` codes of lib/model/reasons.ts that
 * `decide` gives; admins read them in EM's words (`DisabledByOrg` reads `Disabled (org)`).
 * `Withdrawn` is the rollout's own reason for a removal, `Undecided` the answer when there is no
 * verified package to decide from.
 */
export type PolicyReason = Exclude<ReasonCodeOf<'policy'>, 'Withdrawn' | 'Undecided'>;
export const policyReasons: readonly PolicyReason[] = reasonCodesOf('policy').filter(
  (code): code is PolicyReason => code !== 'Withdrawn' && code !== 'Undecided',
);

export type PolicyDecisionKind = 'Apply' | 'Remove' | 'Skip';

/** What policy decides, and why: a policy reason code and its detail (lib/model/reasons.ts). */
export interface PolicyDecision extends Reason<PolicyReason> {
  readonly decision: PolicyDecisionKind;
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
    return {
      decision: 'Skip',
      reasonCode: 'PolicyError',
      reasonDetail: `org policy is invalid: ${org.problem}`,
    };
  if (!org.mitigationsEnabled.value) {
    return {
      decision: 'Skip',
      reasonCode: 'DisabledByOrg',
      reasonDetail: `mitigations are disabled for the organization (${org.mitigationsEnabled.source})`,
    };
  }
  if (!server.valid)
    return {
      decision: 'Skip',
      reasonCode: 'PolicyError',
      reasonDetail: `policy of ${serverName} is invalid: ${server.problem}`,
    };
  if (!server.mitigationsEnabled.value) {
    return {
      decision: 'Skip',
      reasonCode: 'DisabledByServer',
      reasonDetail: `mitigations are disabled on ${serverName} (${server.mitigationsEnabled.source})`,
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
 * 1. org policy invalid → PolicyError; org disabled → DisabledByOrg (`Disabled (org)`)
 * 2. server policy invalid → PolicyError (nothing is applied or removed there); server disabled → DisabledByServer
 * 3. blocked at org, then at server → BlockedByOrg, BlockedByServer; removed if the server reports it applied
 * 4. build outside every range → NotApplicable; above a range's max on its line → NotApplicableFixed
 *    (`NotApplicable (fixed)`), removed if applied
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
      ? { decision: 'Remove', reasonCode: reason, reasonDetail: `${detail}; it is applied, so it is removed` }
      : { decision: 'Skip', reasonCode: reason, reasonDetail: detail };

  const alone = leftAlone(org, server, facts.name);
  // leftAlone answers for every invalid scope; the second test only narrows the types.
  if (alone || !org.valid || !server.valid) return alone!;
  if (org.blockedMitigations.value.includes(mitigation.id)) {
    return removeIfApplied(
      'BlockedByOrg',
      `${mitigation.id} is blocked for the organization (${org.blockedMitigations.source})`,
    );
  }
  if (server.blockedMitigations.value.includes(mitigation.id)) {
    return removeIfApplied(
      'BlockedByServer',
      `${mitigation.id} is blocked on ${facts.name} (${server.blockedMitigations.source})`,
    );
  }
  const build = parseBuild(facts.build);
  if (!build)
    return {
      decision: 'Skip',
      reasonCode: 'PolicyError',
      reasonDetail: `${facts.name} reports build "${facts.build}", which is not an Exchange build`,
    };
  const applicability = evaluateApplicability(mitigation.applicability, build);
  if (applicability === 'NotApplicable') {
    return {
      decision: 'Skip',
      reasonCode: 'NotApplicable',
      reasonDetail: `build ${facts.build} is outside the ranges of ${mitigation.id}`,
    };
  }
  if (applicability === 'Fixed') {
    return removeIfApplied(
      'NotApplicableFixed',
      `build ${facts.build} includes the fix for ${mitigation.id}`,
    );
  }
  const unsupported = mitigation.actions.find((action) => action.kind === 'Unsupported');
  if (unsupported) {
    return {
      decision: 'Skip',
      reasonCode: 'Unsupported',
      reasonDetail: `${mitigation.id} has an action emfleet cannot apply (${unsupported.why})`,
    };
  }
  return {
    decision: 'Apply',
    reasonCode: 'Applicable',
    reasonDetail: `${mitigation.id} applies to build ${facts.build}`,
  };
}
