// The server module alone, never the package's index.js (see hyco-https.d.ts); a static import
// (Node finds the CommonJS module's named exports), so esbuild bundles it into the agent's one file.
import {
  Server,
  type HycoRequest,
  type HycoResponse,
  type HycoWebSocket,
  type Server as HycoServer,
} from 'hyco-https/lib/HybridConnectionHttpsServer.js';
import { ConfigError, EmfleetError } from '../errors.js';
import { redactUrl, silentLogger, type Logger } from '../log.js';
import { reason, reasonCatalogue, type Reason, type ReasonCodeOf } from '../model/reasons.js';
import { errorReplyBody, maxRequestBodyBytes } from '../relay/protocol.js';

/**
 * The only place that touches hyco-https (old, unmaintained, with its own ws@6). It gives the agent
 * a plain request → response handler and makes up for what hyco-https gets wrong:
 * - its reconnect timers cannot be cancelled: a close() during a reconnect wait is followed by a new
 *   control channel, and the pending timer (up to 30 s) keeps the process alive. We set hyco's own
 *   "close requested" flag once, so it never reconnects by itself, and reconnect here with the same
 *   delays (0, 1, 2, 5, 10, 30 s) on a timer close() clears. hyco starts the delays over on every
 *   open, so a channel the relay keeps closing right away is retried in a tight loop; we start over
 *   only after the channel stayed up a while;
 * - it renews a token function only every hour (as old as a 1-hour token) and calls the function
 *   inside its timers, where a throw would crash the process. We take a fresh token for every
 *   connect and send `renewToken` ourselves, more often;
 * - a response over 64 KiB goes over a rendezvous socket that hyco-https then ignores, though the
 *   relay sends that sender's next requests over it (they would time out). We hand such sockets to
 *   hyco's own request-channel handling, as it does for large requests;
 * - rendezvous sockets are never closed by it, and the ones it opens for responses have no error
 *   listener (a refused one would crash the process); we listen, and close() ends them;
 * - `writeHead(status, headers)` drops the headers; we set them one by one.
 */

export interface IncomingRelayRequest {
  readonly method: string;
  /** The request target after the hybrid connection name, with its query: /status, /apply?x=1. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

export interface RelayReply {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: Buffer | string;
}

export type ListenerState = 'listening' | 'reconnecting' | 'closed';

export interface RelayListenerOptions {
  /** wss://{namespace}:443/$hc/{hc}?sb-hc-action=listen, or the emulator's listenUri(hc). */
  readonly listenUri: string;
  /** A Listen token; called for every connect and renewal, so it can hand out fresh ones. */
  readonly token: () => string;
  readonly handler: (request: IncomingRelayRequest) => Promise<RelayReply>;
  readonly logger?: Logger;
  readonly onState?: (state: ListenerState) => void;
  /** How often the control channel's token is renewed (default 15 min; tokens should live longer). */
  readonly renewEveryMs?: number;
  /** Unsolicited pongs on the control channel, so NATs and load balancers keep it (default 30 s). */
  readonly keepAliveMs?: number;
  /** A request body larger than this is not read (default maxRequestBodyBytes). */
  readonly maxBodyBytes?: number;
}

export interface RelayListener {
  /** Resolves once the control channel is first open; rejects if closed before that. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

const reconnectDelaysSeconds = [0, 1, 2, 5, 10, 30] as const;
/** A channel that stayed up this long starts the delays over; one that flaps keeps backing off. */
const stableAfterMs = 10_000;
const wsOpen = 1;
const wsConnecting = 0;

export function startRelayListener(options: RelayListenerOptions): RelayListener {
  const logger = options.logger ?? silentLogger;
  const hybridConnection = hybridConnectionOf(options.listenUri);
  const where = { hybridConnection };
  const maxBodyBytes = options.maxBodyBytes ?? maxRequestBodyBytes;
  const channels = new Set<HycoWebSocket>();
  let state: ListenerState | undefined;
  let closed = false;
  let attempt = 0;
  let openedAt = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let keepAliveTimer: NodeJS.Timeout | undefined;

  let markReady!: () => void;
  let failReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // Callers that never await `ready` must not see an unhandled rejection when they close early.
  ready.catch(() => {});

  const setState = (next: ListenerState): void => {
    if (state === next) return;
    state = next;
    options.onState?.(next);
  };

  const server: HycoServer = new Server({ server: options.listenUri, token: '' }, (request, response) => {
    void serve(request, response);
  });
  // hyco-https's "close requested" flag, set for good: it then never reconnects or renews by itself.
  server.closeRequested = true;

  // hyco-https emits 'requestchannel' for rendezvous sockets it reads requests from; we emit it for
  // response rendezvous sockets too. Either way they are ours to close.
  server.on('requestchannel', (channel: HycoWebSocket) => {
    limitFrames(channel, maxBodyBytes);
    channels.add(channel);
    channel.once('close', () => channels.delete(channel));
    // hyco-https opens response rendezvous sockets without an error listener: a refused one
    // (expired address, network fault) would throw out of the event loop and end the process.
    channel.on('error', (error: Error) =>
      logger.warn('RelayListenerRendezvousFailed', { ...where, error: error.message }),
    );
  });

  server.on('listening', () => {
    openedAt = Date.now();
    logger.info('RelayListenerListening', where);
    setState('listening');
    markReady();
    startChannelTimers();
  });

  server.on('error', (event: { message?: string; error?: Error }) => {
    if (closed) return;
    const message = event.message ?? event.error?.message ?? String(event);
    const status = /Unexpected server response: (\d{3})/.exec(message)?.[1];
    if (status === '401' || status === '403') {
      logger.error('RelayListenerRejected', {
        ...where,
        status: Number(status),
        ...listenerReason(status === '401' ? 'ListenTokenRefused' : 'ListenNotGranted'),
      });
    } else if (status === '404') {
      logger.error('RelayListenerRejected', {
        ...where,
        status: 404,
        ...listenerReason('HybridConnectionMissing'),
      });
    } else {
      logger.warn('RelayListenerError', { ...where, error: message });
    }
  });

  server.on('close', () => {
    const current = server.controlChannel.readyState;
    // A channel we already replaced may report its close late; only the current one counts.
    if (closed || current === wsOpen || current === wsConnecting) return;
    stopChannelTimers();
    if (openedAt !== 0 && Date.now() - openedAt >= stableAfterMs) attempt = 0;
    openedAt = 0;
    scheduleReconnect('ControlChannelClosed');
  });

  function connect(): void {
    reconnectTimer = undefined;
    if (closed) return;
    let token: string;
    try {
      token = options.token();
    } catch (error) {
      logger.error('RelayListenerTokenFailed', { ...where, error: (error as Error).message });
      return scheduleReconnect('NoListenToken');
    }
    server.options.token = token;
    // A request whose body frame never came on the old channel must not swallow the new channel's first message.
    server.pendingRequest = null;
    try {
      server.listen();
    } catch (error) {
      // e.g. a token with characters a header cannot carry; thrown here, inside our timer.
      logger.error('RelayListenerError', { ...where, error: (error as Error).message });
      scheduleReconnect('ListenFailed');
    }
  }

  function scheduleReconnect(reasonCode: ListenerReason): void {
    if (closed || reconnectTimer !== undefined) return;
    const delaySeconds = reconnectDelaysSeconds[Math.min(attempt, reconnectDelaysSeconds.length - 1)]!;
    attempt += 1;
    logger.warn('RelayListenerReconnecting', {
      ...where,
      ...listenerReason(reasonCode),
      delaySeconds,
      attempt,
    });
    setState('reconnecting');
    reconnectTimer = setTimeout(connect, delaySeconds * 1000);
  }

  function startChannelTimers(): void {
    stopChannelTimers();
    const channel = server.controlChannel;
    renewTimer = setInterval(
      () => {
        if (channel.readyState !== wsOpen) return;
        let token: string;
        try {
          token = options.token();
        } catch (error) {
          logger.error('RelayListenerTokenFailed', { ...where, error: (error as Error).message });
          return;
        }
        channel.send(JSON.stringify({ renewToken: { token } }));
      },
      options.renewEveryMs ?? 15 * 60_000,
    );
    keepAliveTimer = setInterval(() => {
      if (channel.readyState === wsOpen) channel.pong();
    }, options.keepAliveMs ?? 30_000);
    // The sockets keep a listening agent alive; these timers alone should not.
    renewTimer.unref();
    keepAliveTimer.unref();
  }

  function stopChannelTimers(): void {
    clearInterval(renewTimer);
    clearInterval(keepAliveTimer);
  }

  async function serve(request: HycoRequest, response: HycoResponse): Promise<void> {
    let reply: RelayReply;
    try {
      const body = await readAll(request, maxBodyBytes);
      reply = await options.handler({
        method: request.method,
        path: pathAfter(hybridConnection, request.url),
        headers: request.headers,
        body,
      });
    } catch (error) {
      if (error instanceof RequestTooLargeError) {
        logger.warn('RelayListenerRequestTooLarge', {
          ...where,
          method: request.method,
          path: redactUrl(request.url),
          maxBodyBytes,
        });
        reply = {
          status: 413,
          headers: { 'content-type': 'application/json' },
          body: errorReplyBody('TooLarge', error.message),
        };
      } else {
        logger.error('RelayListenerHandlerFailed', {
          ...where,
          method: request.method,
          path: redactUrl(request.url),
          error: (error as Error).message,
        });
        reply = {
          status: 500,
          headers: { 'content-type': 'application/json' },
          body: errorReplyBody(
            'InternalError',
            `agent failed to handle the request: ${(error as Error).message}`,
          ),
        };
      }
    }
    const channel = response.socket;
    response.once('socket', (socket: HycoWebSocket) => {
      if (socket !== server.controlChannel && !channels.has(socket)) server.emit('requestchannel', socket);
    });
    try {
      response.statusCode = reply.status;
      for (const [name, value] of Object.entries(reply.headers ?? {})) response.setHeader(name, value);
      response.end(Buffer.isBuffer(reply.body) ? reply.body : Buffer.from(reply.body, 'utf8'));
    } catch (error) {
      logger.error('RelayListenerReplyFailed', {
        ...where,
        status: reply.status,
        error: (error as Error).message,
      });
    }
    if (channel) dropResponseCloseListeners(channel);
  }

  connect();

  let closing: Promise<void> | undefined;
  return {
    ready,
    close() {
      closing ??= shutDown();
      return closing;
    },
  };

  async function shutDown(): Promise<void> {
    closed = true;
    clearTimeout(reconnectTimer);
    stopChannelTimers();
    failReady(
      new EmfleetError('ListenerClosed', `listener on ${hybridConnection} closed before it was ready`),
    );
    const channel = server.controlChannel;
    const ended =
      channel.readyState === wsOpen || channel.readyState === wsConnecting
        ? new Promise<void>((resolve) => channel.once('close', () => resolve()))
        : Promise.resolve();
    try {
      server.close();
    } catch (error) {
      logger.warn('RelayListenerError', { ...where, error: (error as Error).message });
    }
    for (const socket of channels) socket.terminate();
    // A relay that never answers our close frame must not hold close() (ws@6 would wait 30 s).
    const force = setTimeout(() => channel.terminate(), 2000);
    await ended;
    clearTimeout(force);
    logger.info('RelayListenerClosed', where);
    setState('closed');
  }
}

/** The hybrid connection's name from /$hc/{name} of the listen URI. */
function hybridConnectionOf(listenUri: string): string {
  let url: URL;
  try {
    url = new URL(listenUri);
  } catch (error) {
    throw new ConfigError(`listen URI ${JSON.stringify(listenUri)} is not a URL`, { cause: error });
  }
  const match = /^\/\$hc\/(.+?)\/?$/.exec(url.pathname);
  if ((url.protocol !== 'wss:' && url.protocol !== 'ws:') || !match)
    throw new ConfigError(`listen URI ${listenUri} is not wss://{namespace}/$hc/{hybrid connection}`);
  return decodeURIComponent(match[1]!);
}

function pathAfter(hybridConnection: string, target: string): string {
  const prefix = `/${hybridConnection}`;
  const rest = target.toLowerCase().startsWith(prefix.toLowerCase()) ? target.slice(prefix.length) : target;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/**
 * A rendezvous socket carries a request body as one WebSocket message; ws reads its length from
 * the frame header first. With the limit set, a larger message closes the socket (1009) before its
 * payload is read, instead of being buffered whole and refused afterwards. hyco-https creates these
 * sockets itself with ws's default (100 MiB) and offers no option, so the receiver's limit is set
 * here, when the socket opens and before the request's message arrives.
 */
function limitFrames(channel: HycoWebSocket, maxBytes: number): void {
  const receiver = (channel as unknown as { _receiver?: { _maxPayload: number } })._receiver;
  if (receiver) receiver._maxPayload = maxBytes;
}

/** The body, read no further than maxBytes (a small body comes inside the control channel's message, itself capped by the relay at 64 KiB). */
function readAll(request: HycoRequest, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const onData = (chunk: Buffer | string): void => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      bytes += buffer.length;
      if (bytes > maxBytes) {
        request.removeListener('data', onData);
        request.pause();
        reject(new RequestTooLargeError(maxBytes));
        return;
      }
      chunks.push(buffer);
    };
    request.on('data', onData);
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

/** Why the listener is rejected or reconnects: the code, and its meaning as the detail (the event has no more facts). */
type ListenerReason = Extract<
  ReasonCodeOf<'agent'>,
  | 'ListenTokenRefused'
  | 'ListenNotGranted'
  | 'HybridConnectionMissing'
  | 'ControlChannelClosed'
  | 'NoListenToken'
  | 'ListenFailed'
>;

function listenerReason(code: ListenerReason): Reason<ListenerReason> {
  return reason(code, reasonCatalogue[code].meaning);
}

class RequestTooLargeError extends EmfleetError {
  override readonly name = 'RequestTooLargeError';

  constructor(maxBytes: number) {
    super('RequestTooLarge', `the request body is larger than ${maxBytes} bytes`, { context: { maxBytes } });
  }
}

/**
 * hyco-https adds one 'close' listener to a rendezvous socket per response it carries and never
 * removes it; on a long-lived rendezvous socket that grows without bound (and warns after ten).
 * Its only effect is a 'close' event on finished responses, which nothing here listens to.
 */
function dropResponseCloseListeners(socket: HycoWebSocket): void {
  for (const listener of socket.listeners('close')) {
    if ((listener as { name?: string }).name === 'onServerResponseClose')
      socket.removeListener('close', listener as () => void);
  }
}
