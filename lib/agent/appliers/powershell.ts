import { spawn } from 'node:child_process';
import { z } from 'zod';
import { ApplierError, type Applier, type ApplicableAction, type PriorState } from '../applier.js';

/*
 * Windows applier. Every operation runs one of the constant PowerShell scripts below; the names it
 * works on (site, rule, app pool, service) and the rule XML reach it only as JSON on standard input,
 * never as script text or command-line arguments, so no value can change what the script does.
 *
 * IIS is driven through Microsoft.Web.Administration (the library under the WebAdministration
 * module) rather than its cmdlets: one CommitChanges per operation, so a half-written rule never
 * reaches applicationHost.config; exact-name lookups instead of provider paths and XPath filters
 * that a name would have to be spliced into; and the configuration schema, which tells defaults and
 * types, for comparing rules.
 */

// ---- the scripts ---------------------------------------------------------------------------------

interface PowerShellScript {
  /** Named in the script's first line (visible in script block logging) and in errors. */
  readonly name: string;
  readonly text: string;
}

const OPENING = String.raw`$ErrorActionPreference = 'Stop'
# Progress records and warnings (Stop-Service's "Waiting for service...") would reach the output
# around the JSON reply.
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
Set-StrictMode -Version 2.0
`;

/*
 * The script never uses the automatic variable that holds pipeline input: when it is mentioned,
 * powershell.exe reads standard input itself to feed it, racing the script's own read.
 */
const READ_INPUT = String.raw`try {
    $in = [Console]::In.ReadToEnd() | ConvertFrom-Json
`;

const WRITE_REPLY = String.raw`    # The console code page is not UTF-8: anything beyond ASCII travels as a JSON \u escape.
    $json = ConvertTo-Json -InputObject $reply -Compress
    [Console]::Out.Write([regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value }))
} catch {
    [Console]::Error.WriteLine($_.Exception.Message)
    exit 1
}
`;

/** Called at module load with constants only: script text never depends on what is applied. */
function powerShellScript(name: string, functions: readonly string[], body: string): PowerShellScript {
  const text = ['# emfleet ' + name + ': constant text; what it acts on arrives as JSON on standard input.\n', OPENING, ...functions, READ_INPUT, body, WRITE_REPLY].join('\n');
  return { name, text };
}

const NEW_SERVER_MANAGER = String.raw`function New-ServerManager {
    Add-Type -AssemblyName 'Microsoft.Web.Administration, Version=7.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35'
    New-Object Microsoft.Web.Administration.ServerManager
}
`;

const ASSERT_SITE = String.raw`function Assert-Site($manager, [string] $site) {
    if ($null -eq $manager.Sites[$site]) { throw ("IIS has no site named '" + $site + "'") }
}
`;

const GET_SITE_RULES = String.raw`# The rules emfleet edits: those of <location path="site"> in applicationHost.config.
function Get-SiteRules($manager, [string] $site) {
    $rules = $manager.GetApplicationHostConfiguration().GetSection('system.webServer/rewrite/rules', $site).GetCollection()
    # The comma keeps PowerShell from unrolling the collection into its rules.
    return , $rules
}
`;

const GET_EFFECTIVE_RULES = String.raw`# Every rule in force for the site, those of its web.config included.
function Get-EffectiveRules($manager, [string] $site) {
    $rules = $manager.GetWebConfiguration($site).GetSection('system.webServer/rewrite/rules').GetCollection()
    return , $rules
}
`;

const FIND_RULE = String.raw`function Find-Rule($rules, [string] $name) {
    for ($index = 0; $index -lt $rules.Count; $index++) {
        if ([string]::Equals([string] $rules[$index].GetAttributeValue('name'), $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $index }
    }
    -1
}
`;

const COPY_RULE_XML = String.raw`# XML nodes are read through get_ methods: PowerShell's XML adapter lets an attribute or child
# named like a property (Name, Attributes...) shadow it.
function Copy-XmlToConfig($node, $element) {
    foreach ($attribute in $node.get_Attributes()) {
        $name = $attribute.get_Name()
        $text = $attribute.get_Value()
        $schema = $element.Schema.AttributeSchemas[$name]
        # The schema lookup ignores case; IIS attribute names do not.
        if ($null -eq $schema -or $schema.Name -cne $name) { throw ("<" + $node.get_Name() + "> has no attribute '" + $name + "' in IIS") }
        # The value takes the type the schema declares (SetAttributeValue refuses a string for a uint,
        # enums read back as numbers), computed here rather than returned by a function, whose output
        # PowerShell could pass to the method wrapped in a PSObject.
        $value = $text
        if ($schema.Type -eq 'bool') {
            $value = [bool]::Parse($text)
        } elseif ($schema.Type -eq 'uint') {
            $value = [uint32]::Parse($text, [System.Globalization.CultureInfo]::InvariantCulture)
        } elseif ($schema.Type -eq 'enum') {
            $value = $null
            foreach ($choice in $schema.GetEnumValues()) {
                if ([string]::Equals($choice.Name, $text, [System.StringComparison]::OrdinalIgnoreCase)) { $value = [int] $choice.Value }
            }
            if ($null -eq $value) { throw ("'" + $text + "' is not a value of " + $name + " in IIS") }
        }
        $element.SetAttributeValue($name, $value)
    }
    foreach ($child in $node.get_ChildNodes()) {
        if ($child.get_NodeType() -ne [System.Xml.XmlNodeType]::Element) { continue }
        $name = $child.get_Name()
        $collection = $element.Schema.CollectionSchema
        if ($null -ne $collection -and ($collection.AddElementNames -split ',') -ccontains $name) {
            $entries = $element.GetCollection()
            $entry = $entries.CreateElement($name)
            Copy-XmlToConfig $child $entry
            $null = $entries.Add($entry)
        } else {
            $schema = $element.Schema.ChildElementSchemas[$name]
            if ($null -eq $schema -or $schema.Name -cne $name) { throw ("<" + $node.get_Name() + "> has no element <" + $name + "> in IIS") }
            Copy-XmlToConfig $child ($element.GetChildElement($name))
        }
    }
}

function Copy-RuleXml([string] $text, $rule) {
    $document = [xml] $text
    # A DOCTYPE could declare entities that change the rule after the package was verified.
    if ($null -ne $document.get_DocumentType()) { throw 'The rule XML has a DOCTYPE' }
    $root = $document.get_DocumentElement()
    if ($root.get_Name() -cne 'rule') { throw ("The rule XML is a <" + $root.get_Name() + ">, not a <rule>") }
    Copy-XmlToConfig $root $rule
}
`;

const RULE_TO_XML = String.raw`function Format-ConfigValue($attribute) {
    $value = $attribute.Value
    if ($value -is [bool]) { return $value.ToString().ToLowerInvariant() }
    if ($attribute.Schema.Type -eq 'enum') {
        foreach ($choice in $attribute.Schema.GetEnumValues()) {
            if ($choice.Value -eq $value) { return $choice.Name }
        }
    }
    [System.Convert]::ToString($value, [System.Globalization.CultureInfo]::InvariantCulture)
}

# Explicit: only what the configuration sets, so that adding the XML back writes the same rule.
# Expanded: every attribute with its effective value, so that two rules that IIS treats alike (one
# spelling out a default, the other not) give the same text.
function Add-ConfigXml($document, $parent, $element, [bool] $expanded) {
    $node = $parent.AppendChild($document.CreateElement($element.ElementTagName))
    foreach ($attribute in $element.Attributes) {
        if ($expanded -or -not $attribute.IsInheritedFromDefaultValue) { $node.SetAttribute($attribute.Name, (Format-ConfigValue $attribute)) }
    }
    foreach ($child in $element.ChildElements) { Add-ConfigXml $document $node $child $expanded }
    if ($null -ne $element.Schema.CollectionSchema) {
        foreach ($entry in $element.GetCollection()) { Add-ConfigXml $document $node $entry $expanded }
    }
    if (-not $expanded -and -not $node.get_HasAttributes() -and -not $node.get_HasChildNodes()) { $null = $parent.RemoveChild($node) }
}
`;

const GET_RULE_XML = String.raw`function Get-RuleXml($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $false
    $document.get_OuterXml()
}
`;

const GET_RULE_CONTENT = String.raw`# What a rule does, without its name: a rule is recognised by content, whatever it is called.
function Get-RuleContent($rule) {
    $document = New-Object System.Xml.XmlDocument
    Add-ConfigXml $document $document $rule $true
    $document.get_DocumentElement().RemoveAttribute('name')
    $document.get_OuterXml()
}
`;

const IIS_CAPTURE = powerShellScript(
  'iis-url-rewrite.capture',
  [NEW_SERVER_MANAGER, ASSERT_SITE, GET_SITE_RULES, FIND_RULE, RULE_TO_XML, GET_RULE_XML],
  String.raw`    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-SiteRules $manager $in.site
    $index = Find-Rule $rules $in.ruleName
    $ruleXml = $null
    if ($index -ge 0) { $ruleXml = [string] (Get-RuleXml ($rules[$index])) }
    $reply = @{ ruleXml = $ruleXml }
`,
);

const IIS_IS_APPLIED = powerShellScript(
  'iis-url-rewrite.is-applied',
  [NEW_SERVER_MANAGER, ASSERT_SITE, GET_EFFECTIVE_RULES, COPY_RULE_XML, RULE_TO_XML, GET_RULE_CONTENT],
  String.raw`    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-EffectiveRules $manager $in.site
    # The package's rule goes through the same schema as the site's, in an element never added.
    $wanted = $rules.CreateElement('rule')
    Copy-RuleXml $in.ruleXml $wanted
    $content = Get-RuleContent $wanted
    $applied = $false
    foreach ($rule in $rules) {
        if ((Get-RuleContent $rule) -ceq $content) { $applied = $true }
    }
    $reply = @{ applied = $applied }
`,
);

const IIS_APPLY = powerShellScript(
  'iis-url-rewrite.apply',
  [NEW_SERVER_MANAGER, ASSERT_SITE, GET_SITE_RULES, GET_EFFECTIVE_RULES, FIND_RULE, COPY_RULE_XML],
  String.raw`    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-SiteRules $manager $in.site
    $index = Find-Rule $rules $in.ruleName
    # A second rule of a name the site's web.config already uses would make IIS refuse the site's
    # whole configuration.
    if ($index -lt 0 -and (Find-Rule (Get-EffectiveRules $manager $in.site) $in.ruleName) -ge 0) {
        throw ("The web.config of site '" + $in.site + "' already has a rule named '" + $in.ruleName + "'")
    }
    $rule = $rules.CreateElement('rule')
    Copy-RuleXml $in.ruleXml $rule
    if ([string] $rule.GetAttributeValue('name') -cne $in.ruleName) {
        throw ("The rule XML is named '" + $rule.GetAttributeValue('name') + "', not '" + $in.ruleName + "'")
    }
    # A rule of that name is replaced where it stands: IIS evaluates rules in order.
    if ($index -ge 0) {
        $rules.RemoveAt($index)
        $null = $rules.AddAt($index, $rule)
    } else {
        $null = $rules.Add($rule)
    }
    $manager.CommitChanges()
    $reply = @{ ok = $true }
`,
);

const IIS_RESTORE = powerShellScript(
  'iis-url-rewrite.restore',
  [NEW_SERVER_MANAGER, ASSERT_SITE, GET_SITE_RULES, FIND_RULE, COPY_RULE_XML],
  String.raw`    $manager = New-ServerManager
    Assert-Site $manager $in.site
    $rules = Get-SiteRules $manager $in.site
    $index = Find-Rule $rules $in.ruleName
    if ($index -ge 0) { $rules.RemoveAt($index) } else { $index = $rules.Count }
    if ($null -ne $in.previousRuleXml) {
        # Back where emfleet's rule stood, which is where apply found the previous one.
        $rule = $rules.CreateElement('rule')
        Copy-RuleXml $in.previousRuleXml $rule
        $null = $rules.AddAt($index, $rule)
    }
    $manager.CommitChanges()
    $reply = @{ ok = $true }
`,
);

const SERVICES = String.raw`# By exact name: Get-Service -Name takes wildcards, and a name such as '*' would match every service.
function Get-ServiceByName([string] $name) {
    Add-Type -AssemblyName System.ServiceProcess
    foreach ($service in [System.ServiceProcess.ServiceController]::GetServices()) {
        if ([string]::Equals($service.ServiceName, $name, [System.StringComparison]::OrdinalIgnoreCase)) { return $service }
    }
}

# MSExchangeHM restarts what it finds stopped, so it is held stopped while a change is made, as EM
# does. Without -Force: should another service depend on it, the change fails instead of leaving
# that one stopped.
function Suspend-HealthManager([string] $target) {
    if ([string]::Equals($target, 'MSExchangeHM', [System.StringComparison]::OrdinalIgnoreCase)) { return }
    $healthManager = Get-ServiceByName 'MSExchangeHM'
    if ($null -ne $healthManager -and $healthManager.Status -eq 'Running') {
        Stop-Service -InputObject $healthManager
        $healthManager
    }
}

function Resume-HealthManager($healthManager) {
    if ($null -ne $healthManager) { Start-Service -InputObject $healthManager }
}
`;

const REQUIRED_SERVICE = String.raw`function Get-RequiredService([string] $name) {
    $service = Get-ServiceByName $name
    if ($null -eq $service) { throw ("No service is named '" + $name + "'") }
    $service
}
`;

const GET_START_TYPE = String.raw`# ServiceController reports a delayed automatic start as Automatic; the registry tells them apart.
function Get-StartType($service) {
    $startType = [string] $service.StartType
    if ($startType -eq 'Automatic') {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SYSTEM\CurrentControlSet\Services\' + $service.ServiceName)
        if ($null -ne $key -and $key.GetValue('DelayedAutostart', 0) -eq 1) { $startType = 'AutomaticDelayedStart' }
    }
    $startType
}
`;

const APP_POOLS = String.raw`function Get-AppPool($manager, [string] $name) {
    $pool = $manager.ApplicationPools[$name]
    if ($null -eq $pool) { throw ("IIS has no application pool named '" + $name + "'") }
    $pool
}
`;

const APP_POOL_READ = powerShellScript(
  'app-pool.read',
  [NEW_SERVER_MANAGER, APP_POOLS],
  String.raw`    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    $reply = @{ state = [string] $pool.State; autoStart = [bool] $pool.AutoStart }
`,
);

const APP_POOL_APPLY = powerShellScript(
  'app-pool.apply',
  [NEW_SERVER_MANAGER, APP_POOLS, SERVICES],
  String.raw`    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    $healthManager = Suspend-HealthManager ''
    try {
        # What Stop-WebAppPool does; stopping a stopped pool is an error.
        if ($pool.State -eq 'Started' -or $pool.State -eq 'Starting') { $null = $pool.Stop() }
        $pool.AutoStart = $false
        $manager.CommitChanges()
    } finally {
        Resume-HealthManager $healthManager
    }
    $reply = @{ ok = $true }
`,
);

const APP_POOL_RESTORE = powerShellScript(
  'app-pool.restore',
  [NEW_SERVER_MANAGER, APP_POOLS, SERVICES],
  String.raw`    $manager = New-ServerManager
    $pool = Get-AppPool $manager $in.appPool
    $healthManager = Suspend-HealthManager ''
    try {
        $pool.AutoStart = [bool] $in.autoStart
        $manager.CommitChanges()
        if ($in.state -eq 'Started' -and $pool.State -ne 'Started' -and $pool.State -ne 'Starting') { $null = $pool.Start() }
    } finally {
        Resume-HealthManager $healthManager
    }
    $reply = @{ ok = $true }
`,
);

const SERVICE_READ = powerShellScript(
  'service.read',
  [SERVICES, REQUIRED_SERVICE, GET_START_TYPE],
  String.raw`    $service = Get-RequiredService $in.service
    $reply = @{ status = [string] $service.Status; startType = [string] (Get-StartType $service) }
`,
);

const SERVICE_APPLY = powerShellScript(
  'service.apply',
  [SERVICES, REQUIRED_SERVICE],
  String.raw`    $service = Get-RequiredService $in.service
    $healthManager = Suspend-HealthManager $service.ServiceName
    try {
        Stop-Service -InputObject $service -Force
        Set-Service -InputObject $service -StartupType Disabled
    } finally {
        Resume-HealthManager $healthManager
    }
    $reply = @{ ok = $true }
`,
);

const SERVICE_RESTORE = powerShellScript(
  'service.restore',
  [SERVICES, REQUIRED_SERVICE],
  String.raw`    $service = Get-RequiredService $in.service
    $delayed = $in.startType -eq 'AutomaticDelayedStart'
    $startType = [string] $in.startType
    if ($delayed) { $startType = 'Automatic' }
    Set-Service -InputObject $service -StartupType $startType
    if ($startType -eq 'Automatic') {
        # Set-Service in Windows PowerShell has no delayed start; the service manager reads it here.
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SYSTEM\CurrentControlSet\Services\' + $service.ServiceName, $true)
        $key.SetValue('DelayedAutostart', [int] $delayed, [Microsoft.Win32.RegistryValueKind]::DWord)
    }
    if ($in.status -eq 'Running') { Start-Service -InputObject $service }
    $reply = @{ ok = $true }
`,
);

export type ScriptOperation = 'capture' | 'isApplied' | 'apply' | 'restore';
/** DoNothing is answered without PowerShell. */
export type ScriptedAction = Exclude<ApplicableAction, { kind: 'DoNothing' }>;
export type ScriptedPrior = Exclude<PriorState, { kind: 'DoNothing' }>;

const scripts = {
  IisUrlRewrite: { capture: IIS_CAPTURE, isApplied: IIS_IS_APPLIED, apply: IIS_APPLY, restore: IIS_RESTORE },
  // capture and isApplied read the same state and judge it differently.
  DisableAppPool: { capture: APP_POOL_READ, isApplied: APP_POOL_READ, apply: APP_POOL_APPLY, restore: APP_POOL_RESTORE },
  DisableService: { capture: SERVICE_READ, isApplied: SERVICE_READ, apply: SERVICE_APPLY, restore: SERVICE_RESTORE },
} as const satisfies Record<ScriptedAction['kind'], Record<ScriptOperation, PowerShellScript>>;

// ---- invocation ----------------------------------------------------------------------------------

export interface ScriptInvocation {
  readonly executable: string;
  readonly args: string[];
  readonly stdin: string;
}

export interface InvocationOptions {
  readonly executable?: string;
}

/** The process boundary: the only part that differs between Windows and the tests. */
export type ScriptRunner = (invocation: { executable: string; args: string[]; stdin: string; timeoutInMs: number }) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

type ScriptRequest = { readonly operation: 'capture' | 'isApplied' | 'apply'; readonly action: ScriptedAction } | { readonly operation: 'restore'; readonly prior: ScriptedPrior };

function scriptFor(request: ScriptRequest): PowerShellScript {
  const kind = request.operation === 'restore' ? request.prior.kind : request.action.kind;
  return scripts[kind][request.operation];
}

function scriptInput(request: ScriptRequest): Record<string, unknown> {
  if (request.operation === 'restore') {
    const prior = request.prior;
    switch (prior.kind) {
      case 'IisUrlRewrite':
        return { site: prior.site, ruleName: prior.ruleName, previousRuleXml: prior.previousRuleXml };
      case 'DisableAppPool':
        return { appPool: prior.appPool, state: prior.state, autoStart: prior.autoStart };
      case 'DisableService':
        return { service: prior.service, status: prior.status, startType: prior.startType };
    }
  }
  const action = request.action;
  switch (action.kind) {
    case 'IisUrlRewrite':
      return { site: action.site, ruleName: action.ruleName, ruleXml: action.ruleXml };
    case 'DisableAppPool':
      return { appPool: action.appPool };
    case 'DisableService':
      return { service: action.service };
  }
}

/** JSON with every character past ASCII escaped: PowerShell reads standard input in the console's code page. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (character) => '\\u' + character.charCodeAt(0).toString(16).padStart(4, '0'));
}

/** What -EncodedCommand expects: base64 of the UTF-16LE text. */
function encodeCommand(text: string): string {
  return Buffer.from(text, 'utf16le').toString('base64');
}

function invocationFor(request: ScriptRequest, executable: string): ScriptInvocation {
  return {
    executable,
    args: ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-EncodedCommand', encodeCommand(scriptFor(request).text)],
    stdin: asciiJson(scriptInput(request)),
  };
}

/** The process to start for one operation: constant arguments, the values on standard input. */
export function buildInvocation(operation: 'capture' | 'isApplied' | 'apply', action: ScriptedAction, options?: InvocationOptions): ScriptInvocation;
export function buildInvocation(operation: 'restore', prior: ScriptedPrior, options?: InvocationOptions): ScriptInvocation;
export function buildInvocation(operation: ScriptOperation, subject: ScriptedAction | ScriptedPrior, options: InvocationOptions = {}): ScriptInvocation {
  // The overloads pair each operation with its subject; the cast only restates that pairing.
  const request = (operation === 'restore' ? { operation, prior: subject } : { operation, action: subject }) as ScriptRequest;
  return invocationFor(request, options.executable ?? 'powershell.exe');
}

// ---- running a process ---------------------------------------------------------------------------

/** More than any reply needs; a runaway process is stopped before it fills memory. */
const maxOutputBytes = 4 * 1024 * 1024;

/** Starts the executable directly (no shell), feeds standard input, and kills it at the deadline. */
export const spawnScriptRunner: ScriptRunner = (invocation) =>
  new Promise((resolve, reject) => {
    const child = spawn(invocation.executable, invocation.args, { shell: false, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let outputBytes = 0;
    let stopped: ApplierError | undefined;
    let settled = false;

    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      outcome();
    };
    // Settled once the process is gone, so a caller never sees it still running.
    const stop = (error: ApplierError): void => {
      if (stopped) return;
      stopped = error;
      child.kill('SIGKILL');
    };
    const deadline = setTimeout(
      () => stop(new ApplierError('Timeout', `${invocation.executable} did not finish within ${invocation.timeoutInMs} ms and was killed`, { context: { timeoutInMs: invocation.timeoutInMs } })),
      invocation.timeoutInMs,
    );
    const collect = (chunks: Buffer[]) => (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > maxOutputBytes) {
        stop(new ApplierError('OutputTooLarge', `${invocation.executable} wrote more than ${maxOutputBytes} bytes and was killed`));
        return;
      }
      chunks.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));
    child.on('error', (error) => finish(() => reject(new ApplierError('SpawnFailed', `cannot start ${invocation.executable}: ${error.message}`, { cause: error }))));
    child.on('exit', () => {
      if (stopped) {
        const error = stopped;
        finish(() => reject(error));
      }
    });
    child.on('close', (code) =>
      finish(() => {
        if (stopped) reject(stopped);
        else resolve({ exitCode: code ?? -1, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
      }),
    );
    // A process that exits without reading its input closes the pipe under us; its exit code says why.
    child.stdin.on('error', () => undefined);
    child.stdin.end(invocation.stdin);
  });

/**
 * The error text of standard error. With -EncodedCommand and redirected output, Windows
 * PowerShell writes its own error records as CLIXML ("#< CLIXML" then <Objs>); those are unwrapped,
 * and what is not an error record there (progress) is not an error.
 */
function errorText(stderr: string): string {
  const text = stderr.trim();
  if (!text.startsWith('#< CLIXML')) return text;
  const records = [...text.matchAll(/<S S="Error">([^<]*)<\/S>/g)].map((match) => decodeClixml(match[1]!));
  return records.join('').trim();
}

function decodeClixml(text: string): string {
  const entities: Record<string, string> = { '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'", '&amp;': '&' };
  return text.replace(/&(?:lt|gt|quot|apos|amp);/g, (entity) => entities[entity]!).replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

// ---- replies -------------------------------------------------------------------------------------

const done = z.object({ ok: z.literal(true) });
const ruleCapture = z.object({ ruleXml: z.string().nullable() });
const ruleCheck = z.object({ applied: z.boolean() });
const appPoolState = z.object({ state: z.enum(['Started', 'Starting', 'Stopped', 'Stopping', 'Unknown']), autoStart: z.boolean() });
/** Only a settled pool can be put back; a Starting or Stopping one is refused until it settles. */
const appPoolPrior = z.object({ state: z.enum(['Started', 'Stopped']), autoStart: z.boolean() });
const startType = z.enum(['Automatic', 'AutomaticDelayedStart', 'Manual', 'Disabled']);
const serviceState = z.object({
  status: z.enum(['Stopped', 'StartPending', 'StopPending', 'Running', 'ContinuePending', 'PausePending', 'Paused']),
  startType,
});
const servicePrior = z.object({ status: z.enum(['Running', 'Stopped']), startType });

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((current, key) => (current !== null && typeof current === 'object' ? (current as Record<PropertyKey, unknown>)[key] : undefined), value);
}

// ---- the applier ---------------------------------------------------------------------------------

export interface PowerShellApplierOptions {
  readonly executable?: string;
  readonly timeoutInMs?: number;
  readonly run?: ScriptRunner;
}

export class PowerShellApplier implements Applier {
  readonly kind = 'powershell';
  readonly #executable: string;
  readonly #timeoutInMs: number;
  readonly #run: ScriptRunner;

  constructor({ executable = 'powershell.exe', timeoutInMs = 120_000, run = spawnScriptRunner }: PowerShellApplierOptions = {}) {
    this.#executable = executable;
    this.#timeoutInMs = timeoutInMs;
    this.#run = run;
  }

  async capture(action: ApplicableAction): Promise<PriorState> {
    switch (action.kind) {
      case 'DoNothing':
        return { kind: 'DoNothing' };
      case 'IisUrlRewrite': {
        const reply = await this.#call({ operation: 'capture', action }, ruleCapture);
        return { kind: 'IisUrlRewrite', site: action.site, ruleName: action.ruleName, previousRuleXml: reply.ruleXml };
      }
      case 'DisableAppPool': {
        const reply = await this.#call({ operation: 'capture', action }, appPoolPrior);
        return { kind: 'DisableAppPool', appPool: action.appPool, state: reply.state, autoStart: reply.autoStart };
      }
      case 'DisableService': {
        const reply = await this.#call({ operation: 'capture', action }, servicePrior);
        return { kind: 'DisableService', service: action.service, status: reply.status, startType: reply.startType };
      }
    }
  }

  async isApplied(action: ApplicableAction): Promise<boolean> {
    switch (action.kind) {
      case 'DoNothing':
        return true;
      case 'IisUrlRewrite':
        return (await this.#call({ operation: 'isApplied', action }, ruleCheck)).applied;
      case 'DisableAppPool': {
        // A Stopping pool takes no new requests: the mitigation holds.
        const reply = await this.#call({ operation: 'isApplied', action }, appPoolState);
        return !reply.autoStart && (reply.state === 'Stopped' || reply.state === 'Stopping');
      }
      case 'DisableService': {
        const reply = await this.#call({ operation: 'isApplied', action }, serviceState);
        return reply.status === 'Stopped' && reply.startType === 'Disabled';
      }
    }
  }

  async apply(action: ApplicableAction): Promise<void> {
    if (action.kind === 'DoNothing') return;
    await this.#call({ operation: 'apply', action }, done);
  }

  async restore(prior: PriorState): Promise<void> {
    if (prior.kind === 'DoNothing') return;
    await this.#call({ operation: 'restore', prior }, done);
  }

  async #call<T>(request: ScriptRequest, reply: z.ZodType<T>): Promise<T> {
    const script = scriptFor(request).name;
    const invocation = invocationFor(request, this.#executable);
    let result: Awaited<ReturnType<ScriptRunner>>;
    try {
      result = await this.#run({ ...invocation, timeoutInMs: this.#timeoutInMs });
    } catch (error) {
      if (error instanceof ApplierError) throw error;
      throw new ApplierError('SpawnFailed', `cannot run PowerShell script ${script}: ${(error as Error).message}`, { cause: error, context: { script } });
    }

    const message = errorText(result.stderr);
    if (result.exitCode !== 0 || message !== '') {
      throw new ApplierError('ScriptFailed', `PowerShell script ${script} failed (exit code ${result.exitCode}): ${message || 'no error message'}`, {
        context: { script, exitCode: result.exitCode },
      });
    }

    let json: unknown;
    try {
      json = JSON.parse(result.stdout);
    } catch {
      throw new ApplierError('BadReply', `PowerShell script ${script} replied with something that is not JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`, { context: { script } });
    }
    const parsed = reply.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.path.map(String).join('.') || '(reply)';
      throw new ApplierError('BadReply', `PowerShell script ${script} replied with an unusable ${field} (${JSON.stringify(valueAt(json, issue.path)) ?? 'missing'}): ${issue.message}`, {
        context: { script, field },
      });
    }
    return parsed.data;
  }
}
