import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { latestPackage, storePackage } from '../../lib/fleet/packages.js';
import { upsertResults } from '../../lib/fleet/results.js';
import { createRollout, readRollout, waveEntity } from '../../lib/fleet/rollouts.js';
import { operationIdOf } from '../../lib/model/operation-id.js';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { silentLogger } from '../../lib/log.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { defaultWaves } from '../../lib/model/waves.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { allEntities, azuriteConnectionString, rawTable } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

let env: Record<string, string>;
let pki: TestPki;
let packagePath: string;
let rootPath: string;
const emfleet = (...args: string[]): Promise<CliRun> => runCli(args, { env });

interface PlanJson {
  waves: { name: string; servers: { server: string; apply: string[]; remove: string[] }[] }[];
  leftOut: { server: string; reason: string }[];
}

beforeAll(async () => {
  pki = await createTestPki();
  const dir = await mkdtemp(join(tmpdir(), 'emfleet-rollout-cli-'));
  packagePath = join(dir, 'catalogue.signed.xml');
  rootPath = join(dir, 'root.pem');
  await writeFile(packagePath, pki.sign(catalogueXml));
  await writeFile(rootPath, pki.root.certificatePem);
  env = {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: `r${randomBytes(5).toString('hex')}`,
    EMFLEET_QUEUE_PREFIX: `r${randomBytes(4).toString('hex')}`,
    EMFLEET_ORG: 'contoso',
    EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
  };
  for (let index = 1; index <= 12; index++) {
    const name = `ex${String(index).padStart(2, '0')}.contoso.com`;
    const ring = index <= 2 ? 'canary' : 'broad';
    expect((await emfleet('servers', 'add', name, '--build', '15.2.1118.7', '--ring', ring)).code).toBe(0);
  }
  expect((await emfleet('policy', 'set', '--server', 'ex12.contoso.com', '--enabled', 'false')).code).toBe(0);
});

describe('emfleet rollout plan', () => {
  it('plans the package in the default waves without sending anything', async () => {
    const run = await emfleet('rollout', 'plan', '--package', packagePath, '--json');
    expect(run.code, run.stderr).toBe(0);
    const plan = JSON.parse(run.stdout) as PlanJson;
    expect(plan.waves.map((wave) => wave.name)).toEqual(['canary', 'early', 'broad']);
    expect(plan.waves[0]!.servers.map((server) => server.server)).toEqual([
      'ex01.contoso.com',
      'ex02.contoso.com',
    ]);
    expect(plan.waves[0]!.servers[0]!.apply).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(plan.waves[1]!.servers).toHaveLength(1);
    expect(plan.waves[2]!.servers).toHaveLength(8);
    expect(plan.leftOut).toEqual([
      expect.objectContaining({
        server: 'ex12.contoso.com',
        reason: expect.stringContaining('Disabled (server)'),
      }),
    ]);

    const text = await emfleet('rollout', 'plan', '--package', packagePath);
    expect(text.stdout).toMatch(
      /^wave 1 canary: 2 servers, 2 at a time, halt after 0 failures, bake 60 min/m,
    );
    expect(text.stdout).toMatch(/left out: 1 servers\n  ex12\.contoso\.com: PING1: Disabled \(server\)/);
  });

  it('uses the emergency profile with --emergency', async () => {
    const plan = JSON.parse(
      (await emfleet('rollout', 'plan', '--package', packagePath, '--emergency', '--json')).stdout,
    ) as PlanJson;
    expect(plan.waves.map((wave) => wave.name)).toEqual(['canary', 'all']);
    expect(plan.waves.flatMap((wave) => wave.servers)).toHaveLength(11);
  });

  it('plans the latest accepted package with --latest', async () => {
    const missing = await emfleet('rollout', 'plan', '--latest');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no package has been accepted from the microsoft feed yet/);
    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: env['EMFLEET_TABLE_PREFIX']! },
    );
    await storePackage(tables, {
      feed: 'microsoft',
      bytes: Buffer.from(pki.sign(catalogueXml)),
      mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
    });
    const latest = await emfleet('rollout', 'plan', '--latest', '--json');
    expect(latest.code, latest.stderr).toBe(0);
    expect((JSON.parse(latest.stdout) as PlanJson).waves[0]!.servers).toHaveLength(2);
  });

  it.each([
    {
      name: 'neither --package nor --latest',
      args: [],
      message: /exactly one of --package FILE or --latest/,
    },
    {
      name: 'a bad wave setting',
      args: ['--package', 'PKG'],
      env: { EMFLEET_WAVES: '[{"name":"x"}]' },
      message: /EMFLEET_WAVES/,
    },
  ])('exits 2 on $name', async ({ args, env: extra, message }) => {
    const run = await runCli(['rollout', 'plan', ...args.map((arg) => (arg === 'PKG' ? packagePath : arg))], {
      env: { ...env, ...extra },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('refuses a package that does not verify', async () => {
    const tampered = packagePath.replace('.xml', '.tampered.xml');
    await writeFile(tampered, (await readFile(packagePath, 'utf8')).replace('MSExchangeUM', 'MSExchangeIS'));
    const run = await emfleet('rollout', 'plan', '--package', tampered, '--trust-anchor', rootPath);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^emfleet: BadSignature/);
  });
});

describe('emfleet rollout list|show|pause|resume|abort|expedite|retry, emfleet reconcile', () => {
  let id: string;

  beforeAll(async () => {
    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: env['EMFLEET_TABLE_PREFIX']! },
    );
    const queues = new StorageQueueSender(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: env['EMFLEET_QUEUE_PREFIX']! },
    );
    const changed = catalogueXml.replace('max="15.2.1544.4"', 'max="15.2.1748.10"');
    const outcome = await pollFeed(
      {
        tables,
        queues,
        org: 'contoso',
        waves: defaultWaves,
        logger: silentLogger,
        fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(pki.sign(changed)) }),
      },
      { name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust },
    );
    if (outcome.kind !== 'accepted') throw new Error(JSON.stringify(outcome));
    id = outcome.rollouts[0]!;
  });

  it('lists and shows the rollout', async () => {
    const list = JSON.parse((await emfleet('rollout', 'list', '--json')).stdout) as {
      id: string;
      state: string;
    }[];
    expect(list).toContainEqual(expect.objectContaining({ id, state: 'Running' }));
    const shown = await emfleet('rollout', 'show', id);
    expect(shown.stdout).toMatch(new RegExp(`^${id}: apply of microsoft package 2, Running`));
    expect(shown.stdout).toMatch(/1 canary\s+2\s+0\s+0\s+0\s+2\s+0/);
  });

  it('pauses, refuses a second pause, resumes, expedites and aborts, each audited', async () => {
    expect((await emfleet('rollout', 'pause', id, '--actor', 'alice')).stdout).toMatch(
      /Paused \(Paused: by alice\)/,
    );
    const again = await emfleet('rollout', 'pause', id, '--actor', 'alice');
    expect(again.code).toBe(1);
    // A refusal is one line on stderr with its code, nothing on stdout.
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(
      /^emfleet: Refused: pause refused: already paused \(rollout is Paused, wave 1 of \d+\)\n$/,
    );
    expect((await emfleet('rollout', 'resume', id, '--actor', 'alice')).stdout).toMatch(
      /Running \(Resumed: by alice\)/,
    );
    expect((await emfleet('rollout', 'expedite', id, '--actor', 'bob', '--json')).stdout).toMatch(
      /"ok":true/,
    );
    expect((await emfleet('rollout', 'abort', id, '--actor', 'bob')).stdout).toMatch(
      /Aborted \(Aborted: by bob\)/,
    );
    const audit = await allEntities(rawTable(env['EMFLEET_TABLE_PREFIX']!, 'Audit'));
    expect(
      audit
        .filter((row) => String(row['action']).startsWith('rollout.'))
        .map((row) => row['action'])
        .sort(),
    ).toEqual(['rollout.abort', 'rollout.expedite', 'rollout.pause', 'rollout.pause', 'rollout.resume']);
  });

  it('emfleet status shows the feed, servers by ring and rollouts by state', async () => {
    const text = await emfleet('status');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /^org contoso \(at .*\)\nfeed microsoft: https?:\/\/\S+\n {2}last poll: \S+, Success\n/,
    );
    expect(text.stdout).toMatch(
      / {2}current package: sequence \d, sha256 [0-9a-f]{64}\n {4}signed .* by CN=Microsoft Exchange XML Signing .*\n {4}mitigations: PING1, EM1, EM2, EM3/,
    );
    expect(text.stdout).toMatch(/servers: 12 by ring \(canary 2, broad 10\)/);
    const json = JSON.parse((await emfleet('status', '--json')).stdout);
    expect(json.rollouts.total).toBeGreaterThanOrEqual(1);
  });

  it("shows what went wrong on the servers that failed: the probes' findings with the endpoints", async () => {
    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: env['EMFLEET_TABLE_PREFIX']! },
    );
    const halted = 'microsoft-000009-apply';
    await createRollout(tables, {
      id: halted,
      feed: 'microsoft',
      packageSequence: 9,
      operation: 'apply',
      waves: [
        { name: 'canary', servers: 2 },
        { name: 'broad', servers: 8 },
      ],
    });
    const waves = (await readRollout(tables, halted)).waves;
    await (await tables.client('Rollouts')).updateEntity(
      waveEntity({
        ...waves[0]!,
        failed: 2,
        failedServers: ['ex01.contoso.com', 'ex02.contoso.com'],
        failureNotes: { 'ex01.contoso.com': 'EM2 RolledBack: ecp' },
      }),
      'Replace',
    );
    const rolledBack = {
      outcome: 'RolledBack' as const,
      detail:
        'app pool MSExchangeOWAAppPool stopped, auto-start off; degraded: ecp: 503 after apply (was 200); rolled back to the prior state (policy onDegraded=rollback); every endpoint healthy as before',
      endpoints: ['/ecp/healthcheck.htm'],
    };
    await upsertResults(tables, [
      {
        server: 'ex01.contoso.com',
        operationId: operationIdOf(halted, 0, 'ex01.contoso.com'),
        rolloutId: halted,
        operation: 'apply',
        status: 'Completed',
        at: new Date(),
        outcomes: { EM1: { outcome: 'Applied', detail: 'fine' }, EM2: rolledBack },
      },
      {
        server: 'ex02.contoso.com',
        operationId: operationIdOf(halted, 0, 'ex02.contoso.com'),
        rolloutId: halted,
        operation: 'apply',
        status: 'Completed',
        at: new Date(),
        outcomes: {
          EM3: { outcome: 'Failed', detail: 'simulated failure changing MSExchangeUM; prior state restored' },
        },
      },
    ]);

    const shown = await emfleet('rollout', 'show', halted);
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.split('\n');
    const failures = lines.indexOf('failures (what the probes found, or why it failed):');
    expect(failures).toBeGreaterThan(0);
    expect(lines[failures + 1]).toMatch(/^  WAVE\s+SERVER\s+MITIGATION\s+OUTCOME\s+DETAIL/);
    expect(lines[failures + 2]).toMatch(
      /^  1 canary\s+ex01\.contoso\.com\s+EM2\s+RolledBack\s+app pool MSExchangeOWAAppPool stopped, auto-start off; degraded: ecp: 503 after apply \(was 200\)/,
    );
    expect(lines[failures + 3]).toMatch(
      /^  1 canary\s+ex02\.contoso\.com\s+EM3\s+Failed\s+simulated failure/,
    );
    expect(shown.stdout).not.toMatch(/EM1\s+Applied/);

    const json = JSON.parse((await emfleet('rollout', 'show', halted, '--json')).stdout);
    expect(json.waves[0].failureNotes).toEqual({ 'ex01.contoso.com': 'EM2 RolledBack: ecp' });
    expect(json.problems).toEqual([
      { wave: 0, waveName: 'canary', server: 'ex01.contoso.com', mitigation: 'EM2', ...rolledBack },
      {
        wave: 0,
        waveName: 'canary',
        server: 'ex02.contoso.com',
        mitigation: 'EM3',
        outcome: 'Failed',
        detail: 'simulated failure changing MSExchangeUM; prior state restored',
      },
    ]);
  });

  it('a halted rollout: resume refused, show and reconcile --dry-run name the hold, retry (twice: one retry) sends the failed server again', async () => {
    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix: env['EMFLEET_TABLE_PREFIX']! },
    );
    const halted = 'microsoft-000010-apply';
    const em3 = (await latestPackage(tables, 'microsoft'))!.content!['EM3']!;
    await createRollout(tables, {
      id: halted,
      feed: 'microsoft',
      packageSequence: 2,
      operation: 'apply',
      applies: { EM3: em3 },
      waves: [
        { name: 'canary', servers: 2 },
        { name: 'broad', servers: 8 },
      ],
    });
    const client = await tables.client('Rollouts');
    await client.updateEntity(
      {
        partitionKey: halted,
        rowKey: 'state',
        state: 'Halted',
        halts: 1,
        reason: 'WaveHalted: wave 1 had 1 failures, over its budget of 0 (ex02.contoso.com)',
      },
      'Merge',
    );
    const [canary] = (await readRollout(tables, halted)).waves;
    const bits = (...indices: number[]): string =>
      Buffer.from([indices.reduce((byte, index) => byte | (1 << index), 0)]).toString('base64');
    await client.updateEntity(
      waveEntity({
        ...canary!,
        succeeded: 1,
        failed: 1,
        dispatched: 2,
        counted: bits(0, 1),
        failedIndices: bits(1),
        failedServers: ['ex02.contoso.com'],
      }),
      'Replace',
    );

    // The rollout planned by the test above would keep reconcile waiting.
    expect((await emfleet('rollout', 'abort', 'microsoft-000009-apply')).code).toBe(0);
    const resumed = await emfleet('rollout', 'resume', halted);
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toMatch(
      /^emfleet: Refused: resume refused: a halted rollout waits for retry or abort/,
    );
    // The row above was written as the release before reason codes wrote it: its text reads as it was.
    expect(JSON.parse((await emfleet('rollout', 'show', halted, '--json')).stdout)).toMatchObject({
      reasonCode: 'Legacy',
      reasonDetail: 'WaveHalted: wave 1 had 1 failures, over its budget of 0 (ex02.contoso.com)',
    });
    expect((await emfleet('rollout', 'show', halted)).stdout).toMatch(
      new RegExp(
        `^holds EM3: not reapplied until the rollout is retried or the feed publishes different content \\(emfleet rollout retry ${halted}\\)$`,
        'm',
      ),
    );
    expect(JSON.parse((await emfleet('rollout', 'show', halted, '--json')).stdout)).toMatchObject({
      state: 'Halted',
      holds: ['EM3'],
    });
    expect(JSON.parse((await emfleet('status', '--json')).stdout).holds).toContainEqual({
      feed: 'microsoft',
      mitigation: 'EM3',
      rolloutId: halted,
      state: 'Halted',
      packageSequence: 2,
    });

    // The dry run: per server what would be reapplied, and what the halted (EM3) and the aborted rollout (EM2) hold. Nothing is written.
    const before = JSON.parse((await emfleet('rollout', 'list', '--json')).stdout) as unknown[];
    const dry = await emfleet('reconcile', '--dry-run');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^feed microsoft: would start a fix-up rollout for 11 servers$/m);
    expect(dry.stdout).toMatch(new RegExp(`^  hold: EM3 held by ${halted} \\(Halted, package 2\\)`, 'm'));
    expect(dry.stdout).toMatch(/^ {2}hold: EM2 held by microsoft-000002-apply \(Aborted, package 2\)/m);
    expect(dry.stdout).toMatch(
      /^ {2}ex01\.contoso\.com: would reapply PING1 \(not in place; Applicable: PING1 applies to build 15\.2\.1118\.7\)$/m,
    );
    expect(dry.stdout).toMatch(new RegExp(`^  ex01\\.contoso\\.com: EM3 held by ${halted}$`, 'm'));
    expect(dry.stdout).not.toMatch(/would reapply EM[23]/);
    expect(JSON.parse((await emfleet('rollout', 'list', '--json')).stdout)).toHaveLength(before.length);

    const retried = await emfleet('rollout', 'retry', halted, '--actor', 'carol', '--json');
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({
      ok: true,
      state: 'Running',
      reasonCode: 'RetriedByAdmin',
      reasonDetail: 'by carol: wave 1 sent again to its failed and unreached servers',
    });
    const again = await emfleet('rollout', 'retry', halted, '--actor', 'carol');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`^${halted}: Running \\(Retried: by carol`));
    const { state, waves } = await readRollout(tables, halted);
    expect(state).toMatchObject({ state: 'Running', attempt: 1, halts: 1 });
    expect(waves[0]).toMatchObject({
      attempt: 1,
      pass: bits(1),
      succeeded: 1,
      failed: 0,
      dispatched: 0,
      counted: '',
      failedServers: [],
    });
  });

  it('names an unknown rollout', async () => {
    const run = await emfleet('rollout', 'show', 'nope');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no rollout "nope"/);
  });
});
