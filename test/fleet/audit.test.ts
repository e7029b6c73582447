import { describe, expect, it } from 'vitest';
import { writeAudit } from '../../lib/fleet/audit.js';
import { FleetTables, identityFromToken } from '../../lib/fleet/storage.js';
import { allEntities, azuriteConnectionString, freshTables, rawTable } from '../helpers/fleet.js';
import { recordingLogger } from '../helpers/logs.js';

const jwt = (claims: Record<string, unknown>): string =>
  `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.signature`;

describe('identityFromToken', () => {
  it.each([
    {
      name: 'a user (v1 token)',
      token: jwt({ upn: 'alice@contoso.com', oid: '1111', unique_name: 'x' }),
      identity: 'alice@contoso.com (oid 1111)',
    },
    {
      name: 'a user (v2 token)',
      token: jwt({ preferred_username: 'bob@contoso.com', oid: '2222' }),
      identity: 'bob@contoso.com (oid 2222)',
    },
    {
      name: 'a managed identity',
      token: jwt({ appid: '3333', oid: '4444' }),
      identity: 'app 3333 (oid 4444)',
    },
    { name: 'only an object id', token: jwt({ oid: '5555' }), identity: 'oid 5555' },
    {
      name: 'no claims that name anyone',
      token: jwt({ aud: 'https://storage.azure.com' }),
      identity: undefined,
    },
    { name: 'not a JWT', token: 'opaque', identity: undefined },
    { name: 'a payload that is not JSON', token: 'a.bm90IGpzb24.c', identity: undefined },
  ])('$name', ({ token, identity }) => {
    expect(identityFromToken(token)).toBe(identity);
  });
});

describe('writeAudit', () => {
  it('appends entries with the Entra identity Storage sees, and logs each as AuditRecorded for Application Insights', async () => {
    const { prefix } = freshTables();
    class SignedInTables extends FleetTables {
      override identity(): Promise<string | undefined> {
        return Promise.resolve('alice@contoso.com (oid 1111)');
      }
    }
    const tables = new SignedInTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix },
    );
    const logger = recordingLogger();
    const at = new Date('2026-12-07T17:00:00Z');
    await writeAudit(
      tables,
      [
        {
          actor: 'bob',
          action: 'rollout.pause',
          target: 'rollout:r1',
          source: 'table',
          before: null,
          after: { state: 'Paused' },
        },
      ],
      at,
      { logger },
    );
    const rows = await allEntities(rawTable(prefix, 'Audit'));
    expect(rows).toEqual([
      expect.objectContaining({
        actor: 'bob',
        identity: 'alice@contoso.com (oid 1111)',
        action: 'rollout.pause',
      }),
    ]);
    expect(logger.named('AuditRecorded')).toEqual([
      {
        level: 'info',
        event: 'AuditRecorded',
        fields: expect.objectContaining({
          actor: 'bob',
          identity: 'alice@contoso.com (oid 1111)',
          action: 'rollout.pause',
          target: 'rollout:r1',
          after: '{"state":"Paused"}',
          at: at.toISOString(),
        }),
      },
    ]);
  });

  it('records no identity through a connection string (a shared key names nobody)', async () => {
    const { tables, prefix } = freshTables();
    await writeAudit(tables, [
      { actor: 'bob', action: 'server.add', target: 'server:ex01', source: 'table', before: null, after: {} },
    ]);
    expect((await allEntities(rawTable(prefix, 'Audit')))[0]).not.toHaveProperty('identity');
  });
});
