import { type TableClient, TableServiceClient, type TransactionAction } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { upsertAction, writeInTransactions } from '../../lib/fleet/batch.js';
import { ConcurrencyConflictError, mutateEntity } from '../../lib/fleet/optimistic.js';
import { readRows } from '../../lib/fleet/rows.js';
import { serverRow } from '../../lib/fleet/schemas.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { silentLogger, type Logger } from '../../lib/log.js';
import { allEntities, azuriteConnectionString, freshTables, rawTable } from '../helpers/fleet.js';

async function tablesWithPrefix(prefix: string): Promise<string[]> {
  const service = TableServiceClient.fromConnectionString(azuriteConnectionString(), {
    allowInsecureConnection: true,
  });
  const names: string[] = [];
  for await (const table of service.listTables()) if (table.name?.startsWith(prefix)) names.push(table.name);
  return names.sort();
}

const build = '15.2.1544.4';

describe('FleetTables', () => {
  it('creates a table on first use only, and a second create is harmless', async () => {
    const { tables, prefix } = freshTables();
    expect(await tablesWithPrefix(prefix)).toEqual([]);

    const servers = await tables.client('Servers');
    expect(servers.tableName).toBe(`${prefix}Servers`);
    expect(await tablesWithPrefix(prefix)).toEqual([`${prefix}Servers`]);

    // Same instance: same client. Another instance on the same prefix: createTable on an existing table.
    expect(await tables.client('Servers')).toBe(servers);
    const again = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix },
    );
    const second = await again.client('Servers');
    await second.createEntity({ partitionKey: 'contoso', rowKey: 'ex01', build });
    expect((await servers.getEntity('contoso', 'ex01'))['build']).toBe(build);
    expect(await tablesWithPrefix(prefix)).toEqual([`${prefix}Servers`]);
  });
});

describe('readRows', () => {
  it('pages through more than 1,000 rows', async () => {
    const { tables } = freshTables();
    const client = await tables.client('Servers');
    const total = 1_234;
    const actions: TransactionAction[] = Array.from({ length: total }, (_, index) =>
      upsertAction({
        partitionKey: index % 2 === 0 ? 'contoso' : 'fabrikam',
        rowKey: `ex${String(index).padStart(4, '0')}`,
        build,
      }),
    );
    await writeInTransactions(client, actions);

    const all = await readRows(client, 'Servers', serverRow, { pageSize: 1000 });
    expect(all.problems).toEqual([]);
    expect(all.rows).toHaveLength(total);
    expect(new Set(all.rows.map((row) => `${row.partitionKey}/${row.rowKey}`)).size).toBe(total);

    const smallPages = await readRows(client, 'Servers', serverRow, { pageSize: 100 });
    expect(smallPages.rows).toHaveLength(total);
  });

  it('skips an invalid row and reports where it is and which field is wrong; valid rows beside it are returned', async () => {
    const { tables, prefix } = freshTables();
    const client = await tables.client('Servers');
    const planted = rawTable(prefix, 'Servers');
    await planted.createEntity({ partitionKey: 'contoso', rowKey: 'ex01', build });
    await planted.createEntity({ partitionKey: 'contoso', rowKey: 'ex02', build: 'fifteen' });
    await planted.createEntity({ partitionKey: 'contoso', rowKey: 'ex03', build, reportedApplied: '["EM1"' });
    await planted.createEntity({ partitionKey: 'contoso', rowKey: 'EX04', build });
    await planted.createEntity({
      partitionKey: 'contoso',
      rowKey: 'ex05',
      build,
      reportedApplied: '["EM1","EM2"]',
    });

    const warnings: { event: string; fields: Record<string, unknown> | undefined }[] = [];
    const logger: Logger = { ...silentLogger, warn: (event, fields) => warnings.push({ event, fields }) };
    const result = await readRows(client, 'Servers', serverRow, { logger });

    expect(result.rows.map((row) => row.rowKey).sort()).toEqual(['ex01', 'ex05']);
    expect(result.rows.find((row) => row.rowKey === 'ex05')?.reportedApplied).toEqual(['EM1', 'EM2']);
    const problems = [...result.problems].sort((a, b) => a.rowKey.localeCompare(b.rowKey));
    expect(problems).toHaveLength(3);
    expect(
      problems.map(({ table, partitionKey, rowKey, field }) => ({ table, partitionKey, rowKey, field })),
    ).toEqual([
      { table: 'Servers', partitionKey: 'contoso', rowKey: 'ex02', field: 'build' },
      { table: 'Servers', partitionKey: 'contoso', rowKey: 'ex03', field: 'reportedApplied' },
      { table: 'Servers', partitionKey: 'contoso', rowKey: 'EX04', field: 'rowKey' },
    ]);
    expect(problems[1]?.message).toMatch(/JSON/);
    expect(problems[2]?.message).toMatch(/lower case/);
    expect(warnings.map((warning) => [warning.event, warning.fields?.['rowKey']]).sort()).toEqual([
      ['InvalidRow', 'EX04'],
      ['InvalidRow', 'ex02'],
      ['InvalidRow', 'ex03'],
    ]);
    // Valid rows got their ETag.
    for (const row of result.rows) expect(result.etags.get(row)).toMatch(/^W\//);
  });
});

describe('writeInTransactions', () => {
  it('splits one partition into transactions of at most 100 and writes every row', async () => {
    const { tables } = freshTables();
    const client = await tables.client('Rollouts');
    const actions = Array.from({ length: 250 }, (_, index) =>
      upsertAction({ partitionKey: 'r1', rowKey: `row-${String(index).padStart(3, '0')}`, n: index }),
    );
    expect(await writeInTransactions(client, actions)).toBe(3);
    const stored = await allEntities(client);
    expect(stored).toHaveLength(250);
    expect(stored.map((entity) => entity['n']).sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 250 }, (_, index) => index),
    );
  });

  it('puts each partition in its own transactions', async () => {
    const { tables } = freshTables();
    const client = await tables.client('Rollouts');
    // Interleaved partitions: 3 partitions × 10 rows, plus one of 101 → 3 + 2 transactions.
    const actions: TransactionAction[] = [];
    for (let index = 0; index < 10; index++) {
      for (const partition of ['a', 'b', 'c'])
        actions.push(upsertAction({ partitionKey: partition, rowKey: `row-${index}`, n: index }));
    }
    for (let index = 0; index < 101; index++)
      actions.push(
        upsertAction({ partitionKey: 'd', rowKey: `row-${String(index).padStart(3, '0')}`, n: index }),
      );
    expect(await writeInTransactions(client, actions, { concurrency: 2 })).toBe(5);
    const stored = await allEntities(client);
    expect(stored).toHaveLength(131);
    const perPartition = new Map<string, number>();
    for (const entity of stored)
      perPartition.set(
        String(entity['partitionKey']),
        (perPartition.get(String(entity['partitionKey'])) ?? 0) + 1,
      );
    expect(Object.fromEntries(perPartition)).toEqual({ a: 10, b: 10, c: 10, d: 101 });
  });
});

describe('mutateEntity', () => {
  it('never loses an increment between two concurrent writers', async () => {
    const { tables } = freshTables();
    const client = await tables.client('Rollouts');
    const increment = async (): Promise<void> => {
      for (let index = 0; index < 20; index++) {
        await mutateEntity(client, 'counters', 'c', (current) => ({
          kind: 'write',
          entity: { partitionKey: 'counters', rowKey: 'c', value: Number(current?.['value'] ?? 0) + 1 },
        }));
      }
    };
    await Promise.all([increment(), increment()]);
    expect((await client.getEntity('counters', 'c'))['value']).toBe(40);
  });

  it('gives up with ConcurrencyConflictError when another writer changes the row every time', async () => {
    const { tables, prefix } = freshTables();
    const client = await tables.client('Rollouts');
    const other = rawTable(prefix, 'Rollouts');
    await other.createEntity({ partitionKey: 'p', rowKey: 'r', value: 0, writer: 'other' });

    // Fault injection: the callback (synchronous) starts a write from another client; the client
    // under test waits for that write to land before sending its own conditional update.
    let interference: Promise<unknown> = Promise.resolve();
    let calls = 0;
    const faulty = new Proxy(client, {
      get(target, property) {
        if (property === 'updateEntity') {
          return async (...args: Parameters<TableClient['updateEntity']>) => {
            await interference;
            return target.updateEntity(...args);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });

    const attempt = mutateEntity(
      faulty,
      'p',
      'r',
      (current) => {
        calls++;
        interference = other.updateEntity(
          { partitionKey: 'p', rowKey: 'r', value: 1000 + calls, writer: 'other' },
          'Replace',
        );
        return {
          kind: 'write',
          entity: {
            partitionKey: 'p',
            rowKey: 'r',
            value: Number(current?.['value'] ?? 0) + 1,
            writer: 'mutate',
          },
        };
      },
      { maxAttempts: 3 },
    );
    const error = await attempt.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConcurrencyConflictError);
    expect((error as ConcurrencyConflictError).message).toMatch(/3 attempts/);
    expect((error as ConcurrencyConflictError).current?.['value']).toBe(1002);
    expect(calls).toBe(3);
    const stored = await other.getEntity('p', 'r');
    expect(stored['writer']).toBe('other');
    expect(stored['value']).toBe(1003);
  });
});
