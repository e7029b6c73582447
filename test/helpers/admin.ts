import { HttpRequest, type HttpResponseInit } from '@azure/functions';
import type { AdminDeps, AdminHandler } from '../../lib/admin/api.js';
import { loadSettings } from '../../lib/config/index.js';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { silentLogger } from '../../lib/log.js';
import { azuriteConnectionString } from './fleet.js';

export const org = 'contoso';

/** The admin handlers' dependencies over fresh tables and queues in the run's Azurite; settings as the app would parse them. */
export function adminDeps(fresh: { tables: FleetTables; prefix: string }, trustAnchorPem: string, settings: Record<string, string> = {}): AdminDeps {
  const connection = { kind: 'connectionString', connectionString: azuriteConnectionString() } as const;
  return {
    tables: fresh.tables,
    queues: new StorageQueueSender(connection, { prefix: fresh.prefix }),
    settings: loadSettings({ AzureWebJobsStorage: azuriteConnectionString(), EMFLEET_TABLE_PREFIX: fresh.prefix, EMFLEET_ORG: org, EMFLEET_TRUST_ANCHORS: trustAnchorPem, ...settings }),
    logger: silentLogger,
  };
}

/** A request as the host builds it: the URL with its query, route parameters, headers, body. */
export function adminRequest(method: 'GET' | 'POST', path: string, init: { params?: Record<string, string>; headers?: Record<string, string>; body?: string } = {}): HttpRequest {
  return new HttpRequest({ method, url: `http://127.0.0.1:7071/api/${path}`, ...(init.params ? { params: init.params } : {}), ...(init.headers ? { headers: init.headers } : {}), ...(init.body === undefined ? {} : { body: { string: init.body } }) });
}

/** Every admin handler answers with jsonBody; tests read it as the JSON a client would. */
export async function call(handler: AdminHandler, deps: AdminDeps, httpRequest: HttpRequest): Promise<{ status: number; body: any }> {
  const response: HttpResponseInit = await handler(deps, httpRequest);
  return { status: response.status ?? 200, body: response.jsonBody };
}
