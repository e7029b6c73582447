import { cliEnvironmentNames } from '../config/index.js';
import type { z } from 'zod';
import { EmfleetError } from '../errors.js';
import { isReasonCode } from '../model/reasons.js';
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

/** One admin API call; a non-2xx answer is an error carrying the API's own `{code, detail}`. */
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
  const problem = response.ok ? undefined : problemOf(text);
  const hint = response.status === 401 ? ` (check --api-key / ${cliEnvironmentNames.apiKey})` : '';
  // The API's own problem (lib/admin/api.ts): its catalogue code, so the CLI says `emfleet: <Code>: <detail>`.
  // A code this release does not know (a newer app's) is kept in the detail under AdminApiFailed.
  if (problem)
    throw isReasonCode(problem.code)
      ? new EmfleetError(
          problem.code,
          `${problem.detail} (${method} ${url} answered ${response.status}${hint})`,
        )
      : new EmfleetError(
          'AdminApiFailed',
          `${problem.code}: ${problem.detail} (${method} ${url} answered ${response.status}${hint})`,
        );
  if (!response.ok) {
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

/** The admin API's problem JSON, `{code, detail}`; undefined for any other answer (a proxy's HTML page…). */
function problemOf(text: string): { code: string; detail: string } | undefined {
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body !== 'object' || body === null) return undefined;
    const { code, detail } = body as Record<string, unknown>;
    return typeof code === 'string' && typeof detail === 'string' ? { code, detail } : undefined;
  } catch {
    return undefined;
  }
}
