import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { EmfleetError } from '../errors.js';
import { maxPackageBytes } from '../package/xml.js';

/** Microsoft's feed, the one every Exchange server's EM service polls. */
export const microsoftFeedUrl = 'https://officeclient.microsoft.com/getexchangemitigations';
/** The Packages partition of Microsoft's feed. */
export const microsoftFeedName = 'microsoft';

export type OcsErrorKind = 'Dns' | 'Tls' | 'HttpStatus' | 'Timeout' | 'TooLarge' | 'Network' | 'Proxy';

/** Why a feed could not be fetched; `kind` is what an admin fixes (DNS, proxy, TLS inspection...). */
export class OcsError extends EmfleetError {
  override readonly name = 'OcsError';
  readonly kind: OcsErrorKind;

  constructor(
    kind: OcsErrorKind,
    url: string,
    detail: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(`Ocs${kind}`, `${url}: ${detail}`, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      context: { url, ...(options.status === undefined ? {} : { status: options.status }) },
    });
    this.kind = kind;
  }
}

export interface FetchFeedOptions {
  readonly url: string;
  /** Validators from the last fetch: the server answers 304 when nothing changed. */
  readonly etag?: string;
  readonly lastModified?: string;
  readonly timeoutInMs?: number;
  readonly maxBytes?: number;
  /** `HTTPS_PROXY`-style URL; `undefined` reads HTTPS_PROXY/https_proxy and NO_PROXY from the environment. */
  readonly proxy?: string | null;
  readonly environment?: Record<string, string | undefined>;
  /** Extra CA certificates (PEM), for a feed behind TLS inspection or a local test server. */
  readonly ca?: string;
}

export type FetchFeedResult =
  | { readonly kind: 'unchanged'; readonly etag?: string; readonly lastModified?: string }
  | {
      readonly kind: 'fetched';
      readonly bytes: Buffer;
      readonly etag?: string;
      readonly lastModified?: string;
    };

/**
 * One conditional GET of a feed with a deadline for the whole exchange and a cap on the body,
 * read as it streams so an oversized answer is cut off, not buffered.
 */
export function fetchFeed(options: FetchFeedOptions): Promise<FetchFeedResult> {
  const url = new URL(options.url);
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return Promise.reject(new TypeError(`feed URL must be http(s), got ${options.url}`));
  const maxBytes = options.maxBytes ?? maxPackageBytes;
  const timeoutInMs = options.timeoutInMs ?? 30_000;
  const proxy =
    options.proxy === undefined ? proxyFor(url, options.environment ?? process.env) : options.proxy;
  const headers: Record<string, string> = {
    accept: 'application/xml, text/xml;q=0.9, */*;q=0.1',
    'user-agent': 'emfleet',
  };
  if (options.etag) headers['if-none-match'] = options.etag;
  if (options.lastModified) headers['if-modified-since'] = options.lastModified;

  return new Promise((resolve, reject) => {
    const transport = url.protocol === 'https:' ? https : http;
    const request = transport.request(url, {
      method: 'GET',
      headers,
      ...(proxy ? { agent: new HttpsProxyAgent(proxy, options.ca ? { ca: options.ca } : {}) } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
    });
    const deadline = setTimeout(
      () =>
        request.destroy(new OcsError('Timeout', options.url, `no complete answer within ${timeoutInMs} ms`)),
      timeoutInMs,
    );
    const fail = (error: unknown): void => {
      clearTimeout(deadline);
      reject(error instanceof OcsError ? error : classify(options.url, error, proxy));
    };
    request.on('error', fail);
    request.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      const validators = {
        ...(typeof response.headers.etag === 'string' ? { etag: response.headers.etag } : {}),
        ...(typeof response.headers['last-modified'] === 'string'
          ? { lastModified: response.headers['last-modified'] }
          : {}),
      };
      if (status === 304) {
        response.resume();
        clearTimeout(deadline);
        resolve({ kind: 'unchanged', ...validators });
        return;
      }
      if (status !== 200) {
        response.resume();
        fail(
          new OcsError('HttpStatus', options.url, `HTTP ${status} ${response.statusMessage ?? ''}`.trim(), {
            status,
          }),
        );
        return;
      }
      const declared = Number(response.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        request.destroy(
          new OcsError(
            'TooLarge',
            options.url,
            `the answer declares ${declared} bytes; the limit is ${maxBytes}`,
          ),
        );
        return;
      }
      const chunks: Buffer[] = [];
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxBytes) {
          request.destroy(new OcsError('TooLarge', options.url, `the answer exceeds ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', fail);
      response.on('end', () => {
        clearTimeout(deadline);
        resolve({ kind: 'fetched', bytes: Buffer.concat(chunks), ...validators });
      });
    });
    request.end();
  });
}

function classify(url: string, error: unknown, proxy: string | null | undefined): OcsError {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new OcsError('Dns', url, `cannot resolve the host name (${code})`, { cause: error });
  if (
    /CERT|SSL|TLS|EPROTO|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code) ||
    /certificate|tls|ssl/i.test(message)
  ) {
    return new OcsError('Tls', url, `TLS failed: ${message} (a TLS-inspecting proxy needs its CA trusted)`, {
      cause: error,
    });
  }
  if (proxy && /proxy|CONNECT/i.test(message))
    return new OcsError('Proxy', url, `through proxy ${redact(proxy)}: ${message}`, { cause: error });
  return new OcsError(
    'Network',
    url,
    `${code || 'error'}: ${message}${proxy ? ` (via proxy ${redact(proxy)})` : ''}`,
    { cause: error },
  );
}

/** HTTPS_PROXY (or https_proxy / HTTP_PROXY for http URLs), unless NO_PROXY names the host. */
export function proxyFor(url: URL, environment: Record<string, string | undefined>): string | null {
  const noProxy = (environment['NO_PROXY'] ?? environment['no_proxy'] ?? '')
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter(Boolean);
  const host = url.hostname.toLowerCase();
  if (
    noProxy.some(
      (entry) =>
        entry === '*' ||
        host === entry.replace(/^\./, '') ||
        host.endsWith(entry.startsWith('.') ? entry : `.${entry}`),
    )
  )
    return null;
  const proxy =
    url.protocol === 'https:'
      ? (environment['HTTPS_PROXY'] ?? environment['https_proxy'])
      : (environment['HTTP_PROXY'] ?? environment['http_proxy']);
  return proxy && proxy.trim() !== '' ? proxy.trim() : null;
}

function redact(proxy: string): string {
  return proxy.replace(/\/\/[^@/]*@/, '//***@');
}
