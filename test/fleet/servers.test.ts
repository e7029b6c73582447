import { describe, expect, it } from 'vitest';
import { buildMismatch } from '../../lib/fleet/agent-facts.js';
import {
  listServers,
  mergeServerRows,
  readServerEntities,
  readServerSite,
  registerServer,
  removeServer,
  ServerNotFoundError,
} from '../../lib/fleet/servers.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';

async function auditRows(tables: FleetTables, prefix: string): Promise<Record<string, unknown>[]> {
  await tables.client('Audit');
  return allEntities(rawTable(prefix, 'Audit'));
}

const actor = 'admin@contoso.com';
const build = '15.2.1544.4';

describe('registerServer', () => {
  it('adds a server in lower case and audits it', async () => {
    const { tables, prefix } = freshTables();
    const added = await registerServer(
      tables,
      'contoso',
      { name: 'EX01.Contoso.COM', build, site: 'HQ', ring: 'canary' },
      { actor },
    );
    expect(added.change).toBe('added');
    expect(added.row).toMatchObject({
      partitionKey: 'contoso',
      rowKey: 'ex01.contoso.com',
      build,
      site: 'HQ',
      ring: 'canary',
      fqdn: 'ex01.contoso.com',
    });

    const stored = await rawTable(prefix, 'Servers').getEntity<Record<string, unknown>>(
      'contoso',
      'ex01.contoso.com',
    );
    expect(stored['build']).toBe(build);

    const audit = await auditRows(tables, prefix);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor,
      action: 'server.add',
      target: 'server:ex01.contoso.com',
      before: 'null',
    });
    expect(JSON.parse(String(audit[0]?.['after']))).toMatchObject({ build, site: 'HQ', ring: 'canary' });
  });

  it('re-registering with the same data is a no-op: no write, no audit', async () => {
    const { tables, prefix } = freshTables();
    await registerServer(tables, 'contoso', { name: 'ex01', build, site: 'HQ' }, { actor });
    const etag = (await rawTable(prefix, 'Servers').getEntity('contoso', 'ex01')).etag;

    const again = await registerServer(tables, 'contoso', { name: 'EX01', build, site: 'HQ' }, { actor });
    expect(again.change).toBe('unchanged');
    expect(again.row.build).toBe(build);
    expect((await rawTable(prefix, 'Servers').getEntity('contoso', 'ex01')).etag).toBe(etag);
    expect(await auditRows(tables, prefix)).toHaveLength(1);
  });

  it('a new build updates the registration; the build the agent reported stays the one planned on, and the difference shows', async () => {
    const { tables, prefix } = freshTables();
    await registerServer(tables, 'contoso', { name: 'ex01', build, site: 'HQ', ring: 'early' }, { actor });
    const lastSeen = new Date('2026-11-20T08:00:00.000Z');
    await rawTable(prefix, 'Servers').updateEntity(
      {
        partitionKey: 'contoso',
        rowKey: 'ex01',
        reportedApplied: '["EM1","EM2"]',
        reportedBlocked: '["EM3"]',
        agentVersion: '1.2.3',
        lastSeen,
      },
      'Merge',
    );

    const updated = await registerServer(
      tables,
      'contoso',
      { name: 'ex01', build: '15.2.1748.10' },
      { actor: 'other@contoso.com' },
    );
    expect(updated.change).toBe('updated');
    expect(updated.row).toMatchObject({
      build,
      registeredBuild: '15.2.1748.10',
      site: 'HQ',
      ring: 'early',
      reportedApplied: ['EM1', 'EM2'],
      reportedBlocked: ['EM3'],
      agentVersion: '1.2.3',
      lastSeen,
    });

    const [listed] = (await listServers(tables, 'contoso')).rows;
    expect(buildMismatch(updated.row)).toEqual({ registered: '15.2.1748.10', reported: build });
    expect(listed).toMatchObject({
      rowKey: 'ex01',
      build,
      registeredBuild: '15.2.1748.10',
      site: 'HQ',
      ring: 'early',
      reportedApplied: ['EM1', 'EM2'],
      reportedBlocked: ['EM3'],
      agentVersion: '1.2.3',
      lastSeen,
    });

    const audit = await auditRows(tables, prefix);
    expect(audit).toHaveLength(2);
    const update = audit.find((row) => row['action'] === 'server.update');
    expect(update).toMatchObject({ actor: 'other@contoso.com', target: 'server:ex01' });
    expect(JSON.parse(String(update?.['before']))).toMatchObject({ build });
    expect(JSON.parse(String(update?.['after']))).toMatchObject({ build: '15.2.1748.10' });
  });

  it('rejects a bad build and writes nothing', async () => {
    const { tables, prefix } = freshTables();
    await expect(
      registerServer(tables, 'contoso', { name: 'ex01', build: 'fifteen' }, { actor }),
    ).rejects.toThrow(/build/);
    expect(await allEntities(rawTable(prefix, 'Servers'))).toEqual([]);
    expect(await allEntities(rawTable(prefix, 'Audit'))).toEqual([]);

    // An existing server is not changed by a bad update either.
    await registerServer(tables, 'contoso', { name: 'ex02', build }, { actor });
    await expect(
      registerServer(tables, 'contoso', { name: 'ex02', build: '15.2' }, { actor }),
    ).rejects.toThrow(/build/);
    expect((await rawTable(prefix, 'Servers').getEntity('contoso', 'ex02'))['build']).toBe(build);
    expect(await auditRows(tables, prefix)).toHaveLength(1);
  });
});

describe('listServers', () => {
  it('returns only the servers of one org', async () => {
    const { tables } = freshTables();
    await registerServer(tables, 'contoso', { name: 'ex01', build }, { actor });
    await registerServer(tables, 'contoso', { name: 'ex02', build }, { actor });
    await registerServer(tables, 'fabrikam', { name: 'ex03', build }, { actor });

    expect((await listServers(tables, 'contoso')).rows.map((row) => row.rowKey).sort()).toEqual([
      'ex01',
      'ex02',
    ]);
    expect((await listServers(tables, 'fabrikam')).rows.map((row) => row.rowKey)).toEqual(['ex03']);
    expect((await listServers(tables, 'northwind')).rows).toEqual([]);
  });
});

describe('removeServer', () => {
  it('deletes the row and audits the removal', async () => {
    const { tables, prefix } = freshTables();
    await registerServer(tables, 'contoso', { name: 'ex01', build, site: 'HQ' }, { actor });
    await registerServer(tables, 'contoso', { name: 'ex02', build }, { actor });

    await removeServer(tables, 'contoso', 'EX01', { actor: 'remover@contoso.com' });
    expect((await listServers(tables, 'contoso')).rows.map((row) => row.rowKey)).toEqual(['ex02']);

    const removal = (await auditRows(tables, prefix)).filter((row) => row['action'] === 'server.remove');
    expect(removal).toHaveLength(1);
    expect(removal[0]).toMatchObject({ actor: 'remover@contoso.com', target: 'server:ex01', after: 'null' });
    expect(JSON.parse(String(removal[0]?.['before']))).toMatchObject({ build, site: 'HQ' });
  });

  it('throws ServerNotFoundError for an unknown server and audits nothing', async () => {
    const { tables, prefix } = freshTables();
    await registerServer(tables, 'contoso', { name: 'ex01', build }, { actor });
    await expect(removeServer(tables, 'contoso', 'ex99', { actor })).rejects.toBeInstanceOf(
      ServerNotFoundError,
    );
    // Same name, other org: also unknown.
    await expect(removeServer(tables, 'fabrikam', 'ex01', { actor })).rejects.toBeInstanceOf(
      ServerNotFoundError,
    );
    expect((await listServers(tables, 'contoso')).rows).toHaveLength(1);
    expect(await auditRows(tables, prefix)).toHaveLength(1);
  });
});

describe('mergeServerRows: many servers written together', () => {
  async function twoServers(tables: FleetTables): Promise<void> {
    for (const name of ['ex01.contoso.com', 'ex02.contoso.com'])
      await registerServer(tables, 'contoso', { name, build, site: 'HQ' }, { actor });
  }
  const seen = (at: Date) => (name: string) => ({
    server: name,
    change: (row: { reportedApplied: readonly string[] }) => ({
      reportedApplied: JSON.stringify([...row.reportedApplied, 'EM1'].sort()),
      lastSeen: at,
    }),
  });
  const at = new Date('2026-12-07T12:00:00Z');

  it('merges the changes of the rows read, two changes to one row applied in turn; a missing row is left alone', async () => {
    const { tables } = freshTables();
    await twoServers(tables);
    const current = await readServerEntities(tables, 'contoso', [
      'ex01.contoso.com',
      'ex02.contoso.com',
      'gone',
    ]);
    expect([...current.keys()].sort()).toEqual(['ex01.contoso.com', 'ex02.contoso.com']);
    await mergeServerRows(
      tables,
      'contoso',
      [
        seen(at)('ex01.contoso.com'),
        {
          server: 'ex01.contoso.com',
          change: (row) => ({ reportedApplied: JSON.stringify([...row.reportedApplied, 'EM2']) }),
        },
        seen(at)('ex02.contoso.com'),
        seen(at)('gone'),
      ],
      current,
    );
    const rows = (await listServers(tables, 'contoso')).rows;
    expect(rows.map((row) => [row.rowKey, row.reportedApplied, row.lastSeen])).toEqual([
      ['ex01.contoso.com', ['EM1', 'EM2'], at],
      ['ex02.contoso.com', ['EM1'], at],
    ]);
  });

  it('a row changed since it was read: the transaction fails and each change is made again from a fresh read', async () => {
    const { tables } = freshTables();
    await twoServers(tables);
    const current = await readServerEntities(tables, 'contoso', ['ex01.contoso.com', 'ex02.contoso.com']);
    // A sweep writes ex02 meanwhile: the ETag read before no longer matches.
    await registerServer(tables, 'contoso', { name: 'ex02.contoso.com', build, site: 'Branch' }, { actor });
    await mergeServerRows(tables, 'contoso', ['ex01.contoso.com', 'ex02.contoso.com'].map(seen(at)), current);
    const rows = (await listServers(tables, 'contoso')).rows;
    expect(rows.map((row) => [row.rowKey, row.site, row.reportedApplied])).toEqual([
      ['ex01.contoso.com', 'HQ', ['EM1']],
      ['ex02.contoso.com', 'Branch', ['EM1']],
    ]);
  });

  it('readServerSite: the site, or empty for a server without a row', async () => {
    const { tables } = freshTables();
    await twoServers(tables);
    expect(await readServerSite(tables, 'contoso', 'ex01.contoso.com')).toBe('HQ');
    expect(await readServerSite(tables, 'contoso', 'nobody.contoso.com')).toBe('');
  });
});
