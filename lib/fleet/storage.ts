import type { TokenCredential } from '@azure/core-auth';
import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import { ConfigError } from '../errors.js';

/** The six tables of DESIGN §5. */
export const tableNames = ['Servers', 'Policy', 'Packages', 'Rollouts', 'Results', 'Audit'] as const;
export type TableName = (typeof tableNames)[number];

/** Storage is a connection string (Azurite, dev) or an account reached with Entra ID (production). */
export type StorageConnection =
  | { readonly kind: 'connectionString'; readonly connectionString: string }
  | { readonly kind: 'account'; readonly accountName: string };

/**
 * Table clients for one deployment, each table created on first use. `prefix` lets several
 * deployments (or test files) share one account.
 */
export class FleetTables {
  readonly #connection: StorageConnection;
  readonly #prefix: string;
  readonly #clients = new Map<TableName, Promise<TableClient>>();
  #credential: Promise<TokenCredential> | undefined;

  constructor(
    connection: StorageConnection,
    options: { prefix?: string; credential?: TokenCredential } = {},
  ) {
    this.#connection = connection;
    this.#prefix = options.prefix ?? '';
    if (options.credential) this.#credential = Promise.resolve(options.credential);
    if (this.#prefix !== '' && !/^[A-Za-z][A-Za-z0-9]{0,40}$/.test(this.#prefix)) {
      throw new ConfigError(
        `table prefix "${this.#prefix}" must start with a letter and hold only letters and digits`,
      );
    }
  }

  /** Which deployment these tables belong to (account and prefix), for caches shared across instances. */
  get namespace(): string {
    const account =
      this.#connection.kind === 'account'
        ? this.#connection.accountName
        : (/AccountName=([^;]+)/i.exec(this.#connection.connectionString)?.[1] ??
          this.#connection.connectionString);
    const endpoint =
      this.#connection.kind === 'connectionString'
        ? (/TableEndpoint=([^;]+)/i.exec(this.#connection.connectionString)?.[1] ?? '')
        : '';
    return `${account}|${endpoint}|${this.#prefix}`;
  }

  client(table: TableName): Promise<TableClient> {
    let client = this.#clients.get(table);
    if (!client) {
      client = this.#create(`${this.#prefix}${table}`);
      this.#clients.set(table, client);
      client.catch(() => this.#clients.delete(table));
    }
    return client;
  }

  async #create(tableName: string): Promise<TableClient> {
    const options: TableServiceClientOptions = {
      retryOptions: { maxRetries: 4 },
    };
    let client: TableClient;
    if (this.#connection.kind === 'connectionString') {
      const insecure = /^DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true|TableEndpoint=http:/i.test(
        this.#connection.connectionString,
      );
      client = TableClient.fromConnectionString(this.#connection.connectionString, tableName, {
        ...options,
        allowInsecureConnection: insecure,
      });
    } else {
      client = new TableClient(
        `https://${this.#connection.accountName}.table.core.windows.net`,
        tableName,
        await this.#entraCredential(),
        options,
      );
    }
    try {
      // createTable treats "already exists" as success.
      await client.createTable();
    } catch (error) {
      // The deployment creates the tables (infra/app/storage.bicep); an operator whose roles are
      // scoped to single tables may use them but not create tables in the account (403).
      if (this.#connection.kind !== 'account' || (error as { statusCode?: number }).statusCode !== 403)
        throw error;
    }
    return client;
  }

  #entraCredential(): Promise<TokenCredential> {
    // Loaded only here: the identity library is heavy and connection strings never need it.
    this.#credential ??= import('@azure/identity').then(
      ({ DefaultAzureCredential }) => new DefaultAzureCredential(),
    );
    return this.#credential;
  }

  /**
   * Who Storage sees: the Microsoft Entra identity of the token these tables are reached with
   * (`alice@contoso.com (oid …)`, a managed identity's app id), undefined with a connection string
   * (a shared key names nobody). The Audit table records it beside the actor a caller claims.
   */
  async identity(): Promise<string | undefined> {
    if (this.#connection.kind !== 'account') return undefined;
    const token = await (await this.#entraCredential()).getToken('https://storage.azure.com/.default');
    return token ? identityFromToken(token.token) : undefined;
  }
}

/**
 * The principal a Microsoft Entra access token names, from its claims: a user's sign-in name
 * (`upn`, `preferred_username` or `unique_name`) or an application's id (`appid`/`azp`), with the
 * object id. The token is not verified here: Storage verifies it on every request it is sent with.
 *
 * @example identityFromToken(jwt({ upn: 'alice@contoso.com', oid: '1111' })) === 'alice@contoso.com (oid 1111)'
 */
export function identityFromToken(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const text = (name: string): string | undefined =>
    typeof claims[name] === 'string' && claims[name] !== '' ? (claims[name] as string) : undefined;
  const user = text('upn') ?? text('preferred_username') ?? text('unique_name');
  const app = text('appid') ?? text('azp');
  const oid = text('oid');
  const who = user ?? (app ? `app ${app}` : undefined);
  if (!who) return oid ? `oid ${oid}` : undefined;
  return oid ? `${who} (oid ${oid})` : who;
}
