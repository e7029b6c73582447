import { once } from 'node:events';
import { mkdtemp, readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getExplain,
  getPackage,
  getPlan,
  getServerView,
  getStatus,
  postPolicy,
  postPoll,
  type AdminDeps,
} from '../../lib/admin/api.js';
import { main } from '../../lib/cli/main.js';
import { readRollout } from '../../lib/fleet/rollouts.js';
import { registerServer } from '../../lib/fleet/servers.js';
import { changeRollout } from '../../lib/rollout/admin.js';
import { adminDeps, adminRequest as request, call, org } from '../helpers/admin.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';
import { catalogueXml, createTestPki, ping1Xml, type TestPki } from '../helpers/packages.js';

/*
 * The admin's day on Azurite, through the admin API handlers and the CLI in-process: two feeds
 * (Microsoft's and the organization's own), poll now, the current package of either, plan and
 * explain it, one server's whole story, and a policy change that says when it takes effect or
 * acts at once.
 */

let pki: TestPki;
let microsoftXml: string;
let contosoXml: string;
let feeds: http.Server;
let deps: AdminDeps;
let env: Record<string, string>;
const fresh = freshTables();

beforeAll(async () => {
  pki = await createTestPki();
  microsoftXml = pki.sign(catalogueXml);
  contosoXml = pki.sign(ping1Xml.replaceAll('PING1', 'CX1'), { sequence: 1 });
  feeds = http.createServer((incoming, outgoing) =>
    outgoing
      .writeHead(200, { 'content-type': 'application/xml' })
      .end(incoming.url === '/contoso' ? contosoXml : microsoftXml),
  );
  feeds.listen(0, '127.0.0.1');
  await once(feeds, 'listening');
  const base = `http://127.0.0.1:${(feeds.address() as AddressInfo).port}`;
  env = {
    EMFLEET_OCS_URL: `${base}/getexchangemitigations`,
    EMFLEET_FEEDS: JSON.stringify([
      {
        name: 'contoso',
        url: `${base}/contoso`,
        trustAnchors: pki.root.certificatePem,
        signerSubject: 'Microsoft Exchange XML Signing',
        signerEku: '1.3.6.1.4.1.311.76.57.1.11',
      },
    ]),
    EMFLEET_RECONCILE_SCHEDULE: '0 30 * * * *',
  };
  deps = adminDeps(fresh, pki.root.certificatePem, env);
  for (const [name, ring] of [
    ['ex01.contoso.com', 'canary'],
    ['ex02.contoso.com', 'broad'],
    ['ex03.contoso.com', 'broad'],
  ] as const) {
    await registerServer(fresh.tables, org, { name, build: '15.2.1118.7', ring }, { actor: 'test' });
  }
  await registerServer(
    fresh.tables,
    'fabrikam',
    { name: 'fx01.fabrikam.com', build: '15.2.1118.7' },
    { actor: 'test' },
  );
});

afterAll(async () => {
  feeds?.close();
});

/** The CLI in-process, on this file's tables and feeds. */
async function emfleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = {
    stdout: (line: string) => stdout.push(line),
    stderr: (line: string) => stderr.push(line),
    env: {
      ...(deps.config.storageConnectionString
        ? { AzureWebJobsStorage: deps.config.storageConnectionString }
        : {}),
      EMFLEET_TABLE_PREFIX: fresh.prefix,
      EMFLEET_QUEUE_PREFIX: fresh.prefix,
      EMFLEET_ORG: org,
      EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
      ...env,
    },
  };
  const code = await main(['node', 'emfleet', ...args], io);
  return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
}

const body = (value: unknown) => ({ body: JSON.stringify(value) });

describe('poll now (POST /api/poll, emfleet poll)', () => {
  it('polls every feed: each accepted with the rollouts it started, then unchanged', async () => {
    const first = await call(postPoll, deps, request('POST', 'poll'));
    expect(first.status).toBe(200);
    expect(first.body.ok).toBe(true);
    expect(first.body.outcomes).toEqual([
      expect.objectContaining({
        feed: 'microsoft',
        kind: 'accepted',
        sequence: 1,
        rollouts: ['microsoft-000001-apply'],
      }),
      expect.objectContaining({
        feed: 'contoso',
        kind: 'accepted',
        sequence: 1,
        rollouts: ['contoso-000001-apply'],
      }),
    ]);
    const again = await emfleet('poll', '--feed', 'contoso');
    expect(again).toMatchObject({
      code: 0,
      stdout: 'feed contoso: unchanged (the current package stays in force)',
    });
  });

  it.each([
    { name: 'an unknown feed', init: body({ feed: 'nope' }), status: 404, error: 'UnknownFeed' },
    { name: 'an unknown field', init: body({ feeds: 'microsoft' }), status: 400, error: 'InvalidBody' },
    { name: 'a body that is not JSON', init: { body: '{' }, status: 400, error: 'InvalidBody' },
  ])('answers $status for $name', async ({ init, status, error }) => {
    expect(await call(postPoll, deps, request('POST', 'poll', init))).toMatchObject({
      status,
      body: { code: error },
    });
  });

  it('a rejected package: exit 1, the reason code, and the current package stays in force', async () => {
    const good = contosoXml;
    contosoXml = good.replace('Ping mitigation', 'Pong mitigation');
    try {
      const run = await emfleet('poll', '--feed', 'contoso');
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        /^feed contoso: REJECTED BadSignature: .* \(sha256 [0-9a-f]{64}\); the current package stays in force$/,
      );
      const status = JSON.parse((await emfleet('status', '--json')).stdout);
      expect(status.feeds[1]).toMatchObject({
        name: 'contoso',
        lastPollResult: 'Rejected',
        lastRejected: { reasonCode: 'BadSignature' },
        package: { sequence: 1 },
      });
    } finally {
      contosoXml = good;
    }
  });

  it('the CLI names an unknown feed and the configured ones, exit 2', async () => {
    const run = await emfleet('poll', '--feed', 'nope');
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      'emfleet: UnknownFeed: no feed "nope" is configured (feeds: microsoft, contoso; organization feeds come from EMFLEET_FEEDS)',
    );
  });
});

describe("a feed's current package (GET /api/packages/{feed}, emfleet package show)", () => {
  it('gives the stored package, verified today, with its exact XML', async () => {
    const { status, body: shown } = await call(
      getPackage,
      deps,
      request('GET', 'packages/contoso', { params: { feed: 'contoso' } }),
    );
    expect(status).toBe(200);
    expect(shown).toMatchObject({
      feed: 'contoso',
      sequence: 1,
      signedSequence: 1,
      mitigationIds: ['CX1'],
      verification: {
        ok: true,
        signer: expect.objectContaining({ subject: 'CN=Microsoft Exchange XML Signing' }),
      },
    });
    expect(shown.xml).toBe(contosoXml);
    expect(
      await call(getPackage, deps, request('GET', 'packages/nope', { params: { feed: 'nope' } })),
    ).toMatchObject({ status: 404, body: { code: 'UnknownFeed' } });
  });

  it('writes the stored bytes out byte for byte, for package verify', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'emfleet-show-')), 'microsoft.xml');
    const run = await emfleet('package', 'show', '--out', out, '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      feed: 'microsoft',
      sequence: 1,
      out,
      verification: { ok: true },
    });
    expect(await readFile(out, 'utf8')).toBe(microsoftXml);
    expect((await emfleet('package', 'verify', out)).stdout).toMatch(/^verified: 4 mitigations/);
    const text = await emfleet('package', 'show', '--feed', 'contoso');
    expect(text.stdout).toMatch(
      /^feed contoso: package 1, sha256 [0-9a-f]{64}, \d+ bytes\n {2}signed .*\n {2}mitigations: CX1\n {2}verification: verified today: 1 mitigation \(CX1\) signed by CN=Microsoft Exchange XML Signing/,
    );
  });
});

describe('plan and explain the latest package of any feed', () => {
  it('GET /api/plan and rollout plan --latest --feed', async () => {
    const { body: plan } = await call(getPlan, deps, request('GET', 'plan?feed=contoso&emergency=true'));
    expect(plan).toMatchObject({ feed: 'contoso', packageSequence: 1, mitigationIds: ['CX1'] });
    expect(plan.waves.map((wave: { name: string }) => wave.name)).toEqual(['canary', 'all']);
    const run = await emfleet('rollout', 'plan', '--latest', '--feed', 'contoso', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).mitigationIds).toEqual(['CX1']);
  });

  it('GET /api/explain and policy explain --latest --feed', async () => {
    const { body: explained } = await call(
      getExplain,
      deps,
      request('GET', 'explain?feed=contoso&server=EX02.contoso.com'),
    );
    expect(explained).toMatchObject({
      feed: 'contoso',
      decisions: [
        { server: 'ex02.contoso.com', mitigation: 'CX1', decision: 'Apply', reasonCode: 'Applicable' },
      ],
    });
    const run = await emfleet('policy', 'explain', '--latest', '--json');
    expect(JSON.parse(run.stdout)).toHaveLength(12);
    expect((await emfleet('policy', 'explain', '--package', 'x.xml', '--latest')).stderr).toMatch(
      /exactly one of --package FILE or --latest/,
    );
  });
});

describe('--org', () => {
  it("reads another organization's servers", async () => {
    expect((await emfleet('servers', 'list', '--org', 'fabrikam')).stdout).toMatch(
      /^SERVER .*\nfx01\.fabrikam\.com /,
    );
    expect(JSON.parse((await emfleet('status', '--org', 'fabrikam', '--json')).stdout)).toMatchObject({
      org: 'fabrikam',
      servers: { total: 1 },
    });
    expect((await emfleet('servers', 'show', 'ex01.contoso.com', '--org', 'fabrikam')).stderr).toBe(
      'emfleet: ServerNotFound: no server "ex01.contoso.com" in org fabrikam',
    );
    expect((await emfleet('servers', 'list', '--org', 'bad org')).stderr).toMatch(
      /--org "bad org" must be letters, digits/,
    );
  });
});

describe("one server's story and a policy change that acts now", () => {
  it('servers show: every mitigation of both feeds; after an abort, the unreached work is Not started', async () => {
    for (const id of ['microsoft-000001-apply', 'contoso-000001-apply'])
      await changeRollout(deps, id, 'abort', 'alice');
    const { status, body: view } = await call(
      getServerView,
      deps,
      request('GET', 'servers/EX02.contoso.com', { params: { name: 'EX02.contoso.com' } }),
    );
    expect(status).toBe(200);
    expect(view.server).toMatchObject({
      name: 'ex02.contoso.com',
      registeredBuild: '15.2.1118.7',
      reportedBuild: null,
      lastSeen: null,
    });
    expect(
      view.mitigations.map((row: { feed: string; mitigation: string }) => `${row.feed}/${row.mitigation}`),
    ).toEqual(['microsoft/PING1', 'microsoft/EM1', 'microsoft/EM2', 'microsoft/EM3', 'contoso/CX1']);
    expect(view.mitigations.find((row: { mitigation: string }) => row.mitigation === 'CX1')).toMatchObject({
      decision: 'Apply',
      lastOutcome: null,
      pending: 'Not started (rollout contoso-000001-apply aborted)',
      appliedBy: null,
      reconcile: {
        action: 'none',
        why: 'held by rollout contoso-000001-apply (Aborted): retry it to continue',
      },
    });
    expect(
      await call(
        getServerView,
        deps,
        request('GET', 'servers/ex99.contoso.com', { params: { name: 'ex99.contoso.com' } }),
      ),
    ).toMatchObject({ status: 404, body: { code: 'ServerNotFound' } });
    const text = await emfleet('servers', 'show', 'ex02.contoso.com');
    expect(text.stdout).toMatch(
      /contoso\s+CX1\s+Apply\s+Applicable\s+Not started \(rollout contoso-000001-apply aborted\)\s+-\s+-\s+none \(held by rollout contoso-000001-apply \(Aborted\): retry it to continue\)/,
    );
  });

  it("without now: written, and says the next reconcile's time", async () => {
    const { status, body: changed } = await call(
      postPolicy,
      deps,
      request('POST', 'policy/block', {
        params: { action: 'block' },
        ...body({ scope: 'server', server: 'ex03.contoso.com', ids: ['CX1'] }),
      }),
    );
    expect(status).toBe(200);
    expect(changed).toMatchObject({
      ok: true,
      changed: true,
      target: { scope: 'server', name: 'ex03.contoso.com' },
      policy: { blockedMitigations: ['CX1'] },
      takesEffect: 'nextReconcile',
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:30:00\.000Z$/),
    });
    const audit = await allEntities(rawTable(fresh.prefix, 'Audit'));
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'policy.block',
        actor: 'operator@contoso.com',
        target: 'server:ex03.contoso.com',
      }),
    );
  });

  it('with now: what the aborted rollouts hold is not re-applied; a removal starts at once on the emergency waves; a busy feed waits', async () => {
    const held = await emfleet(
      'policy',
      'set',
      '--server',
      'ex01.contoso.com',
      '--enabled',
      'true',
      '--now',
      '--json',
    );
    expect(held.code, held.stderr).toBe(0);
    expect(JSON.parse(held.stdout)).toMatchObject({
      takesEffect: 'now',
      fixUps: [
        { feed: 'microsoft', kind: 'held', heldBy: 'microsoft-000001-apply' },
        { feed: 'contoso', kind: 'held', heldBy: 'contoso-000001-apply' },
      ],
    });

    // The agents of ex01 and ex02 reported EM3 applied (found in place).
    const servers = rawTable(fresh.prefix, 'Servers');
    for (const name of ['ex01.contoso.com', 'ex02.contoso.com'])
      await servers.updateEntity({ partitionKey: org, rowKey: name, reportedApplied: '["EM3"]' }, 'Merge');
    const blocked = await emfleet('policy', 'block', '--server', 'ex01.contoso.com', 'EM3', '--now');
    expect(blocked.code, blocked.stderr).toBe(0);
    const started =
      /^feed microsoft: fix-up rollout (microsoft-now-\d{14}) started for 1 server \(emergency waves\); follow it with: emfleet rollout show \1$/m.exec(
        blocked.stdout,
      );
    expect(started, blocked.stdout).not.toBeNull();
    expect(blocked.stdout).toMatch(/^feed contoso: nothing to fix up/m);
    const { state, waves } = await readRollout(fresh.tables, started![1]!);
    expect(state).toMatchObject({ feed: 'microsoft', operation: 'apply', state: 'Running' });
    expect(waves.map((wave) => [wave.name, wave.servers])).toEqual([
      ['canary', 0],
      ['all', 1],
    ]);

    // The org-wide block while that fix-up runs: the feed is busy, and it says so instead of piling up.
    const busy = await call(
      postPolicy,
      deps,
      request('POST', 'policy/block', {
        params: { action: 'block' },
        ...body({ scope: 'org', ids: ['EM3'], now: true }),
      }),
    );
    expect(busy.body.fixUps).toEqual([
      { feed: 'microsoft', kind: 'busy', busyRolloutId: started![1] },
      { feed: 'contoso', kind: 'nothingToDo' },
    ]);
    const status = await call(getStatus, deps, request('GET', 'status'));
    expect(status.body.rolloutsInFlight.map((rollout: { id: string }) => rollout.id)).toEqual([started![1]]);
    // Each mitigation the aborted rollouts apply is held, one hold per feed and mitigation.
    expect(
      status.body.feeds.map((feed: { held: { mitigation: string; rolloutId: string }[] }) =>
        feed.held.map((hold) => `${hold.mitigation} ${hold.rolloutId}`).sort(),
      ),
    ).toEqual([
      [
        'EM1 microsoft-000001-apply',
        'EM2 microsoft-000001-apply',
        'EM3 microsoft-000001-apply',
        'PING1 microsoft-000001-apply',
      ],
      ['CX1 contoso-000001-apply'],
    ]);
  });

  it.each([
    {
      name: 'an unknown action',
      params: { action: 'delete' },
      payload: { scope: 'org', ids: ['EM1'] },
      status: 400,
    },
    {
      name: 'a server scope without a server',
      params: { action: 'block' },
      payload: { scope: 'server', ids: ['EM1'] },
      status: 400,
    },
    { name: 'a block without ids', params: { action: 'block' }, payload: { scope: 'org' }, status: 400 },
    { name: 'a set with nothing to set', params: { action: 'set' }, payload: { scope: 'org' }, status: 400 },
    {
      name: 'an unknown server',
      params: { action: 'block' },
      payload: { scope: 'server', server: 'ex99.contoso.com', ids: ['EM1'] },
      status: 404,
    },
  ])('POST /api/policy answers $status for $name and writes nothing', async ({ params, payload, status }) => {
    const before = (await allEntities(rawTable(fresh.prefix, 'Audit'))).length;
    expect(
      (await call(postPolicy, deps, request('POST', `policy/${params.action}`, { params, ...body(payload) })))
        .status,
    ).toBe(status);
    expect((await allEntities(rawTable(fresh.prefix, 'Audit'))).length).toBe(before);
  });
});
