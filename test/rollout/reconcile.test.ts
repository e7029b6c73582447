import { randomBytes, X509Certificate } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { readFeedState } from '../../lib/fleet/feeds.js';
import { storePackage } from '../../lib/fleet/packages.js';
import { listRollouts, readRollout } from '../../lib/fleet/rollouts.js';
import { getServer, listServers, registerServer } from '../../lib/fleet/servers.js';
import type { NotifyEvent } from '../../lib/notify.js';
import type { TrustPolicy } from '../../lib/package/trust.js';
import type { Feed } from '../../lib/ocs/feeds.js';
import { createTestPki, ping1Xml, type TestPki } from '../helpers/packages.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { changeRollout } from '../../lib/rollout/admin.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { reconcile } from '../../lib/rollout/reconcile.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { recordingLogger } from '../helpers/logs.js';
import { acceptPackage, type Fleet, runQueues, useFleets } from '../helpers/rollouts.js';

const waves: WaveProfile = [
  { name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
];
const env = useFleets();

const run = (f: Fleet) =>
  reconcile({ tables: f.tables, queues: f.queues, org: 'contoso', waves, logger: silentLogger }, [
    { name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust },
  ]);

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
    const f = await env.fleet([
      { name: 'ex02', ring: 'broad' },
      { name: 'ex03', ring: 'broad' },
    ]);
    const first = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    expect((await run(f))[0]).toMatchObject({ deferred: first });
    await runQueues(f);

    // ex02's agent lost EM3 (removed by hand, as its status would report); ex03 was updated past EM2's range.
    await env.relay.client.remove(
      (await getServer(f.tables, 'contoso', 'ex02.contoso.com')).relayHybridConnection,
      { operationId: 'by-hand', mitigationIds: ['EM3'] },
    );
    await setReported(f, 'ex02.contoso.com', { reportedApplied: JSON.stringify(['EM1', 'EM2', 'PING1']) });
    await setReported(f, 'ex03.contoso.com', { build: '15.2.1544.9' });

    const [report] = await run(f);
    expect(report?.rolloutId).toMatch(/^microsoft-reconcile-\d{10}$/);
    expect(report?.servers).toBe(2);
    await runQueues(f);
    expect((await readRollout(f.tables, report!.rolloutId!)).state.state).toBe('Completed');
    expect((await getServer(f.tables, 'contoso', 'ex02.contoso.com')).reportedApplied).toEqual([
      'EM1',
      'EM2',
      'EM3',
      'PING1',
    ]);
    // 15.2.1544.9 is past the ranges of both EM1 (..15.2.1118.19) and EM2 (..15.2.1544.4): both fixed, both removed.
    expect((await getServer(f.tables, 'contoso', 'ex03.contoso.com')).reportedApplied).toEqual([
      'EM3',
      'PING1',
    ]);
  });

  it('reports, but does not touch, a disabled server holding a withdrawn mitigation', async () => {
    const f = await env.fleet([{ name: 'ex04', ring: 'broad' }]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    await setReported(f, 'ex04.contoso.com', {
      reportedApplied: JSON.stringify(['EM1', 'EM2', 'EM3', 'OLD9', 'PING1']),
    });
    const policy = await f.tables.client('Policy');
    await policy.createEntity({
      partitionKey: 'server',
      rowKey: 'ex04.contoso.com',
      source: 'table',
      mitigationsEnabled: false,
    });
    const [report] = await run(f);
    expect(report?.rolloutId).toBeUndefined();
    expect(report?.leftAlone).toEqual([
      { server: 'ex04.contoso.com', ids: ['OLD9'], reason: 'DisabledByServer' },
    ]);
  });
});

describe('reconcile with a halted rollout', () => {
  /** The catalogue without EM3: the first package; the second adds EM3, which ex21's agent fails to apply. */
  const withoutEm3 = catalogueXml.replace(/ {2}<Config id="EM3"[\s\S]*?<\/Config>\n/, '');
  /** EM3 with different content (an applicability range), still stopping the service ex21 fails on. */
  const em3Changed = catalogueXml.replace(
    '<Config id="EM3" desc="Disable UM service">',
    '<Config id="EM3" desc="Disable UM service">\n    <Applicability><Range min="15.1.0.0" max="15.2.9999.0"/></Applicability>',
  );
  const signed = (xml: string, minutesAgo: number): string =>
    env.pki.sign(xml, { signingTime: new Date(Date.now() - minutesAgo * 60_000) });
  const poll = (f: Fleet, xml: string) =>
    pollFeed(
      {
        tables: f.tables,
        queues: f.queues,
        org: 'contoso',
        waves,
        logger: silentLogger,
        fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(xml) }),
      },
      { name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust },
    );
  const reported = async (f: Fleet, server: string): Promise<readonly string[]> =>
    (await getServer(f.tables, 'contoso', `${server}.contoso.com`)).reportedApplied;

  it('starts nothing for held ids, still reapplies other ids and removes blocked ones; the same content again keeps the hold, different content lifts it', async () => {
    const f = await env.fleet([
      { name: 'ex21', ring: 'broad', failOn: ['MSExchangeUM'] },
      { name: 'ex22', ring: 'broad' },
    ]);
    expect(await poll(f, signed(withoutEm3, 5))).toMatchObject({
      kind: 'accepted',
      rollouts: ['microsoft-000001-apply'],
    });
    await runQueues(f);
    expect(await poll(f, signed(catalogueXml, 4))).toMatchObject({
      kind: 'accepted',
      rollouts: ['microsoft-000002-apply'],
    });
    await runQueues(f);
    const halted = await readRollout(f.tables, 'microsoft-000002-apply');
    expect(halted.state).toMatchObject({
      state: 'Halted',
      applies: { EM3: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(await reported(f, 'ex21')).toEqual(['EM1', 'EM2', 'PING1']);

    // ex22 lost EM1 by hand and has EM3 blocked now; ex23 joined the fleet with nothing applied.
    await setReported(f, 'ex22.contoso.com', { reportedApplied: JSON.stringify(['EM2', 'EM3', 'PING1']) });
    const policy = await f.tables.client('Policy');
    await policy.createEntity({
      partitionKey: 'server',
      rowKey: 'ex22.contoso.com',
      source: 'table',
      blockedMitigations: JSON.stringify(['EM3']),
    });
    const ex23 = await env.fleet([{ name: 'ex23', ring: 'broad' }]);
    const hybridConnection = (await getServer(ex23.tables, 'contoso', 'ex23.contoso.com'))
      .relayHybridConnection;
    await registerServer(
      f.tables,
      'contoso',
      {
        name: 'ex23.contoso.com',
        build: '15.2.1118.7',
        ring: 'broad',
        relayHybridConnection: hybridConnection,
      },
      { actor: 'test' },
    );

    const logger = recordingLogger();
    const [report] = await reconcile({ tables: f.tables, queues: f.queues, org: 'contoso', waves, logger }, [
      { name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust },
    ]);
    expect(report?.holds).toEqual([
      {
        feed: 'microsoft',
        mitigation: 'EM3',
        rolloutId: 'microsoft-000002-apply',
        state: 'Halted',
        packageSequence: 2,
      },
    ]);
    expect(report?.held).toEqual([
      { server: 'ex21.contoso.com', holds: [{ mitigation: 'EM3', rolloutId: 'microsoft-000002-apply' }] },
      { server: 'ex23.contoso.com', holds: [{ mitigation: 'EM3', rolloutId: 'microsoft-000002-apply' }] },
    ]);
    expect(
      report?.changes.map((change) => [
        change.server,
        change.reapply.map((item) => item.mitigation),
        change.remove.map((item) => item.mitigation),
      ]),
    ).toEqual([
      ['ex22.contoso.com', ['EM1'], ['EM3']],
      ['ex23.contoso.com', ['PING1', 'EM1', 'EM2'], []],
    ]);
    expect(report?.changes[0]?.remove[0]?.reason).toMatch(/^Blocked \(server\)/);
    expect(logger.named('ReconcileHeld')[0]?.fields).toMatchObject({
      feed: 'microsoft',
      rolloutId: 'microsoft-000002-apply',
      mitigationIds: ['EM3'],
      servers: 2,
    });
    await runQueues(f);
    expect((await readRollout(f.tables, report!.rolloutId!)).state.state).toBe('Completed');
    expect(await reported(f, 'ex22')).toEqual(['EM1', 'EM2', 'PING1']);
    expect(await reported(f, 'ex23')).toEqual(['EM1', 'EM2', 'PING1']);

    // Again, and with the same content signed anew (a new sequence): nothing starts, EM3 stays held.
    expect((await run(f))[0]).toMatchObject({
      servers: 0,
      held: [{ server: 'ex21.contoso.com' }, { server: 'ex23.contoso.com' }],
    });
    expect(await poll(f, signed(catalogueXml, 3))).toMatchObject({
      kind: 'accepted',
      sequence: 3,
      rollouts: [],
    });
    const [sameContent] = await run(f);
    expect(sameContent).toMatchObject({
      servers: 0,
      holds: [{ mitigation: 'EM3', rolloutId: 'microsoft-000002-apply' }],
    });
    expect(sameContent?.rolloutId).toBeUndefined();

    // Different content for EM3 lifts the hold: the poll rolls it out (and, on ex21, halts again: a hold of its own).
    expect(await poll(f, signed(em3Changed, 2))).toMatchObject({
      kind: 'accepted',
      diff: { changed: ['EM3'] },
      rollouts: ['microsoft-000004-apply'],
    });
    expect((await run(f))[0]).toMatchObject({ deferred: 'microsoft-000004-apply', holds: [] });
    await runQueues(f);
    expect((await run(f))[0]?.holds).toEqual([
      {
        feed: 'microsoft',
        mitigation: 'EM3',
        rolloutId: 'microsoft-000004-apply',
        state: 'Halted',
        packageSequence: 4,
      },
    ]);
  });

  it('a retry lifts the hold; a dry run reports what it would do and writes nothing', async () => {
    const f = await env.fleet([
      { name: 'ex31', ring: 'broad', failOn: ['MSExchangeUM'] },
      { name: 'ex32', ring: 'broad' },
    ]);
    const rolloutId = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    expect((await readRollout(f.tables, rolloutId)).state.state).toBe('Halted');
    await setReported(f, 'ex32.contoso.com', { reportedApplied: JSON.stringify(['EM2', 'PING1']) });

    const before = await rolloutIds(f);
    const [dry] = await reconcile(
      { tables: f.tables, queues: f.queues, org: 'contoso', waves, logger: silentLogger },
      [{ name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust }],
      { dryRun: true },
    );
    expect(dry).toMatchObject({
      dryRun: true,
      servers: 0,
      changes: [],
      held: [
        { server: 'ex31.contoso.com' },
        {
          server: 'ex32.contoso.com',
          holds: [
            { mitigation: 'EM1', rolloutId },
            { mitigation: 'EM3', rolloutId },
          ],
        },
      ],
    });
    expect(await rolloutIds(f)).toEqual(before);

    expect(await changeRollout(f.deps, rolloutId, 'retry', 'alice')).toMatchObject({
      ok: true,
      state: { state: 'Running', attempt: 1 },
    });
    const [during] = await run(f);
    expect(during).toMatchObject({ deferred: rolloutId, holds: [] });
    await runQueues(f);
    // ex31 still fails: halted again, holding again.
    expect((await readRollout(f.tables, rolloutId)).state).toMatchObject({
      state: 'Halted',
      halts: 2,
      reasonCode: 'WaveHalted',
      reasonDetail: expect.stringMatching(/^wave 1 \(retry 1\) had 1 failures/),
    });
    expect((await run(f))[0]?.holds.map((hold) => hold.mitigation)).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
  });
});

async function rolloutIds(f: Fleet): Promise<string[]> {
  return (await listRollouts(f.tables)).map((rollout) => rollout.partitionKey);
}

describe('reconcile with a feed whose stored package no longer verifies (fail closed: the feed is frozen)', () => {
  const everything = ['EM1', 'EM2', 'EM3', 'PING1'];
  let other: TestPki;
  beforeAll(async () => {
    other = await createTestPki('emfleet Other');
  });
  const feed = (name: string, trust: TrustPolicy): Feed => ({ name, url: `http://${name}.invalid/`, trust });
  /** The organization's own feed, verified, with PING1 only: before the fix its fix-up withdrew everything of Microsoft's. */
  const contoso = (): Feed => feed('contoso', env.pki.trust);

  async function protectedFleet(): Promise<Fleet> {
    const f = await env.fleet([{ name: `fz${randomBytes(3).toString('hex')}`, ring: 'broad' }]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    await storePackage(f.tables, {
      feed: 'contoso',
      bytes: Buffer.from(env.pki.sign(ping1Xml)),
      mitigationIds: ['PING1'],
    });
    expect((await listServers(f.tables, 'contoso')).rows[0]?.reportedApplied).toEqual(everything);
    return f;
  }

  const revokedSigner = (): TrustPolicy => ({
    ...env.pki.trust,
    revokedSerials: new Set([env.pki.signer.certificate.serialNumber.replace(/^0+/, '').toUpperCase()]),
  });
  const rotatedAnchor = (): TrustPolicy => ({
    ...env.pki.trust,
    anchors: [new X509Certificate(other.root.certificatePem)],
  });

  it.each([
    {
      name: 'the signer serial on the deny-list',
      feeds: (): Feed[] => [feed('microsoft', revokedSigner()), contoso()],
      reason: 'Revoked',
    },
    {
      name: 'a rotated anchor',
      feeds: (): Feed[] => [feed('microsoft', rotatedAnchor()), contoso()],
      reason: 'UntrustedChain',
    },
    {
      name: 'the feed missing from the settings (or its settings unreadable)',
      feeds: (): Feed[] => [contoso()],
      reason: 'NotConfigured',
    },
  ])(
    'removes and applies nothing of it with $name; FeedFrozen is logged, notified once and kept on the feed',
    async ({ feeds, reason }) => {
      const f = await protectedFleet();
      const logger = recordingLogger();
      const notified: NotifyEvent[] = [];
      const deps = {
        tables: f.tables,
        queues: f.queues,
        org: 'contoso',
        waves,
        logger,
        notify: async (event: NotifyEvent) => void notified.push(event),
      };
      const reports = await reconcile(deps, feeds());
      expect(reports.filter((report) => report.rolloutId !== undefined)).toEqual([]);
      await runQueues(f);
      expect((await listServers(f.tables, 'contoso')).rows[0]?.reportedApplied).toEqual(everything);
      expect(logger.named('FeedFrozen')).toEqual([
        expect.objectContaining({
          level: 'warn',
          fields: expect.objectContaining({
            feed: 'microsoft',
            reasonCode: reason,
            mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
          }),
        }),
      ]);
      expect(notified).toEqual([
        expect.objectContaining({ kind: 'FeedFrozen', feed: 'microsoft', reasonCode: reason }),
      ]);
      expect((await readFeedState(f.tables, 'microsoft'))?.frozenReason).toBe(reason);

      // The next hour: still frozen and logged again, but the channel is not told twice.
      await reconcile(deps, feeds());
      expect(logger.named('FeedFrozen')).toHaveLength(2);
      expect(notified).toHaveLength(1);
    },
  );

  it('thaws when the stored package verifies again; a frozen feed without applied mitigations is only retired', async () => {
    const f = await protectedFleet();
    await reconcile({ tables: f.tables, queues: f.queues, org: 'contoso', waves, logger: silentLogger }, [
      contoso(),
    ]);
    expect((await readFeedState(f.tables, 'microsoft'))?.frozenReason).toBe('NotConfigured');
    const logger = recordingLogger();
    const notified: NotifyEvent[] = [];
    const reports = await reconcile(
      {
        tables: f.tables,
        queues: f.queues,
        org: 'contoso',
        waves,
        logger,
        notify: async (event) => void notified.push(event),
      },
      [feed('microsoft', env.pki.trust), contoso()],
    );
    expect(reports.filter((report) => report.rolloutId !== undefined)).toEqual([]);
    expect(logger.named('FeedThawed')).toEqual([
      expect.objectContaining({ fields: expect.objectContaining({ feed: 'microsoft' }) }),
    ]);
    expect(notified).toEqual([expect.objectContaining({ kind: 'FeedThawed', feed: 'microsoft' })]);
    expect((await readFeedState(f.tables, 'microsoft'))?.frozenReason).toBe('');
  });
});
