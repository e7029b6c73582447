import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import {
  ApplierError,
  type Applier,
  type ApplicableAction,
  type ApplyReport,
  type PriorState,
} from '../applier.js';

/*
 * Windows applier. Every operation runs one of the constant scripts in ./powershell/ with
 * `powershell.exe -File` (signable, and no -EncodedCommand -ExecutionPolicy Bypass, which endpoint
 * detection flags); the names it works on (site, rule, app pool, service) and the rule XML reach it
 * only as JSON on standard input, never as script text or command-line arguments, so no value can
 * change what the script does. docs/agent.md compares each script with Microsoft's own
 * (microsoft/CSS-Exchange: EOMT.ps1, EOMTv2.ps1, ExchangeMitigations.ps1, HealthChecker).
 */

// ---- the scripts ---------------------------------------------------------------------------------

/** The scripts the agent runs (the applier's and the agent's own), each a file `<name>.ps1` in powerShellScriptDirectory. */
export const powerShellScripts = [
  'iis-url-rewrite.capture',
  'iis-url-rewrite.is-applied',
  'iis-url-rewrite.apply',
  'iis-url-rewrite.restore',
  'app-pool.read',
  'app-pool.apply',
  'app-pool.restore',
  'service.read',
  'service.apply',
  'service.restore',
  'health-manager.read',
  'health-manager.hold',
  'health-manager.restore',
  'exchange-setup.read',
  'state-directory.secure',
  // The agent's own, outside the applier: lib/agent/build-detect.ts and lib/agent/logging.ts.
  'exchange-build.read',
  'event-log.write',
] as const;
export type PowerShellScriptName = (typeof powerShellScripts)[number];

/** Dot-sourced by the scripts; shipped beside them. */
export const powerShellLibraries = ['emfleet-common.ps1', 'emfleet-iis.ps1'] as const;

/**
 * Where the .ps1 files are: beside this module, in lib/ when run from source and in dist/lib/ after
 * `npm run build` (which copies them). A bundle that moves this module must copy every file of
 * powerShellScriptFiles() here too.
 */
export const powerShellScriptDirectory = fileURLToPath(new URL('./powershell/', import.meta.url));

/** The full path of one script. */
export function scriptPath(name: PowerShellScriptName): string {
  return `${powerShellScriptDirectory}${name}.ps1`;
}

/** Every file the applier needs at run time (scripts and the libraries they dot-source), by full path. */
export function powerShellScriptFiles(): string[] {
  return [
    ...powerShellScripts.map(scriptPath),
    ...powerShellLibraries.map((file) => `${powerShellScriptDirectory}${file}`),
  ];
}

/**
 * Windows PowerShell by full path, never through the search path (which can include the working
 * directory and run a planted binary). A 32-bit process on 64-bit Windows sees SysWOW64 in place
 * of System32, and a 32-bit PowerShell cannot use Microsoft.Web.Administration: Sysnative reaches
 * the 64-bit one.
 */
export function windowsPowerShellPath(
  environment: NodeJS.ProcessEnv = process.env,
  arch: string = process.arch,
): string {
  const systemRoot = environment['SystemRoot'] ?? environment['SYSTEMROOT'] ?? 'C:\\Windows';
  const system =
    arch === 'ia32' && environment['PROCESSOR_ARCHITEW6432'] !== undefined ? 'Sysnative' : 'System32';
  return `${systemRoot}\\${system}\\WindowsPowerShell\\v1.0\\powershell.exe`;
}

/** Exit codes of the scripts' first lines (the environment checks) and what they mean. */
export const environmentExits: Readonly<
  Record<number, { code: 'ConstrainedLanguage' | 'Not64Bit'; message: string }>
> = {
  3: {
    code: 'ConstrainedLanguage',
    message:
      'PowerShell runs the script in Constrained Language mode (WDAC or AppLocker does not allow it): sign the scripts in the agent directory with a certificate the policy trusts, or allow that directory',
  },
  4: {
    code: 'Not64Bit',
    message:
      'PowerShell runs as a 32-bit process, which cannot use IIS configuration; run the 64-bit powershell.exe',
  },
};

export type ScriptOperation = 'capture' | 'isApplied' | 'apply' | 'restore';
/** DoNothing is answered without PowerShell. */
export type ScriptedAction = Exclude<ApplicableAction, { kind: 'DoNothing' }>;
export type ScriptedPrior = Exclude<PriorState, { kind: 'DoNothing' }>;

const scripts = {
  IisUrlRewrite: {
    capture: 'iis-url-rewrite.capture',
    isApplied: 'iis-url-rewrite.is-applied',
    apply: 'iis-url-rewrite.apply',
    restore: 'iis-url-rewrite.restore',
  },
  // capture and isApplied read the same state and judge it differently.
  DisableAppPool: {
    capture: 'app-pool.read',
    isApplied: 'app-pool.read',
    apply: 'app-pool.apply',
    restore: 'app-pool.restore',
  },
  DisableService: {
    capture: 'service.read',
    isApplied: 'service.read',
    apply: 'service.apply',
    restore: 'service.restore',
  },
  HealthManager: {
    capture: 'health-manager.read',
    isApplied: 'health-manager.read',
    apply: 'health-manager.hold',
    restore: 'health-manager.restore',
  },
} as const satisfies Record<
  ScriptedAction['kind'] | 'HealthManager',
  Record<ScriptOperation, PowerShellScriptName>
>;

// ---- invocation ----------------------------------------------------------------------------------

export interface ScriptInvocation {
  readonly executable: string;
  readonly args: string[];
  readonly stdin: string;
}

export interface InvocationOptions {
  readonly executable?: string;
  /** The process is killed after this; the script's own waits end 30 s before. */
  readonly timeoutInMs?: number;
}

/** The process boundary: the only part that differs between Windows and the tests. */
export type ScriptRunner = (invocation: {
  executable: string;
  args: string[];
  stdin: string;
  timeoutInMs: number;
}) => Promise<{ exitCode: number; stdout: string; stderr: string }>;

const defaultTimeoutInMs = 300_000;

/** The script's waits (a service stopping, a pool starting) end this long before the process is killed. */
function waitSeconds(timeoutInMs: number): number {
  return Math.max(5, Math.floor(timeoutInMs / 1000) - 30);
}

function actionInput(action: ScriptedAction): Record<string, unknown> {
  switch (action.kind) {
    case 'IisUrlRewrite':
      return { site: action.site, ruleName: action.ruleName, ruleXml: action.ruleXml };
    case 'DisableAppPool':
      return { appPool: action.appPool };
    case 'DisableService':
      return { service: action.service };
  }
}

function priorInput(prior: ScriptedPrior): Record<string, unknown> {
  switch (prior.kind) {
    case 'IisUrlRewrite':
      return {
        site: prior.site,
        ruleName: prior.ruleName,
        previousRuleXml: prior.previousRuleXml,
        previousRulePosition: prior.previousRulePosition ?? null,
      };
    case 'DisableAppPool':
      return {
        appPool: prior.appPool,
        state: prior.state,
        autoStart: prior.autoStart,
        startMode: prior.startMode ?? null,
      };
    case 'DisableService':
      return {
        service: prior.service,
        status: prior.status,
        startType: prior.startType,
        runningDependents: prior.runningDependents ?? [],
      };
    case 'HealthManager':
      return { services: prior.services };
  }
}

/** JSON with every character past ASCII escaped: PowerShell reads standard input in the console's code page. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\uffff]/g,
    (character) => '\\u' + character.charCodeAt(0).toString(16).padStart(4, '0'),
  );
}

/** powershell.exe's arguments for one script: constant, the script by full path with -File. */
export function scriptArguments(name: PowerShellScriptName): string[] {
  return ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', scriptPath(name)];
}

/** The process to start for one script: constant arguments, the values on standard input. */
export function scriptInvocation(
  name: PowerShellScriptName,
  input: Record<string, unknown>,
  options: InvocationOptions = {},
): ScriptInvocation {
  return {
    executable: options.executable ?? windowsPowerShellPath(),
    args: scriptArguments(name),
    stdin: asciiJson({ ...input, waitSeconds: waitSeconds(options.timeoutInMs ?? defaultTimeoutInMs) }),
  };
}

/** The process to start for one operation on an action or a prior state. */
export function buildInvocation(
  operation: 'capture' | 'isApplied' | 'apply',
  action: ScriptedAction,
  options?: InvocationOptions,
): ScriptInvocation;
export function buildInvocation(
  operation: 'restore',
  prior: ScriptedPrior,
  options?: InvocationOptions,
): ScriptInvocation;
export function buildInvocation(
  operation: ScriptOperation,
  subject: ScriptedAction | ScriptedPrior,
  options: InvocationOptions = {},
): ScriptInvocation {
  const input =
    operation === 'restore' ? priorInput(subject as ScriptedPrior) : actionInput(subject as ScriptedAction);
  return scriptInvocation(scripts[subject.kind][operation], input, options);
}

// ---- running a process ---------------------------------------------------------------------------

/** More than any reply needs; a runaway process is stopped before it fills memory. */
const maxOutputBytes = 4 * 1024 * 1024;

/** Starts the executable directly (no shell), feeds standard input, and kills it at the deadline. */
export const spawnScriptRunner: ScriptRunner = (invocation) =>
  new Promise((resolve, reject) => {
    const child = spawn(invocation.executable, invocation.args, {
      shell: false,
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
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
      () =>
        stop(
          new ApplierError(
            'Timeout',
            `${invocation.executable} did not finish within ${invocation.timeoutInMs} ms and was killed`,
            { context: { timeoutInMs: invocation.timeoutInMs } },
          ),
        ),
      invocation.timeoutInMs,
    );
    const collect = (chunks: Buffer[]) => (chunk: Buffer) => {
      outputBytes += chunk.length;
      if (outputBytes > maxOutputBytes) {
        stop(
          new ApplierError(
            'OutputTooLarge',
            `${invocation.executable} wrote more than ${maxOutputBytes} bytes and was killed`,
          ),
        );
        return;
      }
      chunks.push(chunk);
    };
    child.stdout.on('data', collect(stdout));
    child.stderr.on('data', collect(stderr));
    child.on('error', (error) =>
      finish(() =>
        reject(
          new ApplierError('SpawnFailed', `cannot start ${invocation.executable}: ${error.message}`, {
            cause: error,
          }),
        ),
      ),
    );
    child.on('exit', () => {
      if (stopped) {
        const error = stopped;
        finish(() => reject(error));
      }
    });
    child.on('close', (code) =>
      finish(() => {
        if (stopped) reject(stopped);
        else
          resolve({
            exitCode: code ?? -1,
            stdout: Buffer.concat(stdout).toString('utf8'),
            stderr: readableText(Buffer.concat(stderr)),
          });
      }),
    );
    // A process that exits without reading its input closes the pipe under us; its exit code says why.
    child.stdin.on('error', () => undefined);
    child.stdin.end(invocation.stdin);
  });

/**
 * Output as text: UTF-8 when it is valid UTF-8, else (PowerShell's own messages in the console's
 * OEM code page, which is not known here) each byte past ASCII escaped as \xNN, so a non-English
 * server's error stays readable and never turns into replacement characters.
 */
export function readableText(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return [...bytes]
      .map((byte) => (byte < 0x80 ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`))
      .join('');
  }
}

/**
 * The error text of standard error. The scripts write their failures as one ASCII JSON object
 * (`{"error": ...}`, escapes decoded here). PowerShell's own error records may come as CLIXML
 * ("#< CLIXML" then <Objs>); those are unwrapped, and what is not an error record there
 * (progress) is not an error.
 */
export function errorText(stderr: string): string {
  const text = stderr.trim();
  if (text.startsWith('{')) {
    const parsed = z.object({ error: z.string() }).safeParse(safeJson(text));
    if (parsed.success) return parsed.data.error.trim();
  }
  if (!text.startsWith('#< CLIXML')) return text;
  const records = [...text.matchAll(/<S S="Error">([^<]*)<\/S>/g)].map((match) => decodeClixml(match[1]!));
  return records.join('').trim();
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function decodeClixml(text: string): string {
  const entities: Record<string, string> = {
    '&lt;': '<',
    '&gt;': '>',
    '&quot;': '"',
    '&apos;': "'",
    '&amp;': '&',
  };
  return text
    .replace(/&(?:lt|gt|quot|apos|amp);/g, (entity) => entities[entity]!)
    .replace(/_x([0-9A-Fa-f]{4})_/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

// ---- replies -------------------------------------------------------------------------------------

const done = z.object({ ok: z.literal(true) });
const applied = z.object({ ok: z.literal(true), notInForce: z.array(z.string()).default([]) });
const ruleCapture = z.object({
  ruleXml: z.string().nullable(),
  position: z.number().int().nonnegative().nullable().default(null),
});
const ruleCheck = z.object({ applied: z.boolean(), ruleName: z.string().nullable().optional() });
const startMode = z.enum(['OnDemand', 'AlwaysRunning']);
const appPoolState = z.object({
  state: z.enum(['Started', 'Starting', 'Stopped', 'Stopping', 'Unknown']),
  autoStart: z.boolean(),
});
/** Only a settled pool can be put back; a Starting or Stopping one is refused until it settles. */
const appPoolPrior = z.object({
  state: z.enum(['Started', 'Stopped']),
  autoStart: z.boolean(),
  startMode: startMode.optional(),
});
const startType = z.enum(['Automatic', 'AutomaticDelayedStart', 'Manual', 'Disabled']);
const serviceState = z.object({
  status: z.enum([
    'Stopped',
    'StartPending',
    'StopPending',
    'Running',
    'ContinuePending',
    'PausePending',
    'Paused',
  ]),
  startType,
});
const servicePrior = z.object({
  status: z.enum(['Running', 'Stopped']),
  startType,
  runningDependents: z.array(z.string()).default([]),
});
const healthManagerPrior = z.object({
  services: z.array(z.object({ service: z.string(), status: z.enum(['Running', 'Stopped']), startType })),
});
const setupState = z.object({ setup: z.string().nullable() });
const stateDirectoryCheck = z.object({ writableBy: z.array(z.string()) });

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>(
    (current, key) =>
      current !== null && typeof current === 'object'
        ? (current as Record<PropertyKey, unknown>)[key]
        : undefined,
    value,
  );
}

// ---- the applier ---------------------------------------------------------------------------------

export interface PowerShellApplierOptions {
  /** Default: Windows PowerShell by full path (windowsPowerShellPath). */
  readonly executable?: string;
  readonly timeoutInMs?: number;
  readonly run?: ScriptRunner;
}

export class PowerShellApplier implements Applier {
  readonly kind = 'powershell';
  readonly #executable: string;
  readonly #timeoutInMs: number;
  readonly #run: ScriptRunner;

  constructor({
    executable = windowsPowerShellPath(),
    timeoutInMs = defaultTimeoutInMs,
    run = spawnScriptRunner,
  }: PowerShellApplierOptions = {}) {
    this.#executable = executable;
    this.#timeoutInMs = timeoutInMs;
    this.#run = run;
  }

  async capture(action: ApplicableAction): Promise<PriorState> {
    switch (action.kind) {
      case 'DoNothing':
        return { kind: 'DoNothing' };
      case 'IisUrlRewrite': {
        const reply = await this.#call(
          buildInvocation('capture', action, this.#options()),
          'iis-url-rewrite.capture',
          ruleCapture,
        );
        return {
          kind: 'IisUrlRewrite',
          site: action.site,
          ruleName: action.ruleName,
          previousRuleXml: reply.ruleXml,
          ...(reply.position === null ? {} : { previousRulePosition: reply.position }),
        };
      }
      case 'DisableAppPool': {
        const reply = await this.#call(
          buildInvocation('capture', action, this.#options()),
          'app-pool.read',
          appPoolPrior,
        );
        return {
          kind: 'DisableAppPool',
          appPool: action.appPool,
          state: reply.state,
          autoStart: reply.autoStart,
          ...(reply.startMode ? { startMode: reply.startMode } : {}),
        };
      }
      case 'DisableService': {
        const reply = await this.#call(
          buildInvocation('capture', action, this.#options()),
          'service.read',
          servicePrior,
        );
        return {
          kind: 'DisableService',
          service: action.service,
          status: reply.status,
          startType: reply.startType,
          ...(reply.runningDependents.length > 0 ? { runningDependents: reply.runningDependents } : {}),
        };
      }
    }
  }

  async isApplied(action: ApplicableAction): Promise<boolean> {
    switch (action.kind) {
      case 'DoNothing':
        return true;
      case 'IisUrlRewrite':
        return (
          await this.#call(
            buildInvocation('isApplied', action, this.#options()),
            'iis-url-rewrite.is-applied',
            ruleCheck,
          )
        ).applied;
      case 'DisableAppPool': {
        // A Stopping pool takes no new requests: the mitigation holds.
        const reply = await this.#call(
          buildInvocation('isApplied', action, this.#options()),
          'app-pool.read',
          appPoolState,
        );
        return !reply.autoStart && (reply.state === 'Stopped' || reply.state === 'Stopping');
      }
      case 'DisableService': {
        const reply = await this.#call(
          buildInvocation('isApplied', action, this.#options()),
          'service.read',
          serviceState,
        );
        return reply.status === 'Stopped' && reply.startType === 'Disabled';
      }
    }
  }

  async ruleInPlace(
    action: Extract<ApplicableAction, { kind: 'IisUrlRewrite' }>,
  ): Promise<string | undefined> {
    return (
      (
        await this.#call(
          buildInvocation('isApplied', action, this.#options()),
          'iis-url-rewrite.is-applied',
          ruleCheck,
        )
      ).ruleName ?? undefined
    );
  }

  async apply(action: ApplicableAction): Promise<ApplyReport> {
    if (action.kind === 'DoNothing') return { notInForce: [] };
    const reply = await this.#call(
      buildInvocation('apply', action, this.#options()),
      scripts[action.kind].apply,
      applied,
    );
    return { notInForce: reply.notInForce };
  }

  async restore(prior: PriorState): Promise<void> {
    if (prior.kind === 'DoNothing') return;
    await this.#call(buildInvocation('restore', prior, this.#options()), scripts[prior.kind].restore, done);
  }

  async captureHealthManager(): Promise<Extract<PriorState, { kind: 'HealthManager' }>> {
    const reply = await this.#call(
      scriptInvocation('health-manager.read', {}, this.#options()),
      'health-manager.read',
      healthManagerPrior,
    );
    return { kind: 'HealthManager', services: reply.services };
  }

  async holdHealthManager(): Promise<void> {
    await this.#call(
      scriptInvocation('health-manager.hold', {}, this.#options()),
      'health-manager.hold',
      done,
    );
  }

  async exchangeSetupRunning(): Promise<string | undefined> {
    return (
      (
        await this.#call(
          scriptInvocation('exchange-setup.read', {}, this.#options()),
          'exchange-setup.read',
          setupState,
        )
      ).setup ?? undefined
    );
  }

  async serviceStatus(service: string): Promise<string> {
    return (
      await this.#call(
        scriptInvocation('service.read', { service }, this.#options()),
        'service.read',
        serviceState,
      )
    ).status;
  }

  /**
   * Checks who may write the journal in `directory` (SYSTEM and Administrators only), then limits
   * the directory to them. Returns the SIDs of anyone else who could write the journal; the
   * directory is left unchanged then.
   */
  async secureStateDirectory(directory: string): Promise<string[]> {
    return (
      await this.#call(
        scriptInvocation('state-directory.secure', { directory }, this.#options()),
        'state-directory.secure',
        stateDirectoryCheck,
      )
    ).writableBy;
  }

  #options(): InvocationOptions {
    return { executable: this.#executable, timeoutInMs: this.#timeoutInMs };
  }

  #call<T>(invocation: ScriptInvocation, script: PowerShellScriptName, reply: z.ZodType<T>): Promise<T> {
    return callScript({ run: this.#run, timeoutInMs: this.#timeoutInMs }, invocation, script, reply);
  }
}

/**
 * Runs one script and reads its reply: a script that did not run (Constrained Language mode, a
 * 32-bit process), failed (its JSON error on standard error) or replied with something unusable is
 * an ApplierError naming the script.
 */
export async function callScript<T>(
  runner: { run: ScriptRunner; timeoutInMs: number },
  invocation: ScriptInvocation,
  script: PowerShellScriptName,
  reply: z.ZodType<T>,
): Promise<T> {
  let result: Awaited<ReturnType<ScriptRunner>>;
  try {
    result = await runner.run({ ...invocation, timeoutInMs: runner.timeoutInMs });
  } catch (error) {
    if (error instanceof ApplierError) throw error;
    throw new ApplierError(
      'SpawnFailed',
      `cannot run PowerShell script ${script}: ${(error as Error).message}`,
      { cause: error, context: { script } },
    );
  }

  const environment = environmentExits[result.exitCode];
  if (environment)
    throw new ApplierError(
      environment.code,
      `PowerShell script ${script} did not run: ${environment.message}`,
      { context: { script, exitCode: result.exitCode } },
    );
  const message = errorText(result.stderr);
  if (result.exitCode !== 0 || message !== '') {
    throw new ApplierError(
      'ScriptFailed',
      `PowerShell script ${script} failed (exit code ${result.exitCode}): ${message || 'no error message'}`,
      {
        context: { script, exitCode: result.exitCode },
      },
    );
  }

  let json: unknown;
  try {
    json = JSON.parse(result.stdout);
  } catch {
    throw new ApplierError(
      'BadReply',
      `PowerShell script ${script} replied with something that is not JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`,
      { context: { script } },
    );
  }
  const parsed = reply.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.') || '(reply)';
    throw new ApplierError(
      'BadReply',
      `PowerShell script ${script} replied with an unusable ${field} (${JSON.stringify(valueAt(json, issue.path)) ?? 'missing'}): ${issue.message}`,
      {
        context: { script, field },
      },
    );
  }
  return parsed.data;
}
