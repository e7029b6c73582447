import { TableClient, type TableServiceClientOptions } from '@azure/data-tables';
import { ConfigError } from '../errors.js';

/** The six tables of DESIGN §5. */
export const tableNames = ['Servers', 'Policy', 'Packages', 'Rollouts', 'Results', 'Audit'] as const;
export type TableName = (typeof tableNames)[number];

/** Storage is a connection string (Azurite, dev) or an account reached with Entra ID (production). */
export type StorageConnection =
  | { readonly kind: 'connectionString'; readonly connectionString: string }
  | { readonly kind: 'account'; readonly accountName: string };

export interface StorageSettings {
  readonly AzureWebJobsStorage?: string | undefined;
  readonly EMFLEET_STORAGE_ACCOUNT?: string | undefined;
  readonly EMFLEET_TABLE_PREFIX?: string | undefined;
}

export function storageConnectionFromSettings(settings: StorageSettings): StorageConnection {
  if (settings.AzureWebJobsStorage) return { kind: 'connectionString', connectionString: settings.AzureWebJobsStorage };
  if (settings.EMFLEET_STORAGE_ACCOUNT) return { kind: 'account', accountName: settings.EMFLEET_STORAGE_ACCOUNT };
  throw new ConfigError('no storage configured: set AzureWebJobsStorage (connection string) or EMFLEET_STORAGE_ACCOUNT (managed identity)');
}

/**
 * Table clients for one deployment, each table created on first use. `prefix` lets several
 * deployments (or test files) share one account.
 */
export class FleetTables {
  readonly #connection: StorageConnection;
  readonly #prefix: string;
  readonly #clients = new Map<TableName, Promise<TableClient>>();

  constructor(connection: StorageConnection, options: { prefix?: string } = {}) {
    this.#connection = connection;
    this.#prefix = options.prefix ?? '';
    if (this.#prefix !== '' && !/^[A-Za-z][A-Za-z0-9]{0,40}$/.test(this.#prefix)) {
      throw new ConfigError(`table prefix "${this.#prefix}" must start with a letter and hold only letters and digits`);
    }
  }

  /** Which deployment these tables belong to (account and prefix), for caches shared across instances. */
  get namespace(): string {
    const account = this.#connection.kind === 'account' ? this.#connection.accountName : /AccountName=([^;]+)/i.exec(this.#connection.connectionString)?.[1] ?? this.#connection.connectionString;
    const endpoint = this.#connection.kind === 'connectionString' ? /TableEndpoint=([^;]+)/i.exec(this.#connection.connectionString)?.[1] ?? '' : '';
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
      const insecure = /^DefaultEndpointsProtocol=http;|UseDevelopmentStorage=true|TableEndpoint=http:/i.test(this.#connection.connectionString);
      client = TableClient.fromConnectionString(this.#connection.connectionString, tableName, { ...options, allowInsecureConnection: insecure });
    } else {
      // Loaded only here: the identity library is heavy and connection strings never need it.
      const { DefaultAzureCredential } = await import('@azure/identity');
      client = new TableClient(`https://${this.#connection.accountName}.table.core.windows.net`, tableName, new DefaultAzureCredential(), options);
    }
    // createTable treats "already exists" as success.
    await client.createTable();
    return client;
  }
}
