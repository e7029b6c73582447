import { describe, it, expect, afterAll } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplierError, type ApplicableAction, type PriorState } from '../../lib/agent/applier.js';
import {
  PowerShellApplier,
  buildInvocation,
  spawnScriptRunner,
  type ScriptInvocation,
  type ScriptRunner,
  type ScriptedAction,
  type ScriptedPrior,
} from '../../lib/agent/appliers/powershell.js';
import { EmfleetError } from '../../lib/errors.js';

// ---- test data ----------------------------------------------------------------------------------

const goldenDirectory = join(dirname(fileURLToPath(import.meta.url)), 'golden', 'powershell');
const updateGolden = process.env['UPDATE_GOLDEN'] === '1';

const site = 'Default Web Site';
const ruleName = 'EEMS EM1 - Autodiscover Rule';
const ruleXml =
  '<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true"><match url=".*autodiscover\\.json.*" />' +
  '<conditions logicalGrouping="MatchAny"><add input="{REQUEST_URI}" pattern=".*Powershell.*" /><add input="{QUERY_STRING}" pattern=".*Powershell.*" /></conditions>' +
  '<action type="AbortRequest" /></rule>';
const previousRuleXml = '<rule name="EEMS EM1 - Autodiscover Rule"><match url=".*autodiscover\\.json.*" /><action type="AbortRequest" /></rule>';

const rewrite = (names: Partial<{ site: string; ruleName: string; ruleXml: string }> = {}): ScriptedAction => ({
  kind: 'IisUrlRewrite',
  scope: 'Server',
  description: 'Block autodiscover SSRF',
  site,
  ruleName,
  ruleXml,
  ...names,
});
const appPool = (name = 'MSExchangeOWAAppPool'): ScriptedAction => ({ kind: 'DisableAppPool', scope: 'Server', description: 'Disable OWA', appPool: name });
const service = (name = 'MSExchangeUM'): ScriptedAction => ({ kind: 'DisableService', scope: 'Server', description: 'Disable UM', service: name });
const nothing: ApplicableAction = { kind: 'DoNothing', scope: 'Server', description: 'ping', value: 'DoNothing' };

const powerShellArguments = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand'];

interface Names {
  readonly site: string;
  readonly ruleName: string;
  readonly ruleXml: string;
  readonly appPool: string;
  readonly service: string;
}

const benign: Names = { site, ruleName, ruleXml, appPool: 'MSExchangeOWAAppPool', service: 'MSExchangeUM' };

/** Every operation of every scripted kind, with the script it must run. */
function everyInvocation(names: Names): { label: string; script: string; invocation: ScriptInvocation }[] {
  const rule = rewrite(names);
  const pool = appPool(names.appPool);
  const unit = service(names.service);
  const rulePrior: ScriptedPrior = { kind: 'IisUrlRewrite', site: names.site, ruleName: names.ruleName, previousRuleXml: names.ruleXml };
  const poolPrior: ScriptedPrior = { kind: 'DisableAppPool', appPool: names.appPool, state: 'Started', autoStart: true };
  const servicePrior: ScriptedPrior = { kind: 'DisableService', service: names.service, status: 'Running', startType: 'Automatic' };
  return [
    { label: 'IisUrlRewrite capture', script: 'iis-url-rewrite.capture', invocation: buildInvocation('capture', rule) },
    { label: 'IisUrlRewrite isApplied', script: 'iis-url-rewrite.is-applied', invocation: buildInvocation('isApplied', rule) },
    { label: 'IisUrlRewrite apply', script: 'iis-url-rewrite.apply', invocation: buildInvocation('apply', rule) },
    { label: 'IisUrlRewrite restore', script: 'iis-url-rewrite.restore', invocation: buildInvocation('restore', rulePrior) },
    { label: 'DisableAppPool capture', script: 'app-pool.read', invocation: buildInvocation('capture', pool) },
    { label: 'DisableAppPool isApplied', script: 'app-pool.read', invocation: buildInvocation('isApplied', pool) },
    { label: 'DisableAppPool apply', script: 'app-pool.apply', invocation: buildInvocation('apply', pool) },
    { label: 'DisableAppPool restore', script: 'app-pool.restore', invocation: buildInvocation('restore', poolPrior) },
    { label: 'DisableService capture', script: 'service.read', invocation: buildInvocation('capture', unit) },
    { label: 'DisableService isApplied', script: 'service.read', invocation: buildInvocation('isApplied', unit) },
    { label: 'DisableService apply', script: 'service.apply', invocation: buildInvocation('apply', unit) },
    { label: 'DisableService restore', script: 'service.restore', invocation: buildInvocation('restore', servicePrior) },
  ];
}

/** The script text, exactly as powershell.exe decodes -EncodedCommand. */
function decodedScript(invocation: { args: readonly string[] }): string {
  const flag = invocation.args.indexOf('-EncodedCommand');
  expect(flag, 'the invocation has -EncodedCommand').toBeGreaterThanOrEqual(0);
  return Buffer.from(invocation.args[flag + 1]!, 'base64').toString('utf16le');
}

async function expectGolden(file: string, actual: string): Promise<void> {
  const path = join(goldenDirectory, file);
  if (updateGolden) {
    await mkdir(goldenDirectory, { recursive: true });
    await writeFile(path, actual);
    return;
  }
  const expected = await readFile(path, 'utf8');
  expect(actual, `${file} differs from its golden file (review, then UPDATE_GOLDEN=1 rewrites it)`).toBe(expected);
}

async function expectApplierError(promise: Promise<unknown>, code: string, message: RegExp): Promise<ApplierError> {
  const error: unknown = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, 'expected an ApplierError').toBeInstanceOf(ApplierError);
  expect(error).toBeInstanceOf(EmfleetError);
  expect((error as ApplierError).code).toBe(code);
  expect((error as ApplierError).message).toMatch(message);
  return error as ApplierError;
}

// ---- the scripts --------------------------------------------------------------------------------

describe('generated scripts', () => {
  const entries = everyInvocation(benign);
  const scriptNames = [...new Set(entries.map((entry) => entry.script))];

  it.each(entries)('$label runs $script, identical to its golden file', async ({ script, invocation }) => {
    expect(invocation.executable).toBe('powershell.exe');
    expect(invocation.args.slice(0, -1)).toEqual(powerShellArguments);
    await expectGolden(`${script}.ps1`, decodedScript(invocation));
  });

  it('passes the script as base64 of its UTF-16LE text, as -EncodedCommand requires', () => {
    for (const { invocation } of entries) {
      const text = decodedScript(invocation);
      expect(Buffer.from(text, 'utf16le').toString('base64')).toBe(invocation.args.at(-1));
      expect(text).toMatch(/^# emfleet [a-z.-]+: /);
    }
  });

  it('has a golden file for each script and no stale ones', async () => {
    const files = (await readdir(goldenDirectory)).filter((file) => file.endsWith('.ps1'));
    expect(files.sort()).toEqual(scriptNames.map((name) => `${name}.ps1`).sort());
  });

  it.each(scriptNames)('%s stops on the first error, reads standard input once, writes one reply', (name) => {
    const text = decodedScript(entries.find((entry) => entry.script === name)!.invocation);
    const statements = text.split('\n').filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'));
    expect(statements[0]).toBe("$ErrorActionPreference = 'Stop'");
    expect(text.split('[Console]::In.ReadToEnd() | ConvertFrom-Json')).toHaveLength(2);
    expect(text.split('[Console]::Out.Write(')).toHaveLength(2);
    expect(text).toContain('[Console]::Error.WriteLine($_.Exception.Message)');
  });

  it.each(scriptNames)('%s never mentions $input, which would make powershell.exe consume standard input itself', (name) => {
    expect(decodedScript(entries.find((entry) => entry.script === name)!.invocation)).not.toMatch(/\$input\b/i);
  });

  it.each(scriptNames)('%s is plain ASCII with balanced brackets', (name) => {
    const text = decodedScript(entries.find((entry) => entry.script === name)!.invocation);
    expect(text).toMatch(/^[\n\x20-\x7e]*$/);
    for (const [open, close] of [
      ['{', '}'],
      ['(', ')'],
      ['[', ']'],
    ] as const) {
      expect(text.split(open).length, `${open}${close} in ${name}`).toBe(text.split(close).length);
    }
  });

  it('fits within the 32,767 characters of a Windows command line', () => {
    for (const { label, invocation } of entries) {
      expect([invocation.executable, ...invocation.args].join(' ').length, label).toBeLessThan(32_767);
    }
  });

  it('passes the given executable', () => {
    const invocation = buildInvocation('apply', service(), { executable: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe' });
    expect(invocation.executable).toBe('C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe');
  });

  it('sends each operation the values it acts on, as ASCII JSON (stdin goldens)', async () => {
    const unicode = service('MSExchangeÜM — サービス 🚀');
    const cases: [string, ScriptInvocation][] = [
      ['iis-url-rewrite.apply.stdin.json', buildInvocation('apply', rewrite())],
      ['iis-url-rewrite.restore.stdin.json', buildInvocation('restore', { kind: 'IisUrlRewrite', site, ruleName, previousRuleXml })],
      ['iis-url-rewrite.restore-none.stdin.json', buildInvocation('restore', { kind: 'IisUrlRewrite', site, ruleName, previousRuleXml: null })],
      ['app-pool.restore.stdin.json', buildInvocation('restore', { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true })],
      ['service.restore.stdin.json', buildInvocation('restore', { kind: 'DisableService', service: 'MSExchangeUM', status: 'Running', startType: 'AutomaticDelayedStart' })],
      ['service.apply-unicode.stdin.json', buildInvocation('apply', unicode)],
    ];
    for (const [file, invocation] of cases) await expectGolden(file, invocation.stdin);
    expect(JSON.parse(buildInvocation('apply', unicode).stdin)).toEqual({ service: 'MSExchangeÜM — サービス 🚀' });
  });
});

// ---- injection ----------------------------------------------------------------------------------

describe('hostile names never reach the script text or the command line', () => {
  const hostile = [
    "'; Remove-Item -Recurse C:\\ ; '",
    '"quoted"',
    'a$(Stop-Computer)b',
    'first line\r\nStop-Computer\nthird',
    'back`tick`s `$(Stop-Computer)`',
    '%PATH%',
    'Exchange — サイト 🚀 é',
    '*',
    '..\\..\\Windows\\System32',
    '</rule><rule name="x">',
  ];
  const reference = everyInvocation(benign);

  it.each(hostile)('%j', (value) => {
    const names: Names = { site: value, ruleName: value, ruleXml: `<rule name="${value}" />`, appPool: value, service: value };
    const invocations = everyInvocation(names);
    invocations.forEach(({ label, invocation }, index) => {
      const expected = reference[index]!.invocation;
      expect(decodedScript(invocation), `${label}: script text`).toBe(decodedScript(expected));
      expect(invocation.args, `${label}: arguments`).toEqual(expected.args);
      for (const argument of invocation.args) expect(argument.includes(value), `${label}: ${argument}`).toBe(false);

      expect(invocation.stdin, `${label}: stdin is ASCII`).toMatch(/^[\x20-\x7e]*$/);
      const input = JSON.parse(invocation.stdin) as Record<string, unknown>;
      const carried = Object.entries(input).filter(([, field]) => typeof field === 'string' && field.includes(value));
      expect(carried.length, `${label}: the value travels in stdin`).toBeGreaterThan(0);
      for (const [key, field] of carried) {
        expect(field, `${label}: ${key}`).toBe(key === 'ruleXml' || key === 'previousRuleXml' ? names.ruleXml : value);
      }
    });
  });
});

// ---- the real process runner --------------------------------------------------------------------

interface Behaviour {
  readonly stdout?: string;
  readonly stderr?: string;
  readonly exitCode?: number;
  readonly hang?: boolean;
  readonly floodBytes?: number;
}

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

/**
 * A stand-in for powershell.exe, started the same way (an executable file, no shell): records
 * its arguments and standard input, then behaves as told.
 */
async function fakePowerShell(behaviour: Behaviour): Promise<{ executable: string; recorded: () => Promise<{ argv: string[]; stdin: string }>; pid: () => Promise<number> }> {
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-powershell-'));
  directories.push(directory);
  const executable = join(directory, 'powershell');
  const recordFile = join(directory, 'record.json');
  const pidFile = join(directory, 'pid');
  const source = `#!/usr/bin/env node
const fs = require('node:fs');
const behaviour = ${JSON.stringify(behaviour)};
fs.writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));
let stdin = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { stdin += chunk; });
process.stdin.on('end', () => {
  fs.writeFileSync(${JSON.stringify(recordFile)}, JSON.stringify({ argv: process.argv.slice(2), stdin }));
  if (behaviour.floodBytes) process.stdout.write('x'.repeat(behaviour.floodBytes));
  if (behaviour.hang || behaviour.floodBytes) { setInterval(() => {}, 1000); return; }
  process.stdout.write(behaviour.stdout ?? '');
  process.stderr.write(behaviour.stderr ?? '');
  process.exitCode = behaviour.exitCode ?? 0;
});
`;
  await writeFile(executable, source);
  await chmod(executable, 0o755);
  return {
    executable,
    recorded: async () => JSON.parse(await readFile(recordFile, 'utf8')) as { argv: string[]; stdin: string },
    pid: async () => Number(await readFile(pidFile, 'utf8')),
  };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('spawnScriptRunner with a real process', () => {
  const hostileService = `a$(Stop-Computer)b'; Remove-Item -Recurse C:\\ ; '"x" \`n %PATH% ü 🚀`;

  it('passes exactly the PowerShell arguments, the values on stdin only, and parses the reply', async () => {
    const fake = await fakePowerShell({ stdout: '{"status":"Running","startType":"AutomaticDelayedStart"}' });
    const applier = new PowerShellApplier({ executable: fake.executable, timeoutInMs: 10_000 });

    const prior = await applier.capture(service(hostileService));

    expect(prior).toEqual({ kind: 'DisableService', service: hostileService, status: 'Running', startType: 'AutomaticDelayedStart' });
    const { argv, stdin } = await fake.recorded();
    expect(argv).toEqual(buildInvocation('capture', service(hostileService)).args);
    expect(argv).toEqual(buildInvocation('capture', service()).args);
    expect(argv.slice(0, -1)).toEqual(powerShellArguments);
    expect(Buffer.from(argv.at(-1)!, 'base64').toString('utf16le')).toMatch(/^# emfleet service\.read: /);
    expect(argv.join(' ')).not.toContain('Stop-Computer');
    expect(JSON.parse(stdin)).toEqual({ service: hostileService });
  });

  it('returns the exit code and both outputs as they were', async () => {
    const fake = await fakePowerShell({ stdout: 'out', stderr: 'err', exitCode: 3 });
    const result = await spawnScriptRunner({ executable: fake.executable, args: ['-x'], stdin: 'in', timeoutInMs: 10_000 });
    expect(result).toEqual({ exitCode: 3, stdout: 'out', stderr: 'err' });
    expect(await fake.recorded()).toEqual({ argv: ['-x'], stdin: 'in' });
  });

  it('turns a non-zero exit into an ApplierError with the script error message', async () => {
    const fake = await fakePowerShell({ stderr: "IIS has no site named 'Default Web Sight'\r\n", exitCode: 1 });
    const applier = new PowerShellApplier({ executable: fake.executable, timeoutInMs: 10_000 });
    const error = await expectApplierError(applier.apply(rewrite({ site: 'Default Web Sight' })), 'ScriptFailed', /iis-url-rewrite\.apply failed \(exit code 1\): IIS has no site named 'Default Web Sight'$/);
    expect(error.context).toMatchObject({ script: 'iis-url-rewrite.apply', exitCode: 1 });
  });

  it('fails on a non-zero exit without a message too', async () => {
    const fake = await fakePowerShell({ stdout: '{"ok":true}', exitCode: 5 });
    await expectApplierError(new PowerShellApplier({ executable: fake.executable }).apply(service()), 'ScriptFailed', /exit code 5\): no error message/);
  });

  it('fails when standard error has text even though the exit code is 0', async () => {
    const fake = await fakePowerShell({ stdout: '{"ok":true}', stderr: 'Access is denied' });
    await expectApplierError(new PowerShellApplier({ executable: fake.executable }).apply(service()), 'ScriptFailed', /exit code 0\): Access is denied/);
  });

  it('reads the error records of CLIXML on standard error, and ignores its progress records', async () => {
    const progress =
      '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N="SourceId">1</I64>' +
      '<PR N="Record"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj>';
    const failing = await fakePowerShell({
      exitCode: 1,
      stderr:
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">' +
        progress +
        '<S S="Error">Cannot find path &apos;IIS:\\Sites\\x&apos; because it does not exist._x000D__x000A_</S><S S="Error">At line:1 char:1 &lt;here&gt;_x000D__x000A_</S></Objs>',
    });
    await expectApplierError(
      new PowerShellApplier({ executable: failing.executable }).apply(service()),
      'ScriptFailed',
      /: Cannot find path 'IIS:\\Sites\\x' because it does not exist\.\r\nAt line:1 char:1 <here>$/,
    );

    const succeeding = await fakePowerShell({
      stdout: '{"ok":true}',
      stderr: '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">' + progress + '</Objs>',
    });
    await expect(new PowerShellApplier({ executable: succeeding.executable }).apply(service())).resolves.toBeUndefined();
  });

  it('kills a process that hangs and reports a Timeout at the deadline', async () => {
    const fake = await fakePowerShell({ hang: true });
    // The hang ends only by the deadline's kill: the Timeout error and the dead process are the proof, not a stopwatch.
    const error = await expectApplierError(new PowerShellApplier({ executable: fake.executable, timeoutInMs: 1_500 }).apply(service()), 'Timeout', /did not finish within 1500 ms and was killed/);
    expect(error.context).toMatchObject({ timeoutInMs: 1_500 });
    expect(isRunning(await fake.pid()), 'the hung process is gone').toBe(false);
  });

  it('kills a process that floods its output', async () => {
    const fake = await fakePowerShell({ floodBytes: 5 * 1024 * 1024 });
    await expectApplierError(new PowerShellApplier({ executable: fake.executable, timeoutInMs: 20_000 }).apply(service()), 'OutputTooLarge', /wrote more than 4194304 bytes/);
    expect(isRunning(await fake.pid())).toBe(false);
  });

  it('rejects a reply that is not JSON', async () => {
    const fake = await fakePowerShell({ stdout: 'WARNING: Waiting for service to stop...\r\n{"ok":true}' });
    await expectApplierError(new PowerShellApplier({ executable: fake.executable }).apply(service()), 'BadReply', /service\.apply replied with something that is not JSON: "WARNING: Waiting/);
  });

  it('rejects a reply that fails the schema, naming the field', async () => {
    const stopping = await fakePowerShell({ stdout: '{"state":"Stopping","autoStart":false}' });
    const error = await expectApplierError(new PowerShellApplier({ executable: stopping.executable }).capture(appPool()), 'BadReply', /app-pool\.read replied with an unusable state \("Stopping"\)/);
    expect(error.context).toMatchObject({ script: 'app-pool.read', field: 'state' });

    const missing = await fakePowerShell({ stdout: '{"startType":"Manual"}' });
    await expectApplierError(new PowerShellApplier({ executable: missing.executable }).capture(service()), 'BadReply', /unusable status \(missing\)/);

    const wrongType = await fakePowerShell({ stdout: '{"applied":"yes"}' });
    await expectApplierError(new PowerShellApplier({ executable: wrongType.executable }).isApplied(rewrite()), 'BadReply', /is-applied replied with an unusable applied \("yes"\)/);
  });

  it('reports an executable that cannot be started', async () => {
    const applier = new PowerShellApplier({ executable: join(tmpdir(), 'emfleet-no-such-directory', 'powershell.exe') });
    await expectApplierError(applier.capture(service()), 'SpawnFailed', /cannot start .*powershell\.exe: .*ENOENT/);
  });
});

// ---- the applier through a fake process boundary ------------------------------------------------

interface Call {
  readonly script: string;
  readonly input: unknown;
  readonly executable: string;
  readonly timeoutInMs: number;
}

/** Recognises each script by its golden text and answers with the canned reply for it. */
function scriptedRunner(replies: Record<string, unknown>): { run: ScriptRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: ScriptRunner = async (invocation) => {
    const text = decodedScript(invocation);
    const goldens = await readdir(goldenDirectory);
    let script: string | undefined;
    for (const file of goldens.filter((name) => name.endsWith('.ps1'))) {
      if ((await readFile(join(goldenDirectory, file), 'utf8')) === text) script = file.slice(0, -'.ps1'.length);
    }
    if (script === undefined) throw new Error('the applier ran a script that matches no golden file');
    calls.push({ script, input: JSON.parse(invocation.stdin), executable: invocation.executable, timeoutInMs: invocation.timeoutInMs });
    if (!(script in replies)) throw new Error(`unexpected script ${script}`);
    return { exitCode: 0, stdout: JSON.stringify(replies[script]), stderr: '' };
  };
  return { run, calls };
}

describe('PowerShellApplier', () => {
  it('is the powershell applier', () => {
    expect(new PowerShellApplier().kind).toBe('powershell');
  });

  it('passes its executable and timeout to the runner', async () => {
    const { run, calls } = scriptedRunner({ 'service.apply': { ok: true } });
    await new PowerShellApplier({ executable: 'C:\\ps\\powershell.exe', timeoutInMs: 30_000, run }).apply(service());
    expect(calls).toEqual([{ script: 'service.apply', input: { service: 'MSExchangeUM' }, executable: 'C:\\ps\\powershell.exe', timeoutInMs: 30_000 }]);
  });

  it('defaults to powershell.exe and two minutes', async () => {
    const { run, calls } = scriptedRunner({ 'service.apply': { ok: true } });
    await new PowerShellApplier({ run }).apply(service());
    expect(calls[0]).toMatchObject({ executable: 'powershell.exe', timeoutInMs: 120_000 });
  });

  describe('IisUrlRewrite', () => {
    it('captures the rule of that name, or null', async () => {
      const found = scriptedRunner({ 'iis-url-rewrite.capture': { ruleXml: previousRuleXml } });
      expect(await new PowerShellApplier({ run: found.run }).capture(rewrite())).toEqual({ kind: 'IisUrlRewrite', site, ruleName, previousRuleXml });
      expect(found.calls).toMatchObject([{ script: 'iis-url-rewrite.capture', input: { site, ruleName, ruleXml } }]);

      const none = scriptedRunner({ 'iis-url-rewrite.capture': { ruleXml: null } });
      expect(await new PowerShellApplier({ run: none.run }).capture(rewrite())).toEqual({ kind: 'IisUrlRewrite', site, ruleName, previousRuleXml: null });
    });

    it.each([true, false])('answers isApplied from the script comparing content (%s)', async (applied) => {
      const { run, calls } = scriptedRunner({ 'iis-url-rewrite.is-applied': { applied } });
      expect(await new PowerShellApplier({ run }).isApplied(rewrite())).toBe(applied);
      expect(calls).toMatchObject([{ script: 'iis-url-rewrite.is-applied', input: { site, ruleName, ruleXml } }]);
    });

    it('applies the rule', async () => {
      const { run, calls } = scriptedRunner({ 'iis-url-rewrite.apply': { ok: true } });
      await new PowerShellApplier({ run }).apply(rewrite());
      expect(calls).toMatchObject([{ script: 'iis-url-rewrite.apply', input: { site, ruleName, ruleXml } }]);
    });

    it.each([previousRuleXml, null])('restores the previous rule (%s)', async (previous) => {
      const { run, calls } = scriptedRunner({ 'iis-url-rewrite.restore': { ok: true } });
      await new PowerShellApplier({ run }).restore({ kind: 'IisUrlRewrite', site, ruleName, previousRuleXml: previous });
      expect(calls).toEqual([expect.objectContaining({ script: 'iis-url-rewrite.restore', input: { site, ruleName, previousRuleXml: previous } })]);
    });

    it('refuses an apply whose script did not say it finished', async () => {
      const { run } = scriptedRunner({ 'iis-url-rewrite.apply': {} });
      await expectApplierError(new PowerShellApplier({ run }).apply(rewrite()), 'BadReply', /unusable ok \(missing\)/);
    });
  });

  describe('DisableAppPool', () => {
    it('captures state and autoStart', async () => {
      const { run, calls } = scriptedRunner({ 'app-pool.read': { state: 'Started', autoStart: true } });
      expect(await new PowerShellApplier({ run }).capture(appPool())).toEqual({ kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true });
      expect(calls).toMatchObject([{ script: 'app-pool.read', input: { appPool: 'MSExchangeOWAAppPool' } }]);
    });

    it.each([
      { state: 'Stopped', autoStart: false, applied: true },
      { state: 'Stopping', autoStart: false, applied: true },
      { state: 'Stopped', autoStart: true, applied: false },
      { state: 'Started', autoStart: false, applied: false },
      { state: 'Unknown', autoStart: false, applied: false },
    ])('isApplied is $applied for a pool $state with autoStart $autoStart', async ({ state, autoStart, applied }) => {
      const { run, calls } = scriptedRunner({ 'app-pool.read': { state, autoStart } });
      expect(await new PowerShellApplier({ run }).isApplied(appPool())).toBe(applied);
      expect(calls).toHaveLength(1);
    });

    it('applies and restores', async () => {
      const { run, calls } = scriptedRunner({ 'app-pool.apply': { ok: true }, 'app-pool.restore': { ok: true } });
      const applier = new PowerShellApplier({ run });
      await applier.apply(appPool());
      await applier.restore({ kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true });
      expect(calls).toMatchObject([
        { script: 'app-pool.apply', input: { appPool: 'MSExchangeOWAAppPool' } },
        { script: 'app-pool.restore', input: { appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true } },
      ]);
    });
  });

  describe('DisableService', () => {
    it('captures status and startup type', async () => {
      const { run, calls } = scriptedRunner({ 'service.read': { status: 'Stopped', startType: 'Manual' } });
      expect(await new PowerShellApplier({ run }).capture(service())).toEqual({ kind: 'DisableService', service: 'MSExchangeUM', status: 'Stopped', startType: 'Manual' });
      expect(calls).toMatchObject([{ script: 'service.read', input: { service: 'MSExchangeUM' } }]);
    });

    it('will not capture a service in the middle of starting', async () => {
      const { run } = scriptedRunner({ 'service.read': { status: 'StartPending', startType: 'Automatic' } });
      await expectApplierError(new PowerShellApplier({ run }).capture(service()), 'BadReply', /unusable status \("StartPending"\)/);
    });

    it.each([
      { status: 'Stopped', startType: 'Disabled', applied: true },
      { status: 'Running', startType: 'Disabled', applied: false },
      { status: 'StopPending', startType: 'Disabled', applied: false },
      { status: 'Stopped', startType: 'Manual', applied: false },
    ])('isApplied is $applied for a service $status and $startType', async ({ status, startType, applied }) => {
      const { run, calls } = scriptedRunner({ 'service.read': { status, startType } });
      expect(await new PowerShellApplier({ run }).isApplied(service())).toBe(applied);
      expect(calls).toHaveLength(1);
    });

    it('applies and restores', async () => {
      const { run, calls } = scriptedRunner({ 'service.apply': { ok: true }, 'service.restore': { ok: true } });
      const applier = new PowerShellApplier({ run });
      await applier.apply(service('MSExchangeHM'));
      await applier.restore({ kind: 'DisableService', service: 'MSExchangeHM', status: 'Running', startType: 'AutomaticDelayedStart' });
      expect(calls).toMatchObject([
        { script: 'service.apply', input: { service: 'MSExchangeHM' } },
        { script: 'service.restore', input: { service: 'MSExchangeHM', status: 'Running', startType: 'AutomaticDelayedStart' } },
      ]);
    });
  });

  describe('DoNothing', () => {
    it('never runs PowerShell', async () => {
      const { run, calls } = scriptedRunner({});
      const applier = new PowerShellApplier({ run });
      const prior: PriorState = await applier.capture(nothing);
      expect(prior).toEqual({ kind: 'DoNothing' });
      expect(await applier.isApplied(nothing)).toBe(true);
      await applier.apply(nothing);
      await applier.restore(prior);
      expect(calls).toEqual([]);
    });
  });

  describe('runner failures', () => {
    it('wraps an error of the runner in an ApplierError', async () => {
      const cause = new Error('EACCES');
      const run: ScriptRunner = () => Promise.reject(cause);
      const error = await expectApplierError(new PowerShellApplier({ run }).apply(service()), 'SpawnFailed', /cannot run PowerShell script service\.apply: EACCES/);
      expect(error.cause).toBe(cause);
    });

    it('passes an ApplierError of the runner through', async () => {
      const timeout = new ApplierError('Timeout', 'too slow');
      const run: ScriptRunner = () => Promise.reject(timeout);
      await expect(new PowerShellApplier({ run }).capture(appPool())).rejects.toBe(timeout);
    });
  });
});
