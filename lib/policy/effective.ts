/** One layer of policy for a scope (org or server), as one row declares it. Unset fields inherit. */
export interface PolicyLayer {
  readonly mitigationsEnabled?: boolean;
  readonly blockedMitigations?: readonly string[];
  readonly ring?: string;
}

/** The rows found for one scope: the Tables-edited layer, the declared (Bicep) layer, and any invalid row. */
export interface ScopeRows {
  readonly table?: PolicyLayer;
  readonly bicep?: PolicyLayer;
  /** Set when a row of this scope failed validation: the scope's policy is unknown. */
  readonly problem?: string;
}

export type ValueSource = 'table' | 'bicep' | 'default';

export interface Sourced<T> {
  readonly value: T;
  readonly source: ValueSource;
}

export type EffectiveScope =
  | {
      readonly valid: true;
      readonly mitigationsEnabled: Sourced<boolean>;
      readonly blockedMitigations: Sourced<readonly string[]>;
      readonly ring?: Sourced<string>;
    }
  | { readonly valid: false; readonly problem: string };

/**
 * Field by field, a Tables-edited value overrides the declared one, which overrides the default
 * (enabled, nothing blocked). A scope with an invalid row has no effective policy.
 *
 * @example effectiveScope({ bicep: { mitigationsEnabled: false }, table: { mitigationsEnabled: true } })
 *          → mitigationsEnabled { value: true, source: 'table' }
 */
export function effectiveScope(rows: ScopeRows | undefined): EffectiveScope {
  if (rows?.problem !== undefined) return { valid: false, problem: rows.problem };
  const pick = <K extends keyof PolicyLayer>(field: K): Sourced<NonNullable<PolicyLayer[K]>> | undefined => {
    const fromTable = rows?.table?.[field];
    if (fromTable !== undefined) return { value: fromTable as NonNullable<PolicyLayer[K]>, source: 'table' };
    const fromBicep = rows?.bicep?.[field];
    if (fromBicep !== undefined) return { value: fromBicep as NonNullable<PolicyLayer[K]>, source: 'bicep' };
    return undefined;
  };
  const ring = pick('ring');
  return {
    valid: true,
    mitigationsEnabled: pick('mitigationsEnabled') ?? { value: true, source: 'default' },
    blockedMitigations: pick('blockedMitigations') ?? { value: [], source: 'default' },
    ...(ring === undefined ? {} : { ring }),
  };
}
