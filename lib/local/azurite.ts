import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Azurite's well-known development account (public, documented by Microsoft). */
const account = 'devstoreaccount1';
const accountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface RunningAzurite {
  readonly connectionString: string;
  readonly endpoints: { readonly blob: string; readonly queue: string; readonly table: string };
  stop(): Promise<void>;
}

/**
 * Starts Azurite as a child process: in memory, on free loopback ports (port 0, read back from
 * its start-up lines), no telemetry. Used by the test setup and `npm start`.
 */
export async function startAzurite(options: { timeoutInMs?: number } = {}): Promise<RunningAzurite> {
  const entry = createRequire(import.meta.url).resolve('azurite/dist/src/azurite.js');
  const workspace = await mkdtemp(join(tmpdir(), 'emfleet-azurite-'));
  const child = spawn(
    process.execPath,
    [entry, '--inMemoryPersistence', '--skipApiVersionCheck', '--loose', '--disableTelemetry', '--blobPort', '0', '--queuePort', '0', '--tablePort', '0'],
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
    return {
      connectionString,
      endpoints,
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
