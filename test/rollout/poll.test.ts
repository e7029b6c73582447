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
import { pollFeed, type Feed, type PollDeps } from '../../lib/rollout/poll.js';
import { defaultWaves } from '../../lib/rollout/waves.js';
import { allEntities, azuriteConnectionString, freshTables, rawTable } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/** A feed on loopback whose current body the test sets; it answers 304 to a matching ETag. */
let served = { body: '', etag: '' };
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
  const { receivedMessageItems } = await client.receiveMessages({ numberOfMessages: 32, visibilityTimeout: 1 });
  return receivedMessageItems.map((item) => JSON.parse(Buffer.from(item.messageText, 'base64').toString('utf8')));
}

beforeAll(async () => {
  pki = await createTestPki();
  feedServer = http.createServer((request, response) => {
    if (served.body === '') return void response.writeHead(503).end();
    if (request.headers['if-none-match'] === served.etag) return void response.writeHead(304, { etag: served.etag }).end();
    response.writeHead(200, { etag: served.etag, 'content-type': 'application/xml' }).end(served.body);
  });
  feedServer.listen(0, '127.0.0.1');
  await once(feedServer, 'listening');
  const fresh = freshTables();
  prefix = fresh.prefix;
  queues = new StorageQueueSender({ kind: 'connectionString', connectionString: azuriteConnectionString() }, { prefix });
  feed = { name: 'microsoft', url: `http://127.0.0.1:${(feedServer.address() as AddressInfo).port}/getexchangemitigations`, trust: pki.trust };
  deps = { tables: fresh.tables, queues, org: 'contoso', waves: defaultWaves, logger: silentLogger };
  for (const [name, ring, build] of [['ex01', 'canary', '15.2.1118.7'], ['ex02', 'broad', '15.2.1118.7'], ['ex03', 'broad', '15.1.2507.16']] as const) {
    await registerServer(fresh.tables, 'contoso', { name: `${name}.contoso.com`, build, ring }, { actor: 'test' });
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
    expect(outcome).toMatchObject({ kind: 'accepted', sequence: 1, diff: { added: ['EM1', 'EM2', 'EM3', 'PING1'], withdrawn: [] }, rollouts: ['microsoft-000001-apply'] });
    expect((await latestPackage(deps.tables, 'microsoft'))?.bytes.toString()).toBe(served.body);
    const rollout = await readRollout(deps.tables, 'microsoft-000001-apply');
    expect(rollout.state).toMatchObject({ state: 'Running', operation: 'apply', currentWave: 0, packageSequence: 1 });
    expect(rollout.waves.map((wave) => [wave.name, wave.servers])).toEqual([['canary', 1], ['early', 0], ['broad', 2]]);
    const plans = (await allEntities(rawTable(prefix, 'Rollouts'))).filter((row) => String(row['rowKey']).startsWith('plan-'));
    expect(plans.map((row) => row['server']).sort()).toEqual(['ex01.contoso.com', 'ex02.contoso.com', 'ex03.contoso.com']);
    expect(await queued()).toEqual([{ rolloutId: 'microsoft-000001-apply', wave: 0 }]);
  });

  it('does nothing more when the feed is unchanged (304) or serves the same bytes again', async () => {
    expect(await pollFeed(deps, feed)).toEqual({ kind: 'unchanged' });
    served = { ...served, etag: '"new-etag-same-bytes"' };
    expect(await pollFeed(deps, feed)).toEqual({ kind: 'unchanged' });
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(1);
  });

  it('rolls out what changed and removes what was withdrawn, from servers that report it applied', async () => {
    const servers = rawTable(prefix, 'Servers');
    await servers.updateEntity({ partitionKey: 'contoso', rowKey: 'ex02.contoso.com', reportedApplied: JSON.stringify(['EM3']) }, 'Merge');
    const next = catalogueXml
      .replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, '')
      .replace('<Range min="15.2.0.0" max="15.2.1544.4"/>', '<Range min="15.2.0.0" max="15.2.1748.10"/>');
    serve(pki.sign(next, { signingTime: signedAt(10) }));
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({ kind: 'accepted', sequence: 2, diff: { added: [], changed: ['EM2'], withdrawn: ['EM3'] }, rollouts: ['microsoft-000002-apply', 'microsoft-000002-remove'] });
    const removal = await readRollout(deps.tables, 'microsoft-000002-remove');
    expect(removal.waves.reduce((total, wave) => total + wave.servers, 0)).toBe(1);
  });

  it('rejects an older (replayed) package: Rollback, recorded, and the last good one stays', async () => {
    serve(pki.sign(catalogueXml, { signingTime: signedAt(5) }));
    const outcome = await pollFeed(deps, feed);
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'Rollback' });
    expect((await latestPackage(deps.tables, 'microsoft'))?.sequence).toBe(2);
    expect(await readFeedState(deps.tables, 'microsoft')).toMatchObject({ lastRejectedReason: expect.stringMatching(/^Rollback: /) });
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
