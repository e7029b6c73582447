import { odata, type TableEntity, type TransactionAction } from '@azure/data-tables';
import { EmfleetError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeAudit } from './audit.js';
import { maxTransactionSize } from './batch.js';
import { getEntityOrUndefined, mutateEntity, type Mutation, type StoredEntity } from './optimistic.js';
import { describeRowProblem, readRows, validateRow, type ReadResult, type Validated } from './rows.js';
import { serverRow, type ServerRow } from './schemas.js';
import type { FleetTables } from './storage.js';

export class ServerNotFoundError extends EmfleetError {
  override readonly name = 'ServerNotFoundError';

  constructor(org: string, server: string) {
    super('ServerNotFound', `no server "${server}" in org ${org}`, { context: { org, server } });
  }
}

/** What an admin registers; the rest of the row (last seen, reported state) comes from the agent. */
export interface ServerRegistration {
  readonly name: string;
  readonly build: string;
  readonly fqdn?: string;
  readonly site?: string;
  readonly ring?: string;
  readonly relayHybridConnection?: string;
  readonly relayPath?: string;
}

export async function listServers(
  tables: FleetTables,
  org: string,
  options: { logger?: Logger } = {},
): Promise<ReadResult<ServerRow>> {
  const client = await tables.client('Servers');
  return readRows(client, 'Servers', serverRow, { filter: odata`PartitionKey eq ${org}`, ...options });
}

/** Where a scan of the Servers table starts and what Tables filters out. */
export interface ServerScan {
  /** An empty ring or site selects the servers that have none; undefined, any. */
  readonly ring?: string | undefined;
  readonly site?: string | undefined;
  /** A server name (lower case): the scan starts after it. */
  readonly after?: string | undefined;
  /** Rows a round trip (Tables serves at most 1,000). */
  readonly pageSize?: number | undefined;
}

/**
 * The org's servers in name order, one Tables page at a time, each row validated (a bad row is a
 * problem, in its place). A range query on the one org partition: a caller that stops early and
 * resumes `after` the last row it used reads nothing twice and no per-server round trips.
 */
export async function* scanServers(
  tables: FleetTables,
  org: string,
  scan: ServerScan = {},
): AsyncGenerator<{ readonly entries: readonly Validated<ServerRow>[]; readonly more: boolean }> {
  const client = await tables.client('Servers');
  const filter = [
    odata`PartitionKey eq ${org}`,
    ...(scan.after === undefined ? [] : [odata`RowKey gt ${scan.after}`]),
    ...(scan.ring === undefined ? [] : [odata`ring eq ${scan.ring}`]),
    ...(scan.site === undefined ? [] : [odata`site eq ${scan.site}`]),
  ].join(' and ');
  const pages = client
    .listEntities<Record<string, unknown>>({ queryOptions: { filter } })
    .byPage({ maxPageSize: scan.pageSize ?? 1000 });
  for await (const page of pages) {
    yield {
      entries: page.map((entity) => validateRow('Servers', serverRow, entity)),
      more: page.continuationToken !== undefined,
    };
  }
}

/** A server search: a substring of the name or the FQDN, in any case. */
export function serverMatches(row: ServerRow, search: string): boolean {
  const text = search.toLowerCase();
  return row.rowKey.includes(text) || row.fqdn.toLowerCase().includes(text);
}

export type RegistrationChange = 'added' | 'updated' | 'unchanged';

/** Adds a server or updates its registration (idempotent); what the agent reported is kept. */
export async function registerServer(
  tables: FleetTables,
  org: string,
  registration: ServerRegistration,
  context: { actor: string; now?: Date },
): Promise<{ change: RegistrationChange; row: ServerRow }> {
  const client = await tables.client('Servers');
  const name = registration.name.toLowerCase();
  let before: ServerRow | undefined;
  let row: ServerRow | undefined;
  const result = await mutateEntity(client, org, name, (current) => {
    const checked = current ? validateRow('Servers', serverRow, current) : undefined;
    before = checked?.ok ? checked.row : undefined;
    const { etag: _etag, timestamp: _timestamp, ...stored } = (current ?? {}) as Record<string, unknown>;
    const entity = {
      ...stored,
      partitionKey: org,
      rowKey: name,
      fqdn: registration.fqdn ?? before?.fqdn ?? name,
      // Once the agent has reported its build, that one is planned on; the registered one is kept beside it.
      build: before && before.agentVersion !== '' ? before.build : registration.build,
      registeredBuild: registration.build,
      site: registration.site ?? before?.site ?? '',
      ring: registration.ring ?? before?.ring ?? '',
      relayHybridConnection: registration.relayHybridConnection ?? before?.relayHybridConnection ?? name,
      relayPath: registration.relayPath ?? before?.relayPath ?? '',
    };
    const validated = validateRow('Servers', serverRow, entity);
    if (!validated.ok)
      throw new TypeError(`server ${name}: ${validated.problem.field}: ${validated.problem.message}`);
    row = validated.row;
    if (before && JSON.stringify(registrationOf(before)) === JSON.stringify(registrationOf(validated.row)))
      return { kind: 'keep' };
    return { kind: 'write', entity };
  });
  if (result.mutation.kind !== 'keep') {
    await writeAudit(
      tables,
      [
        {
          actor: context.actor,
          action: before ? 'server.update' : 'server.add',
          target: `server:${name}`,
          source: 'table',
          before: before ? registrationOf(before) : null,
          after: registrationOf(row!),
        },
      ],
      context.now,
    );
  }
  const change: RegistrationChange =
    result.mutation.kind === 'keep' ? 'unchanged' : result.before === undefined ? 'added' : 'updated';
  return { change, row: row! };
}

export async function removeServer(
  tables: FleetTables,
  org: string,
  serverName: string,
  context: { actor: string; now?: Date },
): Promise<void> {
  const client = await tables.client('Servers');
  const name = serverName.toLowerCase();
  const result = await mutateEntity(client, org, name, (current) => {
    if (!current) throw new ServerNotFoundError(org, name);
    return { kind: 'delete' };
  });
  const checked = result.before ? validateRow('Servers', serverRow, result.before) : undefined;
  await writeAudit(
    tables,
    [
      {
        actor: context.actor,
        action: 'server.remove',
        target: `server:${name}`,
        source: 'table',
        before: checked?.ok ? registrationOf(checked.row) : null,
        after: null,
      },
    ],
    context.now,
  );
}

function registrationOf(row: ServerRow): Record<string, string> {
  return {
    build: row.registeredBuild || row.build,
    fqdn: row.fqdn,
    site: row.site,
    ring: row.ring,
    relayHybridConnection: row.relayHybridConnection,
    relayPath: row.relayPath,
  };
}

export async function getServer(tables: FleetTables, org: string, serverName: string): Promise<ServerRow> {
  const client = await tables.client('Servers');
  const name = serverName.toLowerCase();
  const entity = await getEntityOrUndefined(client, org, name);
  if (!entity) throw new ServerNotFoundError(org, name);
  const checked = validateRow('Servers', serverRow, entity);
  if (!checked.ok)
    throw new EmfleetError('InvalidRow', describeRowProblem(checked.problem), {
      context: { org, server: name },
    });
  return checked.row;
}

/** The site a server is in ('' when it names none, its row is missing or invalid). */
export async function readServerSite(tables: FleetTables, org: string, server: string): Promise<string> {
  const client = await tables.client('Servers');
  const entity = await getEntityOrUndefined(client, org, server);
  const checked = entity ? validateRow('Servers', serverRow, entity) : undefined;
  return checked?.ok ? checked.row.site : '';
}

/** The Servers rows of these servers (one org partition) as stored, with their ETags: 100 names a query. */
export async function readServerEntities(
  tables: FleetTables,
  org: string,
  servers: readonly string[],
): Promise<Map<string, StoredEntity>> {
  const rows = new Map<string, StoredEntity>();
  const names = [...new Set(servers)];
  if (names.length === 0) return rows;
  const client = await tables.client('Servers');
  for (let start = 0; start < names.length; start += maxTransactionSize) {
    const chunk = names.slice(start, start + maxTransactionSize);
    const filter = [
      odata`PartitionKey eq ${org}`,
      `(${chunk.map((name) => odata`RowKey eq ${name}`).join(' or ')})`,
    ].join(' and ');
    for await (const entity of client.listEntities<Record<string, unknown>>({ queryOptions: { filter } }))
      rows.set(entity.rowKey!, entity as StoredEntity);
  }
  return rows;
}

/** One change to a server's row: the properties to merge, worked out from the row as it is (undefined: none). */
export interface ServerRowChange {
  readonly server: string;
  readonly change: (row: ServerRow) => Record<string, unknown> | undefined;
}

/**
 * Merges changes into Servers rows read before (`current`, from readServerEntities): one transaction
 * per 100 rows, each row conditional on the ETag it was read with. Should a transaction fail (a row
 * changed since), each change is made on its own from a fresh read (mutateEntity). A row that is
 * missing is left alone; an invalid one is logged and left alone.
 */
export async function mergeServerRows(
  tables: FleetTables,
  org: string,
  changes: readonly ServerRowChange[],
  current: ReadonlyMap<string, StoredEntity>,
  options: { logger?: Logger } = {},
): Promise<void> {
  if (changes.length === 0) return;
  const client = await tables.client('Servers');
  const merged = (
    row: Record<string, unknown>,
    change: ServerRowChange,
  ): Record<string, unknown> | undefined => {
    const checked = validateRow('Servers', serverRow, row);
    if (!checked.ok) {
      options.logger?.warn('InvalidRow', { ...checked.problem });
      return undefined;
    }
    return change.change(checked.row);
  };
  const names = [...new Set(changes.map((change) => change.server))];
  for (let start = 0; start < names.length; start += maxTransactionSize) {
    const chunk = names.slice(start, start + maxTransactionSize);
    const actions: TransactionAction[] = [];
    for (const name of chunk) {
      const entity = current.get(name);
      if (!entity) continue;
      let row: Record<string, unknown> = entity;
      let fields: Record<string, unknown> | undefined;
      for (const change of changes.filter((candidate) => candidate.server === name)) {
        const update = merged(row, change);
        if (update === undefined) continue;
        fields = { ...fields, ...update };
        row = { ...row, ...update };
      }
      if (fields)
        actions.push([
          'update',
          { partitionKey: org, rowKey: name, ...fields },
          'Merge',
          { etag: entity.etag },
        ]);
    }
    if (actions.length === 0) continue;
    try {
      await client.submitTransaction(actions);
    } catch {
      for (const change of changes.filter((candidate) => chunk.includes(candidate.server))) {
        await mutateEntity(client, org, change.server, (entity): Mutation => {
          const update = entity ? merged(entity, change) : undefined;
          if (!entity || update === undefined) return { kind: 'keep' };
          const { etag: _etag, timestamp: _timestamp, ...rest } = entity;
          return { kind: 'write', entity: { ...rest, ...update } as TableEntity<Record<string, unknown>> };
        });
      }
    }
  }
}
