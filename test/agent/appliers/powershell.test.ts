import { describe, it, expect, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplierError, type ApplicableAction, type PriorState } from '../../../lib/agent/applier.js';
import {
  PowerShellApplier,
  buildInvocation,
  powerShellLibraries,
  powerShellScriptDirectory,
  powerShellScriptFiles,
  powerShellScripts,
  readableText,
  scriptPath,
  spawnScriptRunner,
  windowsPowerShellPath,
  type ScriptInvocation,
  type ScriptRunner,
  type ScriptedAction,
  type ScriptedPrior,
} from '../../../lib/agent/appliers/powershell.js';
import { EmfleetError } from '../../../lib/errors.js';

// ---- test data ----------------------------------------------------------------------------------

const goldenDirectory = join(dirname(fileURLToPath(import.meta.url)), 'golden', 'powershell');
const updateGolden = process.env['UPDATE_GOLDEN'] === '1';

const site = 'Default Web Site';
const ruleName = 'EEMS EM1 - Autodiscover Rule';
const ruleXml =
  '<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true"><match url=".*autodiscover\\.json.*" />' +
  '<conditions logicalGrouping="MatchAny"><add input="{REQUEST_URI}" pattern=".*Powershell.*" /><add input="{QUERY_STRING}" pattern=".*Powershell.*" /></conditions>' +
  '<action type="AbortRequest" /></rule>';
const previousRuleXml =
  '<rule name="EEMS EM1 - Autodiscover Rule"><match url=".*autodiscover\\.json.*" /><action type="AbortRequest" /></rule>';

const rewrite = (
  names: Partial<{ site: string; ruleName: string; ruleXml: string }> = {},
): ScriptedAction => ({
  kind: 'IisUrlRewrite',
  scope: 'Server',
  description: 'Block autodiscover SSRF',
  site,
  ruleName,
  ruleXml,
  ...names,
});
const appPool = (name = 'MSExchangeOWAAppPool'): ScriptedAction => ({
  kind: 'DisableAppPool',
  scope: 'Server',
  description: 'Disable OWA',
  appPool: name,
});
const service = (name = 'MSExchangeUM'): ScriptedAction => ({
  kind: 'DisableService',
  scope: 'Server',
  description: 'Disable UM',
  service: name,
});
const nothing: ApplicableAction = {
  kind: 'DoNothing',
  scope: 'Server',
  description: 'ping',
  value: 'DoNothing',
};
const healthManager: ScriptedPrior = {
  kind: 'HealthManager',
  services: [{ service: 'MSExchangeHM', status: 'Running', startType: 'Automatic' }],
};

/** Arguments before the script's path: -File, no -EncodedCommand and no -ExecutionPolicy Bypass. */
const powerShellArguments = ['-NoLogo', '-NoProfile', '-NonInteractive', '-File'];
/** The default timeout (5 minutes) leaves the script's own waits 270 s. */
const waitSeconds = 270;

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
  const rulePrior: ScriptedPrior = {
    kind: 'IisUrlRewrite',
    site: names.site,
    ruleName: names.ruleName,
    previousRuleXml: names.ruleXml,
    previousRulePosition: 2,
  };
  const poolPrior: ScriptedPrior = {
    kind: 'DisableAppPool',
    appPool: names.appPool,
    state: 'Started',
    autoStart: true,
  };
  const servicePrior: ScriptedPrior = {
    kind: 'DisableService',
    service: names.service,
    status: 'Running',
    startType: 'Automatic',
    runningDependents: [names.service],
  };
  return [
    {
      label: 'IisUrlRewrite capture',
      script: 'iis-url-rewrite.capture',
      invocation: buildInvocation('capture', rule),
    },
    {
      label: 'IisUrlRewrite isApplied',
      script: 'iis-url-rewrite.is-applied',
      invocation: buildInvocation('isApplied', rule),
    },
    {
      label: 'IisUrlRewrite apply',
      script: 'iis-url-rewrite.apply',
      invocation: buildInvocation('apply', rule),
    },
    {
      label: 'IisUrlRewrite restore',
      script: 'iis-url-rewrite.restore',
      invocation: buildInvocation('restore', rulePrior),
    },
    {
      label: 'DisableAppPool capture',
      script: 'app-pool.read',
      invocation: buildInvocation('capture', pool),
    },
    {
      label: 'DisableAppPool isApplied',
      script: 'app-pool.read',
      invocation: buildInvocation('isApplied', pool),
    },
    { label: 'DisableAppPool apply', script: 'app-pool.apply', invocation: buildInvocation('apply', pool) },
    {
      label: 'DisableAppPool restore',
      script: 'app-pool.restore',
      invocation: buildInvocation('restore', poolPrior),
    },
    { label: 'DisableService capture', script: 'service.read', invocation: buildInvocation('capture', unit) },
    {
      label: 'DisableService isApplied',
      script: 'service.read',
      invocation: buildInvocation('isApplied', unit),
    },
    { label: 'DisableService apply', script: 'service.apply', invocation: buildInvocation('apply', unit) },
    {
      label: 'DisableService restore',
      script: 'service.restore',
      invocation: buildInvocation('restore', servicePrior),
    },
  ];
}

/** The name of the script an invocation runs (its -File argument). */
function scriptOf(invocation: { args: readonly string[] }): string {
  const flag = invocation.args.indexOf('-File');
  expect(flag, 'the invocation has -File').toBeGreaterThanOrEqual(0);
  return basename(invocation.args[flag + 1]!.replace(/\\/g, '/'), '.ps1');
}

async function scriptText(name: string): Promise<string> {
  return readFile(join(powerShellScriptDirectory, name.endsWith('.ps1') ? name : `${name}.ps1`), 'utf8');
}

async function expectGolden(file: string, actual: string): Promise<void> {
  const path = join(goldenDirectory, file);
  if (updateGolden) {
    await mkdir(goldenDirectory, { recursive: true });
    await writeFile(path, actual);
    return;
  }
  const expected = await readFile(path, 'utf8');
  expect(actual, `${file} differs from its golden file (review, then UPDATE_GOLDEN=1 rewrites it)`).toBe(
    expected,
  );
}

async function expectApplierError(
  promise: Promise<unknown>,
  code: string,
  message: RegExp,
): Promise<ApplierError> {
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

/** The statements of a script: lines that are not blank and not comments. */
function statements(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

// ---- the scripts --------------------------------------------------------------------------------

describe('the shipped scripts', () => {
  const entries = everyInvocation(benign);

  it('are real .ps1 files beside the applier, exactly the ones it names (none missing, none stale)', async () => {
    const files = (await readdir(powerShellScriptDirectory)).sort();
    expect(files).toEqual([...powerShellScripts.map((name) => `${name}.ps1`), ...powerShellLibraries].sort());
    expect(powerShellScriptFiles().every((file) => existsSync(file))).toBe(true);
    expect(scriptPath('service.apply')).toBe(join(powerShellScriptDirectory, 'service.apply.ps1'));
  });

  it.each(entries)(
    '$label runs $script.ps1 with -File, by full path, its values only on stdin',
    ({ script, invocation }) => {
      expect(invocation.executable).toBe(windowsPowerShellPath());
      expect(invocation.args).toEqual([...powerShellArguments, scriptPath(script as never)]);
      expect(invocation.args.join(' ')).not.toMatch(/EncodedCommand|ExecutionPolicy|Bypass/);
      expect(JSON.parse(invocation.stdin)).toMatchObject({ waitSeconds });
    },
  );

  it.each(powerShellScripts)(
    '%s checks its environment first: Constrained Language mode, then a 64-bit process',
    async (name) => {
      const lines = statements(await scriptText(name));
      expect(lines.slice(0, 3)).toEqual([
        "if ($ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage') { exit 3 }",
        'if (-not [Environment]::Is64BitProcess) { exit 4 }',
        ". (Join-Path $PSScriptRoot 'emfleet-common.ps1')",
      ]);
      // The event log writer is long-lived: it reads standard input line by line, not once.
      expect(lines).toContain(
        name === 'event-log.write'
          ? 'while ($null -ne ($line = [Console]::In.ReadLine())) {'
          : 'Invoke-EmfleetScript {',
      );
      expect((await scriptText(name)).split('\n')[0]).toMatch(
        new RegExp(`^# emfleet ${name.replace(/\./g, '\\.')}: `),
      );
    },
  );

  it('the common part stops on the first error, reads standard input once, writes one ASCII reply, and its errors as ASCII JSON', async () => {
    const common = await scriptText('emfleet-common.ps1');
    expect(statements(common)[0]).toBe("$ErrorActionPreference = 'Stop'");
    expect(common.split('[Console]::In.ReadToEnd() | ConvertFrom-Json')).toHaveLength(2);
    expect(common.split('[Console]::Out.Write(')).toHaveLength(2);
    expect(common).toContain(
      '[Console]::Error.Write((ConvertTo-AsciiJson @{ error = $_.Exception.Message }))',
    );
  });

  it.each([...powerShellScripts, ...powerShellLibraries])(
    '%s never mentions $input, is plain ASCII with balanced brackets',
    async (name) => {
      const text = await scriptText(name);
      expect(text).not.toMatch(/\$input\b/i);
      expect(text).toMatch(/^[\n\x20-\x7e]*$/);
      for (const [open, close] of [
        ['{', '}'],
        ['(', ')'],
        ['[', ']'],
      ] as const) {
        expect(text.split(open).length, `${open}${close} in ${name}`).toBe(text.split(close).length);
      }
    },
  );

  /*
   * What the comparison with Microsoft's scripts found (issue 21; docs/agent.md has the table). Each
   * row failed against the scripts as they were before.
   */
  const faithful: { name: string; script: string; has?: RegExp[]; hasNot?: RegExp[]; order?: string[] }[] = [
    {
      name: "the rule goes to the site's own web.config, where EOMT writes it",
      script: 'emfleet-iis.ps1',
      has: [/\$manager\.GetWebConfiguration\(\$site\)\.GetSection\('system\.webServer\/rewrite\/rules'\)/],
      hasNot: [/GetSection\('system\.webServer\/rewrite\/rules', \$site\)/],
    },
    {
      name: 'every application of the site is checked for a <clear/> or <remove>',
      script: 'emfleet-iis.ps1',
      has: [
        /foreach \(\$application in \$manager\.Sites\[\$site\]\.Applications\)/,
        /GetWebConfiguration\(\$site, \$application\.Path\)/,
      ],
    },
    {
      name: 'is-applied: applied only where no application cancels it',
      script: 'iis-url-rewrite.is-applied',
      has: [/Get-Cancellations \$manager \$in\.site \$content/, /applied = .* -and \$cancelled\.Count -eq 0/],
    },
    {
      name: 'apply reports where the rule is not in force',
      script: 'iis-url-rewrite.apply',
      has: [/notInForce = \(Get-Cancellations/],
    },
    {
      name: "capture journals the rule's position among the site's own rules",
      script: 'iis-url-rewrite.capture',
      has: [/position = \$position/, /Get-LocalPosition \$rules \$index/],
    },
    {
      name: 'restore: back at its position, after the duplicate-name check, the section removed when no rule is left',
      script: 'iis-url-rewrite.restore',
      order: [
        '(Find-Rule $rules $in.ruleName) -ge 0) {',
        'Get-InsertIndex $rules $in.previousRulePosition',
        '$section.RevertToParent()',
        '$manager.CommitChanges()',
      ],
    },
    {
      name: 'URL Rewrite is checked (RewriteModule in globalModules, the section declared)',
      script: 'emfleet-iis.ps1',
      has: [/GetSection\('system\.webServer\/globalModules'\)/, /-eq 'RewriteModule'/],
    },
    ...[
      'iis-url-rewrite.capture',
      'iis-url-rewrite.is-applied',
      'iis-url-rewrite.apply',
      'iis-url-rewrite.restore',
    ].map((script) => ({
      name: `${script} checks for URL Rewrite first`,
      script,
      order: ['Assert-UrlRewrite $manager', 'Assert-Site $manager $in.site'],
    })),
    {
      name: 'app pool: startMode OnDemand and autoStart off, committed, then stop, then a bounded wait',
      script: 'app-pool.apply',
      order: [
        "$pool.StartMode = 'OnDemand'",
        '$pool.AutoStart = $false',
        '$manager.CommitChanges()',
        '$pool.Stop()',
        "Wait-AppPoolState $pool 'Stopped'",
      ],
    },
    {
      name: 'app pool restore waits for a pending stop before Start()',
      script: 'app-pool.restore',
      order: [
        "if ($pool.State -eq 'Stopping') { Wait-AppPoolState $pool 'Stopped' }",
        '$pool.StartMode = [string] $in.startMode',
        '$pool.Start()',
        "Wait-AppPoolState $pool 'Started'",
      ],
    },
    {
      name: 'start types through sc.exe (delayed-auto included), not a registry write',
      script: 'emfleet-common.ps1',
      has: [
        /AutomaticDelayedStart = 'delayed-auto'/,
        /& \(Join-Path \$env:SystemRoot 'System32\\sc\.exe'\) config \$service\.ServiceName 'start=' /,
        /\$LASTEXITCODE -ne 0/,
      ],
      hasNot: [/SetValue\('DelayedAutostart'/],
    },
    {
      name: 'every service wait is bounded (WaitForStatus with what is left of the deadline)',
      script: 'emfleet-common.ps1',
      has: [
        /\$service\.WaitForStatus\(\$status, \(Get-Remaining\)\)/,
        /\$script:deadline = \[DateTime\]::UtcNow\.AddSeconds\(\[int\] \$in\.waitSeconds\)/,
      ],
    },
    {
      name: 'the Health Manager: both services, disabled, then stopped',
      script: 'health-manager.hold',
      has: [/@\('MSExchangeHM', 'MSExchangeHMRecovery'\)/],
      order: [
        "foreach ($service in $services) { Set-StartType $service 'Disabled' }",
        'foreach ($service in $services) { Stop-ServiceBounded $service }',
      ],
    },
    {
      name: 'the Health Manager is read with its start type',
      script: 'health-manager.read',
      has: [
        /@\('MSExchangeHM', 'MSExchangeHMRecovery'\)/,
        /startType = \[string\] \(Get-StartType \$service\)/,
      ],
    },
    {
      name: 'the Health Manager is put back as it was, HM first',
      script: 'health-manager.restore',
      order: [
        'Set-StartType $service ([string] $prior.startType)',
        "if ($prior.status -eq 'Running') { Start-ServiceBounded $service }",
      ],
    },
    {
      name: "a service's running dependents are captured",
      script: 'service.read',
      has: [/runningDependents = \(Get-RunningDependents \$service\)/],
    },
    {
      name: 'and started again on restore',
      script: 'service.restore',
      order: [
        'Set-StartType $service ([string] $in.startType)',
        'Start-ServiceBounded $service',
        'foreach ($name in $in.runningDependents) { Start-ServiceBounded (Get-RequiredService $name) }',
      ],
    },
    {
      name: 'pool and service scripts no longer touch the Health Manager themselves (the agent holds it, journaled)',
      script: 'app-pool.apply',
      hasNot: [/MSExchangeHM/],
    },
    {
      name: "setup is detected by ExSetup.exe and the roles' Watermark",
      script: 'exchange-setup.read',
      has: [/Get-Process -Name 'ExSetup'/, /GetValue\('Watermark'\)/],
    },
    {
      name: "the build: the Setup key's four numbers and ExSetup.exe's file version under MsiInstallPath (HealthChecker)",
      script: 'exchange-build.read',
      has: [
        /OpenSubKey\('SOFTWARE\\Microsoft\\ExchangeServer\\v15\\Setup'\)/,
        /@\('MsiProductMajor', 'MsiProductMinor', 'MsiBuildMajor', 'MsiBuildMinor'\)/,
        /\$reply\[\$name\] = \[int\] \$value/,
        /Join-Path \(\[string\] \$installPath\) 'Bin\\ExSetup\.exe'/,
        /\$reply\['ExSetupVersion'\] = \[string\] \(Get-Item -LiteralPath \$exSetup\)\.VersionInfo\.FileVersion/,
      ],
    },
    {
      name: "the event log: each line's id, type and message as data to the emfleet-agent source, a failed line reported as ASCII JSON and the next one still written",
      script: 'event-log.write',
      has: [
        /Write-EventLog -LogName Application -Source 'emfleet-agent' -EventId \(\[int\] \$entry\.id\) -EntryType \(\[string\] \$entry\.type\) -Message \(\[string\] \$entry\.message\)/,
        /\[Console\]::Error\.WriteLine\(\(ConvertTo-AsciiJson @\{ error = \$_\.Exception\.Message \}\)\)/,
      ],
      hasNot: [/\bexit 1\b/],
      order: [
        'while ($null -ne ($line = [Console]::In.ReadLine())) {',
        'try {',
        '$entry = ConvertFrom-Json -InputObject $line',
        'Write-EventLog -LogName',
        '} catch {',
      ],
    },
    {
      name: 'the state directory: writers of the journal other than SYSTEM and Administrators are reported before anything changes',
      script: 'state-directory.secure',
      has: [/\$allowed = @\('S-1-5-18', 'S-1-5-32-544'\)/, /SetAccessRuleProtection\(\$true, \$false\)/],
      order: [
        'Get-Acl -LiteralPath $journal',
        'if ($writers.Count -eq 0) {',
        'Set-Acl -LiteralPath $directory',
      ],
    },
  ];

  it.each(faithful)('$name ($script)', async ({ script, has = [], hasNot = [], order = [] }) => {
    const text = await scriptText(script);
    for (const pattern of has) expect(text).toMatch(pattern);
    for (const pattern of hasNot) expect(text).not.toMatch(pattern);
    const positions = order.map((fragment) => text.indexOf(fragment));
    for (const [index, position] of positions.entries())
      expect(position, `"${order[index]}" in ${script}`).toBeGreaterThanOrEqual(0);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
  });

  it('no script waits without a bound: no Stop-Service, Start-Service or Restart-Service', async () => {
    for (const name of [...powerShellScripts, ...powerShellLibraries])
      expect(statements(await scriptText(name)).join('\n'), name).not.toMatch(
        /\b(Stop|Start|Restart)-Service\b/,
      );
  });

  it('sends each operation the values it acts on, as ASCII JSON (stdin goldens)', async () => {
    const unicode = service('MSExchangeÜM — サービス 🚀');
    const cases: [string, ScriptInvocation][] = [
      ['iis-url-rewrite.apply.stdin.json', buildInvocation('apply', rewrite())],
      [
        'iis-url-rewrite.restore.stdin.json',
        buildInvocation('restore', {
          kind: 'IisUrlRewrite',
          site,
          ruleName,
          previousRuleXml,
          previousRulePosition: 1,
        }),
      ],
      [
        'iis-url-rewrite.restore-none.stdin.json',
        buildInvocation('restore', { kind: 'IisUrlRewrite', site, ruleName, previousRuleXml: null }),
      ],
      [
        'app-pool.restore.stdin.json',
        buildInvocation('restore', {
          kind: 'DisableAppPool',
          appPool: 'MSExchangeOWAAppPool',
          state: 'Started',
          autoStart: true,
          startMode: 'AlwaysRunning',
        }),
      ],
      [
        'service.restore.stdin.json',
        buildInvocation('restore', {
          kind: 'DisableService',
          service: 'MSExchangeUM',
          status: 'Running',
          startType: 'AutomaticDelayedStart',
          runningDependents: ['MSExchangeUMCR'],
        }),
      ],
      ['health-manager.restore.stdin.json', buildInvocation('restore', healthManager)],
      ['service.apply-unicode.stdin.json', buildInvocation('apply', unicode)],
    ];
    for (const [file, invocation] of cases) await expectGolden(file, invocation.stdin);
    expect(JSON.parse(buildInvocation('apply', unicode).stdin)).toEqual({
      service: 'MSExchangeÜM — サービス 🚀',
      waitSeconds,
    });
  });

  it('the script waits end 30 s before the process would be killed', () => {
    expect(JSON.parse(buildInvocation('apply', service(), { timeoutInMs: 120_000 }).stdin)).toMatchObject({
      waitSeconds: 90,
    });
  });
});

describe('windowsPowerShellPath: by full path, the 64-bit one', () => {
  it.each([
    {
      name: '64-bit Node',
      environment: { SystemRoot: 'C:\\Windows' },
      arch: 'x64',
      path: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
    },
    {
      name: '32-bit Node on 64-bit Windows: Sysnative',
      environment: { SystemRoot: 'C:\\Windows', PROCESSOR_ARCHITEW6432: 'AMD64' },
      arch: 'ia32',
      path: 'C:\\Windows\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe',
    },
    {
      name: '32-bit Windows',
      environment: { SystemRoot: 'D:\\WINNT' },
      arch: 'ia32',
      path: 'D:\\WINNT\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
    },
    {
      name: 'no SystemRoot',
      environment: {},
      arch: 'arm64',
      path: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
    },
  ])('$name', ({ environment, arch, path }) => {
    expect(windowsPowerShellPath(environment, arch)).toBe(path);
  });
});

// ---- injection ----------------------------------------------------------------------------------

describe('hostile names never reach the command line', () => {
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
    const names: Names = {
      site: value,
      ruleName: value,
      ruleXml: `<rule name="${value}" />`,
      appPool: value,
      service: value,
    };
    const invocations = everyInvocation(names);
    invocations.forEach(({ label, invocation }, index) => {
      const expected = reference[index]!.invocation;
      expect(invocation.args, `${label}: arguments`).toEqual(expected.args);
      for (const argument of invocation.args)
        expect(argument.includes(value), `${label}: ${argument}`).toBe(false);

      expect(invocation.stdin, `${label}: stdin is ASCII`).toMatch(/^[\x20-\x7e]*$/);
      const input = JSON.parse(invocation.stdin) as Record<string, unknown>;
      const carried = Object.entries(input).filter(
        ([, field]) => typeof field === 'string' && field.includes(value),
      );
      expect(carried.length, `${label}: the value travels in stdin`).toBeGreaterThan(0);
      for (const [key, field] of carried) {
        expect(field, `${label}: ${key}`).toBe(
          key === 'ruleXml' || key === 'previousRuleXml' ? names.ruleXml : value,
        );
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
async function fakePowerShell(behaviour: Behaviour): Promise<{
  executable: string;
  recorded: () => Promise<{ argv: string[]; stdin: string }>;
  pid: () => Promise<number>;
}> {
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
    const fake = await fakePowerShell({
      stdout: '{"status":"Running","startType":"AutomaticDelayedStart","runningDependents":[]}',
    });
    const applier = new PowerShellApplier({ executable: fake.executable, timeoutInMs: 10_000 });

    const prior = await applier.capture(service(hostileService));

    expect(prior).toEqual({
      kind: 'DisableService',
      service: hostileService,
      status: 'Running',
      startType: 'AutomaticDelayedStart',
    });
    const { argv, stdin } = await fake.recorded();
    expect(argv).toEqual(buildInvocation('capture', service(hostileService)).args);
    expect(argv).toEqual(buildInvocation('capture', service()).args);
    expect(argv).toEqual([...powerShellArguments, scriptPath('service.read')]);
    expect(argv.join(' ')).not.toContain('Stop-Computer');
    expect(JSON.parse(stdin)).toEqual({ service: hostileService, waitSeconds: 5 });
  });

  it('reads a service status (the start-up wait for W3SVC) with the shipped service.read script', async () => {
    const fake = await fakePowerShell({
      stdout: '{"status":"StartPending","startType":"Automatic","runningDependents":[]}',
    });
    const applier = new PowerShellApplier({ executable: fake.executable, timeoutInMs: 10_000 });

    expect(await applier.serviceStatus('W3SVC')).toBe('StartPending');
    const { argv, stdin } = await fake.recorded();
    expect(argv).toEqual([...powerShellArguments, scriptPath('service.read')]);
    expect(JSON.parse(stdin)).toEqual({ service: 'W3SVC', waitSeconds: 5 });
  });

  it('returns the exit code and both outputs as they were', async () => {
    const fake = await fakePowerShell({ stdout: 'out', stderr: 'err', exitCode: 3 });
    const result = await spawnScriptRunner({
      executable: fake.executable,
      args: ['-x'],
      stdin: 'in',
      timeoutInMs: 10_000,
    });
    expect(result).toEqual({ exitCode: 3, stdout: 'out', stderr: 'err' });
    expect(await fake.recorded()).toEqual({ argv: ['-x'], stdin: 'in' });
  });

  it('turns a non-zero exit into an ApplierError with the script error message', async () => {
    const fake = await fakePowerShell({
      stderr: "IIS has no site named 'Default Web Sight'\r\n",
      exitCode: 1,
    });
    const applier = new PowerShellApplier({ executable: fake.executable, timeoutInMs: 10_000 });
    const error = await expectApplierError(
      applier.apply(rewrite({ site: 'Default Web Sight' })),
      'ScriptFailed',
      /iis-url-rewrite\.apply failed \(exit code 1\): IIS has no site named 'Default Web Sight'$/,
    );
    expect(error.context).toMatchObject({ script: 'iis-url-rewrite.apply', exitCode: 1 });
  });

  it('fails on a non-zero exit without a message too', async () => {
    const fake = await fakePowerShell({ stdout: '{"ok":true}', exitCode: 5 });
    await expectApplierError(
      new PowerShellApplier({ executable: fake.executable }).apply(service()),
      'ScriptFailed',
      /exit code 5\): no error message/,
    );
  });

  it('fails when standard error has text even though the exit code is 0', async () => {
    const fake = await fakePowerShell({ stdout: '{"ok":true}', stderr: 'Access is denied' });
    await expectApplierError(
      new PowerShellApplier({ executable: fake.executable }).apply(service()),
      'ScriptFailed',
      /exit code 0\): Access is denied/,
    );
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
      stderr:
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">' +
        progress +
        '</Objs>',
    });
    await expect(
      new PowerShellApplier({ executable: succeeding.executable }).apply(service()),
    ).resolves.toEqual({ notInForce: [] });
  });

  it("reads the script's own error (ASCII JSON on standard error, non-English text escaped) back to its text", async () => {
    const fake = await fakePowerShell({
      stderr: '{"error":"Dienst \\u00abMSExchangeUM\\u00bb wurde nicht gefunden"}',
      exitCode: 1,
    });
    await expectApplierError(
      new PowerShellApplier({ executable: fake.executable }).apply(service()),
      'ScriptFailed',
      /exit code 1\): Dienst «MSExchangeUM» wurde nicht gefunden$/,
    );
  });

  it.each([
    {
      exitCode: 3,
      code: 'ConstrainedLanguage',
      message: /did not run: PowerShell runs the script in Constrained Language mode \(WDAC or AppLocker/,
    },
    { exitCode: 4, code: 'Not64Bit', message: /did not run: PowerShell runs as a 32-bit process/ },
  ])(
    'exit code $exitCode of the environment checks is $code, said plainly',
    async ({ exitCode, code, message }) => {
      const fake = await fakePowerShell({ exitCode });
      await expectApplierError(
        new PowerShellApplier({ executable: fake.executable }).capture(appPool()),
        code,
        message,
      );
    },
  );

  it('kills a process that hangs and reports a Timeout at the deadline', async () => {
    const fake = await fakePowerShell({ hang: true });
    // The hang ends only by the deadline's kill: the Timeout error and the dead process are the proof, not a stopwatch.
    const error = await expectApplierError(
      new PowerShellApplier({ executable: fake.executable, timeoutInMs: 1_500 }).apply(service()),
      'Timeout',
      /did not finish within 1500 ms and was killed/,
    );
    expect(error.context).toMatchObject({ timeoutInMs: 1_500 });
    expect(isRunning(await fake.pid()), 'the hung process is gone').toBe(false);
  });

  it('kills a process that floods its output', async () => {
    const fake = await fakePowerShell({ floodBytes: 5 * 1024 * 1024 });
    await expectApplierError(
      new PowerShellApplier({ executable: fake.executable, timeoutInMs: 20_000 }).apply(service()),
      'OutputTooLarge',
      /wrote more than 4194304 bytes/,
    );
    expect(isRunning(await fake.pid())).toBe(false);
  });

  it('rejects a reply that is not JSON', async () => {
    const fake = await fakePowerShell({ stdout: 'WARNING: Waiting for service to stop...\r\n{"ok":true}' });
    await expectApplierError(
      new PowerShellApplier({ executable: fake.executable }).apply(service()),
      'BadReply',
      /service\.apply replied with something that is not JSON: "WARNING: Waiting/,
    );
  });

  it('rejects a reply that fails the schema, naming the field', async () => {
    const stopping = await fakePowerShell({ stdout: '{"state":"Stopping","autoStart":false}' });
    const error = await expectApplierError(
      new PowerShellApplier({ executable: stopping.executable }).capture(appPool()),
      'BadReply',
      /app-pool\.read replied with an unusable state \("Stopping"\)/,
    );
    expect(error.context).toMatchObject({ script: 'app-pool.read', field: 'state' });

    const missing = await fakePowerShell({ stdout: '{"startType":"Manual"}' });
    await expectApplierError(
      new PowerShellApplier({ executable: missing.executable }).capture(service()),
      'BadReply',
      /unusable status \(missing\)/,
    );

    const wrongType = await fakePowerShell({ stdout: '{"applied":"yes"}' });
    await expectApplierError(
      new PowerShellApplier({ executable: wrongType.executable }).isApplied(rewrite()),
      'BadReply',
      /is-applied replied with an unusable applied \("yes"\)/,
    );
  });

  it('reports an executable that cannot be started', async () => {
    const applier = new PowerShellApplier({
      executable: join(tmpdir(), 'emfleet-no-such-directory', 'powershell.exe'),
    });
    await expectApplierError(
      applier.capture(service()),
      'SpawnFailed',
      /cannot start .*powershell\.exe: .*ENOENT/,
    );
  });
});

describe('readableText', () => {
  it.each([
    {
      name: 'UTF-8 as it is',
      bytes: Buffer.from('Zugriff verweigert: «ü»', 'utf8'),
      text: 'Zugriff verweigert: «ü»',
    },
    {
      name: 'an OEM code page (850: "Zugriff verweigert ü") escaped to ASCII, not replacement characters',
      bytes: Buffer.from([0x5a, 0x75, 0x67, 0x72, 0x69, 0x66, 0x66, 0x20, 0x81]),
      text: 'Zugriff \\x81',
    },
    { name: 'plain ASCII', bytes: Buffer.from('Access is denied'), text: 'Access is denied' },
  ])('$name', ({ bytes, text }) => {
    expect(readableText(bytes)).toBe(text);
  });
});

// ---- the applier through a fake process boundary ------------------------------------------------

interface Call {
  readonly script: string;
  readonly input: Record<string, unknown>;
  readonly executable: string;
  readonly timeoutInMs: number;
}

/** Recognises each script by the file it runs and answers with the canned reply for it. */
function scriptedRunner(replies: Record<string, unknown>): { run: ScriptRunner; calls: Call[] } {
  const calls: Call[] = [];
  const run: ScriptRunner = async (invocation) => {
    const script = scriptOf(invocation);
    const { waitSeconds: _waitSeconds, ...input } = JSON.parse(invocation.stdin) as Record<string, unknown>;
    calls.push({ script, input, executable: invocation.executable, timeoutInMs: invocation.timeoutInMs });
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
    await new PowerShellApplier({ executable: 'C:\\ps\\powershell.exe', timeoutInMs: 30_000, run }).apply(
      service(),
    );
    expect(calls).toEqual([
      {
        script: 'service.apply',
        input: { service: 'MSExchangeUM' },
        executable: 'C:\\ps\\powershell.exe',
        timeoutInMs: 30_000,
      },
    ]);
  });

  it('defaults to Windows PowerShell by full path and five minutes (Exchange services can take minutes to stop)', async () => {
    const { run, calls } = scriptedRunner({ 'service.apply': { ok: true } });
    await new PowerShellApplier({ run }).apply(service());
    expect(calls[0]).toMatchObject({ executable: windowsPowerShellPath(), timeoutInMs: 300_000 });
  });

  describe('IisUrlRewrite', () => {
    it("captures the site's own rule of that name and its position, or null", async () => {
      const found = scriptedRunner({ 'iis-url-rewrite.capture': { ruleXml: previousRuleXml, position: 2 } });
      expect(await new PowerShellApplier({ run: found.run }).capture(rewrite())).toEqual({
        kind: 'IisUrlRewrite',
        site,
        ruleName,
        previousRuleXml,
        previousRulePosition: 2,
      });
      expect(found.calls).toMatchObject([
        { script: 'iis-url-rewrite.capture', input: { site, ruleName, ruleXml } },
      ]);

      const none = scriptedRunner({ 'iis-url-rewrite.capture': { ruleXml: null, position: null } });
      expect(await new PowerShellApplier({ run: none.run }).capture(rewrite())).toEqual({
        kind: 'IisUrlRewrite',
        site,
        ruleName,
        previousRuleXml: null,
      });
    });

    it.each([true, false])(
      'answers isApplied from the script comparing content in every application (%s)',
      async (applied) => {
        const { run, calls } = scriptedRunner({
          'iis-url-rewrite.is-applied': { applied, notInForce: applied ? [] : ['/mapi: not in force there'] },
        });
        expect(await new PowerShellApplier({ run }).isApplied(rewrite())).toBe(applied);
        expect(calls).toMatchObject([
          { script: 'iis-url-rewrite.is-applied', input: { site, ruleName, ruleXml } },
        ]);
      },
    );

    it.each([
      {
        reply: { applied: true, ruleName: 'EEMS EM1 - Autodiscover Rule (EM)' },
        found: 'EEMS EM1 - Autodiscover Rule (EM)',
      },
      { reply: { applied: false, ruleName: null }, found: undefined },
    ])('names the rule found in place by content, for adoption ($found)', async ({ reply, found }) => {
      const { run, calls } = scriptedRunner({ 'iis-url-rewrite.is-applied': reply });
      expect(
        await new PowerShellApplier({ run }).ruleInPlace(
          rewrite() as Extract<ScriptedAction, { kind: 'IisUrlRewrite' }>,
        ),
      ).toBe(found);
      expect(calls).toMatchObject([
        { script: 'iis-url-rewrite.is-applied', input: { site, ruleName, ruleXml } },
      ]);
    });

    it('applies the rule and reports the applications where it is not in force', async () => {
      const { run, calls } = scriptedRunner({
        'iis-url-rewrite.apply': {
          ok: true,
          notInForce: [
            '/mapi: not in force there; its web.config clears the inherited rules or removes this one',
          ],
        },
      });
      expect(await new PowerShellApplier({ run }).apply(rewrite())).toEqual({
        notInForce: [
          '/mapi: not in force there; its web.config clears the inherited rules or removes this one',
        ],
      });
      expect(calls).toMatchObject([{ script: 'iis-url-rewrite.apply', input: { site, ruleName, ruleXml } }]);
    });

    it.each([
      { previous: previousRuleXml, position: 3 },
      { previous: null, position: undefined },
    ])('restores the previous rule at its position ($position)', async ({ previous, position }) => {
      const { run, calls } = scriptedRunner({ 'iis-url-rewrite.restore': { ok: true } });
      await new PowerShellApplier({ run }).restore({
        kind: 'IisUrlRewrite',
        site,
        ruleName,
        previousRuleXml: previous,
        ...(position === undefined ? {} : { previousRulePosition: position }),
      });
      expect(calls).toEqual([
        expect.objectContaining({
          script: 'iis-url-rewrite.restore',
          input: { site, ruleName, previousRuleXml: previous, previousRulePosition: position ?? null },
        }),
      ]);
    });

    it('refuses an apply whose script did not say it finished', async () => {
      const { run } = scriptedRunner({ 'iis-url-rewrite.apply': {} });
      await expectApplierError(
        new PowerShellApplier({ run }).apply(rewrite()),
        'BadReply',
        /unusable ok \(missing\)/,
      );
    });
  });

  describe('DisableAppPool', () => {
    it('captures state, autoStart and startMode', async () => {
      const { run, calls } = scriptedRunner({
        'app-pool.read': { state: 'Started', autoStart: true, startMode: 'AlwaysRunning' },
      });
      expect(await new PowerShellApplier({ run }).capture(appPool())).toEqual({
        kind: 'DisableAppPool',
        appPool: 'MSExchangeOWAAppPool',
        state: 'Started',
        autoStart: true,
        startMode: 'AlwaysRunning',
      });
      expect(calls).toMatchObject([{ script: 'app-pool.read', input: { appPool: 'MSExchangeOWAAppPool' } }]);
    });

    it('will not capture a pool in the middle of stopping', async () => {
      const { run } = scriptedRunner({
        'app-pool.read': { state: 'Stopping', autoStart: false, startMode: 'OnDemand' },
      });
      const error = await expectApplierError(
        new PowerShellApplier({ run }).capture(appPool()),
        'BadReply',
        /app-pool\.read replied with an unusable state \("Stopping"\)/,
      );
      expect(error.context).toMatchObject({ script: 'app-pool.read', field: 'state' });
    });

    it.each([
      { state: 'Stopped', autoStart: false, applied: true },
      { state: 'Stopping', autoStart: false, applied: true },
      { state: 'Stopped', autoStart: true, applied: false },
      { state: 'Started', autoStart: false, applied: false },
      { state: 'Unknown', autoStart: false, applied: false },
    ])(
      'isApplied is $applied for a pool $state with autoStart $autoStart',
      async ({ state, autoStart, applied }) => {
        const { run, calls } = scriptedRunner({
          'app-pool.read': { state, autoStart, startMode: 'OnDemand' },
        });
        expect(await new PowerShellApplier({ run }).isApplied(appPool())).toBe(applied);
        expect(calls).toHaveLength(1);
      },
    );

    it('applies and restores', async () => {
      const { run, calls } = scriptedRunner({
        'app-pool.apply': { ok: true },
        'app-pool.restore': { ok: true },
      });
      const applier = new PowerShellApplier({ run });
      await applier.apply(appPool());
      await applier.restore({
        kind: 'DisableAppPool',
        appPool: 'MSExchangeOWAAppPool',
        state: 'Started',
        autoStart: true,
      });
      expect(calls).toMatchObject([
        { script: 'app-pool.apply', input: { appPool: 'MSExchangeOWAAppPool' } },
        {
          script: 'app-pool.restore',
          input: { appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true, startMode: null },
        },
      ]);
    });
  });

  describe('DisableService', () => {
    it('captures status, startup type and the running dependents', async () => {
      const { run, calls } = scriptedRunner({
        'service.read': { status: 'Running', startType: 'Manual', runningDependents: ['MSExchangeUMCR'] },
      });
      expect(await new PowerShellApplier({ run }).capture(service())).toEqual({
        kind: 'DisableService',
        service: 'MSExchangeUM',
        status: 'Running',
        startType: 'Manual',
        runningDependents: ['MSExchangeUMCR'],
      });
      expect(calls).toMatchObject([{ script: 'service.read', input: { service: 'MSExchangeUM' } }]);
    });

    it('will not capture a service in the middle of starting', async () => {
      const { run } = scriptedRunner({
        'service.read': { status: 'StartPending', startType: 'Automatic', runningDependents: [] },
      });
      await expectApplierError(
        new PowerShellApplier({ run }).capture(service()),
        'BadReply',
        /unusable status \("StartPending"\)/,
      );
    });

    it.each([
      { status: 'Stopped', startType: 'Disabled', applied: true },
      { status: 'Running', startType: 'Disabled', applied: false },
      { status: 'StopPending', startType: 'Disabled', applied: false },
      { status: 'Stopped', startType: 'Manual', applied: false },
    ])(
      'isApplied is $applied for a service $status and $startType',
      async ({ status, startType, applied }) => {
        const { run, calls } = scriptedRunner({
          'service.read': { status, startType, runningDependents: [] },
        });
        expect(await new PowerShellApplier({ run }).isApplied(service())).toBe(applied);
        expect(calls).toHaveLength(1);
      },
    );

    it('applies and restores, dependents included', async () => {
      const { run, calls } = scriptedRunner({
        'service.apply': { ok: true },
        'service.restore': { ok: true },
      });
      const applier = new PowerShellApplier({ run });
      await applier.apply(service('MSExchangeUM'));
      await applier.restore({
        kind: 'DisableService',
        service: 'MSExchangeUM',
        status: 'Running',
        startType: 'AutomaticDelayedStart',
        runningDependents: ['MSExchangeUMCR'],
      });
      expect(calls).toMatchObject([
        { script: 'service.apply', input: { service: 'MSExchangeUM' } },
        {
          script: 'service.restore',
          input: {
            service: 'MSExchangeUM',
            status: 'Running',
            startType: 'AutomaticDelayedStart',
            runningDependents: ['MSExchangeUMCR'],
          },
        },
      ]);
    });
  });

  describe('the Health Manager, Exchange setup and the state directory', () => {
    it('captures, holds and restores MSExchangeHM and MSExchangeHMRecovery', async () => {
      const services = [
        { service: 'MSExchangeHM', status: 'Running', startType: 'Automatic' },
        { service: 'MSExchangeHMRecovery', status: 'Running', startType: 'AutomaticDelayedStart' },
      ];
      const { run, calls } = scriptedRunner({
        'health-manager.read': { services },
        'health-manager.hold': { ok: true },
        'health-manager.restore': { ok: true },
      });
      const applier = new PowerShellApplier({ run });
      const prior = await applier.captureHealthManager();
      expect(prior).toEqual({ kind: 'HealthManager', services });
      await applier.holdHealthManager();
      await applier.restore(prior);
      expect(calls.map((call) => [call.script, call.input])).toEqual([
        ['health-manager.read', {}],
        ['health-manager.hold', {}],
        ['health-manager.restore', { services }],
      ]);
    });

    it.each([
      { setup: null, answer: undefined },
      { setup: 'ExSetup.exe is running (process 4242)', answer: 'ExSetup.exe is running (process 4242)' },
    ])('says whether Exchange setup runs ($setup)', async ({ setup, answer }) => {
      const { run } = scriptedRunner({ 'exchange-setup.read': { setup } });
      expect(await new PowerShellApplier({ run }).exchangeSetupRunning()).toBe(answer);
    });

    it('secures the state directory and returns who else could write the journal', async () => {
      const { run, calls } = scriptedRunner({ 'state-directory.secure': { writableBy: ['S-1-5-32-545'] } });
      expect(
        await new PowerShellApplier({ run }).secureStateDirectory('C:\\ProgramData\\emfleet\\state'),
      ).toEqual(['S-1-5-32-545']);
      expect(calls[0]).toMatchObject({
        script: 'state-directory.secure',
        input: { directory: 'C:\\ProgramData\\emfleet\\state' },
      });
    });
  });

  describe('DoNothing', () => {
    it('never runs PowerShell', async () => {
      const { run, calls } = scriptedRunner({});
      const applier = new PowerShellApplier({ run });
      const prior: PriorState = await applier.capture(nothing);
      expect(prior).toEqual({ kind: 'DoNothing' });
      expect(await applier.isApplied(nothing)).toBe(true);
      expect(await applier.apply(nothing)).toEqual({ notInForce: [] });
      await applier.restore(prior);
      expect(calls).toEqual([]);
    });
  });

  describe('runner failures', () => {
    it('wraps an error of the runner in an ApplierError', async () => {
      const cause = new Error('EACCES');
      const run: ScriptRunner = () => Promise.reject(cause);
      const error = await expectApplierError(
        new PowerShellApplier({ run }).apply(service()),
        'SpawnFailed',
        /cannot run PowerShell script service\.apply: EACCES/,
      );
      expect(error.cause).toBe(cause);
    });

    it('passes an ApplierError of the runner through', async () => {
      const timeout = new ApplierError('Timeout', 'too slow');
      const run: ScriptRunner = () => Promise.reject(timeout);
      await expect(new PowerShellApplier({ run }).capture(appPool())).rejects.toBe(timeout);
    });
  });
});
