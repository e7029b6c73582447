import { describe, expect, it } from 'vitest';
import { readRollout } from '../../lib/fleet/rollouts.js';
import { getServer } from '../../lib/fleet/servers.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { reconcile } from '../../lib/rollout/reconcile.js';
import type { WaveProfile } from '../../lib/rollout/waves.js';
import { acceptPackage, type Fleet, runQueues, useFleets } from '../helpers/rollouts.js';

const waves: WaveProfile = [{ name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' }];
const env = useFleets();

const run = (f: Fleet) => reconcile({ tables: f.tables, queues: f.queues, org: 'contoso', waves, logger: silentLogger }, [{ name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust }]);

async function setReported(f: Fleet, server: string, fields: Record<string, unknown>): Promise<void> {
  const client = await f.tables.client('Servers');
  await client.updateEntity({ partitionKey: 'contoso', rowKey: server, ...fields }, 'Merge');
}

describe('reconcile', () => {
  it('finds nothing to do after a completed rollout', async () => {
    const f = await env.fleet([{ name: 'ex01', ring: 'broad' }]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    const [report] = await run(f);
    expect(report).toMatchObject({ feed: 'microsoft', servers: 0 });
    expect(report?.rolloutId).toBeUndefined();
  });

  it('reapplies what a server lost, removes what its new build fixes, and waits while a rollout is under way', async () => {
    const f = await env.fleet([{ name: 'ex02', ring: 'broad' }, { name: 'ex03', ring: 'broad' }]);
    const first = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    expect((await run(f))[0]).toMatchObject({ deferred: first });
    await runQueues(f);

    // ex02's agent lost EM3 (removed by hand, as its status would report); ex03 was updated past EM2's range.
    await env.relay.client.remove((await getServer(f.tables, 'contoso', 'ex02.contoso.com')).relayHybridConnection, { operationId: 'by-hand', mitigationIds: ['EM3'] });
    await setReported(f, 'ex02.contoso.com', { reportedApplied: JSON.stringify(['EM1', 'EM2', 'PING1']) });
    await setReported(f, 'ex03.contoso.com', { build: '15.2.1544.9' });

    const [report] = await run(f);
    expect(report?.rolloutId).toMatch(/^microsoft-reconcile-\d{10}$/);
    expect(report?.servers).toBe(2);
    await runQueues(f);
    expect((await readRollout(f.tables, report!.rolloutId!)).state.state).toBe('Completed');
    expect((await getServer(f.tables, 'contoso', 'ex02.contoso.com')).reportedApplied).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
    // 15.2.1544.9 is past the ranges of both EM1 (..15.2.1118.19) and EM2 (..15.2.1544.4): both fixed, both removed.
    expect((await getServer(f.tables, 'contoso', 'ex03.contoso.com')).reportedApplied).toEqual(['EM3', 'PING1']);
  });

  it('reports, but does not touch, a disabled server holding a withdrawn mitigation', async () => {
    const f = await env.fleet([{ name: 'ex04', ring: 'broad' }]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    await setReported(f, 'ex04.contoso.com', { reportedApplied: JSON.stringify(['EM1', 'EM2', 'EM3', 'OLD9', 'PING1']) });
    const policy = await f.tables.client('Policy');
    await policy.createEntity({ partitionKey: 'server', rowKey: 'ex04.contoso.com', source: 'table', mitigationsEnabled: false });
    const [report] = await run(f);
    expect(report?.rolloutId).toBeUndefined();
    expect(report?.leftAlone).toEqual([{ server: 'ex04.contoso.com', ids: ['OLD9'], reason: 'Disabled (server)' }]);
  });
});
