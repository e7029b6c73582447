import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { loadConfig, settingNameOf, type AppConfig } from '../config/index.js';
import { storageConnectionOf } from '../config/sources.js';
import { ConfigError } from '../errors.js';
import { orgName } from '../model/names.js';
import { storageClients } from '../fleet/clients.js';
import type { StorageQueueSender } from '../fleet/queues.js';
import type { FleetTables } from '../fleet/storage.js';
import { UsageError, type CliIo } from './io.js';

export interface StorageFlags {
  readonly connectionString?: string;
  readonly account?: string;
  /** The organization (Servers and Policy partition); default EMFLEET_ORG. */
  readonly org?: string;
  readonly actor?: string;
  readonly json?: boolean;
}

/** Options every command that touches fleet state takes. */
export function addStorageOptions(command: Command): Command {
  return command
    .option(
      '--connection-string <cs>',
      `storage connection string (default: ${settingNameOf.storageConnectionString})`,
    )
    .option(
      '--account <name>',
      `storage account reached with DefaultAzureCredential (default: ${settingNameOf.storageAccount})`,
    )
    .option(
      '--org <name>',
      `the organization whose servers and policy to use (default: ${settingNameOf.org})`,
    )
    .option('--json', 'print JSON on stdout');
}

export function addActorOption(command: Command): Command {
  return command.option('--actor <name>', 'who is recorded in the Audit table (default: the OS user)');
}

export interface FleetContext {
  readonly tables: FleetTables;
  readonly queues: StorageQueueSender;
  readonly org: string;
  readonly config: AppConfig;
  readonly actor: string;
}

/** Storage from --connection-string, else AzureWebJobsStorage, else --account / EMFLEET_STORAGE_ACCOUNT. */
export function fleetContext(flags: StorageFlags, io: CliIo): FleetContext {
  const context = optionalFleetContext(flags, io);
  if (!context.tables || !context.queues) throw new UsageError(context.storageProblem ?? noStorageMessage);
  return { ...context, tables: context.tables, queues: context.queues };
}

/** The same, for commands that still have work to do without storage: the problem is reported, not thrown. */
export function optionalFleetContext(
  flags: StorageFlags,
  io: CliIo,
): Omit<FleetContext, 'tables' | 'queues'> & {
  tables?: FleetTables;
  queues?: StorageQueueSender;
  storageProblem?: string;
} {
  let config: AppConfig;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
  const org = flags.org === undefined ? config.org : checkedValue(orgName, flags.org, '--org');
  // Everything that reads the org from the settings (status, the poll's rollouts) sees the flag's.
  config = { ...config, org };
  const base = { org, config, actor: flags.actor ?? osUser() };
  const storageConnectionString = flags.connectionString ?? config.storageConnectionString;
  const storageAccount = flags.account ?? config.storageAccount;
  if (!storageConnectionString && !storageAccount) return { ...base, storageProblem: noStorageMessage };
  try {
    return {
      ...base,
      ...storageClients(storageConnectionOf({ storageConnectionString, storageAccount }), config),
    };
  } catch (error) {
    if (error instanceof ConfigError) return { ...base, storageProblem: error.message };
    throw error;
  }
}

/** What a new user needs to know: the three ways to name storage, and the local run's lines. */
export const noStorageMessage =
  `no storage configured: pass --connection-string CS, or set ${settingNameOf.storageConnectionString} (a connection string), or pass --account NAME / set ${settingNameOf.storageAccount} (signed in with DefaultAzureCredential). ` +
  `For a local run, paste the export lines \`npm start\` prints (export ${settingNameOf.storageConnectionString}=… and export EMFLEET_…=…) into this shell.`;

function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env['USER'] ?? process.env['USERNAME'] ?? 'unknown';
  }
}

/** Validates one CLI value with a schema; the error names the flag and what is wrong. */
export function checkedValue<T>(
  schema: {
    safeParse(
      value: unknown,
    ): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } };
  },
  value: unknown,
  what: string,
): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new UsageError(`${what} "${String(value)}" ${parsed.error.issues[0]!.message}`);
  return parsed.data;
}
