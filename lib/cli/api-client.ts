import { cliEnvironmentNames } from '../config/index.js';
import type { z } from 'zod';
import { EmfleetError } from '../errors.js';
import { UsageError, type CliIo } from './io.js';

export interface AdminApiFlags {
  readonly apiUrl?: string;
  readonly apiKey?: string;
}

export interface AdminApi {
  readonly baseUrl: string;
  readonly key: string | undefined;
}

/** The function app from --api-url / EMFLEET_API_URL, its function key from --api-key / EMFLEET_API_KEY. */
export function adminApiFromFlags(flags: AdminApiFlags, io: CliIo): AdminApi {
  const url = flags.apiUrl ?? io.env[cliEnvironmentNames.apiUrl];
  if (!url)
    throw new UsageError(
      `no function app to ask: pass --api-url URL or set ${cliEnvironmentNames.apiUrl} (and --api-key / ${cliEnvironmentNames.apiKey}, a function key)`,
    );
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--api-url "${url}" is not a URL`);
  }
  return {
    baseUrl: parsed
      .toString()
      .replace(/\/+$/, '')
      .replace(/\/api$/, ''),
    key: flags.apiKey ?? io.env[cliEnvironmentNames.apiKey],
  };
}

/** One admin API call; a non-2xx answer is an error carrying the API's own `{error, detail}`. */
export async function callAdminApi<T>(
  api: AdminApi,
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  schema: z.ZodType<T>,
  options: { timeoutInMs?: number } = {},
): Promise<T> {
  const url = `${api.baseUrl}/api/${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { 'content-type': 'application/json', ...(api.key ? { 'x-functions-key': api.key } : {}) },
      ...(method === 'POST' ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(options.timeoutInMs ?? 120_000),
    });
  } catch (error) {
    throw new EmfleetError(
      'AdminApiUnreachable',
      `cannot reach ${url}: ${error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error)}`,
      { cause: error },
    );
  }
  const text = await response.text();
  if (!response.ok) {
    const hint = response.status === 401 ? ` (check --api-key / ${cliEnvironmentNames.apiKey})` : '';
    throw new EmfleetError(
      'AdminApiFailed',
      `${method} ${url} answered ${response.status}${hint}: ${text.slice(0, 300)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new EmfleetError('AdminApiFailed', `${method} ${url} did not answer JSON: ${text.slice(0, 200)}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new EmfleetError(
      'AdminApiFailed',
      `${method} ${url} answered an unexpected shape: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`,
    );
  return parsed.data;
}
