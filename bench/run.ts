import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  defaultPricePerListenerMonthUsd,
  relayCost,
  relayQuotas,
  type LayoutCost,
} from '../lib/relay/cost.js';
import { formatTable } from '../lib/text.js';
import { measureVerify, type VerifyFigures } from './verify.js';
import { countsBetween, total } from './proxy.js';
import { defaultHostMemoryMb, heapOptionsFor, startWorld, type DeployOptions, type World } from './world.js';

type DeployOptionsOf = Pick<DeployOptions, 'concurrency' | 'hostJsonPath' | 'hostMemoryMb' | 'sites'>;

/**
 * `npm run bench [-- --quick --json --servers 1000,10000 --idle 100,1000,10000 --concurrency 16 --sites 20]`
 * (issue 9): emfleet against the ceiling of a fan-out, storage transactions per server, the idle
 * hour, the verifier against raw RSA + parse, and the local host's memory; (issue 23) the relay's
 * cost in both layouts and, with --sites, the fan-out through site relay hubs against direct listeners. Ratios, not absolute
 * times, are the figures: the machine is small and shared.
 */
interface Flags {
  quick?: boolean;
  json?: boolean;
  servers?: number[];
  idle?: number[];
  concurrency: number;
  hostJson?: string;
  hostMemory: number;
  sites?: number;
  hubsPerSite: number;
  serversPerSite: number;
  pricePerListener: number;
}

interface FanoutFigures {
  readonly servers: number;
  /** Through this many site hubs; undefined: every agent on its own hybrid connection. */
  readonly sites?: number;
  readonly rolloutMs: number;
  readonly ceilingMs: number;
  readonly ratio: number;
  /** CPU seconds of every part in the rollout over those in the ceiling: less shaken by other load on the machine than wall time. */
  readonly cpuRatio: number;
  readonly txPerServer: number;
  readonly storage: Record<string, number>;
  readonly peakRssMiB: number;
  /** The host's heap after a full collection at the end: the peak above is mostly garbage V8 had not collected yet. */
  readonly liveHeapMiB: number;
  /** Warnings and errors the host logged during the rollout, by event. */
  readonly problems: Record<string, number>;
  /** CPU seconds by part during each run (Azurite, host, agents, relay + proxy, the ceiling's sender). */
  readonly cpu: { readonly rollout: Record<string, number>; readonly ceiling: Record<string, number> };
}

interface IdleFigures {
  readonly servers: number;
  readonly ocsRequests: number;
  /** Requests the poll and the reconcile made, the host's polling of its queues left out. */
  readonly storageTx: number;
  readonly storage: Record<string, number>;
  /** The host's own polling of its (empty) trigger queues while the cycle ran. */
  readonly hostPolls: number;
  /** Requests to agents through the relay (reconcile asks each agent what is in place). */
  readonly agentRequests: number;
}

const targets = { fanoutRatio: 1.5, txPerServer: 6, verifyRatio: 2, peakRssMiB: 300 };

function sizes(flag: string) {
  return (text: string): number[] => {
    const values = text.split(',').map((part) => Number(part.trim()));
    if (values.some((value) => !Number.isInteger(value) || value < 1 || value > 20_000))
      throw new InvalidArgumentError(`${flag} takes server counts from 1 to 20000, comma-separated`);
    return values;
  };
}

async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('npm run bench')
    .description(
      "measure a fan-out against its ceiling, storage transactions per server, the idle hour, package verification and the local host's memory",
    )
    .option('--quick', 'smaller fleets (under a minute)')
    .option('--json', 'progress on stderr; the last line of stdout is one JSON object with every figure')
    .option(
      '--servers <list>',
      'fan-out fleet sizes (default 1000,10000; --quick 100,500)',
      sizes('--servers'),
    )
    .option('--idle <list>', 'idle-hour fleet sizes (default 100,1000,10000)', sizes('--idle'))
    .option(
      '--concurrency <n>',
      "the wave's maxConcurrency, and the ceiling's",
      (text) => {
        const value = Number(text);
        if (!Number.isInteger(value) || value < 1 || value > 1000)
          throw new InvalidArgumentError('--concurrency must be a whole number from 1 to 1000');
        return value;
      },
      16,
    )
    .option(
      '--host-json <path>',
      "run the local host with this host.json instead of the repository's (to compare queue settings)",
    )
    .option(
      '--host-memory <MB>',
      "size the host's heap as Node does on an instance with this much memory (the Flex Consumption instance infra/main.bicep deploys; 0: this machine's own defaults)",
      (text) => {
        const value = Number(text);
        if (!Number.isInteger(value) || (value !== 0 && (value < 512 || value > 65_536)))
          throw new InvalidArgumentError('--host-memory takes 0 or a whole number of MB from 512 to 65536');
        return value;
      },
      defaultHostMemoryMb,
    )
    .option(
      '--sites <n>',
      'also run each fan-out with the servers behind this many site relay hubs, against the same fan-out with direct listeners',
      wholeNumber('--sites', 1, 10_000),
    )
    .option(
      '--hubs-per-site <n>',
      'hubs per site (fan-out through hubs and the cost model)',
      wholeNumber('--hubs-per-site', 1, relayQuotas.listenersPerHybridConnection),
      2,
    )
    .option(
      '--servers-per-site <n>',
      'servers per site in the cost model',
      wholeNumber('--servers-per-site', 1, 100_000),
      50,
    )
    .option(
      '--price-per-listener <usd>',
      `Azure Relay Hybrid Connections price per listener per month (default ${defaultPricePerListenerMonthUsd}, the published list price when written; check yours)`,
      (text) => {
        const value = Number(text);
        if (!(value >= 0) || !Number.isFinite(value))
          throw new InvalidArgumentError('--price-per-listener must be a non-negative amount');
        return value;
      },
      defaultPricePerListenerMonthUsd,
    )
    .exitOverride();
  try {
    program.parse([...argv]);
  } catch (error) {
    return (error as { exitCode?: number }).exitCode === 0 ? 0 : 2;
  }
  const flags = program.opts<Flags>();
  const fanoutSizes = flags.servers ?? (flags.quick ? [100, 500] : [1000, 10_000]);
  const idleSizes = flags.idle ?? [100, 1000, 10_000];
  const started = Date.now();
  const say = (line: string): void =>
    void (flags.json ? process.stderr : process.stdout).write(
      `${line.startsWith('  ') || line === '' ? '' : `[${String(Math.round((Date.now() - started) / 1000)).padStart(3)} s] `}${line}\n`,
    );
  say(
    `emfleet bench: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}; fan-out ${fanoutSizes.join(', ')}, idle ${idleSizes.join(', ')}, concurrency ${flags.concurrency}; host heap sized for ${flags.hostMemory > 0 ? `a ${flags.hostMemory} MB instance (${heapOptionsFor(flags.hostMemory).join(' ')})` : 'this machine'}`,
  );

  say('verify: 64 KiB package, verifyPackage against RSA-SHA256 verify + XML parse');
  const verify = await measureVerify({ iterations: flags.quick ? 40 : 100 });
  say(
    `  verifyPackage ${verify.verifyMs.toFixed(2)} ms, raw ${verify.baselineMs.toFixed(2)} ms: ${verify.ratio.toFixed(2)}x`,
  );

  const deployOptions = {
    concurrency: flags.concurrency,
    ...(flags.hostJson ? { hostJsonPath: resolve(flags.hostJson) } : {}),
    ...(flags.hostMemory > 0 ? { hostMemoryMb: flags.hostMemory } : {}),
  };
  const world = await startWorld();
  const idle: IdleFigures[] = [];
  const fanout: FanoutFigures[] = [];
  try {
    for (const servers of idleSizes) idle.push(await idleHour(world, servers, deployOptions, say));
    for (const servers of fanoutSizes) {
      fanout.push(await fanOut(world, servers, deployOptions, say));
      if (flags.sites)
        fanout.push(
          await fanOut(
            world,
            servers,
            {
              ...deployOptions,
              sites: { count: Math.min(flags.sites, servers), hubsPerSite: flags.hubsPerSite },
            },
            say,
          ),
        );
    }
  } finally {
    const closing = Date.now();
    await world.close();
    say(`Azurite, relay and emulators stopped in ${((Date.now() - closing) / 1000).toFixed(1)} s`);
  }

  const largest = fanout
    .filter((figures) => figures.sites === undefined)
    .reduce<FanoutFigures | undefined>(
      (best, figures) => (!best || figures.servers > best.servers ? figures : best),
      undefined,
    );
  const costSizes = [...new Set([10, 100, 1000, 10_000, ...fanoutSizes, ...idleSizes])].sort((a, b) => a - b);
  const cost = costSizes.map((servers) =>
    relayCost({
      servers,
      serversPerSite: flags.serversPerSite,
      hubsPerSite: flags.hubsPerSite,
      pricePerListenerMonthUsd: flags.pricePerListener,
    }),
  );
  const summary = {
    fanoutRatio: round(largest?.ratio ?? NaN, 2),
    txPerServer: round(largest?.txPerServer ?? NaN, 2),
    idleOcsRequests: Object.fromEntries(idle.map((figures) => [figures.servers, figures.ocsRequests])),
    idleStorageTx: Object.fromEntries(idle.map((figures) => [figures.servers, figures.storageTx])),
    verifyRatio: round(verify.ratio, 2),
    peakRssMiB: round(largest?.peakRssMiB ?? NaN, 1),
    servers: largest?.servers ?? 0,
    hostMemoryMb: flags.hostMemory,
    fanout: fanout.map((figures) => ({
      ...figures,
      ratio: round(figures.ratio, 2),
      cpuRatio: round(figures.cpuRatio, 2),
      txPerServer: round(figures.txPerServer, 2),
      peakRssMiB: round(figures.peakRssMiB, 1),
      liveHeapMiB: round(figures.liveHeapMiB, 1),
    })),
    idle,
    verify: {
      ...verify,
      verifyMs: round(verify.verifyMs, 3),
      baselineMs: round(verify.baselineMs, 3),
      ratio: round(verify.ratio, 2),
    },
    relayCost: {
      pricePerListenerMonthUsd: flags.pricePerListener,
      serversPerSite: flags.serversPerSite,
      hubsPerSite: flags.hubsPerSite,
      layouts: cost,
    },
    elapsedSeconds: Math.round((Date.now() - started) / 1000),
  };
  const print = (line: string): void =>
    void (flags.json ? process.stderr : process.stdout).write(line + '\n');
  print('');
  for (const line of report(fanout, idle, verify)) print(line);
  print('');
  for (const line of costReport(cost, flags)) print(line);
  print(`elapsed ${summary.elapsedSeconds} s`);
  if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n');
  return 0;
}

async function fanOut(
  world: World,
  servers: number,
  options: DeployOptionsOf,
  say: (line: string) => void,
): Promise<FanoutFigures> {
  say(
    `fan-out to ${servers} servers${options.sites ? ` behind ${options.sites.count} sites' relay hubs (${options.sites.hubsPerSite} each)` : ''}: starting ${servers} agents`,
  );
  const deployment = await world.deploy(servers, {
    ...options,
    agents: true,
    onStep: (step, ms) => say(`  ${step} in ${(ms / 1000).toFixed(1)} s`),
  });
  try {
    const ceiling = await deployment.ceiling();
    say(
      `  ceiling: ${servers} applies straight through the relay in ${(ceiling.ms / 1000).toFixed(1)} s (${JSON.stringify(ceiling.outcomes)})`,
    );
    const rollout = await deployment.rollOut();
    say(`  results checked (exactly one per server) in ${(rollout.checkMs / 1000).toFixed(1)} s`);
    const tx = total(rollout.storage);
    say(
      `  emfleet: rollout of ${servers} servers in ${(rollout.ms / 1000).toFixed(1)} s, ${tx} storage requests, host peak RSS ${rollout.peakRssMiB.toFixed(0)} MiB (live heap after a full GC ${rollout.liveHeapMiB.toFixed(0)} MiB)`,
    );
    say(`  CPU seconds, ceiling: ${describeCpu(ceiling.cpu)}; emfleet: ${describeCpu(rollout.cpu)}`);
    if (Object.keys(rollout.problems).length > 0)
      say(`  the host logged ${JSON.stringify(rollout.problems)}`);
    return {
      servers,
      ...(options.sites ? { sites: options.sites.count } : {}),
      rolloutMs: rollout.ms,
      ceilingMs: ceiling.ms,
      ratio: rollout.ms / ceiling.ms,
      cpuRatio: sum(rollout.cpu) / sum(ceiling.cpu),
      txPerServer: tx / servers,
      storage: Object.fromEntries([...rollout.storage].sort(([a], [b]) => a.localeCompare(b))),
      peakRssMiB: rollout.peakRssMiB,
      liveHeapMiB: rollout.liveHeapMiB,
      problems: rollout.problems,
      cpu: { rollout: roundAll(rollout.cpu), ceiling: roundAll(ceiling.cpu) },
    };
  } finally {
    const stopping = Date.now();
    await deployment.stop();
    say(`  ${servers} servers' deployment stopped in ${((Date.now() - stopping) / 1000).toFixed(1)} s`);
  }
}

async function idleHour(
  world: World,
  servers: number,
  options: DeployOptionsOf,
  say: (line: string) => void,
): Promise<IdleFigures> {
  const deployment = await world.deploy(servers, { ...options, agents: false });
  try {
    // The package is accepted while the fleet is empty, then every server reports it applied: nothing is left to do.
    await deployment.runTimer('pollOcs');
    await deployment.markAllApplied();
    const ocsBefore = world.ocsRequests();
    const relayBefore = world.relayRequests();
    const before = world.proxy.counts();
    await deployment.runTimer('pollOcs');
    await deployment.runTimer('reconcile');
    const storage = countsBetween(before, world.proxy.counts());
    const rollouts = await deployment.rollouts();
    if (Object.keys(rollouts).length > 0)
      throw new Error(`the idle hour at ${servers} servers started rollouts: ${JSON.stringify(rollouts)}`);
    const hostPolls = storage.get('queue:receive') ?? 0;
    storage.delete('queue:receive');
    const figures = {
      servers,
      ocsRequests: world.ocsRequests() - ocsBefore,
      storageTx: total(storage),
      storage: Object.fromEntries(storage),
      hostPolls,
      agentRequests: world.relayRequests() - relayBefore,
    };
    say(
      `idle hour at ${servers} servers: ${figures.ocsRequests} OCS request(s), ${figures.storageTx} storage requests ${JSON.stringify(figures.storage)} (+${hostPolls} host polls of empty queues), ${figures.agentRequests} agent requests through the relay`,
    );
    return figures;
  } finally {
    await deployment.stop();
  }
}

function report(
  fanout: readonly FanoutFigures[],
  idle: readonly IdleFigures[],
  verify: VerifyFigures,
): string[] {
  const mark = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const rows: string[][] = [];
  for (const figures of fanout) {
    if (figures.sites !== undefined) {
      // The same fan-out with direct listeners ran just before: hubs add a LAN hop, not a relay one.
      const direct = fanout.find((other) => other.servers === figures.servers && other.sites === undefined);
      rows.push([
        `fan-out ${figures.servers} via ${figures.sites} site hubs`,
        `${(figures.rolloutMs / 1000).toFixed(1)} s${direct ? ` / direct ${(direct.rolloutMs / 1000).toFixed(1)} s = ${(figures.rolloutMs / direct.rolloutMs).toFixed(2)}` : ''}; ceiling via hubs ${(figures.ceilingMs / 1000).toFixed(1)} s`,
        '',
        '',
      ]);
      rows.push([
        `fan-out ${figures.servers} via hubs, CPU`,
        `${figures.cpuRatio.toFixed(2)} (emfleet / ceiling); tx/server ${figures.txPerServer.toFixed(2)}`,
        '',
        '',
      ]);
      continue;
    }
    rows.push([
      `fan-out ${figures.servers}`,
      `emfleet ${(figures.rolloutMs / 1000).toFixed(1)} s / ceiling ${(figures.ceilingMs / 1000).toFixed(1)} s = ${figures.ratio.toFixed(2)}`,
      `<= ${targets.fanoutRatio}`,
      mark(figures.ratio <= targets.fanoutRatio),
    ]);
    rows.push([
      `fan-out ${figures.servers}, CPU`,
      `${figures.cpuRatio.toFixed(2)} (all processes' CPU seconds, emfleet / ceiling)`,
      '',
      '',
    ]);
    rows.push([
      `storage tx/server ${figures.servers}`,
      figures.txPerServer.toFixed(2),
      `<= ${targets.txPerServer}`,
      mark(figures.txPerServer <= targets.txPerServer),
    ]);
    rows.push([
      `host peak RSS ${figures.servers}`,
      `${figures.peakRssMiB.toFixed(0)} MiB`,
      `< ${targets.peakRssMiB} MiB`,
      mark(figures.peakRssMiB < targets.peakRssMiB),
    ]);
    rows.push([
      `host live heap ${figures.servers}`,
      `${figures.liveHeapMiB.toFixed(0)} MiB (after a full GC, once the rollout completed)`,
      '',
      '',
    ]);
  }
  // Paged reads grow by one round trip per 1,000 servers: compare each size with the smallest.
  const smallest = idle.reduce<IdleFigures | undefined>(
    (least, figures) => (!least || figures.servers < least.servers ? figures : least),
    undefined,
  );
  for (const figures of idle) {
    const pages = (servers: number): number => Math.ceil(servers / 1000);
    const growth = smallest ? figures.storageTx - smallest.storageTx : 0;
    const allowed = smallest ? pages(figures.servers) - pages(smallest.servers) : 0;
    rows.push([
      `idle hour ${figures.servers}: OCS requests`,
      String(figures.ocsRequests),
      '1',
      mark(figures.ocsRequests === 1),
    ]);
    rows.push([
      `idle hour ${figures.servers}: storage tx`,
      `${figures.storageTx} (+${figures.hostPolls} host polls)`,
      smallest && figures !== smallest ? `<= ${smallest.storageTx} + ${allowed} (N/1000)` : 'grows <= N/1000',
      mark(growth <= allowed),
    ]);
    rows.push([
      `idle hour ${figures.servers}: agent requests`,
      String(figures.agentRequests),
      '(reconcile asks each agent)',
      '',
    ]);
  }
  rows.push([
    `verify ${Math.round(verify.bytes / 1024)} KiB`,
    `${verify.verifyMs.toFixed(2)} ms / raw ${verify.baselineMs.toFixed(2)} ms = ${verify.ratio.toFixed(2)}`,
    `<= ${targets.verifyRatio}`,
    mark(verify.ratio <= targets.verifyRatio),
  ]);
  const lines = formatTable(['FIGURE', 'MEASURED', 'TARGET', ''], rows);
  const biggest = fanout.at(-1);
  if (biggest) {
    lines.push('', `storage requests per server at ${biggest.servers}, by operation:`);
    lines.push(
      ...formatTable(
        ['OPERATION', 'PER SERVER'],
        Object.entries(biggest.storage)
          .sort(([, a], [, b]) => b - a)
          .map(([operation, count]) => [operation, (count / biggest.servers).toFixed(3)]),
      ),
    );
  }
  return lines;
}

/** Listeners and monthly price of the relay in both layouts (lib/relay/cost.ts). */
function costReport(cost: readonly { own: LayoutCost; hub: LayoutCost }[], flags: Flags): string[] {
  const usd = (value: number): string =>
    `$${value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const rows = cost.flatMap(({ own, hub }) =>
    [own, hub].map((layout) => [
      layout.servers.toLocaleString('en-US'),
      layout.layout === 'own'
        ? 'own hybrid connection'
        : `site hubs (${flags.serversPerSite}/site, ${flags.hubsPerSite} hubs)`,
      String(layout.hybridConnections),
      String(layout.listeners),
      usd(layout.monthlyUsd),
      usd(layout.perServerMonthUsd),
      String(layout.namespaces),
    ]),
  );
  return [
    `relay cost at ${usd(flags.pricePerListener)} per listener per month (--price-per-listener):`,
    ...formatTable(
      ['SERVERS', 'LAYOUT', 'HYBRID CONNECTIONS', 'LISTENERS', 'PER MONTH', 'PER SERVER-MONTH', 'NAMESPACES'],
      rows,
    ),
  ];
}

function wholeNumber(flag: string, min: number, max: number) {
  return (text: string): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min || value > max)
      throw new InvalidArgumentError(`${flag} takes a whole number from ${min} to ${max}`);
    return value;
  };
}

function sum(values: Record<string, number>): number {
  return Object.values(values).reduce((all, value) => all + value, 0);
}

function describeCpu(cpu: Record<string, number>): string {
  return Object.entries(cpu)
    .map(([part, seconds]) => `${part} ${seconds.toFixed(1)}`)
    .join(', ');
}

function roundAll(values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, round(value, 2)]));
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

main(process.argv).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `npm run bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
