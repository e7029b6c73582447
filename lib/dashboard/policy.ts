import type { AppConfig } from '../config/index.js';
import { readPolicy } from '../fleet/policy.js';
import type { FleetTables } from '../fleet/storage.js';
import type { Logger } from '../log.js';
import { effectiveScope } from '../policy/effective.js';
import type { ScopeRows } from '../model/policy.js';
import type { PolicyView, ScopePolicyView } from './types.js';

/** Server scopes listed at most; the rest are counted (the grid shows each server's decisions). */
export const maxPolicyServers = 500;

/** The org's settings and each server's own, every value with where it came from (Bicep, Tables, default). */
export async function readPolicyView(deps: {
  tables: FleetTables;
  config: AppConfig;
  logger: Logger;
}): Promise<PolicyView> {
  const snapshot = await readPolicy(deps.tables, deps.config.org, { logger: deps.logger });
  const names = [...snapshot.servers.keys()].sort();
  return {
    org: scopePolicyView(deps.config.org, snapshot.org),
    servers: names
      .slice(0, maxPolicyServers)
      .map((name) => scopePolicyView(name, snapshot.servers.get(name))),
    serverScopes: names.length,
  };
}

export function scopePolicyView(name: string, rows: ScopeRows | undefined): ScopePolicyView {
  const scope = effectiveScope(rows);
  if (!scope.valid) return { name, valid: false, problem: scope.problem };
  return {
    name,
    valid: true,
    mitigationsEnabled: scope.mitigationsEnabled,
    blockedMitigations: scope.blockedMitigations,
    onDegraded: scope.onDegraded,
    ring: scope.ring ?? null,
  };
}
