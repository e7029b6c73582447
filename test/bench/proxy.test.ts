import { randomBytes } from 'node:crypto';
import { QueueClient } from '@azure/storage-queue';
import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsBetween, startCountingProxy, total, type CountingProxy } from '../../bench/proxy.js';
import { azuriteConnectionString } from '../helpers/fleet.js';

/** The bench's storage figures are only as good as this count: one per request, bodies never mistaken for requests. */
let proxy: CountingProxy;

beforeAll(async () => {
  proxy = await startCountingProxy(azuriteConnectionString());
});

afterAll(async () => {
  await proxy.stop();
});

describe('counting proxy', () => {
  it('counts each SDK request once by operation, and forwards them untouched', async () => {
    const table = TableClient.fromConnectionString(
      proxy.connectionString,
      `p${randomBytes(5).toString('hex')}`,
      { allowInsecureConnection: true },
    );
    const queue = new QueueClient(proxy.connectionString, `p${randomBytes(5).toString('hex')}`);
    const before = proxy.counts();
    await table.createTable();
    // A body that holds request lines and blank lines must not be counted as requests.
    const tricky = 'x\r\n\r\nGET /devstoreaccount1/Tables HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(500);
    await table.createEntity({ partitionKey: 'p', rowKey: 'r', text: tricky });
    await table.submitTransaction([
      ['create', { partitionKey: 'p', rowKey: 'a' }],
      ['create', { partitionKey: 'p', rowKey: 'b' }],
      ['create', { partitionKey: 'p', rowKey: 'c' }],
    ]);
    expect((await table.getEntity<{ text: string }>('p', 'r')).text).toBe(tricky);
    const rows = [];
    for await (const row of table.listEntities()) rows.push(row);
    expect(rows).toHaveLength(4);
    await table.updateEntity({ partitionKey: 'p', rowKey: 'a', n: 1 }, 'Replace');
    await table.updateEntity({ partitionKey: 'p', rowKey: 'b', n: 1 }, 'Merge');
    await table.deleteEntity('p', 'c');
    await queue.create();
    await queue.sendMessage(Buffer.from('hello').toString('base64'));
    const received = (await queue.receiveMessages({ numberOfMessages: 5 })).receivedMessageItems;
    expect(received).toHaveLength(1);
    await queue.deleteMessage(received[0]!.messageId, received[0]!.popReceipt);
    await queue.getProperties();
    const counts = Object.fromEntries(countsBetween(before, proxy.counts()));
    expect(counts).toEqual({
      'table:createTable': 1,
      'table:insert': 1,
      'table:batch': 1,
      'table:getEntity': 1,
      'table:query': 1,
      'table:update': 1,
      'table:merge': 1,
      'table:delete': 1,
      'queue:create': 1,
      'queue:send': 1,
      'queue:receive': 1,
      'queue:delete': 1,
      'queue:getProperties': 1,
    });
    expect(total(countsBetween(before, proxy.counts()), (key) => key.startsWith('queue:'))).toBe(5);
  });
});
