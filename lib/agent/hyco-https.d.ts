/**
 * The part of hyco-https 1.4 that lib/agent/listener.ts uses. We load its server module directly:
 * the package's index.js replaces `https.Server` in Node's own https module for the whole process.
 */
declare module 'hyco-https/lib/HybridConnectionHttpsServer.js' {
  import type { EventEmitter } from 'node:events';
  import type { Readable } from 'node:stream';

  /** hyco-https's own ws@6 client socket. */
  export interface HycoWebSocket extends EventEmitter {
    readonly readyState: 0 | 1 | 2 | 3;
    send(text: string): void;
    pong(): void;
    close(code?: number, reason?: string): void;
    terminate(): void;
  }

  export interface HycoRequest extends Readable {
    readonly method: string;
    /** The relay's requestTarget: /{hybrid connection}/{rest}?{query without sb-hc-*}. */
    readonly url: string;
    readonly headers: Record<string, string | string[] | undefined>;
  }

  export interface HycoResponse extends EventEmitter {
    statusCode: number;
    readonly socket: HycoWebSocket | null;
    setHeader(name: string, value: string): void;
    end(body?: Buffer | string): void;
  }

  export interface ServerOptions {
    /** wss://{namespace}:443/$hc/{hc}?sb-hc-action=listen */
    server: string;
    /** Sent as ServiceBusAuthorization on each connect (a function also gets hourly renewals). */
    token: string | (() => string);
  }

  export class Server extends EventEmitter {
    constructor(
      options: ServerOptions,
      requestListener?: (request: HycoRequest, response: HycoResponse) => void,
    );
    options: ServerOptions;
    controlChannel: HycoWebSocket;
    /** Set by close(); while set, hyco-https schedules no reconnects and no token renewals. */
    closeRequested: boolean;
    /** A control-channel request whose body frame is still to come. */
    pendingRequest: unknown;
    listen(): void;
    close(callback?: (error: Error | null) => void): void;
  }
}
