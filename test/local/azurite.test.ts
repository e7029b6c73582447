import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TableClient } from '@azure/data-tables';
import { QueueClient } from '@azure/storage-queue';
import { describe, expect, it } from 'vitest';
import { startAzurite } from '../../lib/local/azurite.js';

describe('startAzurite', () => {
  it('with a location, stopping and starting on the same ports keeps tables and queue messages at the same address', async () => {
    const location = await mkdtemp(join(tmpdir(), 'emfleet-azurite-test-'));
    const first = await startAzurite({ location });
    try {
      const table = TableClient.fromConnectionString(first.connectionString, 'things', {
        allowInsecureConnection: true,
      });
      const queue = new QueueClient(first.connectionString, 'restart-test');
      await table.createTable();
      await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 1 });
      await queue.createIfNotExists();
      await queue.sendMessage('kept');
      await first.stop();
      const noRetries = TableClient.fromConnectionString(first.connectionString, 'things', {
        allowInsecureConnection: true,
        retryOptions: { maxRetries: 0 },
      });
      await expect(noRetries.getEntity('p', 'r')).rejects.toMatchObject({ code: 'ECONNREFUSED' });

      const second = await startAzurite({ location, ports: first.ports });
      try {
        expect(second.connectionString).toBe(first.connectionString);
        // The clients made before the restart carry on.
        expect((await table.getEntity<{ value: number }>('p', 'r')).value).toBe(1);
        expect(
          (await queue.receiveMessages()).receivedMessageItems.map((message) => message.messageText),
        ).toEqual(['kept']);
      } finally {
        await second.stop();
      }
    } finally {
      await first.stop();
      await rm(location, { recursive: true, force: true });
    }
  });

  it('by default keeps nothing: a new start is empty', async () => {
    const first = await startAzurite();
    const table = TableClient.fromConnectionString(first.connectionString, 'things', {
      allowInsecureConnection: true,
    });
    await table.createTable();
    await first.stop();
    const second = await startAzurite({ ports: first.ports });
    try {
      expect(second.connectionString).toBe(first.connectionString);
      await expect(table.getEntity('p', 'r')).rejects.toThrow(/TableNotFound/);
    } finally {
      await second.stop();
    }
  });

  it('with a process per service: three processes, tables and queues each at their own address, all stopped after', async () => {
    const azurite = await startAzurite({ processPerService: true });
    try {
      expect(azurite.pids).toHaveLength(3);
      expect(new Set([azurite.ports.blob, azurite.ports.queue, azurite.ports.table]).size).toBe(3);
      const table = TableClient.fromConnectionString(azurite.connectionString, 'things', {
        allowInsecureConnection: true,
      });
      const queue = new QueueClient(azurite.connectionString, 'split-test');
      await table.createTable();
      await table.createEntity({ partitionKey: 'p', rowKey: 'r', value: 2 });
      await queue.createIfNotExists();
      await queue.sendMessage('apart');
      expect((await table.getEntity<{ value: number }>('p', 'r')).value).toBe(2);
      expect(
        (await queue.receiveMessages()).receivedMessageItems.map((message) => message.messageText),
      ).toEqual(['apart']);
    } finally {
      await azurite.stop();
    }
    for (const pid of azurite.pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('refuses a process per service with a location (in memory only)', async () => {
    await expect(startAzurite({ processPerService: true, location: tmpdir() })).rejects.toThrow(
      /in memory only/,
    );
  });
});
