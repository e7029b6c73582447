/** The words of policy (DESIGN §6): where a setting comes from, what it covers, and the layers it makes. */

/** Where a policy row comes from: Bicep's baseline (EMFLEET_POLICY) or an edit in Tables. */
export const policySources = ['bicep', 'table'] as const;
export type PolicySource = (typeof policySources)[number];
/** Where an effective value comes from: a row of either source, or the built-in default. */
export type ValueSource = PolicySource | 'default';

export const policyScopes = ['org', 'server'] as const;
export type PolicyScope = (typeof policyScopes)[number];

/** What the agent does when a change takes a health endpoint down or blocks a must-pass request (policy `onDegraded`). */
export const onDegradedPolicies = ['rollback', 'keep'] as const;
export type OnDegraded = (typeof onDegradedPolicies)[number];
export const defaultOnDegraded: OnDegraded = 'rollback';

/** One layer of policy for a scope (org or server), as one row declares it. Unset fields inherit. */
export interface PolicyLayer {
  readonly mitigationsEnabled?: boolean;
  readonly blockedMitigations?: readonly string[];
  readonly ring?: string;
  /** What the agent does when a change degrades the server: roll it back (default) or keep it. */
  readonly onDegraded?: OnDegraded;
}

/** The rows found for one scope: the Tables-edited layer, the declared (Bicep) layer, and any invalid row. */
export interface ScopeRows {
  readonly table?: PolicyLayer;
  readonly bicep?: PolicyLayer;
  /** Set when a row of this scope failed validation: the scope's policy is unknown. */
  readonly problem?: string;
}

/** The declared (Bicep) policy as layers: the org's, and each named server's (ring members included). */
export interface DeclaredLayers {
  readonly org: PolicyLayer;
  readonly servers: ReadonlyMap<string, PolicyLayer>;
}
