import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { powerShellScriptDirectory, powerShellScriptFiles } from '../../lib/agent/appliers/powershell.js';
import { SimulatedApplier, defaultSimulatedServer } from '../../lib/agent/appliers/simulated.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { emfleetVersion } from '../../lib/version.js';
import { packageAgent, type AgentPackage } from '../../tools/package-agent.js';
import { readZip, writeZip } from '../../tools/zip.js';
import { relayWithClient, writeAgentConfig } from '../helpers/agents.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

/**
 * `npm run package:agent`: the zip an Exchange admin downloads. Its content and size are checked,
 * and the agent is run from the zip itself: extracted to a folder with no node_modules anywhere
 * above it, started with this machine's Node (the zip's node.exe is for Windows), it answers
 * --version and applies a signed package sent through the relay emulator, with the simulated
 * applier. The Windows Node tarball is fetched once into node_modules/.cache/emfleet.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const execFileAsync = promisify(execFile);
let built: AgentPackage;
let entries: ReturnType<typeof readZip>;
let extracted: string;
const folder = `emfleet-agent-${emfleetVersion}`;

beforeAll(async () => {
  const out = await mkdtemp(join(tmpdir(), 'emfleet-package-'));
  built = await packageAgent({ root, outDirectory: out });
  entries = readZip(await readFile(built.zipPath));
  // Somewhere no node_modules can be found from: the bundle must carry everything.
  extracted = await mkdtemp(join(tmpdir(), 'emfleet-extracted-'));
  for (const entry of entries) {
    await mkdir(dirname(join(extracted, entry.name)), { recursive: true });
    await writeFile(join(extracted, entry.name), entry.data);
  }
}, 300_000);

describe('the agent zip', () => {
  it('is dist/agent/emfleet-agent-<version>-win-x64.zip with node.exe, the bundle, the install script, README.txt, and nothing else', async () => {
    expect(built.zipPath.endsWith(`${folder}-win-x64.zip`)).toBe(true);
    const file = (name: string): Buffer => entries.find((entry) => entry.name === `${folder}/${name}`)!.data;
    const scripts = readdirSync(join(root, 'lib', 'agent', 'appliers', 'powershell'))
      .filter((name) => name.endsWith('.ps1'))
      .sort();
    // Every script the agent runs (the applier's, the build reader, the event log writer) and their libraries.
    expect(scripts).toEqual(
      powerShellScriptFiles()
        .map((path) => basename(path))
        .sort(),
    );
    expect(scripts).toEqual(
      expect.arrayContaining(['emfleet-common.ps1', 'exchange-build.read.ps1', 'event-log.write.ps1']),
    );
    expect(entries.map((entry) => entry.name)).toEqual([
      `${folder}/node.exe`,
      `${folder}/emfleet-agent.js`,
      ...scripts.map((name) => `${folder}/powershell/${name}`),
      `${folder}/emfleet-agent.cmd`,
      `${folder}/Install-EmfleetAgent.ps1`,
      `${folder}/README.txt`,
    ]);
    // The applier finds them beside the bundle, as powerShellScriptDirectory says.
    expect(powerShellScriptDirectory.replace(/\\/g, '/')).toMatch(/\/lib\/agent\/appliers\/powershell\/$/);
    expect(file('powershell/emfleet-common.ps1')).toEqual(
      await readFile(join(root, 'lib', 'agent', 'appliers', 'powershell', 'emfleet-common.ps1')),
    );
    // A Windows x64 executable: MZ, then the PE header's machine field 0x8664.
    const exe = file('node.exe');
    expect(exe.subarray(0, 2).toString('latin1')).toBe('MZ');
    const pe = exe.readUInt32LE(0x3c);
    expect(exe.subarray(pe, pe + 4).toString('latin1')).toBe('PE\0\0');
    expect(exe.readUInt16LE(pe + 4)).toBe(0x8664);
    expect(exe.includes(Buffer.from(`v${built.nodeVersion}`, 'latin1'))).toBe(true);
    expect(built.nodeVersion).toMatch(/^22\./);
    expect(file('Install-EmfleetAgent.ps1')).toEqual(
      await readFile(join(root, 'lib', 'agent', 'install', 'Install-EmfleetAgent.ps1')),
    );
    expect(file('README.txt').toString('utf8')).toContain(`emfleet agent ${emfleetVersion} for Windows x64`);
    expect(file('README.txt').toString('utf8')).toContain(
      'Install-EmfleetAgent.ps1 -Server ex01.contoso.com',
    );
    expect(file('emfleet-agent.cmd').toString('ascii')).toBe(
      '@"%~dp0node.exe" "%~dp0emfleet-agent.js" %*\r\n',
    );
  });

  it('is the size of Node plus a small bundle', () => {
    const bundle = entries.find((entry) => entry.name.endsWith('/emfleet-agent.js'))!.data;
    expect(bundle.length).toBeGreaterThan(200 * 1024);
    expect(bundle.length).toBeLessThan(6 * 1024 * 1024);
    expect(built.bytes).toBeGreaterThan(20 * 1024 * 1024);
    expect(built.bytes).toBeLessThan(50 * 1024 * 1024);
    // Nothing is left to npm on the server.
    expect(bundle.toString('utf8')).not.toMatch(
      /require\(["'](hyco-https|ws|zod|xml-crypto|@xmldom\/xmldom|@peculiar\/x509|commander)["']\)/,
    );
  });

  it.skipIf(
    !process.env['PATH']?.split(':').some((directory) => directory && fileExists(join(directory, 'unzip'))),
  )('is a zip other tools read (unzip -t)', async () => {
    const { stdout } = await execFileAsync('unzip', ['-t', built.zipPath]);
    expect(stdout).toMatch(/No errors detected/);
  });

  it('the bundle starts: emfleet-agent --version', async () => {
    const { stdout } = await execFileAsync(
      process.execPath,
      [join(extracted, folder, 'emfleet-agent.js'), '--version'],
      { cwd: extracted },
    );
    expect(stdout.trim()).toBe(emfleetVersion);
  });

  describe('the bundle as an agent', () => {
    let pki: TestPki;
    let fixture: Awaited<ReturnType<typeof relayWithClient>>;
    let child: ChildProcess | undefined;

    beforeAll(async () => {
      pki = await createTestPki();
      fixture = await relayWithClient();
    });

    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGTERM');
        await once(child, 'exit');
      }
      await fixture?.stop();
    });

    it('listens through the relay emulator and applies a signed package with the simulated applier', async () => {
      const { path, config } = await writeAgentConfig(fixture.relay, pki, { server: 'ex31.contoso.com' });
      child = spawn(process.execPath, [join(extracted, folder, 'emfleet-agent.js'), '--config', path], {
        cwd: extracted,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      await vi.waitFor(() => expect(stdout).toContain('"event":"RelayListenerListening"'), {
        timeout: 20_000,
        interval: 50,
      });
      expect(await fixture.client.ping('ex31')).toMatchObject({
        server: 'ex31.contoso.com',
        build: '15.2.1118.7',
        agentVersion: emfleetVersion,
      });

      const reply = await fixture.client.apply('ex31', {
        operationId: 'bundle-apply-1',
        packageBase64: Buffer.from(pki.sign(catalogueXml)).toString('base64'),
        mitigationIds: ['PING1', 'EM1', 'EM2', 'EM3'],
      });
      const outcomes =
        reply.status === 'Completed'
          ? reply.outcomes
          : await vi.waitFor(
              async () => {
                const done = (await fixture.client.status('ex31')).operations.find(
                  (operation) =>
                    operation.operationId === 'bundle-apply-1' && operation.status === 'Completed',
                );
                expect(done).toBeDefined();
                return done!.outcomes;
              },
              { timeout: 30_000, interval: 200 },
            );
      expect(
        Object.fromEntries(Object.entries(outcomes).map(([id, outcome]) => [id, outcome.outcome])),
      ).toEqual({ PING1: 'Applied', EM1: 'Applied', EM2: 'Applied', EM3: 'Applied' });
      const state = await new SimulatedApplier(join(config.stateDirectory, 'simulated-server.json')).read();
      expect(state.sites['Default Web Site']!.rules.map((rule) => rule.name)).toEqual([
        'EEMS EM1 - Autodiscover Rule',
      ]);
      expect(state.appPools['MSExchangeOWAAppPool']).toEqual({ state: 'Stopped', autoStart: false });

      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      // The log file under the state directory has what stdout had.
      const log = await readFile(join(config.stateDirectory, 'logs', 'agent.log'), 'utf8');
      const events = log
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { event: string }).event);
      expect(events).toEqual(
        expect.arrayContaining([
          'AgentStarted',
          'RelayListenerListening',
          'MitigationOutcome',
          'AgentStopping',
        ]),
      );

      // What Install-EmfleetAgent.ps1 -Uninstall runs with the agent stopped: everything put back.
      const { stdout: restoredText } = await execFileAsync(
        process.execPath,
        [join(extracted, folder, 'emfleet-agent.js'), 'restore-all', '--config', path],
        { cwd: extracted },
      );
      expect(JSON.parse(restoredText)).toEqual({ restored: ['EM1', 'EM2', 'EM3', 'PING1'], failed: [] });
      expect(await new SimulatedApplier(join(config.stateDirectory, 'simulated-server.json')).read()).toEqual(
        defaultSimulatedServer(),
      );
    });
  });
});

describe('writeZip and readZip', () => {
  it('round-trip stored and deflated entries with UTF-8 names, and refuse unsafe names', () => {
    const files = [
      { name: 'a/text.txt', data: Buffer.from('hello '.repeat(1000)) },
      {
        name: 'a/random.bin',
        data: Buffer.from(Array.from({ length: 256 }, (_, index) => (index * 151) % 256)),
      },
      { name: 'a/Zoë.txt', data: Buffer.alloc(0) },
    ];
    expect(readZip(writeZip(files))).toEqual(files);
    expect(writeZip(files)).toEqual(writeZip(files));
    expect(() => writeZip([{ name: '../evil', data: Buffer.alloc(1) }])).toThrow(/must be relative/);
    expect(() => writeZip([{ name: '/abs', data: Buffer.alloc(1) }])).toThrow(/must be relative/);
    const damaged = writeZip(files);
    damaged[40] = damaged[40]! ^ 0xff;
    expect(() => readZip(damaged)).toThrow(/CRC-32|invalid/);
  });
});

function fileExists(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
