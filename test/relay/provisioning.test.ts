import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TokenCredential } from '@azure/core-auth';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { serversCommand } from '../../lib/cli/servers.js';
import { sitesCommand } from '../../lib/cli/sites.js';
import type { CliIo } from '../../lib/cli/io.js';
import { ConfigError } from '../../lib/errors.js';
import { getServer } from '../../lib/fleet/servers.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { issueCertificate } from '../../lib/package/dev-pki.js';
import {
  armRelayManagement,
  ensureHybridConnection,
  RelayProvisioningError,
  type RelayManagementPort,
  type RelayNamespaceRef,
} from '../../lib/relay/provisioning.js';
import { relayAddress } from '../../lib/relay/route.js';
import { azuriteConnectionString } from '../helpers/fleet.js';

/**
 * Hybrid connections made through Azure Resource Manager, driven here by the real @azure/arm-relay
 * client against a fake ARM endpoint (HTTPS with a test certificate, bearer token checked) that
 * keeps entities in memory as ARM would: PUT creates or replaces, GET of a missing one is 404.
 * Real Azure is not reachable from the tests: the request paths, bodies and the SDK's handling
 * of the answers are what is exercised.
 */

interface ArmRequest {
  readonly method: string;
  readonly path: string;
  readonly body: Record<string, unknown> | undefined;
  readonly authorization: string | undefined;
}

const ref: RelayNamespaceRef = {
  subscriptionId: '11111111-2222-3333-4444-555555555555',
  resourceGroup: 'rg-emfleet',
  namespace: 'relay-contoso-abc',
};
const token = `test-token-${randomBytes(4).toString('hex')}`;
const credential: TokenCredential = {
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000 }),
};

let server: https.Server;
let endpoint: string;
let ca: string;
const entities = new Map<string, Record<string, unknown>>();
const requests: ArmRequest[] = [];
/** Fault injection: the status ARM answers a PUT with (undefined: it succeeds). */
let putStatus: number | undefined;

beforeAll(async () => {
  const tls = await issueCertificate({ subjectCn: 'localhost' });
  ca = tls.certificatePem;
  server = https.createServer({ cert: tls.certificatePem, key: tls.privateKeyPem }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'https://localhost');
      const text = Buffer.concat(chunks).toString('utf8');
      const body = text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
      requests.push({
        method: request.method ?? '',
        path: url.pathname,
        body,
        authorization: request.headers.authorization,
      });
      const send = (status: number, value: unknown): void =>
        void response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (request.headers.authorization !== `Bearer ${token}`)
        return send(401, { error: { code: 'AuthenticationFailed', message: 'no valid bearer token' } });
      if (!url.searchParams.get('api-version'))
        return send(400, {
          error: { code: 'MissingApiVersionParameter', message: 'api-version is required' },
        });
      const key = url.pathname.toLowerCase();
      if (request.method === 'GET') {
        const found = entities.get(key);
        return found
          ? send(200, found)
          : send(404, { error: { code: 'NotFound', message: `${url.pathname} not found` } });
      }
      if (request.method === 'PUT') {
        if (putStatus !== undefined)
          return send(putStatus, {
            error: {
              code: 'AuthorizationFailed',
              message:
                'the client does not have authorization to perform action Microsoft.Relay/namespaces/hybridConnections/write',
            },
          });
        const entity = { id: url.pathname, name: url.pathname.split('/').at(-1), ...body };
        entities.set(key, entity);
        return send(200, entity);
      }
      send(405, { error: { code: 'MethodNotAllowed', message: request.method } });
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  endpoint = `https://localhost:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  entities.clear();
  requests.length = 0;
  putStatus = undefined;
});

const port = (): Promise<RelayManagementPort> =>
  armRelayManagement(ref, { credential, endpoint, trustedCa: ca });
const namespacePath = `/subscriptions/${ref.subscriptionId}/resourceGroups/${ref.resourceGroup}/providers/Microsoft.Relay/namespaces/${ref.namespace}`;

describe('hybrid connections through Azure Resource Manager (@azure/arm-relay against a fake ARM)', () => {
  it('creates the hybrid connection (token required) and a Listen-only rule; a second run finds both and changes nothing', async () => {
    const first = await ensureHybridConnection(await port(), {
      hybridConnection: 'site-amsterdam',
      userMetadata: 'emfleet site Amsterdam',
    });
    expect(first).toEqual({
      hybridConnection: 'site-amsterdam',
      listenRule: 'listen',
      changes: { hybridConnection: 'created', listenRule: 'created' },
    });
    const puts = requests.filter((request) => request.method === 'PUT');
    expect(puts.map((request) => [request.path, request.body])).toEqual([
      [
        `${namespacePath}/hybridConnections/site-amsterdam`,
        { properties: { requiresClientAuthorization: true, userMetadata: 'emfleet site Amsterdam' } },
      ],
      [
        `${namespacePath}/hybridConnections/site-amsterdam/authorizationRules/listen`,
        { properties: { rights: ['Listen'] } },
      ],
    ]);
    expect(new Set(requests.map((request) => request.authorization))).toEqual(new Set([`Bearer ${token}`]));

    requests.length = 0;
    const again = await ensureHybridConnection(await port(), {
      hybridConnection: 'site-amsterdam',
      userMetadata: 'emfleet site Amsterdam',
    });
    expect(again.changes).toEqual({ hybridConnection: 'existed', listenRule: 'existed' });
    expect(requests.map((request) => request.method)).toEqual(['GET', 'GET']);
  });

  it('an existing hybrid connection that lets anyone send is refused, not adopted', async () => {
    entities.set(`${namespacePath}/hybridConnections/site-open`.toLowerCase(), {
      name: 'site-open',
      properties: { requiresClientAuthorization: false },
    });
    await expect(
      ensureHybridConnection(await port(), { hybridConnection: 'site-open', userMetadata: 'x' }),
    ).rejects.toThrow(ConfigError);
    expect(requests.filter((request) => request.method === 'PUT')).toEqual([]);
  });

  it('an existing rule named listen with Send as well is refused', async () => {
    entities.set(`${namespacePath}/hybridConnections/site-x`.toLowerCase(), {
      name: 'site-x',
      properties: { requiresClientAuthorization: true },
    });
    entities.set(`${namespacePath}/hybridConnections/site-x/authorizationRules/listen`.toLowerCase(), {
      name: 'listen',
      properties: { rights: ['Listen', 'Send'] },
    });
    await expect(
      ensureHybridConnection(await port(), { hybridConnection: 'site-x', userMetadata: 'x' }),
    ).rejects.toThrow(/rule listen on site-x grants Listen, Send; a hub or agent key must grant Listen only/);
  });

  it('ARM refusing the write (403): a typed error naming the call, the namespace and what sign-in is needed', async () => {
    putStatus = 403;
    const error = await ensureHybridConnection(await port(), {
      hybridConnection: 'site-y',
      userMetadata: 'x',
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RelayProvisioningError);
    expect((error as Error).message).toMatch(
      /^creating hybrid connection site-y in relay namespace relay-contoso-abc \(resource group rg-emfleet, subscription 11111111-.*\) failed \(403\): .*sign in \(az login\)/,
    );
  });
});

describe('emfleet sites add and servers add through the same fake ARM', () => {
  const lines: string[] = [];
  let tables: FleetTables;
  let io: CliIo;
  const factory = (): Promise<RelayManagementPort> => port();

  beforeEach(() => {
    lines.length = 0;
    const prefix = `s${randomBytes(5).toString('hex')}`;
    io = {
      stdout: (line) => lines.push(line),
      stderr: (line) => lines.push(`stderr: ${line}`),
      env: {
        AzureWebJobsStorage: azuriteConnectionString(),
        EMFLEET_TABLE_PREFIX: prefix,
        EMFLEET_ORG: 'contoso',
        EMFLEET_RELAY_NAMESPACE: `${ref.namespace}.servicebus.windows.net`,
        AZURE_SUBSCRIPTION_ID: ref.subscriptionId,
      },
    };
    tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix },
    );
  });

  it("sites add creates site-{name} and prints the hub's install lines; run again, it reports what existed", async () => {
    await sitesCommand(io, factory).parseAsync(['add', 'Amsterdam', '--resource-group', ref.resourceGroup], {
      from: 'user',
    });
    expect(lines[0]).toBe(
      'site Amsterdam: hybrid connection site-amsterdam (created), listen rule listen (created)',
    );
    expect(lines.join('\n')).toContain(
      `az relay hyco authorization-rule keys list --subscription ${ref.subscriptionId} -g rg-emfleet --namespace-name relay-contoso-abc --hybrid-connection-name site-amsterdam --name listen`,
    );
    expect(lines.join('\n')).toContain('emfleet agent --hub --config hub.json');
    lines.length = 0;
    await sitesCommand(io, factory).parseAsync(
      ['add', 'Amsterdam', '--resource-group', ref.resourceGroup, '--json'],
      { from: 'user' },
    );
    expect(JSON.parse(lines[0]!)).toMatchObject({
      ok: true,
      site: 'Amsterdam',
      hybridConnection: 'site-amsterdam',
      changes: { hybridConnection: 'existed', listenRule: 'existed' },
    });
  });

  it('servers add --site puts the server behind its site hub (no Azure call); --own-hybrid-connection creates one through ARM', async () => {
    await serversCommand(io, factory).parseAsync(
      ['add', 'EX01.contoso.com', '--build', '15.2.1544.4', '--site', 'Amsterdam'],
      { from: 'user' },
    );
    expect(requests).toEqual([]);
    const behindHub = await getServer(tables, 'contoso', 'ex01.contoso.com');
    expect({
      site: behindHub.site,
      relayHybridConnection: behindHub.relayHybridConnection,
      relayPath: behindHub.relayPath,
      address: relayAddress(behindHub),
    }).toEqual({
      site: 'Amsterdam',
      relayHybridConnection: 'site-amsterdam',
      relayPath: 'ex01.contoso.com',
      address: 'site-amsterdam/ex01.contoso.com',
    });
    expect(lines.join('\n')).toContain('"ex01.contoso.com": { "url": "https://ex01.contoso.com:8443"');

    await serversCommand(io, factory).parseAsync(
      [
        'add',
        'ex99.contoso.com',
        '--build',
        '15.2.1544.4',
        '--site',
        'Amsterdam',
        '--own-hybrid-connection',
        '--resource-group',
        ref.resourceGroup,
      ],
      { from: 'user' },
    );
    const own = await getServer(tables, 'contoso', 'ex99.contoso.com');
    expect({
      relayHybridConnection: own.relayHybridConnection,
      relayPath: own.relayPath,
      address: relayAddress(own),
    }).toEqual({ relayHybridConnection: 'ex99.contoso.com', relayPath: '', address: 'ex99.contoso.com' });
    expect(requests.filter((request) => request.method === 'PUT').map((request) => request.path)).toEqual([
      `${namespacePath}/hybridConnections/ex99.contoso.com`,
      `${namespacePath}/hybridConnections/ex99.contoso.com/authorizationRules/listen`,
    ]);
  });

  it('--own-hybrid-connection without a resource group: a usage error, nothing registered', async () => {
    await expect(
      serversCommand(io, factory).parseAsync(
        ['add', 'ex98.contoso.com', '--build', '15.2.1544.4', '--own-hybrid-connection'],
        { from: 'user' },
      ),
    ).rejects.toThrow(/--resource-group is required/);
    await expect(getServer(tables, 'contoso', 'ex98.contoso.com')).rejects.toThrow(
      /no server "ex98.contoso.com"/,
    );
  });
});
