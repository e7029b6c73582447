import { randomBytes } from 'node:crypto';
import { HttpRequest, type HttpResponseInit } from '@azure/functions';
import { appRoles, objectIdClaims } from '../../lib/admin/auth.js';
import type { AdminDeps, AdminHandler } from '../../lib/admin/api.js';
import { loadConfig } from '../../lib/config/index.js';
import { recordAgentFacts } from '../../lib/fleet/agent-facts.js';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { registerServer } from '../../lib/fleet/servers.js';
import type { FleetTables } from '../../lib/fleet/storage.js';
import { jsonLogger, silentLogger } from '../../lib/log.js';
import { defaultWaves } from '../../lib/model/waves.js';
import type { TrustPolicy } from '../../lib/package/trust.js';
import { pollFeed } from '../../lib/rollout/poll.js';
import { azuriteConnectionString } from './fleet.js';

export const org = 'contoso';

/**
 * The function key every admin test request carries, in the query (`code=`) and the header, as
 * callers do; no log line of the admin tests may contain it (test/admin/*.test.ts check).
 */
export const testFunctionKey = `fk${randomBytes(24).toString('base64url')}`;

/** Every log line the admin handlers wrote through adminDeps' logger, as the host would write it. */
export const adminLogLines: string[] = [];
const adminLogger = jsonLogger((line) => void adminLogLines.push(line));

/** The handlers' dependencies over fresh tables and queues in the run's Azurite; settings as the app would parse them (Entra sign-in required). */
export function adminDeps(
  fresh: { tables: FleetTables; prefix: string },
  trustAnchorPem: string,
  settings: Record<string, string> = {},
): AdminDeps {
  const connection = { kind: 'connectionString', connectionString: azuriteConnectionString() } as const;
  return {
    tables: fresh.tables,
    queues: new StorageQueueSender(connection, { prefix: fresh.prefix }),
    config: loadConfig({
      AzureWebJobsStorage: azuriteConnectionString(),
      EMFLEET_TABLE_PREFIX: fresh.prefix,
      EMFLEET_ORG: org,
      EMFLEET_TRUST_ANCHORS: trustAnchorPem,
      ...settings,
    }),
    logger: adminLogger,
  };
}

/** The `x-ms-client-principal` header App Service Authentication sends for a signed-in principal. */
export function principalHeaderValue(principal: {
  name: string;
  objectId?: string;
  roles: readonly string[];
}): string {
  const claims = [
    { typ: 'name', val: principal.name },
    ...(principal.objectId ? [{ typ: objectIdClaims[0], val: principal.objectId }] : []),
    ...principal.roles.map((role) => ({ typ: 'roles', val: role })),
  ];
  return Buffer.from(
    JSON.stringify({ auth_typ: 'aad', name_typ: 'name', role_typ: 'roles', claims }),
    'utf8',
  ).toString('base64');
}

/** A signed-in operator, as most admin tests call. */
export const operator = {
  'x-ms-client-principal': principalHeaderValue({ name: 'operator@contoso.com', roles: [appRoles.Operator] }),
};

/**
 * A request as the host builds it: the URL with its query (and the function key as `code=`), route
 * parameters, headers (the function key, and by default a signed-in operator), body.
 */
export function adminRequest(
  method: 'GET' | 'POST',
  path: string,
  init: {
    params?: Record<string, string>;
    headers?: Record<string, string>;
    body?: string;
    signedIn?: boolean;
  } = {},
): HttpRequest {
  const url = `http://127.0.0.1:7071/api/${path}${path.includes('?') ? '&' : '?'}code=${testFunctionKey}`;
  const headers = {
    'x-functions-key': testFunctionKey,
    ...(init.signedIn === false ? {} : operator),
    ...init.headers,
  };
  return new HttpRequest({
    method,
    url,
    headers,
    ...(init.params ? { params: init.params } : {}),
    ...(init.body === undefined ? {} : { body: { string: init.body } }),
  });
}

/** Every admin handler answers with jsonBody; tests read it as the JSON a client would. */
export async function call(
  handler: AdminHandler,
  deps: AdminDeps,
  httpRequest: HttpRequest,
): Promise<{ status: number; body: any }> {
  const response: HttpResponseInit = await handler(deps, httpRequest);
  return { status: response.status ?? 200, body: response.jsonBody };
}

/**
 * Polls the admin tests' feed with `xml` as OCS's answer, through the real poll step, as the
 * deployment `deps` describes it: an accepted package starts its rollout, a tampered one is rejected.
 */
export function pollAs(deps: AdminDeps, tables: FleetTables, trust: TrustPolicy) {
  return (xml: string) =>
    pollFeed(
      {
        tables,
        queues: deps.queues,
        org,
        waves: defaultWaves,
        logger: silentLogger,
        fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(xml) }),
      },
      { name: 'microsoft', url: deps.config.ocsUrl, trust },
    );
}

/** Registers lab01 at 15.2.1118.7 and has its agent report `reportedBuild`: a server whose build changed since. */
export async function registerLab01Reporting(tables: FleetTables, reportedBuild: string): Promise<void> {
  const registered = '15.2.1118.7';
  await registerServer(tables, org, { name: 'lab01.contoso.com', build: registered }, { actor: 'test' });
  await recordAgentFacts({ tables, org, logger: silentLogger }, [
    {
      name: 'lab01.contoso.com',
      row: { build: registered, registeredBuild: registered, agentVersion: '', lastSeen: undefined },
      facts: { build: reportedBuild, agentVersion: '0.1.0' },
    },
  ]);
}
