import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as functions from '../../functions/adminApi.js';
import * as api from '../../lib/admin/api.js';
import {
  getRollout,
  getRollouts,
  getServers,
  getStatus,
  maxServersPerPage,
  postConnectivity,
  postFeedAccept,
  postRolloutAction,
  type AdminDeps,
  type AdminHandler,
} from '../../lib/admin/api.js';
import { upsertAction, writeInTransactions } from '../../lib/fleet/batch.js';
import { updateFeedState } from '../../lib/fleet/feeds.js';
import { storePackage } from '../../lib/fleet/packages.js';
import { registerServer } from '../../lib/fleet/servers.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { EmfleetError } from '../../lib/errors.js';
import { isReasonCode } from '../../lib/model/reasons.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { defaultWaves } from '../../lib/model/waves.js';
import { appRoles } from '../../lib/admin/auth.js';
import {
  adminDeps as sharedAdminDeps,
  adminLogLines,
  adminRequest as request,
  call,
  org,
  principalHeaderValue,
  testFunctionKey,
  pollAs,
  registerLab01Reporting,
} from '../helpers/admin.js';
import { relayRules, relayWithClient, runAgent, writeAgentConfig } from '../helpers/agents.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

let pki: TestPki;

/** The handlers' dependencies, trusting this file's test PKI. */
const adminDeps = (
  fresh: { tables: FleetTables; prefix: string },
  settings: Record<string, string> = {},
): AdminDeps => sharedAdminDeps(fresh, pki.root.certificatePem, settings);

beforeAll(async () => {
  pki = await createTestPki();
});

describe('functions/adminApi', () => {
  it("registers one route per endpoint of DESIGN §10 and the dashboard's reads, each behind a function key", () => {
    expect(
      Object.fromEntries(
        Object.values(functions).map(({ kind, name, options }) => [
          name,
          [kind, options.methods, options.route, options.authLevel],
        ]),
      ),
    ).toEqual({
      adminStatus: ['http', ['GET'], 'status', 'function'],
      adminServers: ['http', ['GET'], 'servers', 'function'],
      adminServer: ['http', ['GET'], 'servers/{name}', 'function'],
      adminRollouts: ['http', ['GET'], 'rollouts', 'function'],
      adminRollout: ['http', ['GET'], 'rollouts/{id}', 'function'],
      adminRolloutAction: ['http', ['POST'], 'rollouts/{id}/{action}', 'function'],
      adminReconcile: ['http', ['POST'], 'reconcile', 'function'],
      adminConnectivity: ['http', ['POST'], 'connectivity', 'function'],
      adminOverview: ['http', ['GET'], 'overview', 'function'],
      adminGrid: ['http', ['GET'], 'grid', 'function'],
      adminPolicy: ['http', ['GET'], 'policy', 'function'],
      adminPoll: ['http', ['POST'], 'poll', 'function'],
      adminPackage: ['http', ['GET'], 'packages/{feed}', 'function'],
      adminPlan: ['http', ['GET'], 'plan', 'function'],
      adminExplain: ['http', ['GET'], 'explain', 'function'],
      adminPolicyEdit: ['http', ['POST'], 'policy/{action}', 'function'],
      adminFeedAccept: ['http', ['POST'], 'feeds/{feed}/accept', 'function'],
    });
  });
});

describe('a storage failure', () => {
  it('is a 500 with what went wrong, and logged', async () => {
    const errors: unknown[] = [];
    const broken = {
      client: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:10002')),
    } as unknown as FleetTables;
    const deps = {
      ...adminDeps(freshTables()),
      tables: broken,
      logger: {
        ...silentLogger,
        error: (event: string, fields?: Record<string, unknown>) => void errors.push({ event, ...fields }),
      },
    };
    expect(await call(getRollouts, deps, request('GET', 'rollouts'))).toEqual({
      status: 500,
      body: { code: 'InternalError', detail: 'connect ECONNREFUSED 127.0.0.1:10002' },
    });
    // The function key the caller put in the query is masked (it was logged as it came before).
    expect(errors).toEqual([
      {
        event: 'AdminRequestFailed',
        method: 'GET',
        url: 'http://127.0.0.1:7071/api/rollouts?code=***',
        reasonCode: 'InternalError',
        reasonDetail: 'connect ECONNREFUSED 127.0.0.1:10002',
      },
    ]);
  });

  it.each([
    {
      name: "a failure's error code is the problem's code",
      error: new EmfleetError('Conflict', 'Rollouts row (r1, state) kept changing under 25 attempts'),
      body: { code: 'Conflict', detail: 'Rollouts row (r1, state) kept changing under 25 attempts' },
    },
    {
      name: "a failure whose code is the catalogue's answers with it",
      error: new EmfleetError('NoPackage', 'no package has been accepted from the microsoft feed yet'),
      body: { code: 'NoPackage', detail: 'no package has been accepted from the microsoft feed yet' },
    },
  ])('$name: the problem JSON code is always a catalogue code', async ({ error, body }) => {
    const deps = {
      ...adminDeps(freshTables()),
      tables: { client: () => Promise.reject(error) } as unknown as FleetTables,
    };
    const answer = await call(getRollouts, deps, request('GET', 'rollouts'));
    expect(answer).toEqual({ status: 500, body });
    expect(isReasonCode(answer.body.code)).toBe(true);
  });
});

describe('a fleet with a rollout under way', () => {
  const fresh = freshTables();
  let deps: AdminDeps;
  let id: string;

  beforeAll(async () => {
    deps = adminDeps(fresh, {
      EMFLEET_FEEDS: JSON.stringify([
        {
          name: 'contoso',
          url: 'https://mitigations.contoso.com/feed',
          trustAnchors: 'contoso-root.pem',
          signerSubject: 'Contoso Mitigations',
          signerEku: '1.3.6.1.5.5.7.3.3',
        },
      ]),
    });
    for (let index = 1; index <= 12; index++) {
      await registerServer(
        fresh.tables,
        org,
        {
          name: `ex${String(index).padStart(2, '0')}.contoso.com`,
          build: '15.2.1118.7',
          ring: index <= 2 ? 'canary' : 'broad',
          site: 'HQ',
        },
        { actor: 'test' },
      );
    }
    // lab01's agent reports a later build than was registered.
    await registerLab01Reporting(fresh.tables, '15.2.1544.4');
    const poll = pollAs(deps, fresh.tables, pki.trust);
    const accepted = await poll(pki.sign(catalogueXml));
    if (accepted.kind !== 'accepted') throw new Error(JSON.stringify(accepted));
    id = accepted.rollouts[0]!;
    const rejected = await poll(pki.sign(catalogueXml).replace('MSExchangeUM', 'MSExchangeIS'));
    if (rejected.kind !== 'rejected') throw new Error(JSON.stringify(rejected));
  });

  it('GET /api/status: each feed with its polling and current package, servers and rollouts counted', async () => {
    const { status, body } = await call(getStatus, deps, request('GET', 'status'));
    expect(status).toBe(200);
    expect(body.org).toBe(org);
    expect(body.feeds).toHaveLength(2);
    const [microsoft, contoso] = body.feeds;
    expect(microsoft).toMatchObject({
      name: 'microsoft',
      url: 'https://officeclient.microsoft.com/getexchangemitigations',
      lastPollAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      lastSuccessAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      lastErrorAt: null,
      lastError: null,
      lastPollResult: 'Rejected',
      lastRejected: {
        at: expect.stringMatching(/^\d{4}-/),
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        reasonCode: 'BadSignature',
        reasonDetail: expect.any(String),
      },
      package: {
        sequence: 1,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        signingTime: expect.stringMatching(/^\d{4}-/),
        acceptedAt: expect.stringMatching(/^\d{4}-/),
        mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
        signer: expect.objectContaining({ subject: 'CN=Microsoft Exchange XML Signing' }),
        verifyProblem: null,
      },
      frozen: null,
      held: [],
    });
    expect(microsoft.lastRejected.sha256).not.toBe(microsoft.package.sha256);
    expect(contoso).toMatchObject({
      name: 'contoso',
      url: 'https://mitigations.contoso.com/feed',
      problem: expect.any(String),
      lastPollAt: null,
      lastRejected: null,
      package: null,
      frozen: null,
      held: [],
    });
    expect(body.servers).toMatchObject({
      total: 13,
      invalidRows: 0,
      byRing: { canary: 2, broad: 10, '(none)': 1 },
      byOutcome: { NoResult: 52 },
      buildMismatchCount: 1,
      silentAgentCount: 12,
    });
    // lab01's agent has answered (lastSeen, a reported build): the one server not silent, the one mismatch.
    expect(body.servers.buildMismatches).toEqual([
      { server: 'lab01.contoso.com', registered: '15.2.1118.7', reported: '15.2.1544.4' },
    ]);
    expect(body.rollouts).toEqual({
      total: 1,
      byState: { Planned: 0, Running: 1, Baking: 0, Paused: 0, Halted: 0, Aborted: 0, Completed: 0 },
    });
    expect(body.rolloutsInFlight).toEqual([
      expect.objectContaining({
        id,
        state: 'Running',
        waves: [
          expect.objectContaining({ name: 'canary', servers: 2, pending: 2, phase: 'Current' }),
          expect.anything(),
          expect.anything(),
        ],
      }),
    ]);
  });

  it('GET /api/rollouts lists the rollout; GET /api/rollouts/{id} shows it with its waves', async () => {
    const list = await call(getRollouts, deps, request('GET', 'rollouts'));
    expect(list.status).toBe(200);
    expect(list.body.rollouts).toEqual([
      expect.objectContaining({
        id,
        feed: 'microsoft',
        packageSequence: 1,
        operation: 'apply',
        state: 'Running',
        currentWave: 0,
        waveCount: 3,
        profile: 'default',
      }),
    ]);

    const shown = await call(getRollout, deps, request('GET', `rollouts/${id}`, { params: { id } }));
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ id, state: 'Running', reasonCode: '', reasonDetail: '' });
    expect(
      shown.body.waves.map((wave: { name: string; servers: number }) => [wave.name, wave.servers]),
    ).toEqual([
      ['canary', 2],
      ['early', 1],
      ['broad', 10],
    ]);
    for (const wave of shown.body.waves) {
      expect(wave).toMatchObject({ succeeded: 0, failed: 0, skipped: 0, failedServers: [] });
      expect(wave).not.toHaveProperty('counted');
    }
  });

  it.each([
    {
      name: 'an unknown rollout',
      id: 'microsoft-999999-apply',
      status: 404,
      code: 'RolloutNotFound',
      detail: /no rollout "microsoft-999999-apply"/,
    },
    {
      name: 'an id the engine cannot hold',
      id: 'bad id/..',
      status: 400,
      code: 'InvalidRoute',
      detail: /^route id: /,
    },
  ])('GET /api/rollouts/{id} answers $status for $name', async ({ id: asked, status, code, detail }) => {
    const answer = await call(
      getRollout,
      deps,
      request('GET', `rollouts/${encodeURIComponent(asked)}`, { params: { id: asked } }),
    );
    expect(answer).toEqual({ status, body: { code, detail: expect.stringMatching(detail) } });
  });

  it('POST /api/rollouts/{id}/{action}: each action moves the state, a refusal is 409, and the audit names the signed-in user or the function key', async () => {
    const localDeps = { ...deps, config: { ...deps.config, adminAuth: 'functionKey' as const } };
    const act = (action: string, headers?: Record<string, string>) =>
      headers
        ? call(
            postRolloutAction,
            deps,
            request('POST', `rollouts/${id}/${action}`, { params: { id, action }, headers }),
          )
        : call(
            postRolloutAction,
            localDeps,
            request('POST', `rollouts/${id}/${action}`, { params: { id, action }, signedIn: false }),
          );
    const signedIn = (name: string) => ({
      'x-ms-client-principal': principalHeaderValue({ name, roles: [appRoles.Operator] }),
    });
    const alice = signedIn('alice@contoso.com');

    expect(await act('pause', alice)).toEqual({
      status: 200,
      body: {
        ok: true,
        rolloutId: id,
        state: 'Paused',
        reasonCode: 'PausedByAdmin',
        reasonDetail: 'by alice@contoso.com',
      },
    });
    const again = await act('pause', alice);
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      code: 'Refused',
      detail: expect.stringMatching(/^pause refused: already paused/),
      ok: false,
      rolloutId: id,
      state: 'Paused',
      // One name for the refusal: the API's code, the JSON's reasonCode, the log's and Audit's.
      reasonCode: 'Refused',
      reasonDetail: again.body.detail,
    });
    expect(await act('resume')).toEqual({
      status: 200,
      body: {
        ok: true,
        rolloutId: id,
        state: 'Running',
        reasonCode: 'ResumedByAdmin',
        reasonDetail: 'by function-key',
      },
    });
    expect(await act('expedite', alice)).toEqual({
      status: 200,
      body: {
        ok: true,
        rolloutId: id,
        state: 'Running',
        reasonCode: 'ExpeditedByAdmin',
        reasonDetail: 'by alice@contoso.com',
      },
    });
    expect(await act('abort', signedIn('bob@contoso.com'))).toEqual({
      status: 200,
      body: {
        ok: true,
        rolloutId: id,
        state: 'Aborted',
        reasonCode: 'AbortedByAdmin',
        reasonDetail: 'by bob@contoso.com',
      },
    });
    expect((await act('resume')).body.detail).toMatch(/^resume refused: the rollout has ended/);

    const audit = (await allEntities(rawTable(fresh.prefix, 'Audit'))).filter((row) =>
      String(row['action']).startsWith('rollout.'),
    );
    expect(audit.map((row) => [row['action'], row['actor']]).sort()).toEqual([
      ['rollout.abort', 'bob@contoso.com'],
      ['rollout.expedite', 'alice@contoso.com'],
      ['rollout.pause', 'alice@contoso.com'],
      ['rollout.pause', 'alice@contoso.com'],
      ['rollout.resume', 'function-key'],
      ['rollout.resume', 'function-key'],
    ]);
    expect(
      (await call(getRollout, deps, request('GET', `rollouts/${id}`, { params: { id } }))).body,
    ).toMatchObject({ state: 'Aborted', profile: 'emergency' });
  });

  it.each<{
    name: string;
    params: { id: string; action: string };
    headers: Record<string, string>;
    status: number;
    code: string;
    detail: unknown;
  }>([
    {
      name: 'an unknown action',
      params: { id: 'microsoft-000001-apply', action: 'delete' },
      headers: {},
      status: 400,
      code: 'InvalidRoute',
      detail: 'route action: must be one of pause, resume, abort, expedite, retry',
    },
    {
      name: 'a bad rollout id',
      params: { id: 'a b', action: 'pause' },
      headers: {},
      status: 400,
      code: 'InvalidRoute',
      detail: expect.stringMatching(/^route id: /),
    },
    {
      name: "a principal header that is not the platform's",
      params: { id: 'microsoft-000001-apply', action: 'pause' },
      headers: { 'x-ms-client-principal': 'not base64 JSON' },
      status: 401,
      code: 'Unauthenticated',
      detail: expect.stringMatching(/^the x-ms-client-principal header is not/),
    },
    {
      name: 'a reader',
      params: { id: 'microsoft-000001-apply', action: 'pause' },
      headers: {
        'x-ms-client-principal': principalHeaderValue({ name: 'rita@contoso.com', roles: [appRoles.Reader] }),
      },
      status: 403,
      code: 'Forbidden',
      detail: expect.stringMatching(
        /^rita@contoso\.com needs the app role emfleet\.Operator; it has emfleet\.Reader/,
      ),
    },
    {
      name: 'an unknown rollout',
      params: { id: 'microsoft-000077-apply', action: 'pause' },
      headers: {},
      status: 404,
      code: 'RolloutNotFound',
      detail: 'no rollout "microsoft-000077-apply"',
    },
  ])(
    'POST /api/rollouts/{id}/{action} answers $status for $name and changes nothing',
    async ({ params, headers, status, code, detail }) => {
      const before = await allEntities(rawTable(fresh.prefix, 'Audit'));
      expect(
        await call(
          postRolloutAction,
          deps,
          request('POST', `rollouts/${params.id}/${params.action}`, { params, headers }),
        ),
      ).toEqual({ status, body: { code, detail } });
      expect(await allEntities(rawTable(fresh.prefix, 'Audit'))).toHaveLength(before.length);
    },
  );
});

describe('GET /api/status with frozen feeds', () => {
  it('shows each frozen feed with why and since when, also one gone from the settings; a retired feed is not shown', async () => {
    const fresh = freshTables();
    const deps = adminDeps(fresh);
    for (const feed of ['microsoft', 'gone', 'retired'])
      await storePackage(fresh.tables, {
        feed,
        bytes: Buffer.from(pki.sign(catalogueXml)),
        mitigationIds: ['PING1'],
      });
    const since = new Date('2026-12-07T10:30:00Z');
    await updateFeedState(fresh.tables, 'microsoft', () => ({
      frozenAt: since,
      frozenReason: 'Revoked',
      frozenDetail: 'serial 01 is revoked',
    }));
    await updateFeedState(fresh.tables, 'gone', () => ({
      frozenAt: since,
      frozenReason: 'NotConfigured',
      frozenDetail: 'gone is not in EMFLEET_OCS_URL or EMFLEET_FEEDS',
    }));
    const { status, body } = await call(getStatus, deps, request('GET', 'status'));
    expect(status).toBe(200);
    expect(
      body.feeds.map((feed: { name: string; url: string; frozen: unknown }) => [
        feed.name,
        feed.url,
        feed.frozen,
      ]),
    ).toEqual([
      [
        'microsoft',
        deps.config.ocsUrl,
        { since: since.toISOString(), reasonCode: 'Revoked', reasonDetail: 'serial 01 is revoked' },
      ],
      [
        'gone',
        '',
        {
          since: since.toISOString(),
          reasonCode: 'NotConfigured',
          reasonDetail: 'gone is not in EMFLEET_OCS_URL or EMFLEET_FEEDS',
        },
      ],
    ]);
  });
});

describe('GET /api/servers over a 2,500-server fleet', () => {
  const fresh = freshTables();
  let deps: AdminDeps;
  const name = (index: number): string => `ex${String(index).padStart(5, '0')}.contoso.com`;

  beforeAll(async () => {
    deps = adminDeps(fresh);
    const rows = Array.from({ length: 2500 }, (_, index) => ({
      partitionKey: org,
      rowKey: name(index),
      fqdn: name(index),
      build: '15.2.1544.4',
      ring: index % 10 === 0 ? 'canary' : 'broad',
      site: index % 2 === 0 ? 'HQ' : 'DR',
      relayHybridConnection: name(index),
      relayPath: '',
      lastSeen: new Date(Date.UTC(2025, 0, 1)),
      reportedApplied: JSON.stringify(index < 5 ? ['EM1'] : []),
    }));
    // A row edited by hand into something invalid is reported, never served.
    rows.push({ ...rows[1]!, rowKey: 'zz-broken.contoso.com', build: 'not a build' });
    await writeInTransactions(await fresh.tables.client('Servers'), rows.map(upsertAction));
  });

  async function page(query: string): Promise<{ status: number; body: any }> {
    return call(getServers, deps, request('GET', `servers${query}`));
  }

  /** Follows the continuation tokens to the end; returns every page. */
  async function allPages(query: string): Promise<
    {
      servers: { name: string; ring: string; site: string }[];
      continuationToken: string | null;
      problems: unknown[];
    }[]
  > {
    const pages = [];
    let token: string | null = null;
    do {
      const answer = await page(`?${query}${token === null ? '' : `&continuationToken=${token}`}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      pages.push(answer.body);
      token = answer.body.continuationToken;
    } while (token !== null && pages.length < 20);
    return pages;
  }

  it('serves at most 1,000 servers a page, in name order, with a token for the next page', async () => {
    const pages = await allPages('');
    expect(pages.map((each) => each.servers.length)).toEqual([maxServersPerPage, maxServersPerPage, 500]);
    expect(pages.map((each) => each.continuationToken === null)).toEqual([false, false, true]);
    // base64url: usable in a query string as it is.
    expect(pages[0]!.continuationToken).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(pages[0]!.servers).toHaveLength(maxServersPerPage);
    expect(pages.flatMap((each) => each.servers.map((server) => server.name))).toEqual(
      Array.from({ length: 2500 }, (_, index) => name(index)),
    );
    expect(pages.flatMap((each) => each.problems)).toEqual([
      expect.objectContaining({ table: 'Servers', rowKey: 'zz-broken.contoso.com', field: 'build' }),
    ]);
  });

  it('shows build, ring, site, last seen and what the agent reported', async () => {
    const { body } = await page('?top=1');
    expect(body.servers).toEqual([
      {
        name: name(0),
        fqdn: name(0),
        build: '15.2.1544.4',
        registeredBuild: '',
        buildMismatch: null,
        site: 'HQ',
        ring: 'canary',
        relayHybridConnection: name(0),
        relayPath: '',
        agentVersion: '',
        lastSeen: '2025-01-01T00:00:00.000Z',
        reportedApplied: ['EM1'],
        reportedBlocked: [],
      },
    ]);
  });

  it('takes a smaller page size with top, and gives no token once nothing is left', async () => {
    expect((await allPages('top=700')).map((each) => each.servers.length)).toEqual([700, 700, 700, 400]);
    expect(
      (await allPages('ring=canary&top=125')).map((each) => [
        each.servers.length,
        each.continuationToken === null,
      ]),
    ).toEqual([
      [125, false],
      [125, true],
    ]);
  });

  it.each([
    {
      name: 'ring',
      query: 'ring=canary',
      count: 250,
      check: (server: { ring: string }) => server.ring === 'canary',
    },
    { name: 'ring and site', query: 'ring=canary&site=DR', count: 0, check: () => false },
    {
      name: 'site',
      query: 'site=DR&top=1000',
      count: 1250,
      check: (server: { site: string }) => server.site === 'DR',
    },
    {
      name: 'search, in any case',
      query: 'search=EX0012',
      count: 10,
      check: (server: { name: string }) => server.name.includes('ex0012'),
    },
  ])('filters by $name', async ({ query, count, check }) => {
    const servers = (await allPages(query)).flatMap((each) => each.servers);
    expect(servers).toHaveLength(count);
    expect(servers.every(check)).toBe(true);
  });

  it('fills a page of a search from as many Tables pages as it takes, never more than top, and resumes after it', async () => {
    const pages = await allPages('search=ex0012&top=4');
    expect(pages.map((each) => each.servers.length)).toEqual([4, 4, 2]);
    expect(pages.flatMap((each) => each.servers.map((server) => server.name))).toEqual(
      Array.from({ length: 10 }, (_, index) => name(120 + index)),
    );
  });

  it.each([
    { name: 'a page of none', query: '?top=0', detail: /^query top: / },
    { name: 'a page over 1,000', query: '?top=1001', detail: /^query top: / },
    { name: 'a page size that is not a number', query: '?top=many', detail: /^query top: / },
    { name: 'a ring name with spaces', query: '?ring=no%20such', detail: /^query ring: / },
    {
      name: 'a made-up token',
      query: '?continuationToken=not-a-token',
      detail: /^query continuationToken: is not a token from a previous page$/,
    },
  ])('answers 400 for $name', async ({ query, detail }) => {
    expect(await page(query)).toEqual({
      status: 400,
      body: { code: 'InvalidQuery', detail: expect.stringMatching(detail) },
    });
  });
});

describe('POST /api/connectivity', () => {
  const fresh = freshTables();
  let deps: AdminDeps;
  let feedServer: http.Server;
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const signed = pki.sign(catalogueXml);
    feedServer = http.createServer(
      (_request, response) => void response.writeHead(200, { 'content-type': 'application/xml' }).end(signed),
    );
    feedServer.listen(0, '127.0.0.1');
    await once(feedServer, 'listening');
    const { relay, stop } = await relayWithClient();
    stops.push(stop);
    const agent = await runAgent((await writeAgentConfig(relay, pki, { server: 'ex01.contoso.com' })).config);
    stops.unshift(() => agent.close());
    deps = adminDeps(fresh, {
      EMFLEET_OCS_URL: `http://127.0.0.1:${(feedServer.address() as AddressInfo).port}/getexchangemitigations`,
      EMFLEET_RELAY_ENDPOINT: relay.baseUrl,
      EMFLEET_RELAY_SEND_KEY_NAME: relayRules.send.keyName,
      EMFLEET_RELAY_SEND_KEY: relayRules.send.key,
    });
    await registerServer(
      fresh.tables,
      org,
      { name: 'ex01.contoso.com', build: '15.2.1118.7', relayHybridConnection: 'ex01' },
      { actor: 'test' },
    );
    await registerServer(
      fresh.tables,
      org,
      { name: 'ex02.contoso.com', build: '15.2.1118.7', relayHybridConnection: 'ex02' },
      { actor: 'test' },
    );
  });

  afterAll(async () => {
    for (const stop of stops) await stop();
    feedServer?.closeAllConnections();
    feedServer?.close();
  });

  const connectivity = (body?: string) =>
    call(postConnectivity, deps, request('POST', 'connectivity', body === undefined ? {} : { body }));

  it('runs the checks of emfleet test-connectivity for one server', async () => {
    const { status, body } = await connectivity(JSON.stringify({ server: 'EX01.contoso.com' }));
    expect(status).toBe(200);
    expect(body).toEqual({
      ok: true,
      checks: [
        {
          name: expect.stringMatching(
            /^OCS reachable over HTTPS \(http:\/\/127\.0\.0\.1:\d+\/getexchangemitigations\)$/,
          ),
          result: 'Success',
          detail: expect.stringMatching(/^\d+ bytes$/),
          // Run inside the function app: the message says so.
          message: expect.stringMatching(
            /^The Mitigation Service endpoint http:\/\/127\.0\.0\.1:\d+\/getexchangemitigations is accessible from the function app \(\d+ bytes\)\.$/,
          ),
        },
        {
          name: 'The mitigation package verifies',
          result: 'Success',
          detail: expect.stringMatching(/^4 mitigations \(PING1, EM1, EM2, EM3\) signed by /),
          message: expect.stringMatching(/verifies against the configured trust/),
        },
        {
          name: 'Agent answers through Azure Relay',
          server: 'ex01.contoso.com',
          hybridConnection: expect.any(String),
          result: 'Success',
          detail: expect.stringMatching(/^ex01\.contoso\.com, build 15\.2\.1118\.7, agent /),
          message: expect.stringMatching(
            /^The emfleet agent of ex01\.contoso\.com \(hybrid connection .*\) answered through Azure Relay from the function app: /,
          ),
        },
      ],
    });
  });

  it('pings every registered server without a body; one that does not answer makes ok false', async () => {
    const { status, body } = await connectivity();
    expect(status).toBe(200);
    expect(body.ok).toBe(false);
    const agents = body.checks.filter((check: { server?: string }) => check.server !== undefined);
    expect(
      agents.map((check: { server: string; result: string }) => [check.server, check.result]).sort(),
    ).toEqual([
      ['ex01.contoso.com', 'Success'],
      ['ex02.contoso.com', 'Failed'],
    ]);
  });

  it.each([
    {
      name: 'an unknown server',
      body: JSON.stringify({ server: 'ex99.contoso.com' }),
      status: 404,
      code: 'ServerNotFound',
      detail: /no server "ex99\.contoso\.com"/,
    },
    {
      name: 'a server name that cannot be one',
      body: JSON.stringify({ server: 'ex 01' }),
      status: 400,
      code: 'InvalidBody',
      detail: /^body server: /,
    },
    {
      name: 'an unknown field',
      body: JSON.stringify({ servers: ['ex01'] }),
      status: 400,
      code: 'InvalidBody',
      detail: /^body: .*servers/,
    },
    {
      name: 'a body that is not JSON',
      body: 'server=ex01',
      status: 400,
      code: 'InvalidBody',
      detail: /^body: is not valid JSON$/,
    },
  ])('answers $status for $name', async ({ body, status, code, detail }) => {
    expect(await connectivity(body)).toEqual({
      status,
      body: { code, detail: expect.stringMatching(detail) },
    });
  });
});

describe('the Entra gate: every route checks the app role it needs', () => {
  const handlers = Object.entries(api).filter(
    (entry): entry is [string, AdminHandler] => typeof entry[1] === 'function' && 'role' in entry[1],
  );
  const fresh = freshTables();
  let deps: AdminDeps;
  beforeAll(() => {
    deps = adminDeps(fresh);
  });
  const reader = {
    'x-ms-client-principal': principalHeaderValue({
      name: 'rita@contoso.com',
      objectId: '1111',
      roles: [appRoles.Reader],
    }),
  };

  it('reads need emfleet.Reader (or Operator); every change needs emfleet.Operator', () => {
    expect(Object.fromEntries(handlers.map(([name, handler]) => [name, handler.role]))).toEqual({
      getStatus: 'Reader',
      getServers: 'Reader',
      getRollouts: 'Reader',
      getRollout: 'Reader',
      getOverview: 'Reader',
      getGrid: 'Reader',
      getPolicy: 'Reader',
      getServerView: 'Reader',
      getPackage: 'Reader',
      getPlan: 'Reader',
      getExplain: 'Reader',
      postPoll: 'Operator',
      postPolicy: 'Operator',
      postRolloutAction: 'Operator',
      postFeedAccept: 'Operator',
      postReconcile: 'Operator',
      postConnectivity: 'Operator',
    });
  });

  it.each(handlers.map(([name, handler]) => ({ name, handler })))(
    '$name: 401 without a sign-in (the function key alone), 403 for a principal without the role',
    async ({ handler }) => {
      const method = handler.role === 'Reader' ? 'GET' : 'POST';
      const params = { id: 'microsoft-000001-apply', action: 'pause', feed: 'microsoft' };
      expect(await call(handler, deps, request(method, 'x', { params, signedIn: false }))).toEqual({
        status: 401,
        body: { code: 'Unauthenticated', detail: expect.stringMatching(/needs a Microsoft Entra sign-in/) },
      });
      const nobody = {
        'x-ms-client-principal': principalHeaderValue({
          name: 'mallory@contoso.com',
          roles: ['SomeOtherApp.Admin'],
        }),
      };
      expect(await call(handler, deps, request(method, 'x', { params, headers: nobody }))).toMatchObject({
        status: 403,
        body: { code: 'Forbidden' },
      });
      const asReader = await call(handler, deps, request(method, 'x', { params, headers: reader }));
      if (handler.role === 'Operator')
        expect(asReader).toEqual({
          status: 403,
          body: {
            code: 'Forbidden',
            detail: expect.stringMatching(
              /^rita@contoso\.com \(oid 1111\) needs the app role emfleet\.Operator; it has emfleet\.Reader/,
            ),
          },
        });
      else expect(asReader.status).not.toBe(403);
    },
  );

  it('lets the function key alone through only where EMFLEET_ADMIN_AUTH=functionKey (local runs)', async () => {
    const local = adminDeps(fresh, { EMFLEET_ADMIN_AUTH: 'functionKey' });
    expect((await call(getStatus, local, request('GET', 'status', { signedIn: false }))).status).toBe(200);
    expect(deps.config.adminAuth).toBe('entra');
  });
});

describe('POST /api/feeds/{feed}/accept', () => {
  it('approves the held package as the signed-in operator (audited), polls, and rolls it out; 409 for a SHA-256 not held, 404 for an unknown feed', async () => {
    const fresh = freshTables();
    let body = pki.signUntimed(catalogueXml);
    const ocs = http.createServer((_request, response) => void response.writeHead(200).end(body));
    ocs.listen(0, '127.0.0.1');
    await once(ocs, 'listening');
    try {
      const url = `http://127.0.0.1:${(ocs.address() as AddressInfo).port}/getexchangemitigations`;
      const deps = adminDeps(fresh, { EMFLEET_OCS_URL: url });
      const poll = () =>
        pollFeed(
          { tables: fresh.tables, queues: deps.queues, org, waves: defaultWaves, logger: silentLogger },
          { name: 'microsoft', url, trust: pki.trust },
        );
      expect(await poll()).toMatchObject({ kind: 'accepted' });
      body = pki.signUntimed(catalogueXml.replace(/\s*<Config id="EM3"[\s\S]*?<\/Config>/, ''));
      const held = await poll();
      if (held.kind !== 'held') throw new Error(JSON.stringify(held));
      const accept = (feed: string, sha256: string) =>
        call(
          postFeedAccept,
          deps,
          request('POST', `feeds/${feed}/accept`, {
            params: { feed },
            headers: {
              'x-ms-client-principal': principalHeaderValue({
                name: 'olga@contoso.com',
                objectId: '2222',
                roles: [appRoles.Operator],
              }),
            },
            body: JSON.stringify({ sha256 }),
          }),
        );
      expect(await accept('microsoft', 'b'.repeat(64))).toEqual({
        status: 409,
        body: { code: 'NotHeld', detail: expect.stringContaining(`the package held is ${held.sha256}`) },
      });
      expect(await accept('nosuch', held.sha256)).toEqual({
        status: 404,
        body: { code: 'UnknownFeed', detail: 'no feed named nosuch in the settings' },
      });
      expect(await accept('microsoft', 'xyz')).toMatchObject({ status: 400, body: { code: 'InvalidBody' } });
      const accepted = await accept('microsoft', held.sha256.toUpperCase());
      expect(accepted).toMatchObject({
        status: 200,
        body: {
          feed: 'microsoft',
          sha256: held.sha256,
          approvedBy: 'olga@contoso.com (oid 2222)',
          outcome: { kind: 'accepted', sequence: 2, diff: { withdrawn: ['EM3'] } },
        },
      });
      const audit = await allEntities(rawTable(fresh.prefix, 'Audit'));
      expect(audit.filter((row) => row['action'] === 'package.approved').map((row) => row['actor'])).toEqual([
        'olga@contoso.com (oid 2222)',
      ]);
    } finally {
      ocs.closeAllConnections();
      ocs.close();
    }
  });
});

describe("the admin tests' logs", () => {
  it('never hold the function key, though every request carried it in the query and a header', () => {
    expect(adminLogLines.length).toBeGreaterThan(0);
    expect(adminLogLines.filter((line) => line.includes(testFunctionKey))).toEqual([]);
    expect(adminLogLines.some((line) => line.includes('code=***'))).toBe(true);
  });
});
