import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countsBetween, startCountingProxy, type CountingProxy } from '../../bench/proxy.js';
import { appContextFor, createAppContext } from '../../lib/app/context.js';
import { loadConfig } from '../../lib/config/index.js';
import { queueNames } from '../../lib/fleet/queues.js';
import { listServers } from '../../lib/fleet/servers.js';
import { azuriteConnectionString } from '../helpers/fleet.js';

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
  const app = appContextFor(env);
  await listServers(app.tables, 'contoso');
  await app.queues.send(queueNames.gate, { rolloutId: 'r', wave: 0 });
}

describe('appContextFor', () => {
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
    expect(appContextFor(first).tables).not.toBe(appContextFor(second).tables);
  });
});

describe('the context of a worker', () => {
  it('is built once for the same settings: the config is not parsed again on each invocation', () => {
    const env = environment(`a${randomBytes(5).toString('hex')}`, `a${randomBytes(4).toString('hex')}`);
    const first = appContextFor(env);
    expect(appContextFor({ ...env })).toBe(first);
    expect(appContextFor({ ...env }).config).toBe(first.config);
    expect(appContextFor({ ...env, EMFLEET_ORG: 'fabrikam' })).not.toBe(first);
  });

  it('a setting that is wrong fails the invocation with its name', () => {
    expect(() => appContextFor({ ...environment('a1', 'a1'), EMFLEET_WAVES: '[' })).toThrow(
      /EMFLEET_WAVES: is not valid JSON/,
    );
  });

  it('builds the feeds once, and keeps a misconfigured feed as a problem of its own', () => {
    const app = createAppContext(
      loadConfig({ ...environment('a1', 'a1'), EMFLEET_TRUST_ANCHORS: 'no PEM here and no such file' }),
    );
    expect(app.feeds()).toBe(app.feeds());
    expect(app.feeds()).toEqual({
      feeds: [],
      problems: [
        {
          feed: 'microsoft',
          error:
            'EMFLEET_TRUST_ANCHORS: "no PEM here and no such file" is neither PEM text nor a readable file',
        },
      ],
    });
  });

  it('parses the declared policy once, naming the setting when it is wrong', () => {
    const app = createAppContext(loadConfig({ ...environment('a1', 'a1'), EMFLEET_POLICY: '{"org": 1}' }));
    expect(app.declaredPolicy).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^EMFLEET_POLICY at org: /),
    });
    expect(createAppContext(loadConfig(environment('a1', 'a1'))).declaredPolicy).toBeUndefined();
  });

  it('without a relay, says which setting to set, and tries again on the next use', async () => {
    const app = createAppContext(loadConfig(environment('a1', 'a1')));
    await expect(app.agents()).rejects.toThrow(
      'no relay configured: set EMFLEET_RELAY_NAMESPACE (or EMFLEET_RELAY_ENDPOINT for a local emulator)',
    );
    await expect(app.agents()).rejects.toThrow(/no relay configured/);
  });

  it('keeps one relay client for the process', async () => {
    const app = createAppContext(
      loadConfig({
        ...environment('a1', 'a1'),
        EMFLEET_RELAY_ENDPOINT: 'http://127.0.0.1:9',
        EMFLEET_RELAY_SEND_KEY: 'k',
      }),
    );
    expect(await app.agents()).toBe(await app.agents());
  });
});
