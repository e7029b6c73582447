import { describe, expect, it } from 'vitest';
import { changePolicy, readPolicy, syncDeclaredPolicy } from '../../lib/fleet/policy.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { declaredLayers, declaredPolicySchema } from '../../lib/policy/declared.js';
import type { DeclaredLayers, PolicyLayer } from '../../lib/model/policy.js';
import { effectiveScope } from '../../lib/policy/effective.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';

async function policyRows(tables: FleetTables, prefix: string): Promise<Record<string, unknown>[]> {
  await tables.client('Policy');
  return allEntities(rawTable(prefix, 'Policy'));
}

/** Audit rows, oldest first (row keys are inverted time, so a day reads newest first). */
async function auditRows(prefix: string): Promise<Record<string, unknown>[]> {
  const rows = await allEntities(rawTable(prefix, 'Audit'));
  return rows.sort(
    (a, b) =>
      (a['at'] as Date).getTime() - (b['at'] as Date).getTime() ||
      String(b['rowKey']).localeCompare(String(a['rowKey'])),
  );
}

const org = { scope: 'org', name: 'contoso' } as const;
const block =
  (id: string) =>
  (table: PolicyLayer): PolicyLayer => ({
    ...table,
    blockedMitigations: [...new Set([...(table.blockedMitigations ?? []), id])],
  });

function declare(json: unknown): DeclaredLayers {
  return declaredLayers(declaredPolicySchema.parse(json));
}

describe('changePolicy', () => {
  it('writes a source=table row and one Audit row per change, none when nothing changed', async () => {
    const { tables, prefix } = freshTables();
    const t1 = new Date('2026-11-10T09:00:00.000Z');
    const t2 = new Date('2026-11-10T09:05:00.000Z');
    const t3 = new Date('2026-11-10T09:10:00.000Z');

    const first = await changePolicy(tables, org, block('EM1'), {
      actor: 'alice@contoso.com',
      action: 'policy.block',
      now: t1,
    });
    expect(first).toEqual({ before: undefined, after: { blockedMitigations: ['EM1'] }, changed: true });
    const second = await changePolicy(tables, org, (table) => ({ ...table, mitigationsEnabled: false }), {
      actor: 'bob@contoso.com',
      action: 'policy.set',
      now: t2,
    });
    expect(second.changed).toBe(true);
    const same = await changePolicy(tables, org, block('EM1'), {
      actor: 'carol@contoso.com',
      action: 'policy.block',
      now: t3,
    });
    expect(same.changed).toBe(false);

    const rows = await policyRows(tables, prefix);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      partitionKey: 'org',
      rowKey: 'contoso',
      source: 'table',
      mitigationsEnabled: false,
      blockedMitigations: '["EM1"]',
      changedBy: 'bob@contoso.com',
      changedAt: t2,
    });

    const audit = await auditRows(prefix);
    expect(audit).toHaveLength(2);
    expect(audit[0]).toMatchObject({
      partitionKey: '20261110',
      actor: 'alice@contoso.com',
      action: 'policy.block',
      target: 'org:contoso',
      source: 'table',
      at: t1,
    });
    expect(JSON.parse(String(audit[0]?.['before']))).toBeNull();
    expect(JSON.parse(String(audit[0]?.['after']))).toEqual({ blockedMitigations: ['EM1'] });
    expect(audit[1]).toMatchObject({
      actor: 'bob@contoso.com',
      action: 'policy.set',
      target: 'org:contoso',
      at: t2,
    });
    expect(JSON.parse(String(audit[1]?.['before']))).toEqual({ blockedMitigations: ['EM1'] });
    expect(JSON.parse(String(audit[1]?.['after']))).toEqual({
      blockedMitigations: ['EM1'],
      mitigationsEnabled: false,
    });
    // Newest first within a day.
    expect(String(audit[1]?.['rowKey']) < String(audit[0]?.['rowKey'])).toBe(true);
  });

  it('two concurrent block changes adding different ids both survive', async () => {
    const { tables, prefix } = freshTables();
    const target = { scope: 'server', name: 'ex01' } as const;
    const results = await Promise.all(
      ['EM1', 'EM2', 'EM3', 'EM4'].map((id) =>
        changePolicy(tables, target, block(id), { actor: `admin-${id}`, action: 'policy.block' }),
      ),
    );
    expect(results.every((result) => result.changed)).toBe(true);

    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.problems).toEqual([]);
    expect([...(snapshot.servers.get('ex01')?.table?.blockedMitigations ?? [])].sort()).toEqual([
      'EM1',
      'EM2',
      'EM3',
      'EM4',
    ]);
    expect(await auditRows(prefix)).toHaveLength(4);
  });

  it('replaces an invalid row, auditing what it was', async () => {
    const { tables, prefix } = freshTables();
    await tables.client('Policy');
    await rawTable(prefix, 'Policy').createEntity({
      partitionKey: 'server',
      rowKey: 'ex01',
      source: 'table',
      blockedMitigations: 'not json',
    });
    const change = await changePolicy(tables, { scope: 'server', name: 'ex01' }, block('EM1'), {
      actor: 'alice',
      action: 'policy.block',
    });
    expect(change).toMatchObject({ changed: true, after: { blockedMitigations: ['EM1'] } });
    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.problems).toEqual([]);
    expect(snapshot.servers.get('ex01')?.table).toEqual({ blockedMitigations: ['EM1'] });
    const [audit] = await auditRows(prefix);
    expect(String(audit?.['before'])).toMatch(/blockedMitigations/);
  });
});

describe('readPolicy', () => {
  it('attributes an invalid row to its server; other servers and the org are fine', async () => {
    const { tables, prefix } = freshTables();
    await tables.client('Policy');
    const planted = rawTable(prefix, 'Policy');
    await planted.createEntity({
      partitionKey: 'org',
      rowKey: 'contoso',
      source: 'table',
      mitigationsEnabled: true,
    });
    await planted.createEntity({
      partitionKey: 'server',
      rowKey: 'ex01',
      source: 'table',
      blockedMitigations: 'not json',
    });
    await planted.createEntity({
      partitionKey: 'server',
      rowKey: 'ex02',
      source: 'table',
      blockedMitigations: '["EM1"]',
    });
    await planted.createEntity({
      partitionKey: 'server',
      rowKey: 'ex02|bicep',
      source: 'bicep',
      mitigationsEnabled: false,
    });

    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.problems).toHaveLength(1);
    expect(snapshot.problems[0]).toMatchObject({
      table: 'Policy',
      partitionKey: 'server',
      rowKey: 'ex01',
      field: 'blockedMitigations',
    });
    expect(snapshot.servers.get('ex01')?.problem).toMatch(/ex01.*blockedMitigations/);

    const ex01 = effectiveScope(snapshot.servers.get('ex01'));
    expect(ex01.valid).toBe(false);
    expect(snapshot.servers.get('ex02')).toEqual({
      table: { blockedMitigations: ['EM1'] },
      bicep: { mitigationsEnabled: false },
    });
    expect(effectiveScope(snapshot.servers.get('ex02'))).toEqual({
      valid: true,
      mitigationsEnabled: { value: false, source: 'bicep' },
      blockedMitigations: { value: ['EM1'], source: 'table' },
      onDegraded: { value: 'rollback', source: 'default' },
    });
    expect(snapshot.org).toEqual({ table: { mitigationsEnabled: true } });
  });

  it('onDegraded round-trips: set in Tables, synced from the declaration, and a bad value makes the scope invalid', async () => {
    const { tables, prefix } = freshTables();
    await changePolicy(
      tables,
      { scope: 'server', name: 'ex01.contoso.com' },
      (table) => ({ ...table, onDegraded: 'keep' }),
      { actor: 'alice', action: 'policy.set' },
    );
    await syncDeclaredPolicy(
      tables,
      'contoso',
      declare({ org: { onDegraded: 'keep' }, servers: { 'ex02.contoso.com': { onDegraded: 'rollback' } } }),
      { actor: 'bicep' },
    );
    const again = await changePolicy(
      tables,
      { scope: 'server', name: 'ex01.contoso.com' },
      (table) => ({ ...table, onDegraded: 'keep' }),
      { actor: 'alice', action: 'policy.set' },
    );
    expect(again.changed).toBe(false);
    expect(await policyRows(tables, prefix)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          partitionKey: 'server',
          rowKey: 'ex01.contoso.com',
          source: 'table',
          onDegraded: 'keep',
        }),
        expect.objectContaining({
          partitionKey: 'org',
          rowKey: 'contoso|bicep',
          source: 'bicep',
          onDegraded: 'keep',
        }),
        expect.objectContaining({
          partitionKey: 'server',
          rowKey: 'ex02.contoso.com|bicep',
          source: 'bicep',
          onDegraded: 'rollback',
        }),
      ]),
    );
    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.org).toEqual({ bicep: { onDegraded: 'keep' } });
    expect(snapshot.servers.get('ex01.contoso.com')).toEqual({ table: { onDegraded: 'keep' } });
    expect(snapshot.servers.get('ex02.contoso.com')).toEqual({ bicep: { onDegraded: 'rollback' } });

    await rawTable(prefix, 'Policy').createEntity({
      partitionKey: 'server',
      rowKey: 'ex03.contoso.com',
      source: 'table',
      onDegraded: 'ignore',
    });
    const withBad = await readPolicy(tables, 'contoso');
    expect(withBad.servers.get('ex03.contoso.com')?.problem).toMatch(/onDegraded/);
  });
});

describe('syncDeclaredPolicy', () => {
  it('upserts declared rows, is idempotent, deletes undeclared ones and never touches source=table rows', async () => {
    const { tables, prefix } = freshTables();
    const client = await tables.client('Policy');
    // Tables-edited rows that exist before any sync, for the org and for a declared server.
    await changePolicy(tables, { scope: 'server', name: 'ex02' }, () => ({ mitigationsEnabled: true }), {
      actor: 'alice',
      action: 'policy.set',
    });
    await changePolicy(tables, org, () => ({ blockedMitigations: ['EM9'] }), {
      actor: 'alice',
      action: 'policy.block',
    });
    const tableRowsBefore = (await allEntities(client)).filter((row) => row['source'] === 'table');
    expect(tableRowsBefore).toHaveLength(2);
    const auditBefore = (await auditRows(prefix)).length;

    const declaration = {
      org: { mitigationsEnabled: true, blockedMitigations: ['EM1'] },
      servers: { EX01: { mitigationsEnabled: false }, ex02: { blockedMitigations: ['EM2'] } },
      rings: { canary: ['ex03'] },
    };
    const first = await syncDeclaredPolicy(tables, 'contoso', declare(declaration), { actor: 'deploy' });
    expect(first).toEqual({ upserted: 4, deleted: 0, unchanged: 0 });
    const declared = (await allEntities(client)).filter((row) => row['source'] === 'bicep');
    expect(declared.map((row) => `${row['partitionKey']}/${row['rowKey']}`).sort()).toEqual([
      'org/contoso|bicep',
      'server/ex01|bicep',
      'server/ex02|bicep',
      'server/ex03|bicep',
    ]);
    expect(declared.find((row) => row['rowKey'] === 'contoso|bicep')).toMatchObject({
      mitigationsEnabled: true,
      blockedMitigations: '["EM1"]',
      changedBy: 'deploy',
    });
    expect(declared.find((row) => row['rowKey'] === 'ex03|bicep')).toMatchObject({ ring: 'canary' });
    const auditAfterFirst = await auditRows(prefix);
    expect(auditAfterFirst).toHaveLength(auditBefore + 4);
    expect(
      auditAfterFirst
        .slice(auditBefore)
        .every(
          (row) => row['action'] === 'policy.sync' && row['actor'] === 'deploy' && row['source'] === 'bicep',
        ),
    ).toBe(true);

    // Same declaration again: nothing written, nothing audited.
    const etags = new Map(declared.map((row) => [String(row['rowKey']), row['etag']]));
    const second = await syncDeclaredPolicy(tables, 'contoso', declare(declaration), { actor: 'deploy' });
    expect(second).toEqual({ upserted: 0, deleted: 0, unchanged: 4 });
    for (const row of (await allEntities(client)).filter((entity) => entity['source'] === 'bicep'))
      expect(row['etag']).toBe(etags.get(String(row['rowKey'])));
    expect(await auditRows(prefix)).toHaveLength(auditBefore + 4);

    // ex02 no longer declared; ex01 changed.
    const third = await syncDeclaredPolicy(
      tables,
      'contoso',
      declare({ ...declaration, servers: { ex01: { mitigationsEnabled: true } } }),
      { actor: 'deploy' },
    );
    expect(third).toEqual({ upserted: 1, deleted: 1, unchanged: 2 });
    const after = await allEntities(client);
    expect(
      after
        .filter((row) => row['source'] === 'bicep')
        .map((row) => String(row['rowKey']))
        .sort(),
    ).toEqual(['contoso|bicep', 'ex01|bicep', 'ex03|bicep']);
    expect(after.find((row) => row['rowKey'] === 'ex01|bicep')?.['mitigationsEnabled']).toBe(true);
    const deletion = (await auditRows(prefix)).find(
      (row) => row['target'] === 'server:ex02' && row['action'] === 'policy.sync' && row['after'] === 'null',
    );
    expect(JSON.parse(String(deletion?.['before']))).toEqual({ blockedMitigations: ['EM2'] });

    // The source=table rows are exactly as they were (same ETags, same values).
    expect(after.filter((row) => row['source'] === 'table')).toEqual(tableRowsBefore);
  });

  it('replaces an invalid declared row', async () => {
    const { tables, prefix } = freshTables();
    await tables.client('Policy');
    await rawTable(prefix, 'Policy').createEntity({
      partitionKey: 'server',
      rowKey: 'ex01|bicep',
      source: 'bicep',
      blockedMitigations: 'not json',
    });
    expect((await readPolicy(tables, 'contoso')).servers.get('ex01')?.problem).toBeDefined();

    const report = await syncDeclaredPolicy(
      tables,
      'contoso',
      declare({ servers: { ex01: { blockedMitigations: ['EM1'] } } }),
      { actor: 'deploy' },
    );
    expect(report).toEqual({ upserted: 2, deleted: 0, unchanged: 0 });
    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.problems).toEqual([]);
    expect(snapshot.servers.get('ex01')).toEqual({ bicep: { blockedMitigations: ['EM1'] } });
  });

  it('a source=table value overrides the declared one field by field', async () => {
    const { tables } = freshTables();
    await syncDeclaredPolicy(
      tables,
      'contoso',
      declare({ org: { mitigationsEnabled: false, blockedMitigations: ['EM1'] } }),
      { actor: 'deploy' },
    );
    await changePolicy(
      tables,
      org,
      (table, declaredLayer) => {
        expect(declaredLayer).toEqual({ mitigationsEnabled: false, blockedMitigations: ['EM1'] });
        return { ...table, mitigationsEnabled: true };
      },
      { actor: 'alice', action: 'policy.set' },
    );

    const snapshot = await readPolicy(tables, 'contoso');
    expect(snapshot.org).toEqual({
      bicep: { mitigationsEnabled: false, blockedMitigations: ['EM1'] },
      table: { mitigationsEnabled: true },
    });
    expect(effectiveScope(snapshot.org)).toEqual({
      valid: true,
      mitigationsEnabled: { value: true, source: 'table' },
      blockedMitigations: { value: ['EM1'], source: 'bicep' },
      onDegraded: { value: 'rollback', source: 'default' },
    });
    // Another org's scope is untouched by contoso's rows.
    expect(effectiveScope((await readPolicy(tables, 'fabrikam')).org)).toEqual({
      valid: true,
      mitigationsEnabled: { value: true, source: 'default' },
      blockedMitigations: { value: [], source: 'default' },
      onDegraded: { value: 'rollback', source: 'default' },
    });
  });
});
