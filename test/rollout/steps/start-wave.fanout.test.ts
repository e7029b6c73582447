import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { countsBetween, startCountingProxy, type CountingProxy } from '../../../bench/proxy.js';
import { queueNames } from '../../../lib/fleet/queues.js';
import { readResults } from '../../../lib/fleet/results.js';
import { readRollout } from '../../../lib/fleet/rollouts.js';
import { FleetTables } from '../../../lib/fleet/storage.js';
import { catalogueXml } from '../../../lib/local/catalogue.js';
import type { ApplyServerMessage } from '../../../lib/rollout/messages.js';
import { applyToServer } from '../../../lib/rollout/steps/apply-to-server.js';
import { startWave } from '../../../lib/rollout/steps/start-wave.js';
import { azuriteConnectionString } from '../../helpers/fleet.js';
import { acceptPackage, drain, useFleets } from '../../helpers/rollouts.js';

/**
 * The storage round trips of one window of deliveries that start together, counted at the wire:
 * what the steps share between them (the state row, plan rows, the wave's counters, the Servers
 * rows) is read or written once or twice, not once per server; what is each server's own (its
 * result, its next message) once per server.
 */
const env = useFleets();
let proxy: CountingProxy;

beforeAll(async () => {
  proxy = await startCountingProxy(azuriteConnectionString());
});

afterAll(async () => {
  await proxy?.stop();
});

describe('a window of 16 deliveries', () => {
  it('reads the state row twice and no result, writes one result per server, and counts all 16 once', async () => {
    const names = Array.from({ length: 16 }, (_, index) => `fw${String(index + 1).padStart(2, '0')}`);
    const f = await env.fleet(names.map((name) => ({ name, ring: 'broad' })));
    const id = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), [
      { name: 'all', select: { percent: 100 }, maxConcurrency: 16, maxErrors: 0, bake: 'PT0S' },
    ]);
    // startWave's message, then the window it sends.
    expect(await drain(f.queues, queueNames.waves)).toHaveLength(1);
    await startWave(f.deps, { rolloutId: id, wave: 0 });
    const window = (await drain(f.queues, queueNames.apply)) as ApplyServerMessage[];
    expect(window).toHaveLength(16);
    // The same tables, reached through the counting proxy.
    const prefix = f.tables.namespace.split('|').at(-1)!;
    const deps = {
      ...f.deps,
      tables: new FleetTables(
        { kind: 'connectionString', connectionString: proxy.connectionString },
        { prefix },
      ),
    };
    await deps.tables.client('Rollouts');
    await deps.tables.client('Results');
    await deps.tables.client('Servers');
    const before = proxy.counts();
    await Promise.all(
      window.map((message) => applyToServer(deps, message, { triggerMetadata: { dequeueCount: 1 } })),
    );
    const counts = Object.fromEntries(countsBetween(before, proxy.counts()));
    // Two state reads (the first delivery's, then one shared by the 15 that came during it), no
    // result read on a first delivery, the stored package once per process, and the move to
    // baking when the last result is in (its state row and wave row): 5, where each delivery
    // reading its own state and result made it 32 and more.
    expect(counts['table:getEntity']).toBeLessThanOrEqual(5);
    // One result per server; the Servers rows of the results that finish together in one transaction.
    expect(counts['table:batch']).toBeLessThan(2 * 16);
    expect((await readRollout(f.tables, id)).waves[0]).toMatchObject({
      servers: 16,
      succeeded: 16,
      failed: 0,
      skipped: 0,
    });
    for (const name of names)
      expect((await readResults(f.tables, `${name}.contoso.com`)).rows).toHaveLength(1);
  });

  it("frees a server's slot when its agent answers: the next server is sent while the result is still being stored, and nothing is sent twice", async () => {
    const f = await env.fleet([
      { name: 'fr01', ring: 'broad' },
      { name: 'fr02', ring: 'broad' },
    ]);
    const id = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), [
      { name: 'all', select: { percent: 100 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
    ]);
    await drain(f.queues, queueNames.waves);
    await startWave(f.deps, { rolloutId: id, wave: 0 });
    const window = (await drain(f.queues, queueNames.apply)) as ApplyServerMessage[];
    expect(window).toHaveLength(1);
    // Fault injection: writes to Results wait until the test lets them through (a slow storage write).
    let letThrough!: () => void;
    const held = new Promise<void>((resolve) => (letThrough = resolve));
    const tables = f.tables;
    const slowResults = withResultsTransactions(tables, async (submit) => (await held, submit()));
    const delivery = applyToServer({ ...f.deps, tables: slowResults }, window[0]!, {
      triggerMetadata: { dequeueCount: 1 },
    });
    const next = await vi.waitFor(
      async () => {
        const sent = (await drain(f.queues, queueNames.apply)) as ApplyServerMessage[];
        if (sent.length === 0)
          throw new Error('the next server was not sent while the result was being stored');
        return sent;
      },
      { timeout: 60_000, interval: 20 },
    );
    expect(next).toEqual([{ rolloutId: id, wave: 0, index: 1 }]);
    expect((await readResults(tables, 'fr01.contoso.com')).rows).toEqual([]);
    expect((await readResults(tables, 'fr02.contoso.com')).rows).toEqual([]);
    letThrough();
    await delivery;
    expect((await readRollout(tables, id)).waves[0]).toMatchObject({
      servers: 2,
      succeeded: 1,
      dispatched: 2,
    });
    await applyToServer(f.deps, next[0]!, { triggerMetadata: { dequeueCount: 1 } });
    expect((await readRollout(tables, id)).waves[0]).toMatchObject({
      servers: 2,
      succeeded: 2,
      failed: 0,
      skipped: 0,
      dispatched: 2,
    });
    expect(await drain(f.queues, queueNames.apply)).toEqual([]);
  });

  it('a result that cannot be stored is not counted; its redelivery stores and counts it once, and the agent applies once', async () => {
    const f = await env.fleet([{ name: 'fz01', ring: 'broad' }]);
    const id = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), [
      { name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
    ]);
    await drain(f.queues, queueNames.waves);
    await startWave(f.deps, { rolloutId: id, wave: 0 });
    const [message] = (await drain(f.queues, queueNames.apply)) as ApplyServerMessage[];
    // Fault injection: every write to Results fails, as during a storage outage.
    const tables = f.tables;
    const brokenResults = withResultsTransactions(tables, () =>
      Promise.reject(new Error('injected: Results unavailable')),
    );
    await expect(
      applyToServer({ ...f.deps, tables: brokenResults }, message!, { triggerMetadata: { dequeueCount: 1 } }),
    ).rejects.toThrow('injected: Results unavailable');
    expect((await readRollout(tables, id)).waves[0]).toMatchObject({ succeeded: 0, failed: 0, skipped: 0 });
    expect((await readResults(tables, 'fz01.contoso.com')).rows).toEqual([]);
    // The host delivers the message again.
    await applyToServer(f.deps, message!, { triggerMetadata: { dequeueCount: 2 } });
    expect((await readRollout(tables, id)).waves[0]).toMatchObject({
      servers: 1,
      succeeded: 1,
      failed: 0,
      skipped: 0,
    });
    expect((await readResults(tables, 'fz01.contoso.com')).rows).toHaveLength(1);
    const agent = env.agents.at(-1)!;
    expect(agent.service.status().operations).toHaveLength(1);
    expect(agent.service.status().applied).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
  });
});

/**
 * Fault injection: the same tables, but every transaction on Results goes through `intercept`,
 * which may delay, fail, or pass it on with `submit`.
 */
function withResultsTransactions(
  tables: FleetTables,
  intercept: (submit: () => Promise<unknown>) => Promise<unknown>,
): FleetTables {
  return new Proxy(tables, {
    get(target, property) {
      if (property !== 'client') return Reflect.get(target, property, target);
      return async (name: Parameters<FleetTables['client']>[0]) => {
        const client = await target.client(name);
        if (name !== 'Results') return client;
        return new Proxy(client, {
          get: (inner, key) =>
            key === 'submitTransaction'
              ? (...args: Parameters<typeof inner.submitTransaction>) =>
                  intercept(() => inner.submitTransaction(...args))
              : Reflect.get(inner, key, inner),
        });
      };
    },
  });
}
