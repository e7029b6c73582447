import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The bench's worker processes (agents, the local host, the ceiling client) take commands over
 * Node's IPC channel: one request, one reply, matched by id.
 */
export interface Command {
  readonly kind: string;
  readonly [field: string]: unknown;
}

interface Envelope {
  readonly id: number;
  readonly command?: Command;
  readonly reply?: unknown;
  readonly error?: string;
}

export interface Worker {
  readonly pid: number;
  call<T>(command: Command): Promise<T>;
  /** Waits for the process to end, killing it if it has not within a few seconds. */
  exit(): Promise<void>;
}

/**
 * EMFLEET_BENCH_CPU_PROF=agents,host,azurite (process names) writes a V8 CPU profile of those
 * processes into dist/bench-profiles/<name>/ when they end (open them in Chrome DevTools or VS Code).
 */
export function profileArgs(name: string): string[] {
  const profiled = (process.env['EMFLEET_BENCH_CPU_PROF'] ?? '').split(',').includes(name);
  return profiled ? ['--cpu-prof', `--cpu-prof-dir=${resolve('dist/bench-profiles', name)}`] : [];
}

/**
 * Starts `dist/bench/<script>.js` with an IPC channel; its stderr is passed through.
 * Profiled when EMFLEET_BENCH_CPU_PROF names it (`profileArgs`).
 */
export function startWorker(
  script: string,
  env: Record<string, string> = {},
  nodeOptions: readonly string[] = [],
): Worker {
  const path = fileURLToPath(new URL(`./${script}.js`, import.meta.url));
  // hyco-https uses util._extend; its deprecation warning says nothing about emfleet.
  const execArgv = ['--no-deprecation', ...nodeOptions, ...profileArgs(script)];
  const child: ChildProcess = fork(path, [], {
    env: { ...process.env, ...env },
    execArgv,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let next = 1;
  let ended: Error | undefined;
  child.on('message', (raw) => {
    const envelope = raw as Envelope;
    const waiter = pending.get(envelope.id);
    if (!waiter) return;
    pending.delete(envelope.id);
    if (envelope.error !== undefined) waiter.reject(new Error(`${script} worker: ${envelope.error}`));
    else waiter.resolve(envelope.reply);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      ended = new Error(`${script} worker exited (${signal ?? code})`);
      for (const waiter of pending.values()) waiter.reject(ended);
      pending.clear();
      resolve();
    });
  });
  return {
    pid: child.pid!,
    call<T>(command: Command): Promise<T> {
      if (ended) return Promise.reject(ended);
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ id, command } satisfies Envelope);
      });
    },
    async exit() {
      if (ended) return;
      child.disconnect();
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The worker side: runs each command through `handle` and sends back its result or error. */
export function serveCommands(handle: (command: Command) => Promise<unknown>): void {
  process.on('message', (raw) => {
    const { id, command } = raw as Envelope;
    if (!command) return;
    handle(command).then(
      (reply) => process.send!({ id, reply: reply ?? null } satisfies Envelope),
      (error: unknown) =>
        process.send!({
          id,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        } satisfies Envelope),
    );
  });
  // The parent disconnecting is the signal to end.
  process.on('disconnect', () => void handle({ kind: 'stop' }).finally(() => process.exit(0)));
}

/** Peak and current resident set of a process, in MiB, from /proc (Linux). */
export async function memoryOf(pid: number): Promise<{ peakRssMiB: number; rssMiB: number }> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakRssMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux; clock ticks of 1/100 s). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
