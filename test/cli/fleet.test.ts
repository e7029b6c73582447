import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { recordAgentFacts } from '../../lib/fleet/agent-facts.js';
import { registerServer, removeServer } from '../../lib/fleet/servers.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { allEntities, azuriteConnectionString, rawTable } from '../helpers/fleet.js';
import { createTestPki } from '../helpers/packages.js';

/** The real binary against the run's Azurite, in a table namespace of its own. */
let env: Record<string, string>;
let dir: string;
let packagePath: string;
let rootPath: string;
const emfleet = (...args: string[]): Promise<CliRun> => runCli(args, { env });

async function auditRows(): Promise<Record<string, unknown>[]> {
  return allEntities(rawTable(env['EMFLEET_TABLE_PREFIX']!, 'Audit'));
}

beforeAll(async () => {
  env = {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: `c${randomBytes(5).toString('hex')}`,
    EMFLEET_ORG: 'contoso',
  };
  dir = await mkdtemp(join(tmpdir(), 'emfleet-fleet-cli-'));
  const pki = await createTestPki();
  packagePath = join(dir, 'catalogue.signed.xml');
  rootPath = join(dir, 'root.pem');
  await writeFile(packagePath, pki.sign(catalogueXml));
  await writeFile(rootPath, pki.root.certificatePem);
});

describe('an admin in a fresh Azurite', () => {
  it('adds servers, blocks a mitigation, disables a server, and sees policy explain decide each', async () => {
    for (const [name, build, ring] of [
      ['EX01.contoso.com', '15.2.1544.4', 'canary'],
      ['ex02.contoso.com', '15.2.1118.7', 'early'],
      ['ex03.contoso.com', '15.1.2507.16', 'broad'],
      ['ex04.contoso.com', '15.0.1497.2', 'broad'],
    ] as const) {
      const added = await emfleet(
        'servers',
        'add',
        name,
        '--build',
        build,
        '--ring',
        ring,
        '--actor',
        'alice',
      );
      expect(added.code, added.stderr).toBe(0);
      expect(added.stdout).toMatch(new RegExp(`^added server ${name.toLowerCase()}`));
    }
    expect((await emfleet('policy', 'block', '--org-scope', 'EM3', '--actor', 'alice')).code).toBe(0);
    expect(
      (await emfleet('policy', 'set', '--server', 'ex02.contoso.com', '--enabled', 'false', '--actor', 'bob'))
        .code,
    ).toBe(0);

    const explained = await emfleet(
      'policy',
      'explain',
      '--package',
      packagePath,
      '--trust-anchor',
      rootPath,
      '--json',
    );
    expect(explained.code, explained.stderr).toBe(0);
    const decisions = JSON.parse(explained.stdout) as {
      server: string;
      mitigation: string;
      decision: string;
      reasonCode: string;
    }[];
    const decisionOf = (server: string, mitigation: string): string => {
      const row = decisions.find((entry) => entry.server === server && entry.mitigation === mitigation);
      return `${row?.decision} ${row?.reasonCode}`;
    };
    expect(decisions).toHaveLength(16);
    expect(decisionOf('ex01.contoso.com', 'PING1')).toBe('Apply Applicable');
    expect(decisionOf('ex01.contoso.com', 'EM1')).toBe('Skip NotApplicableFixed');
    expect(decisionOf('ex01.contoso.com', 'EM2')).toBe('Apply Applicable');
    expect(decisionOf('ex01.contoso.com', 'EM3')).toBe('Skip BlockedByOrg');
    expect(decisionOf('ex02.contoso.com', 'EM1')).toBe('Skip DisabledByServer');
    expect(decisionOf('ex03.contoso.com', 'EM1')).toBe('Skip NotApplicableFixed');
    expect(decisionOf('ex03.contoso.com', 'EM2')).toBe('Skip NotApplicable');
    expect(decisionOf('ex04.contoso.com', 'EM1')).toBe('Skip NotApplicable');

    const text = await emfleet(
      'policy',
      'explain',
      '--package',
      packagePath,
      '--trust-anchor',
      rootPath,
      '--server',
      'ex02.contoso.com',
    );
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ex02\.contoso\.com\s+EM2\s+Skip\s+Disabled \(server\)/);

    const audit = await auditRows();
    expect(audit.filter((row) => row['action'] === 'server.add')).toHaveLength(4);
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'policy.block',
        actor: 'alice',
        target: 'org:contoso',
        before: 'null',
        after: JSON.stringify({ blockedMitigations: ['EM3'] }),
      }),
    );
    expect(audit).toContainEqual(
      expect.objectContaining({
        action: 'policy.set',
        actor: 'bob',
        target: 'server:ex02.contoso.com',
        after: JSON.stringify({ mitigationsEnabled: false }),
      }),
    );
  });

  it('lists servers as text and JSON', async () => {
    const text = await emfleet('servers', 'list');
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n')[0]).toMatch(/^SERVER\s+BUILD\s+AGENT\s+RING/);
    const json = JSON.parse((await emfleet('servers', 'list', '--json')).stdout);
    expect(json.servers.map((server: { name: string }) => server.name)).toEqual([
      'ex01.contoso.com',
      'ex02.contoso.com',
      'ex03.contoso.com',
      'ex04.contoso.com',
    ]);
  });

  it('shows a server whose agent reports another build than registered: servers list, status, --json', {
    timeout: 60_000,
  }, async () => {
    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: env['AzureWebJobsStorage']! },
      { prefix: env['EMFLEET_TABLE_PREFIX']! },
    );
    await registerServer(
      tables,
      'contoso',
      { name: 'ex05.contoso.com', build: '15.2.1118.7' },
      { actor: 'test' },
    );
    // The agent answers after a Security Update.
    await recordAgentFacts({ tables, org: 'contoso', logger: silentLogger }, [
      {
        name: 'ex05.contoso.com',
        row: { build: '15.2.1118.7', registeredBuild: '15.2.1118.7', agentVersion: '', lastSeen: undefined },
        facts: { build: '15.2.1118.20', agentVersion: '0.1.0' },
      },
    ]);
    try {
      const [text, json, status, statusText] = await Promise.all([
        emfleet('servers', 'list'),
        emfleet('servers', 'list', '--json'),
        emfleet('status', '--json'),
        emfleet('status'),
      ]);
      expect(text.stdout).toMatch(
        /^ex05\.contoso\.com\s+15\.2\.1118\.20 ! registered 15\.2\.1118\.7\s+0\.1\.0\s/m,
      );
      expect(text.stdout).toMatch(/^1 server\(s\) report another build than registered/m);
      const listed = JSON.parse(json.stdout).servers.find(
        (server: { name: string }) => server.name === 'ex05.contoso.com',
      );
      expect(listed).toMatchObject({
        build: '15.2.1118.20',
        registeredBuild: '15.2.1118.7',
        agentVersion: '0.1.0',
        buildMismatch: { registered: '15.2.1118.7', reported: '15.2.1118.20' },
      });
      expect(JSON.parse(status.stdout).servers).toMatchObject({
        buildMismatchCount: 1,
        buildMismatches: [
          { server: 'ex05.contoso.com', registered: '15.2.1118.7', reported: '15.2.1118.20' },
        ],
      });
      expect(statusText.stdout).toMatch(
        /^build mismatches \(registered ≠ reported\): 1\n {2}ex05\.contoso\.com: registered 15\.2\.1118\.7, reported 15\.2\.1118\.20$/m,
      );
    } finally {
      await removeServer(tables, 'contoso', 'ex05.contoso.com', { actor: 'test' });
    }
  });

  it('shows where each policy value came from', async () => {
    const declared = join(dir, 'policy.json');
    await writeFile(
      declared,
      JSON.stringify({
        org: { blockedMitigations: ['EM2'] },
        servers: { 'ex03.contoso.com': { mitigationsEnabled: false } },
        rings: {},
      }),
    );
    const synced = await emfleet('policy', 'sync', '--file', declared);
    expect(synced.code, synced.stderr).toBe(0);
    expect(synced.stdout).toMatch(/2 written, 0 deleted, 0 unchanged/);
    expect((await emfleet('policy', 'sync', '--file', declared)).stdout).toMatch(
      /0 written, 0 deleted, 2 unchanged/,
    );

    const shown = JSON.parse(
      (await emfleet('policy', 'show', '--server', 'ex03.contoso.com', '--json')).stdout,
    );
    expect(shown.org.blockedMitigations).toEqual({ value: ['EM3'], source: 'table' });
    expect(shown.servers[0]).toMatchObject({
      name: 'ex03.contoso.com',
      mitigationsEnabled: { value: false, source: 'bicep' },
    });
    const text = await emfleet('policy', 'show');
    expect(text.stdout).toMatch(/blocked: EM3 \(table; overrides bicep: EM2\)/);
  });

  it('sets what happens to a change that degrades a server, per org and per server, and shows and explains it', async () => {
    const org = await emfleet('policy', 'set', '--org-scope', '--on-degraded', 'keep', '--actor', 'carol');
    expect(org.code, org.stderr).toBe(0);
    expect(org.stdout).toMatch(
      /^org contoso: on degraded: keep\ntakes effect at the next reconcile, \d\d:30 UTC \(/,
    );
    expect((await emfleet('policy', 'set', '--org-scope', '--on-degraded', 'keep')).stdout).toMatch(
      /^org contoso: no change \(on degraded: keep already\)\n/,
    );
    const server = await emfleet(
      'policy',
      'set',
      '--server',
      'ex01.contoso.com',
      '--on-degraded',
      'rollback',
      '--enabled',
      'true',
      '--json',
    );
    expect(JSON.parse(server.stdout)).toMatchObject({
      ok: true,
      changed: true,
      policy: { mitigationsEnabled: true, onDegraded: 'rollback' },
    });

    const shown = JSON.parse((await emfleet('policy', 'show', '--json')).stdout);
    expect(shown.org.onDegraded).toEqual({ value: 'keep', source: 'table' });
    const effective = Object.fromEntries(
      shown.servers.map((entry: { name: string; effective: { onDegraded: unknown } }) => [
        entry.name,
        entry.effective.onDegraded,
      ]),
    );
    expect(effective['ex01.contoso.com']).toEqual({ value: 'rollback', scope: 'server', source: 'table' });
    expect(effective['ex03.contoso.com']).toEqual({ value: 'keep', scope: 'org', source: 'table' });
    expect((await emfleet('policy', 'show', '--server', 'ex01.contoso.com')).stdout).toMatch(
      /on degraded: rollback \(table\)[\s\S]*effective: .*on degraded rollback \(server\)/,
    );

    const explained = await emfleet(
      'policy',
      'explain',
      '--package',
      packagePath,
      '--trust-anchor',
      rootPath,
      '--server',
      'ex02.contoso.com',
    );
    expect(explained.stdout.split('\n')[0]).toMatch(
      /^SERVER\s+MITIGATION\s+DECISION\s+REASON\s+ON-DEGRADED\s+DETAIL/,
    );
    expect(explained.stdout).toMatch(/ex02\.contoso\.com\s+EM1\s+Skip\s+Disabled \(server\)\s+keep \(org\)/);
    expect(await auditRows()).toContainEqual(
      expect.objectContaining({
        action: 'policy.set',
        actor: 'carol',
        target: 'org:contoso',
        after: JSON.stringify({ blockedMitigations: ['EM3'], onDegraded: 'keep' }),
      }),
    );
  });

  it.each([
    {
      name: 'unknown server',
      args: ['policy', 'set', '--server', 'nope.contoso.com', '--enabled', 'false'],
      message: /no server "nope\.contoso\.com"/,
    },
    {
      name: '--on-degraded ignore',
      args: ['policy', 'set', '--org-scope', '--on-degraded', 'ignore'],
      message: /--on-degraded "ignore" must be rollback or keep/,
    },
    {
      name: 'set with nothing to set',
      args: ['policy', 'set', '--org-scope'],
      message: /give --enabled true\|false, --on-degraded rollback\|keep, or both/,
    },
    {
      name: 'malformed id',
      args: ['policy', 'block', '--org-scope', 'EM1', 'bad id!'],
      message: /mitigation id "bad id!" must be a mitigation id/,
    },
    {
      name: '--enabled maybe',
      args: ['policy', 'set', '--org-scope', '--enabled', 'maybe'],
      message: /--enabled "maybe" must be true or false/,
    },
    {
      name: 'both scopes',
      args: ['policy', 'set', '--org-scope', '--server', 'ex01.contoso.com', '--enabled', 'true'],
      message: /exactly one of --org-scope or --server/,
    },
    {
      name: 'bad build',
      args: ['servers', 'add', 'ex09', '--build', '15.2'],
      message: /--build "15\.2" must be an Exchange build/,
    },
    {
      name: 'remove unknown',
      args: ['servers', 'remove', 'ex09.contoso.com'],
      message: /no server "ex09\.contoso\.com"/,
    },
  ])('rejects bad input in one line and writes nothing: $name', async ({ args, message }) => {
    const before = (await auditRows()).length;
    const run = await emfleet(...args);
    expect(run.code).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(message);
    expect((await auditRows()).length).toBe(before);
  });

  it('needs storage: a clear message when none is configured', async () => {
    const run = await runCli(['servers', 'list']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(
      /no storage configured: pass --connection-string CS, or set AzureWebJobsStorage .*, or pass --account NAME \/ set EMFLEET_STORAGE_ACCOUNT/,
    );
    expect(run.stderr).toMatch(
      /the export lines `npm start` prints \(export AzureWebJobsStorage=… and export EMFLEET_…=…\)/,
    );
  });
});
