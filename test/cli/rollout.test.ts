import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { storePackage } from '../../lib/fleet/packages.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { runCli, type CliRun } from '../helpers/cli.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
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
  env = { AzureWebJobsStorage: azuriteConnectionString(), EMFLEET_TABLE_PREFIX: `r${randomBytes(5).toString('hex')}`, EMFLEET_ORG: 'contoso', EMFLEET_TRUST_ANCHORS: pki.root.certificatePem };
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
    expect(plan.waves[0]!.servers.map((server) => server.server)).toEqual(['ex01.contoso.com', 'ex02.contoso.com']);
    expect(plan.waves[0]!.servers[0]!.apply).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(plan.waves[1]!.servers).toHaveLength(1);
    expect(plan.waves[2]!.servers).toHaveLength(8);
    expect(plan.leftOut).toEqual([expect.objectContaining({ server: 'ex12.contoso.com', reason: expect.stringContaining('Disabled (server)') })]);

    const text = await emfleet('rollout', 'plan', '--package', packagePath);
    expect(text.stdout).toMatch(/^wave 1 canary: 2 servers, 2 at a time, halt after 0 failures, bake 60 min/m);
    expect(text.stdout).toMatch(/left out: 1 servers\n  ex12\.contoso\.com: PING1: Disabled \(server\)/);
  });

  it('uses the emergency profile with --emergency', async () => {
    const plan = JSON.parse((await emfleet('rollout', 'plan', '--package', packagePath, '--emergency', '--json')).stdout) as PlanJson;
    expect(plan.waves.map((wave) => wave.name)).toEqual(['canary', 'all']);
    expect(plan.waves.flatMap((wave) => wave.servers)).toHaveLength(11);
  });

  it('plans the latest accepted package with --latest', async () => {
    const missing = await emfleet('rollout', 'plan', '--latest');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no package has been accepted from the microsoft feed yet/);
    const tables = new FleetTables({ kind: 'connectionString', connectionString: azuriteConnectionString() }, { prefix: env['EMFLEET_TABLE_PREFIX']! });
    await storePackage(tables, { feed: 'microsoft', bytes: Buffer.from(pki.sign(catalogueXml)), mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'] });
    const latest = await emfleet('rollout', 'plan', '--latest', '--json');
    expect(latest.code, latest.stderr).toBe(0);
    expect((JSON.parse(latest.stdout) as PlanJson).waves[0]!.servers).toHaveLength(2);
  });

  it.each([
    { name: 'neither --package nor --latest', args: [], message: /exactly one of --package FILE or --latest/ },
    { name: 'a bad wave setting', args: ['--package', 'PKG'], env: { EMFLEET_WAVES: '[{"name":"x"}]' }, message: /EMFLEET_WAVES/ },
  ])('exits 2 on $name', async ({ args, env: extra, message }) => {
    const run = await runCli(['rollout', 'plan', ...args.map((arg) => (arg === 'PKG' ? packagePath : arg))], { env: { ...env, ...extra } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('refuses a package that does not verify', async () => {
    const tampered = packagePath.replace('.xml', '.tampered.xml');
    await writeFile(tampered, (await readFile(packagePath, 'utf8')).replace('MSExchangeUM', 'MSExchangeIS'));
    const run = await emfleet('rollout', 'plan', '--package', tampered, '--trust-anchor', rootPath);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^rejected: BadSignature/);
  });
});
