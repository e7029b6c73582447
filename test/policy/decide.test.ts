import { describe, it, expect } from 'vitest';
import {
  decide,
  policyReasons,
  type PolicyDecisionKind,
  type PolicyReason,
  type ServerFacts,
} from '../../lib/policy/decide.js';
import type { EffectiveScope } from '../../lib/policy/effective.js';
import type { ValueSource } from '../../lib/model/policy.js';
import type { BuildRange } from '../../lib/model/build.js';
import { range } from '../helpers/packages.js';
import { rewrite, disablePool } from '../helpers/actions.js';
import type { Mitigation, MitigationAction } from '../../lib/package/model.js';

// ---- test data builders -------------------------------------------------------------------------

interface ScopeOptions {
  readonly enabled?: boolean;
  readonly enabledSource?: ValueSource;
  readonly blocked?: readonly string[];
  readonly blockedSource?: ValueSource;
}

/** A valid effective scope; by default enabled and blocking nothing, as effectiveScope's defaults. */
function scope(options: ScopeOptions = {}): EffectiveScope {
  return {
    valid: true,
    mitigationsEnabled: { value: options.enabled ?? true, source: options.enabledSource ?? 'default' },
    blockedMitigations: { value: options.blocked ?? [], source: options.blockedSource ?? 'default' },
    onDegraded: { value: 'rollback', source: 'default' },
  };
}

function invalid(problem: string): EffectiveScope {
  return { valid: false, problem };
}

const unsupported: MitigationAction = {
  kind: 'Unsupported',
  scope: 'Registry',
  description: 'a future action',
  type: 'SetRegistryValue',
  why: 'unknown action type SetRegistryValue',
};

function mitigation(
  id: string,
  applicability: readonly BuildRange[],
  actions: readonly MitigationAction[] = [rewrite],
): Mitigation {
  return { id, description: `${id} test mitigation`, applicability, actions };
}

/** Vulnerable: Exchange 2016 up to 15.1.2507.15, Exchange 2019 up to 15.2.1118.19 (docs/package-format.md). */
const em1 = mitigation('EM1', [range('15.1.0.0', '15.1.2507.15'), range('15.2.0.0', '15.2.1118.19')]);
/** Only the Exchange 2016 line. */
const em2 = mitigation('EM2', [range('15.1.0.0', '15.1.2507.15')]);
/** A narrow range that starts above the line's beginning. */
const em3 = mitigation('EM3', [range('15.2.1118.0', '15.2.1118.19')]);
/** No ranges: every build. */
const em4 = mitigation('EM4', []);
const em5Unsupported = mitigation('EM5', [range('15.2.0.0', '15.2.1118.19')], [rewrite, unsupported]);
const em6OnlyUnsupported = mitigation('EM6', [], [unsupported]);
const em7Pool = mitigation('EM7', [range('15.2.0.0', '15.2.1118.19')], [disablePool]);

const SERVER = 'ex01.contoso.com';
const VULNERABLE = '15.2.1118.10';
const FIXED = '15.2.1544.4';
const EXCHANGE_2013 = '15.0.1497.2';

function facts(buildText: string, reportedApplied: readonly string[] = []): ServerFacts {
  return { name: SERVER, build: buildText, reportedApplied };
}

// ---- the decision table -------------------------------------------------------------------------

interface Row {
  readonly name: string;
  readonly org: EffectiveScope;
  readonly server: EffectiveScope;
  readonly facts: ServerFacts;
  readonly mitigation: Mitigation;
  readonly decision: PolicyDecisionKind;
  readonly reason: PolicyReason;
  /** Substrings the detail must contain. */
  readonly detail: readonly string[];
}

const rows: readonly Row[] = [
  // 1. org policy invalid
  {
    name: 'org policy invalid → PolicyError',
    org: invalid('row org/bicep: blockedMitigations is not JSON'),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: ['org policy is invalid', 'blockedMitigations is not JSON'],
  },
  {
    name: 'org policy invalid wins over an invalid server and a fixed, applied mitigation',
    org: invalid('org row broken'),
    server: invalid('server row broken'),
    facts: facts(FIXED, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: ['org row broken'],
  },
  // 1. org disabled
  {
    name: 'org disabled in Tables → Disabled (org)',
    org: scope({ enabled: false, enabledSource: 'table' }),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['organization', '(table)'],
  },
  {
    name: 'org disabled by Bicep → Disabled (org), source bicep',
    org: scope({ enabled: false, enabledSource: 'bicep' }),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['organization', '(bicep)'],
  },
  {
    name: 'org disabled wins over an invalid server policy',
    org: scope({ enabled: false, enabledSource: 'bicep' }),
    server: invalid('server row broken'),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['(bicep)'],
  },
  {
    name: 'org disabled wins over an org block of an applied mitigation: nothing removed',
    org: scope({ enabled: false, enabledSource: 'table', blocked: ['EM1'], blockedSource: 'table' }),
    server: scope(),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['(table)'],
  },
  {
    name: 'org disabled wins over a server block',
    org: scope({ enabled: false, enabledSource: 'table' }),
    server: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['(table)'],
  },
  {
    name: 'org disabled, mitigation fixed and applied: left alone, not removed',
    org: scope({ enabled: false, enabledSource: 'bicep' }),
    server: scope(),
    facts: facts(FIXED, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['(bicep)'],
  },
  {
    name: 'org disabled wins over a disabled server',
    org: scope({ enabled: false, enabledSource: 'bicep' }),
    server: scope({ enabled: false, enabledSource: 'table' }),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (org)',
    detail: ['(bicep)'],
  },
  // 2. server policy invalid
  {
    name: 'server policy invalid → PolicyError naming the server',
    org: scope(),
    server: invalid('ring "x y" is not a ring name'),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER, 'ring "x y" is not a ring name'],
  },
  {
    name: 'server policy invalid, mitigation fixed and applied: never removed',
    org: scope(),
    server: invalid('server row broken'),
    facts: facts(FIXED, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER, 'server row broken'],
  },
  {
    name: 'server policy invalid, blocked at org and applied: never removed',
    org: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    server: invalid('server row broken'),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER],
  },
  {
    name: 'server policy invalid, mitigation applicable: never applied',
    org: scope(),
    server: invalid('server row broken'),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER],
  },
  // 2. server disabled
  {
    name: 'server disabled in Tables → Disabled (server)',
    org: scope(),
    server: scope({ enabled: false, enabledSource: 'table' }),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (server)',
    detail: [SERVER, '(table)'],
  },
  {
    name: 'server disabled by Bicep → Disabled (server), source bicep',
    org: scope({ enabled: true, enabledSource: 'table' }),
    server: scope({ enabled: false, enabledSource: 'bicep' }),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (server)',
    detail: [SERVER, '(bicep)'],
  },
  {
    name: 'server disabled, mitigation fixed and applied: not removed',
    org: scope(),
    server: scope({ enabled: false, enabledSource: 'table' }),
    facts: facts(FIXED, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (server)',
    detail: [SERVER],
  },
  {
    name: 'server disabled wins over an org block of an applied mitigation: not removed',
    org: scope({ blocked: ['EM1'], blockedSource: 'bicep' }),
    server: scope({ enabled: false, enabledSource: 'table' }),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (server)',
    detail: [SERVER],
  },
  {
    name: 'server disabled wins over a malformed build',
    org: scope(),
    server: scope({ enabled: false, enabledSource: 'table' }),
    facts: facts('not a build'),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Disabled (server)',
    detail: [SERVER],
  },
  // 3. blocked at org
  {
    name: 'blocked at org (bicep), not applied → Skip',
    org: scope({ blocked: ['EM1'], blockedSource: 'bicep' }),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Blocked (org)',
    detail: ['EM1', 'organization', '(bicep)'],
  },
  {
    name: 'blocked at org (table), applied → Remove',
    org: scope({ blocked: ['EM3', 'EM1'], blockedSource: 'table' }),
    server: scope(),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'Blocked (org)',
    detail: ['EM1', '(table)', 'removed'],
  },
  {
    name: 'blocked at org and at server: org wins',
    org: scope({ blocked: ['EM1'], blockedSource: 'bicep' }),
    server: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'Blocked (org)',
    detail: ['EM1', '(bicep)'],
  },
  {
    name: 'blocked at org wins over a build outside the ranges',
    org: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    server: scope(),
    facts: facts(EXCHANGE_2013, ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'Blocked (org)',
    detail: ['EM1', '(table)'],
  },
  {
    name: 'blocked at org, another mitigation applied → Skip, not Remove',
    org: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    server: scope(),
    facts: facts(VULNERABLE, ['EM2', 'EM10']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Blocked (org)',
    detail: ['EM1'],
  },
  // 3. blocked at server
  {
    name: 'blocked at server (table), not applied → Skip',
    org: scope({ blocked: ['EM9'], blockedSource: 'bicep' }),
    server: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Skip',
    reason: 'Blocked (server)',
    detail: ['EM1', SERVER, '(table)'],
  },
  {
    name: 'blocked at server (bicep), applied → Remove',
    org: scope(),
    server: scope({ blocked: ['EM1'], blockedSource: 'bicep' }),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'Blocked (server)',
    detail: ['EM1', SERVER, '(bicep)', 'removed'],
  },
  {
    name: 'blocked at server wins over a fixed build: reason stays Blocked',
    org: scope(),
    server: scope({ blocked: ['EM1'], blockedSource: 'table' }),
    facts: facts(FIXED, ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'Blocked (server)',
    detail: ['EM1', SERVER],
  },
  {
    name: 'a block names one id: blocking EM10 or EM does not block EM1',
    org: scope({ blocked: ['EM10'], blockedSource: 'table' }),
    server: scope({ blocked: ['EM', 'EM11'], blockedSource: 'table' }),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM1', VULNERABLE],
  },
  // 4. applicability
  {
    name: 'Exchange 2013 build outside every range → NotApplicable',
    org: scope(),
    server: scope(),
    facts: facts(EXCHANGE_2013),
    mitigation: em1,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: [EXCHANGE_2013, 'EM1'],
  },
  {
    name: 'outside every range and applied → NotApplicable, not removed',
    org: scope(),
    server: scope(),
    facts: facts(EXCHANGE_2013, ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: [EXCHANGE_2013, 'EM1'],
  },
  {
    name: 'below the min on the same line → NotApplicable, not fixed',
    org: scope(),
    server: scope(),
    facts: facts('15.2.986.5', ['EM3']),
    mitigation: em3,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: ['15.2.986.5', 'EM3'],
  },
  {
    name: 'above the max of a range on another line → NotApplicable, not fixed',
    org: scope(),
    server: scope(),
    facts: facts(FIXED),
    mitigation: em2,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: [FIXED, 'EM2'],
  },
  {
    name: 'above the max on another line and applied → NotApplicable, not removed',
    org: scope(),
    server: scope(),
    facts: facts(FIXED, ['EM2']),
    mitigation: em2,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: [FIXED, 'EM2'],
  },
  {
    name: 'above the max on the same line → NotApplicable (fixed)',
    org: scope(),
    server: scope(),
    facts: facts(FIXED),
    mitigation: em1,
    decision: 'Skip',
    reason: 'NotApplicable (fixed)',
    detail: [FIXED, 'EM1'],
  },
  {
    name: 'one build above the max on the same line and applied → Remove',
    org: scope(),
    server: scope(),
    facts: facts('15.1.2507.16', ['EM1']),
    mitigation: em1,
    decision: 'Remove',
    reason: 'NotApplicable (fixed)',
    detail: ['15.1.2507.16', 'EM1', 'removed'],
  },
  {
    name: 'fixed wins over an Unsupported action: applied → Remove',
    org: scope(),
    server: scope(),
    facts: facts(FIXED, ['EM5']),
    mitigation: em5Unsupported,
    decision: 'Remove',
    reason: 'NotApplicable (fixed)',
    detail: ['EM5'],
  },
  {
    name: 'outside the ranges wins over an Unsupported action',
    org: scope(),
    server: scope(),
    facts: facts(EXCHANGE_2013),
    mitigation: em5Unsupported,
    decision: 'Skip',
    reason: 'NotApplicable',
    detail: ['EM5'],
  },
  // malformed build
  {
    name: 'malformed reported build → PolicyError naming the server and the build',
    org: scope(),
    server: scope(),
    facts: facts('15.2.CU14'),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER, '15.2.CU14'],
  },
  {
    name: 'empty reported build, mitigation applied → PolicyError, not removed',
    org: scope(),
    server: scope(),
    facts: facts('', ['EM1']),
    mitigation: em1,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER],
  },
  {
    name: 'malformed reported build, mitigation without ranges → PolicyError, not applied',
    org: scope(),
    server: scope(),
    facts: facts('15.2.1544'),
    mitigation: em4,
    decision: 'Skip',
    reason: 'PolicyError',
    detail: [SERVER, '15.2.1544'],
  },
  // 5. unsupported
  {
    name: 'an Unsupported action among supported ones → Unsupported',
    org: scope(),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em5Unsupported,
    decision: 'Skip',
    reason: 'Unsupported',
    detail: ['EM5', 'unknown action type SetRegistryValue'],
  },
  {
    name: 'only an Unsupported action, applied → Unsupported, not applied again',
    org: scope(),
    server: scope(),
    facts: facts(FIXED, ['EM6']),
    mitigation: em6OnlyUnsupported,
    decision: 'Skip',
    reason: 'Unsupported',
    detail: ['EM6'],
  },
  // 6. apply
  {
    name: 'inside a range → Apply',
    org: scope(),
    server: scope(),
    facts: facts(VULNERABLE),
    mitigation: em1,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM1', VULNERABLE],
  },
  {
    name: 'inside a range and already applied → still Apply',
    org: scope(),
    server: scope(),
    facts: facts(VULNERABLE, ['EM1']),
    mitigation: em1,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM1'],
  },
  {
    name: 'the max is inclusive → Apply',
    org: scope(),
    server: scope(),
    facts: facts('15.1.2507.15'),
    mitigation: em1,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM1', '15.1.2507.15'],
  },
  {
    name: 'the min is inclusive → Apply',
    org: scope(),
    server: scope(),
    facts: facts('15.2.1118.0'),
    mitigation: em3,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM3'],
  },
  {
    name: 'builds compare numerically: 15.2.1118.9 is inside ..1118.19',
    org: scope(),
    server: scope(),
    facts: facts('15.2.1118.9'),
    mitigation: em3,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM3'],
  },
  {
    name: 'explicitly enabled at both scopes with other ids blocked → Apply',
    org: scope({ enabled: true, enabledSource: 'bicep', blocked: ['EM2'], blockedSource: 'bicep' }),
    server: scope({ enabled: true, enabledSource: 'table', blocked: ['EM3'], blockedSource: 'table' }),
    facts: facts(VULNERABLE),
    mitigation: em7Pool,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM7'],
  },
  {
    name: 'no ranges: applies to an Exchange 2013 build',
    org: scope(),
    server: scope(),
    facts: facts(EXCHANGE_2013),
    mitigation: em4,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM4', EXCHANGE_2013],
  },
  {
    name: 'no ranges: applies to the newest build, never "fixed", even when applied',
    org: scope(),
    server: scope(),
    facts: facts('15.2.9999.9999', ['EM4']),
    mitigation: em4,
    decision: 'Apply',
    reason: 'Applicable',
    detail: ['EM4'],
  },
];

describe('decide', () => {
  it.each(rows)('$name', (row) => {
    const result = decide(row.org, row.server, row.facts, row.mitigation);
    expect({ decision: result.decision, reason: result.reason }).toEqual({
      decision: row.decision,
      reason: row.reason,
    });
    for (const part of row.detail) expect(result.detail).toContain(part);
  });

  it('every policy reason is produced by some row of the table', () => {
    const seen = new Set(rows.map((row) => decide(row.org, row.server, row.facts, row.mitigation).reason));
    const missing = policyReasons.filter((reason) => !seen.has(reason));
    expect(missing).toEqual([]);
  });

  it('the table exercises Apply, Remove and Skip', () => {
    const seen = new Set(rows.map((row) => decide(row.org, row.server, row.facts, row.mitigation).decision));
    expect([...seen].sort()).toEqual(['Apply', 'Remove', 'Skip']);
  });

  it('never removes a mitigation the server does not report applied', () => {
    for (const row of rows) {
      const result = decide(row.org, row.server, row.facts, row.mitigation);
      if (!row.facts.reportedApplied.includes(row.mitigation.id))
        expect(result.decision, row.name).not.toBe('Remove');
    }
  });

  it('Disabled and PolicyError leave the server alone: never Apply or Remove', () => {
    for (const row of rows) {
      const result = decide(row.org, row.server, row.facts, row.mitigation);
      if (result.reason === 'PolicyError' || result.reason.startsWith('Disabled'))
        expect(result.decision, row.name).toBe('Skip');
    }
  });

  it('does not modify its inputs', () => {
    const org = scope({ blocked: ['EM1'], blockedSource: 'table' });
    const server = scope();
    const serverFacts = facts(FIXED, ['EM1']);
    const snapshot = JSON.stringify([org, server, serverFacts, em1]);
    decide(org, server, serverFacts, em1);
    expect(JSON.stringify([org, server, serverFacts, em1])).toBe(snapshot);
  });
});
