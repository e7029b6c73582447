import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft). */
const account = 'devstoreaccount1';
const accountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuritePorts {
  readonly blob: number;
  readonly queue: number;
  readonly table: number;
}

export interface RunningAzurite {
  readonly connectionString: string;
  readonly endpoints: { readonly blob: string; readonly queue: string; readonly table: string };
  /** The ports it listens on; give them to a later start to get the same connection string. */
  readonly ports: AzuritePorts;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  readonly timeoutInMs?: number;
  /**
   * Keep the data on disk in this directory instead of in memory, so that stopping and starting
   * again with the same directory (and ports) is a restart that loses nothing. The caller owns it.
   */
  readonly location?: string;
  /** Fixed ports (default: free ones, chosen by the system). */
  readonly ports?: AzuritePorts;
  /** Node options for Azurite's process (the bench's `--cpu-prof`). */
  readonly execArgv?: readonly string[];
}

/**
 * Starts Azurite as a child process on loopback, no telemetry, no access log (a line per request,
 * about 5 % of its CPU under load): by default in memory on free ports
 * (port 0, read back from its start-up lines), as the test setup and `npm start` use it. With a
 * location and the ports of an earlier run it comes back with that run's data at the same
 * address, as an Azure Storage account does after an outage.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  const entry = createRequire(import.meta.url).resolve('azurite/dist/src/azurite.js');
  const workspace = await mkdtemp(join(tmpdir(), 'emfleet-azurite-'));
  const ports = options.ports ?? { blob: 0, queue: 0, table: 0 };
  const persistence = options.location === undefined ? ['--inMemoryPersistence'] : ['--location', options.location];
  const child = spawn(
    process.execPath,
    [...(options.execArgv ?? []), entry, ...persistence, '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry', '--blobPort', String(ports.blob), '--queuePort', String(ports.queue), '--tablePort', String(ports.table)],
    { cwd: workspace, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  try {
    const endpoints = await readEndpoints(child, options.timeoutInMs ?? 20_000);
    const connectionString = [
      'DefaultEndpointsProtocol=http',
      `AccountName=${account}`,
      `AccountKey=${accountKey}`,
      `BlobEndpoint=${endpoints.blob}/${account}`,
      `QueueEndpoint=${endpoints.queue}/${account}`,
      `TableEndpoint=${endpoints.table}/${account}`,
    ].join(';') + ';';
    const port = (url: string): number => Number(new URL(url).port);
    return {
      connectionString,
      endpoints,
      ports: { blob: port(endpoints.blob), queue: port(endpoints.queue), table: port(endpoints.table) },
      stop: async () => {
        await stopChild(child);
        await rm(workspace, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await stopChild(child);
    await rm(workspace, { recursive: true, force: true });
    throw error;
  }
}

function readEndpoints(child: ChildProcess, timeoutInMs: number): Promise<RunningAzurite['endpoints']> {
  return new Promise((resolve, reject) => {
    const found: Partial<Record<'blob' | 'queue' | 'table', string>> = {};
    let output = '';
    const timer = setTimeout(() => fail(new Error(`Azurite did not start within ${timeoutInMs} ms: ${output.slice(-500)}`)), timeoutInMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      for (const match of output.matchAll(/Azurite (Blob|Queue|Table) service is successfully listening at (http:\/\/[^\s]+)/g)) {
        found[match[1]!.toLowerCase() as 'blob' | 'queue' | 'table'] = match[2]!;
      }
      if (found.blob && found.queue && found.table) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve({ blob: found.blob, queue: found.queue, table: found.table });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => fail(new Error(`Azurite exited with code ${code}: ${output.slice(-500)}`)));
    child.once('error', fail);
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
