import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { InvocationContext, Timer } from '@azure/functions';
import { QueueClient } from '@azure/storage-queue';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { FunctionDefinition } from '../../../lib/functions.js';
import { startLocalHost, type LocalHost, type LocalHostOptions } from '../../../lib/local/host/index.js';
import { azuriteConnectionString } from '../../helpers/fleet.js';
import { recordingLogger } from '../../relay/fixture.js';

/** The local host against the run's Azurite, with test-only definitions and a fast host.json. */

let directory: string;
const hosts: LocalHost[] = [];

export const fastQueues = {
  batchSize: 4,
  newBatchThreshold: 2,
  maxDequeueCount: 3,
  visibilityTimeout: '00:00:01',
  maxPollingInterval: '00:00:00.200',
};

async function hostJson(extensions: Record<string, unknown> = { queues: fastQueues }): Promise<string> {
  const path = join(directory, `host-${randomBytes(4).toString('hex')}.json`);
  await writeFile(path, JSON.stringify({ version: '2.0', extensions }));
  return path;
}

export async function start(
  definitions: FunctionDefinition[],
  overrides: Partial<LocalHostOptions> & { extensions?: Record<string, unknown> } = {},
): Promise<{ host: LocalHost; prefix: string; logger: ReturnType<typeof recordingLogger> }> {
  const prefix = `h${randomBytes(5).toString('hex')}`;
  const logger = recordingLogger();
  const host = await startLocalHost({
    definitions,
    hostJsonPath: await hostJson(overrides.extensions),
    settings: {},
    connectionString: azuriteConnectionString(),
    queuePrefix: prefix,
    logger,
    pollIntervalMs: 50,
    ...overrides,
  });
  hosts.push(host);
  return { host, prefix, logger };
}

export function rawQueue(name: string): QueueClient {
  return new QueueClient(azuriteConnectionString(), name);
}

/** As lib/fleet/queues sends: base64 of the UTF-8 JSON text. */
export async function sendJson(name: string, value: unknown): Promise<void> {
  const queue = rawQueue(name);
  await queue.createIfNotExists();
  await queue.sendMessage(Buffer.from(JSON.stringify(value), 'utf8').toString('base64'));
}

export async function messageCount(name: string): Promise<number> {
  const queue = rawQueue(name);
  return (await queue.exists()) ? ((await queue.getProperties()).approximateMessagesCount ?? 0) : 0;
}

/**
 * Azurite behind a loopback proxy that sees, may hold, and may refuse (with a status) each request for
 * messages, and sees every other request (`onRequest`).
 */
export async function azuriteProxy(
  onReceive: (path: string) => void | number | Promise<void>,
  onRequest: (method: string, path: string) => void = () => undefined,
): Promise<{ connectionString: string; close(): void }> {
  const target = new URL(/QueueEndpoint=([^;]+)/.exec(azuriteConnectionString())![1]!);
  const proxy = http.createServer((incoming, outgoing) => {
    const path = incoming.url ?? '/';
    onRequest(incoming.method ?? 'GET', path);
    void (async () => {
      const refusal =
        incoming.method === 'GET' && /\/messages(\?|$)/.test(path) ? await onReceive(path) : undefined;
      if (refusal !== undefined) return void outgoing.writeHead(refusal).end();
      const forwarded = http.request(
        {
          host: target.hostname,
          port: target.port,
          path,
          method: incoming.method,
          headers: incoming.headers,
        },
        (answer) => {
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      incoming.pipe(forwarded);
    })();
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    connectionString: azuriteConnectionString().replace(
      /QueueEndpoint=[^;]+/,
      `QueueEndpoint=http://127.0.0.1:${(proxy.address() as AddressInfo).port}${target.pathname}`,
    ),
    close: () => {
      proxy.closeAllConnections();
      proxy.close();
    },
  };
}

export const queueFunction = (
  name: string,
  queueName: string,
  handler: (message: unknown, context: InvocationContext) => unknown,
): FunctionDefinition => ({
  kind: 'storageQueue',
  name,
  options: {
    queueName,
    connection: 'AzureWebJobsStorage',
    handler: async (message, context) => void (await handler(message, context)),
  },
});

export const timerFunction = (
  name: string,
  schedule: string,
  handler: (timer: Timer, context: InvocationContext) => unknown,
  runOnStartup?: boolean,
): FunctionDefinition => ({
  kind: 'timer',
  name,
  options: {
    schedule,
    handler: async (timer, context) => void (await handler(timer, context)),
    ...(runOnStartup === undefined ? {} : { runOnStartup }),
  },
});

/** Once a year, so only runOnStartup and runTimer fire it during a test. */
export const yearly = '0 0 0 1 1 *';

/** Before a proxy in front of Azurite closes too: a host polling a closed port waits out the storage client's retries. */
export const stopHosts = async (): Promise<void> =>
  void (await Promise.all(hosts.splice(0).map((host) => host.stop())));

/** Registers the hooks every host test file needs: a directory for host.json files, and no host left running after a test. */
export function useLocalHosts(): void {
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'emfleet-host-'));
  });
  afterEach(stopHosts);
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });
}
