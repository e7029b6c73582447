import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
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

type Service = 'blob' | 'queue' | 'table';
const services: readonly Service[] = ['blob', 'queue', 'table'];

export interface RunningAzurite {
  readonly connectionString: string;
  readonly endpoints: { readonly blob: string; readonly queue: string; readonly table: string };
  /** The ports it listens on; give them to a later start to get the same connection string. */
  readonly ports: AzuritePorts;
  /** Its processes (one, or one per service). */
  readonly pids: readonly number[];
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
  /** Node options for Azurite's processes (the bench's `--cpu-prof`). */
  readonly execArgv?: readonly string[];
  /**
   * One process per service instead of one for all three. Each Azurite service is single-threaded;
   * in one process a queue's housekeeping (its extent GC, quadratic in the messages it held) holds up
   * every table request, where Azure serves queues and tables from separate front ends. The bench
   * uses it; in-memory only.
   */
  readonly processPerService?: boolean;
}

/**
 * Starts Azurite as a child process on loopback, no telemetry, no access log (a line per request,
 * about 5 % of its CPU under load): by default in memory on free ports
 * (port 0, read back from its start-up lines), as the test setup and `npm start` use it. With a
 * location and the ports of an earlier run it comes back with that run's data at the same
 * address, as an Azure Storage account does after an outage.
 */
export async function startAzurite(options: AzuriteOptions = {}): Promise<RunningAzurite> {
  if (options.processPerService && options.location !== undefined)
    throw new Error('Azurite with a process per service runs in memory only');
  const workspace = await mkdtemp(join(tmpdir(), 'emfleet-azurite-'));
  // The table service's own main reports the port it was given, not the one it got: give it a free one.
  const ports =
    options.ports ??
    (options.processPerService
      ? { blob: 0, queue: 0, table: await freePort() }
      : { blob: 0, queue: 0, table: 0 });
  const persistence =
    options.location === undefined ? ['--inMemoryPersistence'] : ['--location', options.location];
  const common = [...persistence, '--silent', '--skipApiVersionCheck', '--loose', '--disableTelemetry'];
  const groups: readonly (readonly Service[])[] = options.processPerService
    ? services.map((service) => [service])
    : [services];
  const children: ChildProcess[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(children.map(stopChild));
    await rm(workspace, { recursive: true, force: true });
  };
  try {
    const found = await Promise.all(
      groups.map((group) => {
        const entry = createRequire(import.meta.url).resolve(
          group.length === 1 ? `azurite/dist/src/${group[0]}/main.js` : 'azurite/dist/src/azurite.js',
        );
        const child = spawn(
          process.execPath,
          [
            ...(options.execArgv ?? []),
            entry,
            ...common,
            ...group.flatMap((service) => [`--${service}Port`, String(ports[service])]),
          ],
          {
            cwd: workspace,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        children.push(child);
        return readEndpoints(child, group, options.timeoutInMs ?? 60_000);
      }),
    );
    const endpoints = Object.assign({}, ...found) as RunningAzurite['endpoints'];
    const connectionString =
      [
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
      pids: children.map((child) => child.pid!),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function readEndpoints(
  child: ChildProcess,
  expected: readonly Service[],
  timeoutInMs: number,
): Promise<Partial<RunningAzurite['endpoints']>> {
  return new Promise((resolve, reject) => {
    const found: Partial<Record<Service, string>> = {};
    let output = '';
    const timer = setTimeout(
      () => fail(new Error(`Azurite did not start within ${timeoutInMs} ms: ${output.slice(-500)}`)),
      timeoutInMs,
    );
    const fail = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      // azurite.js and the blob and queue mains print the address they listen at; the table main prints the port it was given.
      for (const match of output.matchAll(
        /Azurite (Blob|Queue|Table) service (?:is successfully listening at|successfully listens on|successfully started on) (?:http:\/\/)?([^\s]+)/g,
      )) {
        found[match[1]!.toLowerCase() as Service] = `http://${match[2]!}`;
      }
      if (expected.every((service) => found[service] !== undefined)) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(found);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => fail(new Error(`Azurite exited with code ${code}: ${output.slice(-500)}`)));
    child.once('error', fail);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
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
