import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import type { Feed } from '../../lib/ocs/feeds.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { defaultWaves } from '../../lib/model/waves.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { allEntities, azuriteConnectionString, freshTables, rawTable } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/** A feed on loopback serving whatever the test last put there. */
let body = '';
let ocs: http.Server;
let pki: TestPki;
let env: Record<string, string>;
let heldSha256 = '';
const fresh = freshTables();
const emfleet = (...args: string[]): Promise<CliRun> => runCli(args, { env });

beforeAll(async () => {
  pki = await createTestPki();
  ocs = http.createServer(
    (_request, response) => void response.writeHead(200, { 'content-type': 'application/xml' }).end(body),
  );
  ocs.listen(0, '127.0.0.1');
  await once(ocs, 'listening');
  const url = `http://127.0.0.1:${(ocs.address() as AddressInfo).port}/getexchangemitigations`;
  env = {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: fresh.prefix,
    EMFLEET_QUEUE_PREFIX: fresh.prefix,
    EMFLEET_ORG: 'contoso',
    EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
    EMFLEET_OCS_URL: url,
  };
  const feed: Feed = { name: 'microsoft', url, trust: pki.trust };
  const deps = {
    tables: fresh.tables,
    queues: new StorageQueueSender(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: fresh.prefix },
    ),
    org: 'contoso',
    waves: defaultWaves,
    logger: silentLogger,
  };
  body = pki.signUntimed(catalogueXml);
  expect(await pollFeed(deps, feed)).toMatchObject({ kind: 'accepted' });
  body = pki.signUntimed(catalogueXml.replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, ''));
  const held = await pollFeed(deps, feed);
  if (held.kind !== 'held') throw new Error(JSON.stringify(held));
  heldSha256 = held.sha256;
});

afterAll(() => {
  ocs?.closeAllConnections();
  ocs?.close();
});

describe('a package held for an admin', () => {
  it('emfleet rollout plan shows it and how to approve it', async () => {
    const text = await emfleet('rollout', 'plan', '--latest');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`held for an admin: feed microsoft package ${heldSha256}`);
    expect(text.stdout).toContain('it would withdraw EM3');
    expect(text.stdout).toContain(`emfleet feed accept ${heldSha256} --feed microsoft`);
    const json = JSON.parse((await emfleet('rollout', 'plan', '--latest', '--json')).stdout) as {
      held: unknown[];
    };
    expect(json.held).toEqual([
      {
        feed: 'microsoft',
        sha256: heldSha256,
        heldAt: expect.stringMatching(/^\d{4}-/),
        withdrawn: ['EM3'],
        approvedBy: null,
      },
    ]);
  });

  it('emfleet feed accept refuses a SHA-256 that is not held, and names the one that is', async () => {
    const run = await emfleet('feed', 'accept', 'a'.repeat(64), '--actor', 'alice');
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `emfleet: NotHeld: feed microsoft holds no package with SHA-256 ${'a'.repeat(64)}; the package held is ${heldSha256}`,
    );
    expect((await emfleet('feed', 'accept', 'not-a-hash')).stderr).toMatch(/is not 64 hex digits/);
  });

  it('emfleet feed accept SHA approves it (audited), polls, and rolls it out', async () => {
    const run = await emfleet('feed', 'accept', heldSha256, '--actor', 'alice', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      feed: 'microsoft',
      sha256: heldSha256,
      outcome: { kind: 'accepted', sequence: 2, diff: { withdrawn: ['EM3'] } },
    });
    const audit = await allEntities(rawTable(fresh.prefix, 'Audit'));
    expect(audit.filter((row) => row['action'] === 'package.approved').map((row) => row['actor'])).toEqual([
      'alice',
    ]);
    expect(
      JSON.parse(
        String(
          audit.find(
            (row) => row['action'] === 'package.accepted' && String(row['after']).includes('approvedBy'),
          )?.['after'],
        ),
      ),
    ).toMatchObject({ approvedBy: 'alice', withdrawn: ['EM3'] });
    expect((await emfleet('rollout', 'plan', '--latest')).stdout).not.toContain('held for an admin');
  });
});
