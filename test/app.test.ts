import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsBetween, startCountingProxy, type CountingProxy } from '../bench/proxy.js';
import { appContext } from '../lib/app.js';
import { queueNames } from '../lib/fleet/queues.js';
import { listServers } from '../lib/fleet/servers.js';
import { silentLogger } from '../lib/log.js';
import { azuriteConnectionString } from './helpers/fleet.js';

/** Storage requests of the app's invocations, counted at the wire. */
let proxy: CountingProxy;

beforeAll(async () => {
  proxy = await startCountingProxy(azuriteConnectionString());
});

afterAll(async () => {
  await proxy.stop();
});

const environment = (tablePrefix: string, queuePrefix: string): Record<string, string> => ({
  AzureWebJobsStorage: proxy.connectionString,
  EMFLEET_TABLE_PREFIX: tablePrefix,
  EMFLEET_QUEUE_PREFIX: queuePrefix,
});

/** What a queue step does with storage, in miniature: one table read, one queue send. */
async function invocation(env: Record<string, string>): Promise<void> {
  const app = appContext(silentLogger, env);
  await listServers(app.tables, 'contoso');
  await app.queues.send(queueNames.gate, { rolloutId: 'r', wave: 0 });
}

describe('appContext', () => {
  it('creates each table and queue once per process, not once per invocation', async () => {
    const env = environment(`a${randomBytes(5).toString('hex')}`, `a${randomBytes(4).toString('hex')}`);
    const before = proxy.counts();
    for (let index = 0; index < 5; index++) await invocation(env);
    expect(Object.fromEntries(countsBetween(before, proxy.counts()))).toEqual({
      'table:createTable': 1,
      'table:query': 5,
      'queue:create': 1,
      'queue:send': 5,
    });
  });

  it('keeps deployments apart: another prefix gets its own tables and queues', async () => {
    const first = environment(`a${randomBytes(5).toString('hex')}`, `a${randomBytes(4).toString('hex')}`);
    const second = environment(`a${randomBytes(5).toString('hex')}`, `a${randomBytes(4).toString('hex')}`);
    const before = proxy.counts();
    await invocation(first);
    await invocation(second);
    await invocation(first);
    expect(Object.fromEntries(countsBetween(before, proxy.counts()))).toEqual({
      'table:createTable': 2,
      'table:query': 3,
      'queue:create': 2,
      'queue:send': 3,
    });
    expect(appContext(silentLogger, first).tables).not.toBe(appContext(silentLogger, second).tables);
  });
});
