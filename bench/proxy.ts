import net from 'node:net';

/**
 * A counting TCP proxy in front of Azurite's queue and table ports. Every client that is given the
 * proxy's connection string (the local host's queue polling, the functions' SDK clients) goes
 * through it, with no change to product code. Bytes are forwarded untouched; the client side of
 * each connection is framed just enough (request line, headers, Content-Length or chunked body) to
 * count requests by service and operation. A table $batch is one request, as it is one round trip.
 */
export type Service = 'queue' | 'table';

export interface CountingProxy {
  /** The connection string with its queue and table endpoints pointing at the proxy. */
  readonly connectionString: string;
  /** Counts so far by `service:operation` (e.g. `table:getEntity`, `queue:receive`). */
  counts(): Map<string, number>;
  stop(): Promise<void>;
}

export async function startCountingProxy(connectionString: string): Promise<CountingProxy> {
  const counts = new Map<string, number>();
  const count = (key: string): void => void counts.set(key, (counts.get(key) ?? 0) + 1);
  const forwarders: Forwarder[] = [];
  let rewritten = connectionString;
  for (const [service, field] of [
    ['queue', 'QueueEndpoint'],
    ['table', 'TableEndpoint'],
  ] as const) {
    const endpoint = new RegExp(`${field}=([^;]+)`).exec(connectionString)?.[1];
    if (!endpoint) throw new Error(`the connection string has no ${field}`);
    const target = new URL(endpoint);
    const forwarder = await forward(target, (method, path) =>
      count(`${service}:${operation(service, method, path)}`),
    );
    forwarders.push(forwarder);
    rewritten = rewritten.replace(
      endpoint,
      `${target.protocol}//127.0.0.1:${forwarder.port}${target.pathname}`,
    );
  }
  return {
    connectionString: rewritten,
    counts: () => new Map(counts),
    stop: async () => void (await Promise.all(forwarders.map((forwarder) => forwarder.stop()))),
  };
}

/** Requests to one HTTP endpoint (e.g. the relay emulator, for the senders), counted the same way. */
export interface RequestCounter {
  /** `http://127.0.0.1:PORT` in front of the target. */
  readonly baseUrl: string;
  count(): number;
  stop(): Promise<void>;
}

export async function startRequestCounter(baseUrl: string): Promise<RequestCounter> {
  let requests = 0;
  const target = new URL(baseUrl);
  const forwarder = await forward(target, () => void (requests += 1));
  return {
    baseUrl: `${target.protocol}//127.0.0.1:${forwarder.port}`,
    count: () => requests,
    stop: () => forwarder.stop(),
  };
}

interface Forwarder {
  readonly port: number;
  stop(): Promise<void>;
}

/** A loopback TCP listener that pipes each connection to `target`, reporting the requests the client side writes. */
async function forward(target: URL, onRequest: (method: string, path: string) => void): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const frame = requestFramer(onRequest);
    client.on('data', (chunk: Buffer) => {
      frame(chunk);
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.pipe(client);
    client.on('end', () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Counts in `after` minus those in `before`, zeros left out. */
export function countsBetween(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const delta = new Map<string, number>();
  for (const [key, value] of after) {
    const difference = value - (before.get(key) ?? 0);
    if (difference !== 0) delta.set(key, difference);
  }
  return delta;
}

export function total(counts: Map<string, number>, keep: (key: string) => boolean = () => true): number {
  let sum = 0;
  for (const [key, value] of counts) if (keep(key)) sum += value;
  return sum;
}

/** Names the storage operation of a request, as the REST APIs define them. */
function operation(service: Service, method: string, target: string): string {
  const path = decodeURIComponent(target.split('?')[0]!);
  const query = target.includes('?') ? target.slice(target.indexOf('?')) : '';
  // /devstoreaccount1/<resource>[/...]
  const parts = path.split('/').filter(Boolean).slice(1);
  if (service === 'queue') {
    const [, messages, messageId] = parts;
    if (messages === 'messages') {
      if (method === 'POST') return 'send';
      if (method === 'GET') return /peekonly=true/i.test(query) ? 'peek' : 'receive';
      if (method === 'DELETE') return messageId ? 'delete' : 'clear';
      if (method === 'PUT') return 'update';
    }
    if (method === 'PUT') return /comp=metadata/i.test(query) ? 'setMetadata' : 'create';
    if (method === 'GET' || method === 'HEAD') return /comp=list/i.test(query) ? 'list' : 'getProperties';
    if (method === 'DELETE') return 'deleteQueue';
    return method.toLowerCase();
  }
  const [resource = ''] = parts;
  if (resource === '$batch') return 'batch';
  if (resource.startsWith('Tables'))
    return method === 'POST' ? 'createTable' : method === 'DELETE' ? 'deleteTable' : 'listTables';
  const keyed = /\(PartitionKey=.*RowKey=.*\)$/.test(resource);
  switch (method) {
    case 'GET':
      return keyed ? 'getEntity' : 'query';
    case 'POST':
      return 'insert';
    case 'PUT':
      return 'update';
    case 'MERGE':
    case 'PATCH':
      return 'merge';
    case 'DELETE':
      return 'delete';
    default:
      return method.toLowerCase();
  }
}

/**
 * Frames the HTTP/1.1 requests a client writes on one connection and reports each request line.
 * Bodies are skipped by Content-Length or chunked encoding, so text inside a body (a $batch holds
 * whole requests) is never taken for a request.
 */
function requestFramer(onRequest: (method: string, target: string) => void): (chunk: Buffer) => void {
  let head: Buffer = Buffer.alloc(0);
  let bodyLeft = 0;
  let chunked: 'size' | 'data' | 'data-end' | 'trailer' | undefined;
  let line = '';
  return (input: Buffer) => {
    let chunk = input;
    while (chunk.length > 0) {
      if (bodyLeft > 0) {
        const take = Math.min(bodyLeft, chunk.length);
        bodyLeft -= take;
        chunk = chunk.subarray(take);
        if (bodyLeft === 0 && chunked === 'data') chunked = 'data-end';
        continue;
      }
      if (chunked !== undefined) {
        // size line, data, CRLF after data, ..., 0 size, trailers up to an empty line.
        const newline = chunk.indexOf(0x0a);
        if (newline < 0) {
          line += chunk.toString('latin1');
          return;
        }
        line += chunk.subarray(0, newline).toString('latin1');
        chunk = chunk.subarray(newline + 1);
        const text = line.replace(/\r$/, '');
        line = '';
        if (chunked === 'data-end') {
          chunked = 'size';
        } else if (chunked === 'size') {
          const size = parseInt(text.split(';')[0]!, 16);
          if (size === 0) chunked = 'trailer';
          else {
            bodyLeft = size;
            chunked = 'data';
          }
        } else if (chunked === 'trailer' && text === '') {
          chunked = undefined;
        }
        continue;
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      chunk = head.subarray(end + 4);
      head = Buffer.alloc(0);
      const [method = '', target = ''] = lines[0]!.split(' ');
      onRequest(method, target);
      for (const header of lines.slice(1)) {
        const colon = header.indexOf(':');
        const name = header.slice(0, colon).trim().toLowerCase();
        const value = header.slice(colon + 1).trim();
        if (name === 'content-length') bodyLeft = Number(value);
        if (name === 'transfer-encoding' && /chunked/i.test(value)) chunked = 'size';
      }
    }
  };
}
