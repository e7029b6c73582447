import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildFromSetup,
  detectBuild,
  fileSetupReader,
  windowsSetupReader,
  type SetupValues,
} from '../../lib/agent/build-detect.js';
import {
  powerShellScriptFiles,
  scriptPath,
  windowsPowerShellPath,
  type ScriptRunner,
} from '../../lib/agent/appliers/powershell.js';

describe('buildFromSetup', () => {
  it.each<{ name: string; values: SetupValues; expected: ReturnType<typeof buildFromSetup> }>([
    {
      name: 'ExSetup.exe version as Windows writes it (leading zeros)',
      values: { ExSetupVersion: '15.02.1544.004' },
      expected: { build: '15.2.1544.4', source: 'ExSetup.exe' },
    },
    {
      name: 'ExSetup.exe wins over the registry (a Security Update changes only ExSetup)',
      values: {
        ExSetupVersion: '15.02.1118.020',
        MsiProductMajor: 15,
        MsiProductMinor: 2,
        MsiBuildMajor: 1118,
        MsiBuildMinor: 7,
      },
      expected: { build: '15.2.1118.20', source: 'ExSetup.exe' },
    },
    {
      name: 'the registry alone (Exchange 2016)',
      values: { MsiProductMajor: 15, MsiProductMinor: 1, MsiBuildMajor: 2507, MsiBuildMinor: 6 },
      expected: { build: '15.1.2507.6', source: 'registry' },
    },
    {
      name: 'an unreadable ExSetup version falls back to the registry',
      values: {
        ExSetupVersion: '15.2.x',
        MsiProductMajor: 15,
        MsiProductMinor: 2,
        MsiBuildMajor: 1544,
        MsiBuildMinor: 4,
      },
      expected: { build: '15.2.1544.4', source: 'registry' },
    },
    {
      name: 'nothing at all',
      values: {},
      expected: {
        build: undefined,
        problem:
          'no ExSetup.exe version; the Setup registry key lacks MsiProductMajor, MsiProductMinor, MsiBuildMajor or MsiBuildMinor',
      },
    },
    {
      name: 'Exchange 2013 is not supported',
      values: { ExSetupVersion: '15.00.1497.048' },
      expected: {
        build: undefined,
        problem:
          'ExSetup.exe says 15.0.1497.48, which is not Exchange 2016 (15.1), 2019 or SE (15.2); the Setup registry key lacks MsiProductMajor, MsiProductMinor, MsiBuildMajor or MsiBuildMinor',
      },
    },
    {
      name: 'a registry key missing one number',
      values: { MsiProductMajor: 15, MsiProductMinor: 2, MsiBuildMajor: 1544 },
      expected: {
        build: undefined,
        problem:
          'no ExSetup.exe version; the Setup registry key lacks MsiProductMajor, MsiProductMinor, MsiBuildMajor or MsiBuildMinor',
      },
    },
  ])('$name', ({ values, expected }) => {
    expect(buildFromSetup(values)).toEqual(expected);
  });
});

describe('detectBuild', () => {
  it('the agent.json build is an override: the server is not read', async () => {
    const read = async (): Promise<SetupValues> => {
      throw new Error('must not be read');
    };
    expect(await detectBuild(read, '15.2.1544.4')).toEqual({ build: '15.2.1544.4', source: 'agent.json' });
  });

  it('a read that fails is a problem, not a crash', async () => {
    expect(await detectBuild(async () => Promise.reject(new Error('access denied')))).toEqual({
      build: undefined,
      problem: 'access denied',
    });
  });

  it('a simulated server reads exchange-setup.json; no file, no build', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'emfleet-setup-'));
    const file = join(directory, 'exchange-setup.json');
    expect(await detectBuild(fileSetupReader(file))).toMatchObject({ build: undefined });
    await writeFile(file, JSON.stringify({ ExSetupVersion: '15.02.1748.010' }));
    expect(await detectBuild(fileSetupReader(file))).toEqual({
      build: '15.2.1748.10',
      source: 'ExSetup.exe',
    });
    await writeFile(file, JSON.stringify({ MsiBuildMajor: 'x' }));
    expect(await detectBuild(fileSetupReader(file))).toEqual({
      build: undefined,
      problem: expect.stringMatching(/exchange-setup\.json: MsiBuildMajor: /),
    });
  });
});

describe('windowsSetupReader', () => {
  const reply =
    '{"MsiProductMajor":15,"MsiProductMinor":2,"MsiBuildMajor":1544,"MsiBuildMinor":4,"ExSetupVersion":"15.02.1544.014"}';

  it('runs the shipped exchange-build.read.ps1 by full path with -File, nothing passed in, and reads its JSON reply', async () => {
    const calls: Parameters<ScriptRunner>[0][] = [];
    const reader = windowsSetupReader({
      run: async (invocation) => {
        calls.push(invocation);
        return { exitCode: 0, stdout: reply, stderr: '' };
      },
    });
    expect(await detectBuild(reader)).toEqual({ build: '15.2.1544.14', source: 'ExSetup.exe' });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.executable).toBe(windowsPowerShellPath());
    expect(calls[0]!.args).toEqual([
      '-NoLogo',
      '-NoProfile',
      '-NonInteractive',
      '-File',
      scriptPath('exchange-build.read'),
    ]);
    expect(calls[0]!.args.join(' ')).not.toMatch(/EncodedCommand|ExecutionPolicy|Bypass/);
    expect(powerShellScriptFiles()).toContain(scriptPath('exchange-build.read'));
    expect(existsSync(scriptPath('exchange-build.read'))).toBe(true);
    // Only the wait bound on standard input: the script acts on nothing from outside.
    expect(Object.keys(JSON.parse(calls[0]!.stdin))).toEqual(['waitSeconds']);
    expect(calls[0]!.timeoutInMs).toBe(30_000);
  });

  it('uses the configured PowerShell and timeout', async () => {
    const calls: Parameters<ScriptRunner>[0][] = [];
    const reader = windowsSetupReader({
      executable: 'D:\\PowerShell\\powershell.exe',
      timeoutInMs: 60_000,
      run: async (invocation) => (calls.push(invocation), { exitCode: 0, stdout: '{}', stderr: '' }),
    });
    expect(await reader()).toEqual({});
    expect(calls[0]).toMatchObject({ executable: 'D:\\PowerShell\\powershell.exe', timeoutInMs: 60_000 });
  });

  it.each([
    {
      name: 'a failing script (its JSON error on stderr)',
      result: { exitCode: 1, stdout: '', stderr: '{"error":"Requested registry access is not allowed."}' },
      problem:
        'PowerShell script exchange-build.read failed (exit code 1): Requested registry access is not allowed.',
    },
    {
      name: 'Constrained Language mode',
      result: { exitCode: 3, stdout: '', stderr: '' },
      problem: expect.stringMatching(
        /^PowerShell script exchange-build\.read did not run: PowerShell runs the script in Constrained Language mode/,
      ),
    },
    {
      name: 'a 32-bit PowerShell',
      result: { exitCode: 4, stdout: '', stderr: '' },
      problem: expect.stringMatching(
        /^PowerShell script exchange-build\.read did not run: PowerShell runs as a 32-bit process/,
      ),
    },
    {
      name: 'a reply that is not JSON',
      result: { exitCode: 0, stdout: 'WARNING: x', stderr: '' },
      problem: expect.stringMatching(
        /^PowerShell script exchange-build\.read replied with something that is not JSON: "WARNING: x"/,
      ),
    },
    {
      name: 'a reply with a value of the wrong type',
      result: { exitCode: 0, stdout: '{"MsiBuildMajor":"x"}', stderr: '' },
      problem: expect.stringMatching(
        /^PowerShell script exchange-build\.read replied with an unusable MsiBuildMajor \("x"\)/,
      ),
    },
  ])('$name is a problem naming what went wrong', async ({ result, problem }) => {
    expect(await detectBuild(windowsSetupReader({ run: async () => result }))).toEqual({
      build: undefined,
      problem,
    });
  });
});
