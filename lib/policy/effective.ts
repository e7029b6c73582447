import {
  defaultOnDegraded,
  type OnDegraded,
  type PolicyLayer,
  type PolicyScope,
  type ScopeRows,
  type ValueSource,
} from '../model/policy.js';

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
      readonly onDegraded: Sourced<OnDegraded>;
    }
  | { readonly valid: false; readonly problem: string };

/**
 * Field by field, a Tables-edited value overrides the declared one, which overrides the default
 * (enabled, nothing blocked, roll back what degrades). A scope with an invalid row has no effective policy.
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
    onDegraded: pick('onDegraded') ?? { value: defaultOnDegraded, source: 'default' },
  };
}

export interface EffectiveOnDegraded {
  readonly value: OnDegraded;
  /** Which scope set it: the server's own setting wins over the org's. */
  readonly scope: PolicyScope | 'default';
  readonly source: ValueSource;
}

/**
 * A server's onDegraded: its own setting, else the org's, else rollback. An invalid scope leaves the
 * server alone altogether (nothing is applied), so the default stands for it.
 *
 * @example effectiveOnDegraded(effectiveScope({ table: { onDegraded: 'keep' } }), effectiveScope(undefined))
 *          → { value: 'keep', scope: 'org', source: 'table' }
 */
export function effectiveOnDegraded(org: EffectiveScope, server: EffectiveScope): EffectiveOnDegraded {
  if (server.valid && server.onDegraded.source !== 'default')
    return { value: server.onDegraded.value, scope: 'server', source: server.onDegraded.source };
  if (org.valid && org.onDegraded.source !== 'default')
    return { value: org.onDegraded.value, scope: 'org', source: org.onDegraded.source };
  return { value: defaultOnDegraded, scope: 'default', source: 'default' };
}
