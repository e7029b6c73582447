import { Command, InvalidArgumentError } from 'commander';
import { localHostFlag } from '../config/index.js';

// The functions are run by the local host here, not registered with a Functions host (lib/functions.ts).
process.env[localHostFlag] = '1';
const { runLocal } = await import('./run.js');

/** `npm start [-- --once --servers N --faulty N --unreachable N --break N --sites N --port P --json]`. */
async function main(argv: readonly string[]): Promise<number> {
  const count =
    (flag: string, minimum: number, maximum: number) =>
    (text: string): number => {
      const value = Number(text);
      if (!Number.isInteger(value) || value < minimum || value > maximum)
        throw new InvalidArgumentError(`${flag} must be a whole number from ${minimum} to ${maximum}`);
      return value;
    };
  const program = new Command('npm start')
    .description(
      'run emfleet on this machine: Azurite, an OCS emulator, the relay emulator, simulated Exchange servers with real agents, and the local Functions host',
    )
    .option('--once', 'exit when no rollout is running, after the summary')
    .option('--servers <n>', 'how many simulated servers', count('--servers', 1, 2000), 20)
    .option(
      '--faulty <n>',
      'the first N servers of the canary ring fail every apply',
      count('--faulty', 0, 2000),
      0,
    )
    .option('--unreachable <n>', 'the last N servers have no agent', count('--unreachable', 0, 2000), 0)
    .option(
      '--break <n>',
      "the first N canary servers' OWA pool takes ECP down with it, undeclared: a health-gated halt with automatic rollback",
      count('--break', 0, 2000),
      0,
    )
    .option(
      '--sites <n>',
      "the servers sit behind N sites' relay hubs (one hybrid connection and hub a site), not on hybrid connections of their own",
      count('--sites', 0, 200),
      0,
    )
    .option('--port <p>', 'port of the admin API (0: any free port)', count('--port', 0, 65535), 0)
    .option('--json', 'progress on stderr; the last line of stdout is the summary as one JSON object')
    .exitOverride();
  try {
    program.parse([...argv]);
  } catch (error) {
    return (error as { exitCode?: number }).exitCode === 0 ? 0 : 2;
  }
  const flags = program.opts<{
    once?: boolean;
    servers: number;
    faulty: number;
    unreachable: number;
    break: number;
    sites: number;
    port: number;
    json?: boolean;
  }>();
  if (Math.max(flags.faulty, flags.break) + flags.unreachable > flags.servers) {
    process.stderr.write('npm start: --faulty or --break, with --unreachable, cannot exceed --servers\n');
    return 2;
  }
  const stopRequested = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const write =
    (stream: NodeJS.WriteStream) =>
    (line: string): void =>
      void stream.write(line + '\n');
  const summary = await runLocal({
    servers: flags.servers,
    faulty: flags.faulty,
    unreachable: flags.unreachable,
    break: flags.break,
    sites: flags.sites,
    once: Boolean(flags.once),
    port: flags.port,
    progress: flags.json ? write(process.stderr) : write(process.stdout),
    ...(!flags.json && process.stdout.isTTY
      ? { terminal: (text: string) => void process.stdout.write(text) }
      : {}),
    stopRequested,
  });
  if (flags.json) process.stdout.write(JSON.stringify(summary) + '\n');
  return 0;
}

main(process.argv).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
