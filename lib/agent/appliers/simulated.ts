import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { cancellations, effectiveRules } from '../../iis/rewrite.js';
import {
  ApplierError,
  healthManagerServices,
  type Applier,
  type ApplicableAction,
  type ApplyReport,
  type PriorState,
} from '../applier.js';
import { ruleFingerprint } from '../rules.js';
import { systemTimers, type Timers } from '../../clock.js';

const serviceStartType = z.enum(['Automatic', 'AutomaticDelayedStart', 'Manual', 'Disabled']);
const siteRule = z.object({ name: z.string(), xml: z.string() });

/** The slice of an Exchange server's IIS and service manager that mitigations touch. */
export const simulatedServerSchema = z.object({
  sites: z.record(
    z.string(),
    z.object({
      /** The site's own web.config, where Microsoft's scripts and emfleet write rules. */
      rules: z.array(siteRule),
      /** Rules of applicationHost.config (server level or the site's <location>): in force, not the site's own. */
      inheritedRules: z.array(siteRule).optional(),
      /** Each application's web.config: `<clear/>`, `<remove name>`, its own rules. */
      applications: z
        .record(
          z.string(),
          z.object({
            clear: z.boolean().optional(),
            remove: z.array(z.string()).optional(),
            rules: z.array(siteRule).optional(),
          }),
        )
        .optional(),
    }),
  ),
  /** startMode absent is IIS's default, OnDemand. */
  appPools: z.record(
    z.string(),
    z.object({
      state: z.enum(['Started', 'Stopped']),
      autoStart: z.boolean(),
      startMode: z.literal('AlwaysRunning').optional(),
    }),
  ),
  services: z.record(
    z.string(),
    z.object({
      status: z.enum(['Running', 'Stopped']),
      startType: serviceStartType,
      dependsOn: z.array(z.string()).optional(),
    }),
  ),
  /** false: IIS has no RewriteModule in globalModules (URL Rewrite not installed). Absent: installed. */
  urlRewriteInstalled: z.boolean().optional(),
  /** What shows Exchange setup running (ExSetup.exe), absent when it is not. */
  setupRunning: z.string().optional(),
});
export type SimulatedServer = z.infer<typeof simulatedServerSchema>;

/** A freshly installed Exchange 2019 Mailbox server, as far as mitigations and the health endpoints are concerned. */
export function defaultSimulatedServer(): SimulatedServer {
  const pools = [
    'MSExchangeOWAAppPool',
    'MSExchangeECPAppPool',
    'MSExchangeServicesAppPool',
    'MSExchangeAutodiscoverAppPool',
    'MSExchangeMapiFrontEndAppPool',
    'MSExchangeSyncAppPool',
    'MSExchangeOABAppPool',
    'MSExchangeRpcProxyFrontEndAppPool',
    'MSExchangePowerShellFrontEndAppPool',
  ];
  const services = [
    'MSExchangeHM',
    'MSExchangeHMRecovery',
    'MSExchangeIS',
    'MSExchangeTransport',
    'MSExchangeFrontEndTransport',
    'MSExchangeUM',
    'MSExchangeMitigation',
    'W3SVC',
    'WAS',
  ];
  return {
    sites: { 'Default Web Site': { rules: [] }, 'Exchange Back End': { rules: [] } },
    appPools: Object.fromEntries(pools.map((pool) => [pool, { state: 'Started' as const, autoStart: true }])),
    services: Object.fromEntries(
      services.map((service) => [service, { status: 'Running' as const, startType: 'Automatic' as const }]),
    ),
  };
}

export interface SimulatedFaults {
  /** App pool, service or rule names whose mitigation fails to apply, as a broken IIS would. */
  readonly failOn?: readonly string[];
  /** Names whose restore fails too (a server that cannot be put back without a human). */
  readonly failRestoreOn?: readonly string[];
  /** Every change takes this long first (a hung PowerShell). */
  readonly delayInMs?: number;
}

/**
 * A file-backed model of IIS rewrite rules, app pools and services, written atomically
 * (temporary file, then rename). Used by local runs and tests in place of PowerShell.
 */
export class SimulatedApplier implements Applier {
  readonly kind = 'simulated';
  readonly #file: string;
  readonly #faults: SimulatedFaults;
  readonly #timers: Timers;

  constructor(stateFile: string, faults: SimulatedFaults = {}, options: { timers?: Timers } = {}) {
    this.#file = stateFile;
    this.#faults = faults;
    this.#timers = options.timers ?? systemTimers;
  }

  /** A copy of the model to keep or change; the file is created with the default server on first use. */
  async read(): Promise<SimulatedServer> {
    return structuredClone(this.#current());
  }

  /** The model shared with this process's cache and front end: read it, never change it. */
  #current(): SimulatedServer {
    const stored = readModel(this.#file);
    if (stored) return stored;
    const fresh = defaultSimulatedServer();
    this.#write(fresh);
    return fresh;
  }

  // Synchronous: a few hundred bytes on a local disk, and the promise API's thread-pool round trips
  // were most of a simulated apply's CPU when thousands of agents share a process (npm run bench).
  #write(state: SimulatedServer): void {
    if (!parsed.has(this.#file)) mkdirSync(dirname(this.#file), { recursive: true });
    const temporary = `${this.#file}.${process.pid}.${Math.random().toString(16).slice(2)}.tmp`;
    writeFileSync(temporary, JSON.stringify(state, null, 2));
    renameSync(temporary, this.#file);
    parsed.set(this.#file, { version: version(statSync(this.#file)), state });
  }

  async capture(action: ApplicableAction): Promise<PriorState> {
    const state = this.#current();
    switch (action.kind) {
      case 'DoNothing':
        return { kind: 'DoNothing' };
      case 'IisUrlRewrite': {
        const rules = site(state, action.site).rules;
        const position = rules.findIndex((rule) => rule.name === action.ruleName);
        return position === -1
          ? { kind: 'IisUrlRewrite', site: action.site, ruleName: action.ruleName, previousRuleXml: null }
          : {
              kind: 'IisUrlRewrite',
              site: action.site,
              ruleName: action.ruleName,
              previousRuleXml: rules[position]!.xml,
              previousRulePosition: position,
            };
      }
      case 'DisableAppPool': {
        const pool = appPool(state, action.appPool);
        return {
          kind: 'DisableAppPool',
          appPool: action.appPool,
          state: pool.state,
          autoStart: pool.autoStart,
          ...(pool.startMode ? { startMode: pool.startMode } : {}),
        };
      }
      case 'DisableService': {
        const service = windowsService(state, action.service);
        const dependents = runningDependents(state, action.service);
        return {
          kind: 'DisableService',
          service: action.service,
          status: service.status,
          startType: service.startType,
          ...(dependents.length > 0 ? { runningDependents: dependents } : {}),
        };
      }
    }
  }

  async captureHealthManager(): Promise<Extract<PriorState, { kind: 'HealthManager' }>> {
    const state = this.#current();
    const present = healthManagerServices.filter((name) => state.services[name] !== undefined);
    return {
      kind: 'HealthManager',
      services: present.map((name) => ({
        service: name,
        status: state.services[name]!.status,
        startType: state.services[name]!.startType,
      })),
    };
  }

  async holdHealthManager(): Promise<void> {
    if (this.#faults.failOn?.includes('MSExchangeHM'))
      throw new ApplierError('InjectedFault', 'simulated failure stopping MSExchangeHM');
    // Held already (another mitigation holds it): nothing to write, which thousands of simulated agents notice.
    const current = this.#current();
    if (
      healthManagerServices.every(
        (name) =>
          !current.services[name] ||
          (current.services[name].status === 'Stopped' && current.services[name].startType === 'Disabled'),
      )
    )
      return;
    await this.#change((state) => {
      for (const name of healthManagerServices)
        if (state.services[name])
          state.services[name] = { ...state.services[name], status: 'Stopped', startType: 'Disabled' };
    });
  }

  async exchangeSetupRunning(): Promise<string | undefined> {
    return this.#current().setupRunning;
  }

  async serviceStatus(service: string): Promise<string> {
    return windowsService(await this.read(), service).status;
  }

  async isApplied(action: ApplicableAction): Promise<boolean> {
    const state = this.#current();
    switch (action.kind) {
      case 'DoNothing':
        return true;
      case 'IisUrlRewrite': {
        // In force at the site root and in every application (a <clear/> or <remove> below cancels it).
        const wanted = ruleFingerprint(action.ruleXml);
        const config = site(state, action.site);
        return ['/', ...Object.keys(config.applications ?? {})].every((path) =>
          effectiveRules(config, path).some((rule) => ruleFingerprint(rule.xml) === wanted),
        );
      }
      case 'DisableAppPool': {
        const pool = appPool(state, action.appPool);
        return pool.state === 'Stopped' && !pool.autoStart;
      }
      case 'DisableService': {
        const service = windowsService(state, action.service);
        return service.status === 'Stopped' && service.startType === 'Disabled';
      }
    }
  }

  async ruleInPlace(
    action: Extract<ApplicableAction, { kind: 'IisUrlRewrite' }>,
  ): Promise<string | undefined> {
    const wanted = ruleFingerprint(action.ruleXml);
    return site(this.#current(), action.site).rules.find((rule) => ruleFingerprint(rule.xml) === wanted)
      ?.name;
  }

  async apply(action: ApplicableAction): Promise<ApplyReport> {
    if (action.kind === 'DoNothing') return { notInForce: [] };
    const delayInMs = this.#faults.delayInMs;
    if (delayInMs)
      await new Promise((resolve) => this.#timers.setTimeout(() => resolve(undefined), delayInMs));
    const name = targetName(action);
    if (this.#faults.failOn?.includes(name))
      throw new ApplierError('InjectedFault', `simulated failure changing ${name}`);
    let notInForce: string[] = [];
    await this.#change((state) => {
      switch (action.kind) {
        case 'IisUrlRewrite': {
          const config = site(state, action.site);
          assertRewriteInstalled(state);
          assertNotInherited(config, action.site, action.ruleName);
          // Replaced where it stands (IIS evaluates rules in order), else added last.
          const rules = [...config.rules];
          const position = rules.findIndex((rule) => rule.name === action.ruleName);
          rules.splice(position === -1 ? rules.length : position, position === -1 ? 0 : 1, {
            name: action.ruleName,
            xml: action.ruleXml,
          });
          state.sites[action.site] = { ...config, rules };
          notInForce = cancellations(config, action.ruleName);
          return;
        }
        case 'DisableAppPool':
          appPool(state, action.appPool);
          // As Microsoft: startMode OnDemand and autoStart off first, then stop (IIS's default startMode is OnDemand: no key).
          state.appPools[action.appPool] = { state: 'Stopped', autoStart: false };
          return;
        case 'DisableService':
          for (const dependent of runningDependents(state, action.service))
            state.services[dependent] = { ...state.services[dependent]!, status: 'Stopped' };
          state.services[action.service] = {
            ...windowsService(state, action.service),
            status: 'Stopped',
            startType: 'Disabled',
          };
          return;
      }
    });
    return { notInForce };
  }

  async restore(prior: PriorState): Promise<void> {
    if (prior.kind === 'DoNothing') return;
    const name =
      prior.kind === 'IisUrlRewrite'
        ? prior.ruleName
        : prior.kind === 'DisableAppPool'
          ? prior.appPool
          : prior.kind === 'DisableService'
            ? prior.service
            : 'MSExchangeHM';
    if (this.#faults.failRestoreOn?.includes(name))
      throw new ApplierError('InjectedFault', `simulated failure restoring ${name}`);
    await this.#change((state) => {
      // biome-ignore lint/nursery/useExhaustiveSwitchCases: DoNothing returned above; TypeScript keeps that narrowing in this closure, Biome does not.
      switch (prior.kind) {
        case 'IisUrlRewrite': {
          const config = site(state, prior.site);
          const rules = config.rules.filter((rule) => rule.name !== prior.ruleName);
          if (prior.previousRuleXml !== null) {
            // The same check as apply: a second rule of one name gives HTTP 500.19 for the whole site.
            assertNotInherited(config, prior.site, prior.ruleName);
            rules.splice(Math.min(prior.previousRulePosition ?? rules.length, rules.length), 0, {
              name: prior.ruleName,
              xml: prior.previousRuleXml,
            });
          }
          state.sites[prior.site] = { ...config, rules };
          return;
        }
        case 'DisableAppPool':
          appPool(state, prior.appPool);
          state.appPools[prior.appPool] = {
            state: prior.state,
            autoStart: prior.autoStart,
            ...(prior.startMode === 'AlwaysRunning' ? { startMode: 'AlwaysRunning' as const } : {}),
          };
          return;
        case 'DisableService':
          state.services[prior.service] = {
            ...windowsService(state, prior.service),
            status: prior.status,
            startType: prior.startType,
          };
          for (const dependent of prior.runningDependents ?? [])
            state.services[dependent] = { ...windowsService(state, dependent), status: 'Running' };
          return;
        case 'HealthManager':
          for (const service of prior.services)
            state.services[service.service] = {
              ...windowsService(state, service.service),
              status: service.status,
              startType: service.startType,
            };
          return;
      }
    });
  }

  async #change(mutate: (state: SimulatedServer) => void): Promise<void> {
    const state = structuredClone(this.#current());
    mutate(state);
    this.#write(state);
  }
}

/**
 * The last model read or written per file in this process, with the file's identity then. The file
 * stays the truth: a change by anyone else (a test or a person editing it, another process) shows
 * as another inode, size or change time and is read again. Parsing and validating the JSON on
 * every probe and every step of an apply was most of a simulated agent's CPU at 10,000 servers.
 */
const parsed = new Map<string, { readonly version: string; readonly state: SimulatedServer }>();

function version(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

/**
 * The model as its file holds it, or undefined when there is no file yet (a fresh server). Read
 * without writing, so the simulated front end can share the file with the applier. The object is
 * shared by every reader in the process: read it, never change it.
 */
export async function readSimulatedServer(file: string): Promise<SimulatedServer | undefined> {
  return readModel(file);
}

function readModel(file: string): SimulatedServer | undefined {
  const stats = statSync(file, { throwIfNoEntry: false });
  if (!stats) {
    parsed.delete(file);
    return undefined;
  }
  const current = version(stats);
  const known = parsed.get(file);
  if (known?.version === current) return known.state;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ApplierError('StateCorrupt', `${file} is not valid JSON`, { cause: error });
  }
  const checked = simulatedServerSchema.safeParse(json);
  if (!checked.success)
    throw new ApplierError(
      'StateCorrupt',
      `${file}: ${checked.error.issues[0]!.path.join('.')}: ${checked.error.issues[0]!.message}`,
    );
  // Remembered under the identity seen before reading: a write racing the read makes the next read read again.
  parsed.set(file, { version: current, state: checked.data });
  return checked.data;
}

/** Running services that depend on `name`, directly or through another: stopping it stops them. */
function runningDependents(state: SimulatedServer, name: string): string[] {
  const found: string[] = [];
  const visit = (target: string): void => {
    for (const [candidate, service] of Object.entries(state.services)) {
      if (
        found.includes(candidate) ||
        service.status !== 'Running' ||
        !(service.dependsOn ?? []).includes(target)
      )
        continue;
      found.push(candidate);
      visit(candidate);
    }
  };
  visit(name);
  return found;
}

function assertRewriteInstalled(state: SimulatedServer): void {
  if (state.urlRewriteInstalled === false)
    throw new ApplierError(
      'UrlRewriteMissing',
      'IIS URL Rewrite is not installed (no RewriteModule in globalModules)',
    );
}

function assertNotInherited(
  config: SimulatedServer['sites'][string],
  siteName: string,
  ruleName: string,
): void {
  if ((config.inheritedRules ?? []).some((rule) => rule.name.toLowerCase() === ruleName.toLowerCase())) {
    throw new ApplierError(
      'DuplicateRule',
      `site "${siteName}" already inherits a rule named "${ruleName}" from applicationHost.config; a second one would make IIS refuse the site (HTTP 500.19)`,
    );
  }
}

function targetName(action: Exclude<ApplicableAction, { kind: 'DoNothing' }>): string {
  return action.kind === 'IisUrlRewrite'
    ? action.ruleName
    : action.kind === 'DisableAppPool'
      ? action.appPool
      : action.service;
}

function site(state: SimulatedServer, name: string): SimulatedServer['sites'][string] {
  const found = state.sites[name];
  if (!found) throw new ApplierError('NotFound', `IIS has no site "${name}"`);
  return found;
}

function appPool(state: SimulatedServer, name: string): SimulatedServer['appPools'][string] {
  const found = state.appPools[name];
  if (!found) throw new ApplierError('NotFound', `IIS has no application pool "${name}"`);
  return found;
}

function windowsService(state: SimulatedServer, name: string): SimulatedServer['services'][string] {
  const found = state.services[name];
  if (!found) throw new ApplierError('NotFound', `no Windows service "${name}"`);
  return found;
}
