import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFeedState } from '../../lib/fleet/feeds.js';
import { latestPackage } from '../../lib/fleet/packages.js';
import { queueNames, StorageQueueSender } from '../../lib/fleet/queues.js';
import { readRollout } from '../../lib/fleet/rollouts.js';
import { registerServer } from '../../lib/fleet/servers.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import type { NotifyEvent } from '../../lib/notify.js';
import { createTrustPolicy } from '../../lib/package/trust.js';
import type { Feed } from '../../lib/ocs/feeds.js';
import { approveHeldPackage, pollFeed, type PollDeps } from '../../lib/rollout/poll.js';
import { defaultWaves } from '../../lib/model/waves.js';
import { allEntities, azuriteConnectionString, freshTables, rawTable } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/** A feed on loopback whose current body the test sets; it answers 304 to a matching ETag. */
let served = { body: '', etag: '' };
/** The validator each request to the feed carried, in order: what the poller remembered. */
let ifNoneMatchSeen: (string | undefined)[] = [];
let feedServer: http.Server;
let feed: Feed;
let pki: TestPki;
let deps: PollDeps;
let prefix: string;
let queues: StorageQueueSender;

function serve(body: string): void {
  served = { body, etag: `"${randomBytes(4).toString('hex')}"` };
}

async function queued(): Promise<unknown[]> {
  const client = await queues.client(queueNames.waves);
  const { receivedMessageItems } = await client.receiveMessages({
    numberOfMessages: 32,
    visibilityTimeout: 1,
  });
  return receivedMessageItems.map((item) =>
    JSON.parse(Buffer.from(item.messageText, 'base64').toString('utf8')),
  );
}

beforeAll(async () => {
  pki = await createTestPki();
  feedServer = http.createServer((request, response) => {
    ifNoneMatchSeen.push(request.headers['if-none-match']);
    if (served.body === '') return void response.writeHead(503).end();
    if (request.headers['if-none-match'] === served.etag)
      return void response.writeHead(304, { etag: served.etag }).end();
    response.writeHead(200, { etag: served.etag, 'content-type': 'application/xml' }).end(served.body);
  });
  feedServer.listen(0, '127.0.0.1');
  await once(feedServer, 'listening');
  const fresh = freshTables();
  prefix = fresh.prefix;
  queues = new StorageQueueSender(
    { kind: 'connectionString', connectionString: azuriteConnectionString() },
    { prefix },
  );
  feed = {
    name: 'microsoft',
    url: `http://127.0.0.1:${(feedServer.address() as AddressInfo).port}/getexchangemitigations`,
    trust: pki.trust,
  };
  deps = { tables: fresh.tables, queues, org: 'contoso', waves: defaultWaves, logger: silentLogger };
  for (const [name, ring, build] of [
    ['ex01', 'canary', '15.2.1118.7'],
    ['ex02', 'broad', '15.2.1118.7'],
    ['ex03', 'broad', '15.1.2507.16'],
  ] as const) {
    await registerServer(
      fresh.tables,
      'contoso',
      { name: `${name}.contoso.com`, build, ring },
      { actor: 'test' },
    );
  }
});

afterAll(() => {
  feedServer?.closeAllConnections();
  feedServer?.close();
});

// Within the test PKI's validity (it starts an hour ago).
const signedAt = (minutes: number): Date => new Date(Date.now() - (50 - minutes) * 60_000);

describe('pollFeed', () => {
  it('accepts the first package, stores it, and starts a rollout of everything in it', async () => {
    serve(pki.sign(catalogueXml, { signingTime: signedAt(0) }));
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({
      kind: 'accepted',
      sequence: 1,
      diff: { added: ['EM1', 'EM2', 'EM3', 'PING1'], withdrawn: [] },
      rollouts: ['microsoft-000001-apply'],
    });
    expect((await latestPackage(deps.tables, 'microsoft'))?.bytes.toString()).toBe(served.body);
    const rollout = await readRollout(deps.tables, 'microsoft-000001-apply');
    expect(rollout.state).toMatchObject({
      state: 'Running',
      operation: 'apply',
      currentWave: 0,
      packageSequence: 1,
    });
    expect(rollout.waves.map((wave) => [wave.name, wave.servers])).toEqual([
      ['canary', 1],
      ['early', 0],
      ['broad', 2],
    ]);
    const plans = (await allEntities(rawTable(prefix, 'Rollouts'))).filter((row) =>
      String(row['rowKey']).startsWith('plan-'),
    );
    expect(plans.map((row) => row['server']).sort()).toEqual([
      'ex01.contoso.com',
      'ex02.contoso.com',
      'ex03.contoso.com',
    ]);
    expect(await queued()).toEqual([{ rolloutId: 'microsoft-000001-apply', wave: 0 }]);
  });

  it('does nothing more when the feed is unchanged (304) or serves the same bytes again', async () => {
    ifNoneMatchSeen = [];
    expect(await pollFeed(deps, feed)).toEqual({ kind: 'unchanged' });
    // A conditional GET with the feed's own ETag, not the Packages row's (the Tables SDK maps an
    // entity property named `etag` to the row's ETag): the feed answers 304 and sends no body.
    expect(ifNoneMatchSeen).toEqual([served.etag]);
    served = { ...served, etag: '"new-etag-same-bytes"' };
    expect(await pollFeed(deps, feed)).toEqual({ kind: 'unchanged' });
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(1);
  });

  it('rolls out what changed and removes what was withdrawn, from servers that report it applied', async () => {
    const servers = rawTable(prefix, 'Servers');
    await servers.updateEntity(
      { partitionKey: 'contoso', rowKey: 'ex02.contoso.com', reportedApplied: JSON.stringify(['EM3']) },
      'Merge',
    );
    const next = catalogueXml
      .replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, '')
      .replace('<Range min="15.2.0.0" max="15.2.1544.4"/>', '<Range min="15.2.0.0" max="15.2.1748.10"/>');
    serve(pki.sign(next, { signingTime: signedAt(10) }));
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({
      kind: 'accepted',
      sequence: 2,
      diff: { added: [], changed: ['EM2'], withdrawn: ['EM3'] },
      rollouts: ['microsoft-000002-apply', 'microsoft-000002-remove'],
    });
    const removal = await readRollout(deps.tables, 'microsoft-000002-remove');
    expect(removal.waves.reduce((total, wave) => total + wave.servers, 0)).toBe(1);
  });

  it('rejects an older (replayed) package: Rollback, recorded, and the last good one stays', async () => {
    serve(pki.sign(catalogueXml, { signingTime: signedAt(5) }));
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'Rollback' });
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(2);
    expect(await readFeedState(deps.tables, 'microsoft')).toMatchObject({
      lastRejectedReason: expect.stringMatching(/^Rollback: /),
    });
    const audit = await allEntities(rawTable(prefix, 'Audit'));
    expect(audit.filter((row) => row['action'] === 'package.rejected')).toHaveLength(1);
    expect(audit.filter((row) => row['action'] === 'package.accepted')).toHaveLength(2);
  });

  it('rejects a tampered package and records why', async () => {
    serve(pki.sign(catalogueXml, { signingTime: signedAt(20) }).replace('MSExchangeUM', 'MSExchangeIS'));
    expect(await pollFeed(deps, feed)).toMatchObject({ kind: 'rejected', reason: 'BadSignature' });
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(2);
  });

  it('records an unreachable feed and keeps the last good package', async () => {
    serve('');
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({ kind: 'error', error: expect.stringMatching(/HTTP 503/) });
    const state = await readFeedState(deps.tables, 'microsoft');
    expect(state?.lastError).toMatch(/HTTP 503/);
    expect(state?.lastErrorAt).toBeInstanceOf(Date);
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(2);
  });
});

describe('pollFeed against replay (per feed, every accepted SHA-256 is kept; a package whose age cannot be told may add but not withdraw)', () => {
  const ping1 = catalogueXml.replace(/\s*<Config id="EM[123]"[\s\S]*?<\/Config>/g, '');
  const ping1AndEm1 = catalogueXml.replace(/\s*<Config id="EM[23]"[\s\S]*?<\/Config>/g, '');
  const em2Only = catalogueXml.replace(/\s*<Config id="(EM[13]|PING1)"[\s\S]*?<\/Config>/g, '');
  let replayDeps: PollDeps & { notified: NotifyEvent[] };
  let replayFeed: Feed;
  let bodies: string[];
  let replayPrefix: string;

  beforeAll(() => {
    const fresh = freshTables();
    replayPrefix = fresh.prefix;
    const notified: NotifyEvent[] = [];
    bodies = [];
    replayDeps = {
      tables: fresh.tables,
      queues: new StorageQueueSender(
        { kind: 'connectionString', connectionString: azuriteConnectionString() },
        { prefix: fresh.prefix },
      ),
      org: 'contoso',
      waves: defaultWaves,
      logger: silentLogger,
      notify: async (event) => void notified.push(event),
      fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(bodies.at(-1)!) }),
      notified,
    };
    replayFeed = { name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust };
  });
  const pollServing = (body: string): ReturnType<typeof pollFeed> => {
    bodies.push(body);
    return pollFeed(replayDeps, replayFeed);
  };

  it('accepts untimed packages that only add', async () => {
    expect(await pollServing(pki.signUntimed(ping1))).toMatchObject({ kind: 'accepted', sequence: 1 });
    expect(await pollServing(pki.signUntimed(ping1AndEm1))).toMatchObject({
      kind: 'accepted',
      sequence: 2,
      diff: { added: ['EM1'], withdrawn: [] },
    });
  });

  it('rejects a replay of a superseded package as Rollback, though neither carries a time', async () => {
    const replay = bodies[0]!;
    const outcome = await pollServing(replay);
    expect(outcome).toMatchObject({
      kind: 'rejected',
      reason: 'Rollback',
      detail: expect.stringMatching(/same SHA-256 as package 1, superseded by package 2/),
    });
    expect((await latestPackage(replayDeps.tables, 'microsoft'))?.sequence).toBe(2);
  });

  it('holds an untimed package that would withdraw mitigations for an admin; once accepted (audited) it rolls out', async () => {
    const body = pki.signUntimed(em2Only);
    const outcome = await pollServing(body);
    expect(outcome).toMatchObject({ kind: 'held', withdrawn: ['EM1', 'PING1'] });
    const sha256 = outcome.kind === 'held' ? outcome.sha256 : '';
    expect((await latestPackage(replayDeps.tables, 'microsoft'))?.sequence).toBe(2);
    expect(await readFeedState(replayDeps.tables, 'microsoft')).toMatchObject({
      heldSha256: sha256,
      heldWithdrawn: ['EM1', 'PING1'],
    });
    expect(replayDeps.notified.filter((event) => event.kind === 'PackageHeld')).toEqual([
      expect.objectContaining({ feed: 'microsoft', sha256, withdrawn: ['EM1', 'PING1'] }),
    ]);
    // Held again on the next poll, without telling the channel twice.
    expect(await pollServing(body)).toMatchObject({ kind: 'held' });
    expect(replayDeps.notified.filter((event) => event.kind === 'PackageHeld')).toHaveLength(1);

    await expect(
      approveHeldPackage(replayDeps, replayFeed, 'f'.repeat(64), 'alice@contoso.com'),
    ).rejects.toThrow(/no package with SHA-256 f{12}/);
    const approved = await approveHeldPackage(replayDeps, replayFeed, sha256, 'alice@contoso.com');
    expect(approved).toMatchObject({ kind: 'accepted', sequence: 3, diff: { withdrawn: ['EM1', 'PING1'] } });
    const state = await readFeedState(replayDeps.tables, 'microsoft');
    expect(state?.heldSha256).toBe('');
    const audit = await allEntities(rawTable(replayPrefix, 'Audit'));
    expect(
      audit
        .filter((row) => row['action'] === 'package.approved')
        .map((row) => [row['actor'], JSON.parse(String(row['after'])).sha256]),
    ).toEqual([['alice@contoso.com', sha256]]);
  });
});

describe('pollFeed when the stored package no longer verifies', () => {
  let other: TestPki;
  beforeAll(async () => {
    other = await createTestPki('emfleet Second Signer');
  });

  it('keeps it as the rollback baseline: an older package from a still-trusted signer is Rollback; a newer one may withdraw what the stored one had', async () => {
    const fresh = freshTables();
    let body = '';
    const pollDeps: PollDeps = {
      tables: fresh.tables,
      queues: new StorageQueueSender(
        { kind: 'connectionString', connectionString: azuriteConnectionString() },
        { prefix: fresh.prefix },
      ),
      org: 'contoso',
      waves: defaultWaves,
      logger: silentLogger,
      fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(body) }),
    };
    const bothRoots = createTrustPolicy({
      anchorPems: [pki.root.certificatePem, other.root.certificatePem],
      timestampAnchorPems: [pki.timestampRoot.certificatePem, other.timestampRoot.certificatePem],
    });
    body = pki.sign(catalogueXml, { signingTime: signedAt(10) });
    expect(
      await pollFeed(pollDeps, { name: 'microsoft', url: 'http://feed.invalid/', trust: bothRoots }),
    ).toMatchObject({ kind: 'accepted', sequence: 1 });

    // The first signer is revoked: the stored package no longer verifies; its time still counts.
    const revoked: Feed = {
      name: 'microsoft',
      url: 'http://feed.invalid/',
      trust: {
        ...bothRoots,
        revokedSerials: new Set([pki.signer.certificate.serialNumber.replace(/^0+/, '').toUpperCase()]),
      },
    };
    body = other.sign(catalogueXml.replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, ''), {
      signingTime: signedAt(5),
    });
    expect(await pollFeed(pollDeps, revoked)).toMatchObject({ kind: 'rejected', reason: 'Rollback' });
    body = other.sign(catalogueXml.replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, ''), {
      signingTime: signedAt(20),
    });
    expect(await pollFeed(pollDeps, revoked)).toMatchObject({
      kind: 'accepted',
      sequence: 2,
      diff: { withdrawn: ['EM3'] },
    });
  });
});
