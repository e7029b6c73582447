import { odata, type TransactionAction } from '@azure/data-tables';
import type { Logger } from '../log.js';
import type { DeclaredLayers, PolicyLayer, PolicyScope, PolicySource, ScopeRows } from '../model/policy.js';
import { writeAudit } from './audit.js';
import { writeInTransactions } from './batch.js';
import { getEntityOrUndefined, mutateEntity } from './optimistic.js';
import { describeRowProblem, isStatus, readRows, validateRow, type RowProblem } from './rows.js';
import { declaredRowKeySuffix, policyRow, type PolicyRow } from './schemas.js';
import type { FleetTables } from './storage.js';

export interface PolicyTarget {
  readonly scope: PolicyScope;
  /** Org name, or server name (lower case). */
  readonly name: string;
}

export interface PolicySnapshot {
  readonly org: ScopeRows;
  readonly servers: ReadonlyMap<string, ScopeRows>;
  readonly problems: readonly RowProblem[];
}

/**
 * Reads the Policy table (paged) into rows per scope. An invalid row marks its scope invalid.
 * `servers` narrows the server scopes read to a range of names (both ends included; a few names
 * between may come along), for callers that need a page of servers and not the whole fleet.
 */
export async function readPolicy(
  tables: FleetTables,
  org: string,
  options: { logger?: Logger; servers?: { first: string; last: string } } = {},
): Promise<PolicySnapshot> {
  const client = await tables.client('Policy');
  const { servers: range, ...readOptions } = options;
  const filter =
    range &&
    odata`PartitionKey eq ${'org'} or (PartitionKey eq ${'server'} and RowKey ge ${range.first} and RowKey le ${range.last + declaredRowKeySuffix})`;
  const { rows, problems } = await readRows(client, 'Policy', policyRow, {
    ...readOptions,
    ...(filter ? { filter } : {}),
  });
  const scopes = new Map<string, ScopeRows>();
  const key = (scope: string, name: string): string => `${scope}/${name}`;
  for (const row of rows) {
    const { scope, name } = targetOf(row.partitionKey, row.rowKey);
    const existing = scopes.get(key(scope, name)) ?? {};
    scopes.set(key(scope, name), { ...existing, [row.source]: layerOf(row) });
  }
  for (const problem of problems) {
    const { scope, name } = targetOf(problem.partitionKey, problem.rowKey);
    scopes.set(key(scope, name.toLowerCase()), {
      ...scopes.get(key(scope, name.toLowerCase())),
      problem: describeRowProblem(problem),
    });
  }
  const servers = new Map<string, ScopeRows>();
  for (const [scopeKey, rowsOfScope] of scopes) {
    if (scopeKey.startsWith('server/')) servers.set(scopeKey.slice('server/'.length), rowsOfScope);
  }
  return { org: scopes.get(key('org', org)) ?? {}, servers, problems };
}

function targetOf(partitionKey: string, rowKey: string): { scope: string; name: string } {
  const name = rowKey.endsWith(declaredRowKeySuffix) ? rowKey.slice(0, -declaredRowKeySuffix.length) : rowKey;
  return { scope: partitionKey, name };
}

export function layerOf(row: PolicyRow): PolicyLayer {
  return {
    ...(row.mitigationsEnabled === undefined ? {} : { mitigationsEnabled: row.mitigationsEnabled }),
    ...(row.blockedMitigations === undefined ? {} : { blockedMitigations: row.blockedMitigations }),
    ...(row.ring === undefined ? {} : { ring: row.ring }),
    ...(row.onDegraded === undefined ? {} : { onDegraded: row.onDegraded }),
  };
}

function policyEntity(
  target: PolicyTarget,
  source: PolicySource,
  layer: PolicyLayer,
  actor: string,
  now: Date,
): Record<string, unknown> & { partitionKey: string; rowKey: string } {
  return {
    partitionKey: target.scope,
    rowKey: source === 'bicep' ? `${target.name}${declaredRowKeySuffix}` : target.name,
    source,
    ...(layer.mitigationsEnabled === undefined ? {} : { mitigationsEnabled: layer.mitigationsEnabled }),
    ...(layer.blockedMitigations === undefined
      ? {}
      : { blockedMitigations: JSON.stringify([...layer.blockedMitigations].sort()) }),
    ...(layer.ring === undefined ? {} : { ring: layer.ring }),
    ...(layer.onDegraded === undefined ? {} : { onDegraded: layer.onDegraded }),
    changedBy: actor,
    changedAt: now,
  };
}

export function sameLayer(a: PolicyLayer | undefined, b: PolicyLayer | undefined): boolean {
  const normal = (layer: PolicyLayer | undefined): string =>
    JSON.stringify({
      mitigationsEnabled: layer?.mitigationsEnabled ?? null,
      blockedMitigations: layer?.blockedMitigations ? [...layer.blockedMitigations].sort() : null,
      ring: layer?.ring ?? null,
      onDegraded: layer?.onDegraded ?? null,
    });
  return normal(a) === normal(b);
}

export interface PolicyChange {
  readonly before: PolicyLayer | undefined;
  readonly after: PolicyLayer;
  readonly changed: boolean;
}

/**
 * Changes the Tables-edited layer of one scope with ETag concurrency, then audits it.
 * `change` sees the current table layer and the declared layer, so it can start from the
 * effective value. A row that failed validation is replaced (its raw value is audited).
 */
export async function changePolicy(
  tables: FleetTables,
  target: PolicyTarget,
  change: (table: PolicyLayer, declared: PolicyLayer | undefined) => PolicyLayer,
  context: { actor: string; action: string; now?: Date },
): Promise<PolicyChange> {
  const client = await tables.client('Policy');
  const now = context.now ?? new Date();
  const declaredEntity = await getEntityOrUndefined(
    client,
    target.scope,
    `${target.name}${declaredRowKeySuffix}`,
  );
  const declaredRow = declaredEntity ? validateRow('Policy', policyRow, declaredEntity) : undefined;
  const declared = declaredRow?.ok ? layerOf(declaredRow.row) : undefined;

  let before: PolicyLayer | undefined;
  let rawBefore: unknown;
  let after: PolicyLayer = {};
  const result = await mutateEntity(client, target.scope, target.name, (current) => {
    const checked = current ? validateRow('Policy', policyRow, current) : undefined;
    before = checked?.ok ? layerOf(checked.row) : undefined;
    rawBefore = checked && !checked.ok ? { invalidRow: describeRowProblem(checked.problem) } : before;
    after = change(before ?? {}, declared);
    if (checked?.ok && sameLayer(before, after)) return { kind: 'keep' };
    return { kind: 'write', entity: policyEntity(target, 'table', after, context.actor, now) };
  });
  const changed = result.mutation.kind !== 'keep';
  if (changed) {
    await writeAudit(
      tables,
      [
        {
          actor: context.actor,
          action: context.action,
          target: `${target.scope}:${target.name}`,
          source: 'table',
          before: rawBefore ?? null,
          after,
        },
      ],
      now,
    );
  }
  return { before, after, changed };
}

export interface SyncReport {
  readonly upserted: number;
  readonly deleted: number;
  readonly unchanged: number;
}

/**
 * Makes the declared (source=bicep) rows equal the declaration: upsert what is declared and
 * differs, delete declared rows no longer declared, never touch source=table rows. Idempotent:
 * a second run writes nothing and audits nothing. Conditional on the ETags read; a concurrent
 * sync makes this one start over.
 */
export async function syncDeclaredPolicy(
  tables: FleetTables,
  org: string,
  declared: DeclaredLayers,
  context: { actor: string; now?: Date; logger?: Logger },
): Promise<SyncReport> {
  const client = await tables.client('Policy');
  const now = context.now ?? new Date();
  for (let attempt = 1; ; attempt++) {
    const filter = odata`source eq ${'bicep'}`;
    const { rows, etags, problems } = await readRows(client, 'Policy', policyRow, {
      filter,
      ...(context.logger ? { logger: context.logger } : {}),
    });
    const existing = new Map<string, { layer: PolicyLayer | undefined; etag: string | undefined }>();
    for (const row of rows)
      existing.set(`${row.partitionKey}/${row.rowKey}`, { layer: layerOf(row), etag: etags.get(row) });
    for (const problem of problems)
      existing.set(`${problem.partitionKey}/${problem.rowKey}`, { layer: undefined, etag: undefined });

    const desired: { target: PolicyTarget; layer: PolicyLayer }[] = [
      { target: { scope: 'org', name: org }, layer: declared.org },
      ...[...declared.servers].map(([name, layer]) => ({
        target: { scope: 'server' as const, name },
        layer,
      })),
    ];
    const actions: TransactionAction[] = [];
    const audit = [];
    let unchanged = 0;
    for (const { target, layer } of desired) {
      const rowKey = `${target.name}${declaredRowKeySuffix}`;
      const current = existing.get(`${target.scope}/${rowKey}`);
      existing.delete(`${target.scope}/${rowKey}`);
      if (current?.layer && sameLayer(current.layer, layer)) {
        unchanged++;
        continue;
      }
      const entity = policyEntity(target, 'bicep', layer, context.actor, now);
      actions.push(
        current?.etag ? ['update', entity, 'Replace', { etag: current.etag }] : ['upsert', entity, 'Replace'],
      );
      audit.push({
        actor: context.actor,
        action: 'policy.sync',
        target: `${target.scope}:${target.name}`,
        source: 'bicep',
        before: current?.layer ?? null,
        after: layer,
      });
    }
    for (const [key, current] of existing) {
      const [scope, rowKey] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
      actions.push(['delete', { partitionKey: scope, rowKey }]);
      audit.push({
        actor: context.actor,
        action: 'policy.sync',
        target: `${scope}:${rowKey.slice(0, -declaredRowKeySuffix.length)}`,
        source: 'bicep',
        before: current.layer ?? null,
        after: null,
      });
    }
    try {
      await writeInTransactions(client, actions);
    } catch (error) {
      if (attempt < 5 && isStatus(error, 412, 409, 404)) continue;
      throw error;
    }
    await writeAudit(tables, audit, now, context.logger ? { logger: context.logger } : {});
    const deleted = actions.filter((action) => action[0] === 'delete').length;
    return { upserted: actions.length - deleted, deleted, unchanged };
  }
}
