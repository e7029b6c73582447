import type { TableClient } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import { getGrid, getOverview, getPolicy, postRolloutAction, type AdminDeps } from '../../lib/admin/api.js';
import { gridScanBudget } from '../../lib/dashboard/grid.js';
import type { GridCell, GridPage, Overview, PolicyView } from '../../lib/dashboard/types.js';
import { renderReason } from '../../lib/model/reasons.js';
import { upsertAction, writeInTransactions } from '../../lib/fleet/batch.js';
import { storePackage } from '../../lib/fleet/packages.js';
import { changePolicy, syncDeclaredPolicy } from '../../lib/fleet/policy.js';
import { upsertResults, type ResultRecord } from '../../lib/fleet/results.js';
import { registerServer } from '../../lib/fleet/servers.js';
import type { FleetTables, TableName } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { declaredLayers, parseDeclaredPolicy } from '../../lib/policy/declared.js';
import {
  adminDeps,
  adminLogLines,
  adminRequest,
  call,
  org,
  pollAs,
  registerLab01Reporting,
  testFunctionKey,
} from '../helpers/admin.js';
import { freshTables } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/*
 * The dashboard's reads (GET /api/overview, /api/grid, /api/policy) through their handlers, on
 * Azurite, over a small fleet that has one of everything the grid can show.
 */

let pki: TestPki;
const fqdn = (name: string): string => `${name}.contoso.com`;
const at = (minute: number): Date => new Date(Date.UTC(2026, 10, 1, 12, minute));

beforeAll(async () => {
  pki = await createTestPki();
});

const get = async <T>(
  handler: typeof getGrid,
  deps: AdminDeps,
  path: string,
): Promise<{ status: number; body: T }> => call(handler, deps, adminRequest('GET', path));

/** Outcome by server and mitigation: the grid as a matrix. */
const matrix = (page: GridPage): Record<string, Record<string, string>> =>
  Object.fromEntries(
    page.rows.map((row) => [
      row.server,
      Object.fromEntries(Object.entries(row.cells).map(([id, cell]) => [id, cell.outcome])),
    ]),
  );

describe('a fleet with results, policy from Bicep and Tables, and a rollout under way', () => {
  const fresh = freshTables();
  let deps: AdminDeps;
  let rolloutId: string;

  beforeAll(async () => {
    // The organization's own feed names an anchor file that is not there: misconfigured, never polled.
    deps = adminDeps(fresh, pki.root.certificatePem, {
      EMFLEET_FEEDS: JSON.stringify([
        {
          name: 'contoso',
          url: 'https://mitigations.contoso.com/feed',
          trustAnchors: 'missing-contoso-root.pem',
          signerSubject: 'Contoso Mitigations',
          signerEku: '1.3.6.1.5.5.7.3.3',
        },
      ]),
    });
    const servers = [
      { name: 'ex01', ring: 'canary', site: 'HQ', build: '15.2.1118.7' },
      { name: 'ex02', ring: 'broad', site: 'HQ', build: '15.2.1118.7' },
      { name: 'ex03', ring: 'broad', site: 'DC2', build: '15.2.1544.9' },
      { name: 'ex04', ring: 'broad', site: 'DC2', build: '15.2.1118.7' },
      { name: 'ex05', ring: 'broad', site: 'DC3', build: '15.1.2507.16' },
    ];
    for (const server of servers)
      await registerServer(fresh.tables, org, { ...server, name: fqdn(server.name) }, { actor: 'test' });
    // lab01's agent reports a later build than was registered: the grid shows both.
    await registerLab01Reporting(fresh.tables, '15.2.1118.9');

    const declared = parseDeclaredPolicy(
      JSON.stringify({
        org: { blockedMitigations: ['EM3'] },
        servers: { [fqdn('ex05')]: { blockedMitigations: ['PING1'], onDegraded: 'keep' } },
      }),
      'EMFLEET_POLICY',
    );
    if (!declared.ok) throw new Error(declared.error);
    await syncDeclaredPolicy(fresh.tables, org, declaredLayers(declared.policy), { actor: 'bicep' });
    await changePolicy(fresh.tables, { scope: 'org', name: org }, () => ({ mitigationsEnabled: true }), {
      actor: 'alice',
      action: 'policy.set',
    });
    await changePolicy(
      fresh.tables,
      { scope: 'server', name: fqdn('ex04') },
      () => ({ mitigationsEnabled: false }),
      { actor: 'alice', action: 'policy.set' },
    );

    const poll = pollAs(deps, fresh.tables, pki.trust);
    const accepted = await poll(pki.sign(catalogueXml));
    if (accepted.kind !== 'accepted') throw new Error(JSON.stringify(accepted));
    rolloutId = accepted.rollouts[0]!;
    const rejected = await poll(pki.sign(catalogueXml).replace('MSExchangeUM', 'MSExchangeIS'));
    if (rejected.kind !== 'rejected') throw new Error(JSON.stringify(rejected));

    const applied = { outcome: 'Applied' as const, detail: '' };
    const results: ResultRecord[] = [
      {
        server: fqdn('ex01'),
        operationId: 'op-1',
        rolloutId,
        operation: 'apply',
        status: 'Completed',
        outcomes: { PING1: applied, EM1: applied, EM2: applied, EM3: applied },
        at: at(1),
      },
      {
        server: fqdn('ex02'),
        operationId: 'op-2',
        rolloutId,
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM2: applied },
        at: at(1),
      },
      // A later operation failed there; the grid shows the latest completed result.
      {
        server: fqdn('ex02'),
        operationId: 'op-3',
        rolloutId,
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM2: { outcome: 'Failed', detail: 'MSExchangeOWAAppPool did not stop' } },
        at: at(2),
      },
      // Still running: not a result yet.
      {
        server: fqdn('ex02'),
        operationId: 'op-4',
        rolloutId,
        operation: 'apply',
        status: 'InProgress',
        outcomes: { EM2: applied },
        at: at(3),
      },
    ];
    await upsertResults(fresh.tables, results);
  });

  describe('GET /api/overview', () => {
    it('shows each feed: the last poll and its result, the current package with its signer, the last rejection with its code', async () => {
      const { status, body } = await get<Overview>(getOverview, deps, 'overview');
      expect(status).toBe(200);
      expect(body.org).toBe(org);
      const [microsoft, contoso] = body.feeds;
      expect(microsoft).toMatchObject({
        name: 'microsoft',
        problem: null,
        lastPollAt: expect.stringMatching(/^\d{4}-/),
        lastPollResult: 'Rejected',
        package: {
          sequence: 1,
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          signingTime: expect.stringMatching(/^\d{4}-/),
          mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
          signer: {
            subject: 'CN=Microsoft Exchange XML Signing',
            issuer: expect.stringContaining('emfleet Test Intermediate CA'),
            serialNumber: expect.any(String),
            sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          },
          verifyProblem: null,
        },
        lastRejected: {
          at: expect.stringMatching(/^\d{4}-/),
          sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
          reasonCode: 'BadSignature',
          reasonDetail: expect.not.stringMatching(/^BadSignature/),
        },
      });
      expect(microsoft!.lastRejected!.sha256).not.toBe(microsoft!.package!.sha256);
      expect(contoso).toMatchObject({
        name: 'contoso',
        url: 'https://mitigations.contoso.com/feed',
        problem: expect.stringContaining('missing-contoso-root.pem'),
        lastPollAt: null,
        lastPollResult: null,
        package: null,
        lastRejected: null,
      });
    });

    it('shows each rollout with its waves, their counts, and the actions the state machine accepts; an action changes them', async () => {
      const before = (await get<Overview>(getOverview, deps, 'overview')).body;
      expect(before.rollouts).toEqual([
        expect.objectContaining({
          id: rolloutId,
          operation: 'apply',
          state: 'Running',
          reasonCode: '',
          reasonDetail: '',
          profile: 'default',
          currentWave: 0,
          waveCount: 3,
          actions: ['pause', 'abort', 'expedite'],
        }),
      ]);
      const [rollout] = before.rollouts;
      expect(
        rollout!.waves.map((wave) => [wave.name, wave.servers, wave.pending, wave.phase, wave.bakeEndsAt]),
      ).toEqual([
        ['canary', 1, 1, 'Current', null],
        ['early', 0, 0, 'NotStarted', null],
        ['broad', 3, 3, 'NotStarted', null],
      ]);
      expect(before.olderRollouts).toBe(0);

      const paused = await call(
        postRolloutAction,
        deps,
        adminRequest('POST', `rollouts/${rolloutId}/pause`, { params: { id: rolloutId, action: 'pause' } }),
      );
      expect(paused.status).toBe(200);
      const after = (await get<Overview>(getOverview, deps, 'overview')).body;
      expect(after.rollouts[0]).toMatchObject({
        state: 'Paused',
        reasonCode: 'PausedByAdmin',
        reasonDetail: 'by operator@contoso.com',
        actions: ['resume', 'abort', 'expedite'],
      });
      await call(
        postRolloutAction,
        deps,
        adminRequest('POST', `rollouts/${rolloutId}/resume`, { params: { id: rolloutId, action: 'resume' } }),
      );
    });
  });

  describe('GET /api/grid', () => {
    it('gives every server × mitigation: the latest result, else what policy decides', async () => {
      const { status, body } = await get<GridPage>(getGrid, deps, 'grid');
      expect(status).toBe(200);
      expect(body.mitigations).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
      expect(body.continuationToken).toBeNull();
      expect(body.problems).toEqual([]);
      expect(matrix(body)).toEqual({
        // Results win, even where policy has since blocked EM3: they say what is on the server.
        [fqdn('ex01')]: { PING1: 'Applied', EM1: 'Applied', EM2: 'Applied', EM3: 'Applied' },
        [fqdn('ex02')]: { PING1: 'Pending', EM1: 'Pending', EM2: 'Failed', EM3: 'Blocked' },
        [fqdn('ex03')]: { PING1: 'Pending', EM1: 'NotApplicable', EM2: 'NotApplicable', EM3: 'Blocked' },
        // Disabled comes before blocked: the server is left alone altogether.
        [fqdn('ex04')]: { PING1: 'Disabled', EM1: 'Disabled', EM2: 'Disabled', EM3: 'Disabled' },
        [fqdn('ex05')]: { PING1: 'Blocked', EM1: 'NotApplicable', EM2: 'NotApplicable', EM3: 'Blocked' },
        'lab01.contoso.com': { PING1: 'Pending', EM1: 'Pending', EM2: 'Pending', EM3: 'Blocked' },
      });
      expect(body.rows.map((row) => [row.server, row.site, row.ring, row.build])).toEqual([
        [fqdn('ex01'), 'HQ', 'canary', '15.2.1118.7'],
        [fqdn('ex02'), 'HQ', 'broad', '15.2.1118.7'],
        [fqdn('ex03'), 'DC2', 'broad', '15.2.1544.9'],
        [fqdn('ex04'), 'DC2', 'broad', '15.2.1118.7'],
        [fqdn('ex05'), 'DC3', 'broad', '15.1.2507.16'],
        ['lab01.contoso.com', '', '', '15.2.1118.9'],
      ]);
      expect(body.rows.map((row) => row.registeredBuild)).toEqual([
        null,
        null,
        null,
        null,
        null,
        '15.2.1118.7',
      ]);
    });

    it('says why in each cell: the agent detail for results, the policy reason and its source otherwise', async () => {
      const { body } = await get<GridPage>(getGrid, deps, 'grid');
      const cell = (server: string, id: string) => body.rows.find((row) => row.server === server)!.cells[id];
      expect(cell(fqdn('ex02'), 'EM2')).toEqual({
        outcome: 'Failed',
        reasonCode: null,
        reasonDetail: 'MSExchangeOWAAppPool did not stop',
        source: 'result',
        at: at(2).toISOString(),
        rolloutId,
      });
      expect(cell(fqdn('ex01'), 'PING1')).toEqual({
        outcome: 'Applied',
        reasonCode: null,
        reasonDetail: `Applied by ${rolloutId}`,
        source: 'result',
        at: at(1).toISOString(),
        rolloutId,
      });
      expect(cell(fqdn('ex03'), 'EM1')).toEqual({
        outcome: 'NotApplicable',
        reasonCode: 'NotApplicableFixed',
        reasonDetail: 'build 15.2.1544.9 includes the fix for EM1',
        source: 'policy',
        at: null,
        rolloutId: null,
      });
      // The page renders a policy cell's words from its code and detail, in EM's words.
      const said = (found: GridCell | undefined): string =>
        renderReason({ reasonCode: found!.reasonCode!, reasonDetail: found!.reasonDetail });
      expect(said(cell(fqdn('ex04'), 'EM1'))).toBe(
        `Disabled (server): mitigations are disabled on ${fqdn('ex04')} (table)`,
      );
      expect(said(cell(fqdn('ex05'), 'PING1'))).toBe(
        `Blocked (server): PING1 is blocked on ${fqdn('ex05')} (bicep)`,
      );
      expect(said(cell(fqdn('ex03'), 'EM3'))).toBe(
        'Blocked (org): EM3 is blocked for the organization (bicep)',
      );
      // Planned on the build its agent reports.
      expect(cell('lab01.contoso.com', 'EM1')).toMatchObject({
        outcome: 'Pending',
        reasonCode: 'Applicable',
        reasonDetail: 'EM1 applies to build 15.2.1118.9',
      });
    });

    it.each([
      { name: 'site', query: 'site=DC2', servers: ['ex03', 'ex04'] },
      { name: 'ring', query: 'ring=canary', servers: ['ex01'] },
      { name: 'no ring', query: 'ring=', servers: ['lab01'] },
      { name: 'outcome Failed', query: 'outcome=Failed', servers: ['ex02'] },
      { name: 'outcome Disabled', query: 'outcome=Disabled', servers: ['ex04'] },
      { name: 'outcome Blocked', query: 'outcome=Blocked', servers: ['ex02', 'ex03', 'ex05', 'lab01'] },
      { name: 'outcome Pending in a site', query: 'outcome=Pending&site=HQ', servers: ['ex02'] },
      { name: 'search, in any case', query: 'search=EX0', servers: ['ex01', 'ex02', 'ex03', 'ex04', 'ex05'] },
      { name: 'search and ring', query: 'search=lab&ring=broad', servers: [] },
    ])('filters by $name', async ({ query, servers }) => {
      const { status, body } = await get<GridPage>(getGrid, deps, `grid?${query}`);
      expect(status, JSON.stringify(body)).toBe(200);
      expect(body.rows.map((row) => row.server.split('.')[0])).toEqual(servers);
      expect(body.continuationToken).toBeNull();
    });

    it('pages with top and a continuation token, filters and all', async () => {
      const pages: GridPage[] = [];
      let token: string | null = null;
      do {
        const answer: { status: number; body: GridPage } = await get<GridPage>(
          getGrid,
          deps,
          `grid?top=2&outcome=Pending${token ? `&continuationToken=${token}` : ''}`,
        );
        expect(answer.status).toBe(200);
        pages.push(answer.body);
        token = answer.body.continuationToken;
      } while (token !== null && pages.length < 10);
      expect(pages.map((page) => page.rows.map((row) => row.server.split('.')[0]))).toEqual([
        ['ex02', 'ex03'],
        ['lab01'],
      ]);
    });

    it.each([
      {
        name: 'an outcome that is none',
        query: 'outcome=Fine',
        detail: /^query outcome: must be one of Applied, /,
      },
      { name: 'a page of none', query: 'top=0', detail: /^query top: / },
      { name: 'a page over 200', query: 'top=201', detail: /^query top: / },
      {
        name: 'a made-up token',
        query: 'continuationToken=%2E%2E',
        detail: /^query continuationToken: is not a token from a previous page$/,
      },
      { name: 'a ring that cannot be one', query: 'ring=a%20b', detail: /^query ring: / },
    ])('answers 400 for $name', async ({ query, detail }) => {
      expect(await get(getGrid, deps, `grid?${query}`)).toEqual({
        status: 400,
        body: { code: 'InvalidQuery', detail: expect.stringMatching(detail) },
      });
    });
  });

  describe('GET /api/policy', () => {
    it('shows the org and each server with settings of its own, every value with where it came from', async () => {
      const { status, body } = await get<PolicyView>(getPolicy, deps, 'policy');
      expect(status).toBe(200);
      expect(body).toEqual({
        org: {
          name: org,
          valid: true,
          mitigationsEnabled: { value: true, source: 'table' },
          blockedMitigations: { value: ['EM3'], source: 'bicep' },
          onDegraded: { value: 'rollback', source: 'default' },
          ring: null,
        },
        servers: [
          {
            name: fqdn('ex04'),
            valid: true,
            mitigationsEnabled: { value: false, source: 'table' },
            blockedMitigations: { value: [], source: 'default' },
            onDegraded: { value: 'rollback', source: 'default' },
            ring: null,
          },
          {
            name: fqdn('ex05'),
            valid: true,
            mitigationsEnabled: { value: true, source: 'default' },
            blockedMitigations: { value: ['PING1'], source: 'bicep' },
            onDegraded: { value: 'keep', source: 'bicep' },
            ring: null,
          },
        ],
        serverScopes: 2,
      });
    });
  });
});

describe('a Policy row edited by hand into something invalid', () => {
  it('is shown as invalid policy for its scope, in the policy view and in the grid', async () => {
    const fresh = freshTables();
    const deps = adminDeps(fresh, pki.root.certificatePem);
    await registerServer(fresh.tables, org, { name: fqdn('ex01'), build: '15.2.1118.7' }, { actor: 'test' });
    await storePackage(fresh.tables, {
      feed: 'microsoft',
      bytes: Buffer.from(pki.sign(catalogueXml)),
      mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
    });
    await (await fresh.tables.client('Policy')).createEntity({
      partitionKey: 'server',
      rowKey: fqdn('ex01'),
      source: 'table',
      blockedMitigations: 'EM1,EM2',
    });

    const policy = (await get<PolicyView>(getPolicy, deps, 'policy')).body;
    expect(policy.servers).toEqual([
      {
        name: fqdn('ex01'),
        valid: false,
        problem: expect.stringMatching(/blockedMitigations: is not valid JSON/),
      },
    ]);
    const grid = (await get<GridPage>(getGrid, deps, 'grid')).body;
    expect(matrix(grid)).toEqual({
      [fqdn('ex01')]: { PING1: 'PolicyError', EM1: 'PolicyError', EM2: 'PolicyError', EM3: 'PolicyError' },
    });
  });
});

describe('a stored package that no longer verifies under the configured trust', () => {
  it('is flagged on the feed, and cells without a result are Unknown rather than guessed', async () => {
    const fresh = freshTables();
    const other = await createTestPki('Other');
    const deps = adminDeps(fresh, other.root.certificatePem);
    await registerServer(fresh.tables, org, { name: fqdn('ex01'), build: '15.2.1118.7' }, { actor: 'test' });
    await storePackage(fresh.tables, {
      feed: 'microsoft',
      bytes: Buffer.from(pki.sign(catalogueXml)),
      mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
    });
    await upsertResults(fresh.tables, [
      {
        server: fqdn('ex01'),
        operationId: 'op-1',
        rolloutId: 'r',
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM1: { outcome: 'Applied', detail: '' } },
        at: at(1),
      },
    ]);

    const [feed] = (await get<Overview>(getOverview, deps, 'overview')).body.feeds;
    expect(feed!.package).toMatchObject({
      signer: null,
      verifyProblem: {
        reasonCode: 'UntrustedChain',
        reasonDetail: expect.stringContaining('not a configured trust anchor'),
      },
    });
    const grid = (await get<GridPage>(getGrid, deps, 'grid')).body;
    expect(matrix(grid)).toEqual({
      [fqdn('ex01')]: { PING1: 'Unknown', EM1: 'Applied', EM2: 'Unknown', EM3: 'Unknown' },
    });
  });
});

describe('GET /api/overview with many ended rollouts', () => {
  it('shows every active rollout and the latest ten that ended; the older ones are counted', async () => {
    const fresh = freshTables();
    const deps = adminDeps(fresh, pki.root.certificatePem);
    const rollouts = await fresh.tables.client('Rollouts');
    const state = (id: string, value: string, minute: number) => ({
      partitionKey: id,
      rowKey: 'state',
      feed: 'microsoft',
      packageSequence: minute,
      operation: 'apply',
      state: value,
      reasonCode: '',
      reasonDetail: '',
      waveCount: 1,
      currentWave: 0,
      profile: 'default',
      createdAt: at(minute),
      updatedAt: at(minute),
    });
    const wave = (id: string) => ({
      partitionKey: id,
      rowKey: 'wave-00',
      name: 'all',
      servers: 2,
      succeeded: 2,
      failed: 0,
      skipped: 0,
      maxConcurrency: 2,
      maxErrors: 0,
      bakeInMs: 0,
      dispatched: 2,
      counted: '',
      failedServers: '[]',
    });
    const ids = Array.from(
      { length: 12 },
      (_, index) => `microsoft-${String(index + 1).padStart(6, '0')}-apply`,
    );
    for (const [index, id] of ids.entries())
      await writeInTransactions(rollouts, [
        upsertAction(state(id, 'Completed', index + 1)),
        upsertAction(wave(id)),
      ]);
    await writeInTransactions(rollouts, [
      upsertAction(state('microsoft-000000-remove', 'Halted', 0)),
      upsertAction(wave('microsoft-000000-remove')),
    ]);
    await writeInTransactions(rollouts, [
      upsertAction({ ...state('contoso-000001-apply', 'Paused', 30), resumeTo: 'Running' }),
      upsertAction(wave('contoso-000001-apply')),
    ]);

    const { body } = await get<Overview>(getOverview, deps, 'overview');
    expect(body.rollouts.map((rollout) => rollout.id)).toEqual([
      'contoso-000001-apply',
      ...ids.slice(2).reverse(),
    ]);
    expect(body.olderRollouts).toBe(3);
    expect(body.rollouts[1]).toMatchObject({ state: 'Completed', actions: [] });
    expect(body.rollouts[1]!.waves).toEqual([
      expect.objectContaining({ phase: 'Done', pending: 0, bakeEndsAt: null }),
    ]);
  });
});

/** Counts the queries (listEntities calls) each table gets, to show a page costs a few, not one per server. */
function countingTables(tables: FleetTables, queries: TableName[]): FleetTables {
  return {
    client: async (name: TableName) => {
      const client = await tables.client(name);
      return new Proxy(client, {
        get(target, property) {
          const value = Reflect.get(target, property, target) as unknown;
          if (typeof value !== 'function') return value;
          if (property === 'listEntities')
            return (...args: unknown[]) => (
              queries.push(name),
              (value as TableClient['listEntities']).apply(
                target,
                args as Parameters<TableClient['listEntities']>,
              )
            );
          return (value as (...args: unknown[]) => unknown).bind(target);
        },
      });
    },
  } as FleetTables;
}

describe('GET /api/grid over a 2,500-server fleet', () => {
  const fresh = freshTables();
  let deps: AdminDeps;
  const name = (index: number): string => `ex${String(index).padStart(5, '0')}.contoso.com`;

  beforeAll(async () => {
    deps = adminDeps(fresh, pki.root.certificatePem);
    const rows = Array.from({ length: 2500 }, (_, index) => ({
      partitionKey: org,
      rowKey: name(index),
      fqdn: name(index),
      build: '15.2.1118.7',
      ring: index % 10 === 0 ? 'canary' : 'broad',
      site: index % 2 === 0 ? 'HQ' : 'DR',
    }));
    await writeInTransactions(await fresh.tables.client('Servers'), rows.map(upsertAction));
    await storePackage(fresh.tables, {
      feed: 'microsoft',
      bytes: Buffer.from(pki.sign(catalogueXml)),
      mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
    });
    const failed = { outcome: 'Failed' as const, detail: 'the service would not stop' };
    const applied = { outcome: 'Applied' as const, detail: '' };
    await upsertResults(fresh.tables, [
      ...Array.from(
        { length: 2500 },
        (_, index): ResultRecord => ({
          server: name(index),
          operationId: 'op-1',
          rolloutId: 'r1',
          operation: 'apply',
          status: 'Completed',
          outcomes: { PING1: applied },
          at: at(1),
        }),
      ),
      {
        server: name(2300),
        operationId: 'op-2',
        rolloutId: 'r1',
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM3: failed },
        at: at(2),
      },
      {
        server: name(2400),
        operationId: 'op-2',
        rolloutId: 'r1',
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM3: failed },
        at: at(2),
      },
    ]);
  });

  it('serves a page of 200 with one query each on Servers, Results, Policy and Rollouts, whatever the fleet size', async () => {
    const queries: TableName[] = [];
    const { body } = await get<GridPage>(
      getGrid,
      { ...deps, tables: countingTables(fresh.tables, queries) },
      'grid?top=200',
    );
    expect(body.rows).toHaveLength(200);
    expect(body.rows[199]!.server).toBe(name(199));
    expect(
      body.rows.every(
        (row) => row.cells['PING1']!.outcome === 'Applied' && row.cells['EM1']!.outcome === 'Pending',
      ),
    ).toBe(true);
    expect(body.continuationToken).not.toBeNull();
    // Rollouts: the feed's newest rollout, to tell work a halted rollout never reached from Pending.
    expect(queries.sort()).toEqual(['Policy', 'Results', 'Rollouts', 'Servers']);
  });

  it('stops a sparse filter at the scan budget with a token to go on, and finds the rest on the next pages', async () => {
    const first = (await get<GridPage>(getGrid, deps, 'grid?outcome=Failed')).body;
    expect(first.rows).toEqual([]);
    expect(first.scanned).toBe(gridScanBudget);
    expect(first.continuationToken).not.toBeNull();
    const second = (
      await get<GridPage>(
        getGrid,
        deps,
        `grid?outcome=Failed&top=1&continuationToken=${first.continuationToken}`,
      )
    ).body;
    expect(second.rows.map((row) => [row.server, row.cells['EM3']])).toEqual([
      [
        name(2300),
        expect.objectContaining({ outcome: 'Failed', reasonDetail: 'the service would not stop' }),
      ],
    ]);
    const third = (
      await get<GridPage>(getGrid, deps, `grid?outcome=Failed&continuationToken=${second.continuationToken}`)
    ).body;
    expect(third.rows.map((row) => row.server)).toEqual([name(2400)]);
    expect(third.continuationToken).toBeNull();
  });
});

describe("the dashboard API tests' logs", () => {
  it('never hold the function key', () => {
    expect(adminLogLines.filter((line) => line.includes(testFunctionKey))).toEqual([]);
  });
});
