/**
 * Azure Relay Hybrid Connections emulator: a TEST AND LOCAL-RUN TOOL, NEVER A PRODUCTION PATH.
 * It listens on loopback only, speaks plain http/ws, keeps everything in memory and implements just
 * the HTTP request/response side of the protocol that emfleet uses (no relayed WebSocket
 * connect/accept, no anonymous senders, no token-expiry drop of control channels, no Entra tokens).
 *
 * What it does as the service does (docs/relay.md has the details):
 * - listeners open a control channel on /$hc/{hc}?sb-hc-action=listen with a SAS token (Listen) in
 *   the ServiceBusAuthorization header or the sb-hc-token query; bad tokens fail the upgrade (401/403);
 * - senders send HTTP to /{hc}/{path} with a SAS token (Send) in ServiceBusAuthorization,
 *   sb-hc-token or Authorization; the token is stripped before the listener sees the request;
 * - a request goes to a random listener: bodies up to 64 KiB inline on the control channel, larger
 *   ones over a rendezvous socket the listener opens to the request's `address`;
 * - the listener answers on the control channel or on a rendezvous socket; once a rendezvous socket
 *   exists, later requests on the same sender connection travel over it, and closing either side
 *   closes the other;
 * - no listener → 502, no answer within the deadline → 504, listener gone mid-request → 502; replies
 *   that came from a listener carry `Via`.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { silentLogger, type Logger } from '../log.js';
import type { ReasonCode } from '../model/reasons.js';
import { verifySasToken } from '../relay/sas.js';

export interface RelayRule {
  readonly keyName: string;
  readonly key: string;
}

export interface RelayRules {
  readonly listen: RelayRule;
  readonly send: RelayRule;
}

/** Namespace-wide rules (every hybrid connection exists), or rules per hybrid connection (others are 404). */
export type RelayEmulatorRules =
  | RelayRules
  | { readonly hybridConnections: Readonly<Record<string, RelayRules>> };

export interface RelayEmulatorOptions {
  readonly rules: RelayEmulatorRules;
  /** The service's is 60 s; senders should give up before it. */
  readonly deadlineInMs?: number;
  readonly logger?: Logger;
}

export interface RelayEmulator {
  /** http://127.0.0.1:PORT — where senders send. */
  readonly baseUrl: string;
  /** ws://127.0.0.1:PORT/$hc/{hc}?sb-hc-action=listen — what hyco-https's `server` option takes. */
  listenUri(hybridConnection: string): string;
  listenerCount(hybridConnection: string): number;
  /** Fault injection: cuts the control channels (and their rendezvous sockets) of a hybrid connection. */
  dropListeners(hybridConnection: string): number;
  stop(): Promise<void>;
}

/** The control channel carries bodies up to this; larger ones go over rendezvous. */
const controlChannelBodyLimit = 64 * 1024;
const maxRequestBody = 16 * 1024 * 1024;
/** RFC 7230 connection headers, which the service neither forwards nor accepts from listeners. */
const connectionHeaders = new Set([
  'connection',
  'content-length',
  'host',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'close',
  'keep-alive',
  'proxy-connection',
]);

interface Listener {
  readonly hybridConnection: string;
  readonly socket: WebSocket;
}

interface Exchange {
  readonly id: string;
  readonly hybridConnection: string;
  readonly listener: Listener;
  readonly message: RelayRequestMessage;
  readonly body: Buffer;
  readonly sender: http.ServerResponse;
  readonly senderSocket: Socket;
  /** Set when the request or its response travels over a rendezvous socket. */
  rendezvous: WebSocket | undefined;
  /** The request waits for the listener to open the rendezvous socket (body over 64 KiB). */
  deliverOnRendezvous: boolean;
  /** The response head, while its body frame is still to come. */
  head: RelayResponseHead | undefined;
  timer: NodeJS.Timeout;
}

interface RelayRequestMessage {
  address: string;
  id: string;
  requestTarget: string;
  method: string;
  requestHeaders: Record<string, string>;
  body: boolean;
}

interface RelayResponseHead {
  requestId: string;
  statusCode: number;
  statusDescription?: string;
  responseHeaders?: Record<string, unknown>;
  body?: boolean;
}

export async function startRelayEmulator(options: RelayEmulatorOptions): Promise<RelayEmulator> {
  const deadlineInMs = options.deadlineInMs ?? 55_000;
  const logger = options.logger ?? silentLogger;
  const listeners = new Map<string, Set<Listener>>();
  const exchanges = new Map<string, Exchange>();
  /** Rendezvous sockets by the sender connection they serve (requests after the first go over them). */
  const sticky = new Map<Socket, { hybridConnection: string; ws: WebSocket }>();
  const rendezvousSockets = new Set<WebSocket>();
  const rendezvousOwners = new WeakMap<WebSocket, Listener>();

  const rulesFor = (hybridConnection: string): RelayRules | undefined =>
    'hybridConnections' in options.rules
      ? Object.hasOwn(options.rules.hybridConnections, hybridConnection)
        ? options.rules.hybridConnections[hybridConnection]
        : undefined
      : options.rules;

  const server = http.createServer();
  // Longer than the sender's 30 s idle limit, so the sender, not we, closes idle connections.
  server.keepAliveTimeout = 120_000;
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 2 * maxRequestBody,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;
  const baseUrl = `http://${host}`;
  const rendezvousAddress = (hybridConnection: string, id: string): string =>
    `ws://${host}/$hc/${encodeURIComponent(hybridConnection)}?sb-hc-action=request&sb-hc-id=${id}`;

  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    void handleSend(request, response).catch((error: unknown) => {
      logger.error('RelayEmulatorSendFailed', { error: (error as Error).message });
      if (!response.headersSent) reply(response, 500, 'relay emulator error');
    });
  });

  async function handleSend(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', baseUrl);
    const hybridConnection = decodeURIComponent(url.pathname.split('/').filter(Boolean)[0] ?? '');
    const rules = hybridConnection === '' ? undefined : rulesFor(hybridConnection);
    if (!rules)
      return reply(response, 404, `hybrid connection ${JSON.stringify(hybridConnection)} not found`);

    const headerToken = request.headers['servicebusauthorization'];
    const queryToken = url.searchParams.get('sb-hc-token');
    // As the service: ServiceBusAuthorization and sb-hc-token are always consumed; Authorization only when neither is there.
    const usesAuthorization = headerToken === undefined && queryToken === null;
    const token =
      (typeof headerToken === 'string' ? headerToken : undefined) ??
      queryToken ??
      (usesAuthorization ? request.headers.authorization : undefined);
    if (token === undefined)
      return reply(response, 401, 'missing token: send a SAS token in ServiceBusAuthorization');
    const verdict = verifySasToken(
      token,
      { [rules.send.keyName]: rules.send.key },
      { resource: hybridConnection },
    );
    if (!verdict.ok) {
      logger.warn('RelayEmulatorSenderRejected', {
        hybridConnection,
        reasonCode: `Sas${verdict.reason}` satisfies ReasonCode,
        reasonDetail: verdict.detail,
      });
      return reply(
        response,
        verdict.reason === 'WrongResource' ? 403 : 401,
        `${verdict.reason}: ${verdict.detail}`,
      );
    }

    const body = await readBody(request);
    if (body === undefined) return reply(response, 413, `request body over ${maxRequestBody} bytes`);

    for (const name of [...url.searchParams.keys()])
      if (name.toLowerCase().startsWith('sb-hc-')) url.searchParams.delete(name);
    const requestHeaders: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (
        value === undefined ||
        connectionHeaders.has(name) ||
        name === 'servicebusauthorization' ||
        (usesAuthorization && name === 'authorization')
      )
        continue;
      requestHeaders[name] = Array.isArray(value) ? value.join(', ') : value;
    }

    const senderSocket = request.socket;
    // A bound connection carries on to its listener only for the hybrid connection it was bound for.
    const bound = sticky.get(senderSocket);
    const channel = bound?.hybridConnection === hybridConnection ? bound.ws : undefined;
    const pool = [...(listeners.get(hybridConnection) ?? [])];
    const listener = channel ? rendezvousOwners.get(channel) : pool[Math.floor(Math.random() * pool.length)];
    if (!listener) return reply(response, 502, `no listener is connected to ${hybridConnection}`);

    const id = randomUUID();
    const message: RelayRequestMessage = {
      address: rendezvousAddress(hybridConnection, id),
      id,
      requestTarget: url.pathname + url.search,
      method: request.method ?? 'GET',
      requestHeaders,
      body: body.length > 0,
    };
    const exchange: Exchange = {
      id,
      hybridConnection,
      listener,
      message,
      body,
      sender: response,
      senderSocket,
      rendezvous: channel,
      deliverOnRendezvous: false,
      head: undefined,
      timer: setTimeout(
        () => finish(exchange, 504, `the listener did not answer within ${deadlineInMs} ms`),
        deadlineInMs,
      ),
    };
    exchanges.set(id, exchange);
    response.on('close', () => forget(exchange));

    if (channel) {
      sendRequest(channel, exchange);
    } else if (body.length > controlChannelBodyLimit) {
      exchange.deliverOnRendezvous = true;
      listener.socket.send(JSON.stringify({ request: { address: message.address, id } }));
    } else {
      sendRequest(listener.socket, exchange);
    }
  }

  /** The full request: its JSON head, then the body as one binary message. */
  function sendRequest(socket: WebSocket, exchange: Exchange): void {
    socket.send(JSON.stringify({ request: exchange.message }));
    if (exchange.message.body) socket.send(exchange.body, { binary: true });
  }

  function finish(
    exchange: Exchange,
    status: number,
    text: string,
    headers: Record<string, string> = {},
    body?: Buffer,
  ): void {
    if (!exchanges.has(exchange.id)) return;
    forget(exchange);
    if (exchange.sender.headersSent || exchange.sender.destroyed) return;
    if (body === undefined) return reply(exchange.sender, status, text);
    try {
      exchange.sender.writeHead(status, text, {
        ...headers,
        'content-length': String(body.length),
        via: `1.1 ${host}`,
      });
    } catch (error) {
      // A status text or header HTTP cannot carry; the service would not forward it either.
      return reply(
        exchange.sender,
        502,
        `the listener's reply cannot be forwarded: ${(error as Error).message}`,
      );
    }
    exchange.sender.end(body);
  }

  function forget(exchange: Exchange): void {
    clearTimeout(exchange.timer);
    exchanges.delete(exchange.id);
  }

  server.on('upgrade', (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node leaves an upgraded socket's errors to the handler: a peer that resets while being
    // refused (or mid-handshake) would otherwise be an uncaught exception that ends the emulator.
    socket.on('error', () => socket.destroy());
    const url = new URL(request.url ?? '/', baseUrl);
    const match = /^\/\$hc\/(.+?)\/?$/.exec(url.pathname);
    const hybridConnection = match ? decodeURIComponent(match[1]!) : '';
    const action = url.searchParams.get('sb-hc-action');
    if (!match) return refuseUpgrade(socket, 404, 'Not Found');
    if (action === 'listen') return upgradeListener(request, socket, head, url, hybridConnection);
    if (action === 'request') return upgradeRendezvous(request, socket, head, url);
    return refuseUpgrade(socket, 400, `sb-hc-action ${JSON.stringify(action)} is not emulated`);
  });

  function upgradeListener(
    request: http.IncomingMessage,
    socket: Duplex,
    head: Buffer,
    url: URL,
    hybridConnection: string,
  ): void {
    const rules = rulesFor(hybridConnection);
    if (!rules) return refuseUpgrade(socket, 404, 'Hybrid Connection Not Found');
    const headerToken = request.headers['servicebusauthorization'];
    const token =
      (typeof headerToken === 'string' ? headerToken : undefined) ??
      url.searchParams.get('sb-hc-token') ??
      undefined;
    if (token === undefined) return refuseUpgrade(socket, 401, 'Unauthorized: missing token');
    const verdict = verifySasToken(
      token,
      { [rules.listen.keyName]: rules.listen.key },
      { resource: hybridConnection },
    );
    if (!verdict.ok) {
      logger.warn('RelayEmulatorListenerRejected', {
        hybridConnection,
        reasonCode: `Sas${verdict.reason}` satisfies ReasonCode,
        reasonDetail: verdict.detail,
      });
      return refuseUpgrade(
        socket,
        verdict.reason === 'WrongResource' ? 403 : 401,
        verdict.reason === 'WrongResource' ? 'Forbidden' : 'Unauthorized',
      );
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      const listener: Listener = { hybridConnection, socket: ws };
      const set = listeners.get(hybridConnection) ?? new Set<Listener>();
      set.add(listener);
      listeners.set(hybridConnection, set);
      logger.info('RelayEmulatorListenerConnected', { hybridConnection, listeners: set.size });
      let pendingBody: Exchange | undefined;
      ws.on('message', (data: RawData, isBinary: boolean) => {
        if (isBinary) {
          if (pendingBody) completeWithBody(pendingBody, data);
          // hyco-https sends an empty binary frame after bodiless replies (e.g. 204); the service ignores it too.
          pendingBody = undefined;
          return;
        }
        const text = rawText(data);
        const parsed = parseJson(text);
        if (isObject(parsed) && isObject(parsed['renewToken'])) {
          const renewed = parsed['renewToken']['token'];
          const check =
            typeof renewed === 'string'
              ? verifySasToken(
                  renewed,
                  { [rules.listen.keyName]: rules.listen.key },
                  { resource: hybridConnection },
                )
              : undefined;
          if (!check?.ok) ws.close(1008, 'renewed token rejected');
          return;
        }
        pendingBody = onResponseHead(
          parsed,
          (exchange) => exchange.listener === listener && exchange.rendezvous === undefined,
        );
      });
      ws.on('close', () => {
        set.delete(listener);
        logger.info('RelayEmulatorListenerDisconnected', { hybridConnection, listeners: set.size });
        for (const exchange of [...exchanges.values()]) {
          if (exchange.listener === listener && exchange.rendezvous === undefined)
            finish(exchange, 502, 'the listener disconnected before answering');
        }
      });
      ws.on('error', () => ws.terminate());
    });
  }

  function upgradeRendezvous(request: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const exchange = exchanges.get(url.searchParams.get('sb-hc-id') ?? '');
    if (!exchange || exchange.rendezvous !== undefined)
      return refuseUpgrade(socket, 403, 'Forbidden: rendezvous address expired');
    wss.handleUpgrade(request, socket, head, (ws) => {
      if (!exchanges.has(exchange.id) || exchange.rendezvous !== undefined)
        return ws.close(1008, 'rendezvous address expired');
      exchange.rendezvous = ws;
      rendezvousSockets.add(ws);
      rendezvousOwners.set(ws, exchange.listener);
      const senderSocket = exchange.senderSocket;
      sticky.set(senderSocket, { hybridConnection: exchange.hybridConnection, ws });
      const onSenderGone = (): void => ws.close(1001, 'sender disconnected');
      senderSocket.once('close', onSenderGone);
      let pendingBody: Exchange | undefined;
      ws.on('message', (data: RawData, isBinary: boolean) => {
        if (isBinary) {
          if (pendingBody) completeWithBody(pendingBody, data);
          pendingBody = undefined;
          return;
        }
        pendingBody = onResponseHead(parseJson(rawText(data)), (candidate) => candidate.rendezvous === ws);
      });
      ws.on('close', () => {
        rendezvousSockets.delete(ws);
        senderSocket.off('close', onSenderGone);
        if (sticky.get(senderSocket)?.ws === ws) sticky.delete(senderSocket);
        for (const pending of [...exchanges.values()]) {
          if (pending.rendezvous === ws)
            finish(pending, 502, 'the listener closed the rendezvous socket before answering');
        }
        // As the service: when the listener drops the rendezvous socket, the sender's connection goes too.
        senderSocket.destroy();
      });
      ws.on('error', () => ws.terminate());
      if (exchange.deliverOnRendezvous) sendRequest(ws, exchange);
    });
  }

  /** Handles a `response` head; returns the exchange whose body frame comes next, if any. */
  function onResponseHead(parsed: unknown, mayAnswer: (exchange: Exchange) => boolean): Exchange | undefined {
    if (!isObject(parsed) || !isObject(parsed['response'])) return undefined;
    // Only an object is known here; each field is checked where it is used (String(), typeof).
    const head = parsed['response'] as unknown as RelayResponseHead;
    const exchange = exchanges.get(String(head.requestId));
    if (!exchange || !mayAnswer(exchange)) return undefined;
    const status = Number(head.statusCode);
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      finish(exchange, 502, 'the listener sent an invalid status code');
      return undefined;
    }
    exchange.head = { ...head, statusCode: status };
    if (head.body === true) return exchange;
    completeWithBody(exchange, Buffer.alloc(0));
    return undefined;
  }

  function completeWithBody(exchange: Exchange, data: RawData): void {
    const head = exchange.head;
    if (!head) return;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(head.responseHeaders ?? {})) {
      if (
        typeof value !== 'string' ||
        connectionHeaders.has(name.toLowerCase()) ||
        name.toLowerCase() === 'via'
      )
        continue;
      headers[name] = value;
    }
    finish(
      exchange,
      head.statusCode,
      head.statusDescription ?? http.STATUS_CODES[head.statusCode] ?? '',
      headers,
      rawBuffer(data),
    );
  }

  let stopping: Promise<void> | undefined;

  function listenerSockets(hybridConnection: string): Listener[] {
    return [...(listeners.get(hybridConnection) ?? [])];
  }

  return {
    baseUrl,
    listenUri: (hybridConnection) =>
      `ws://${host}/$hc/${encodeURIComponent(hybridConnection)}?sb-hc-action=listen`,
    listenerCount: (hybridConnection) => listenerSockets(hybridConnection).length,
    dropListeners(hybridConnection) {
      const dropped = listenerSockets(hybridConnection);
      for (const listener of dropped) {
        for (const channel of rendezvousSockets)
          if (rendezvousOwners.get(channel) === listener) channel.terminate();
        listener.socket.terminate();
      }
      return dropped.length;
    },
    stop() {
      stopping ??= shutDown();
      return stopping;
    },
  };

  async function shutDown(): Promise<void> {
    for (const exchange of [...exchanges.values()]) finish(exchange, 502, 'the relay emulator is stopping');
    for (const set of listeners.values()) for (const listener of set) listener.socket.terminate();
    for (const channel of rendezvousSockets) channel.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function reply(response: http.ServerResponse, status: number, text: string): void {
  const body = Buffer.from(text, 'utf8');
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(body.length),
  });
  response.end(body);
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}

async function readBody(request: http.IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxRequestBody) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function rawBuffer(data: RawData): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

function rawText(data: RawData): string {
  return rawBuffer(data).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
