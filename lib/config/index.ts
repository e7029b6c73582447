import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { jsonText } from '../json-text.js';
import { orgName } from '../model/names.js';
import { defaultEmergencyWaves, defaultWaves, waveProfile } from '../model/waves.js';
import { microsoftFeedUrl } from '../ocs/client.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../package/format.js';

/** How the admin API admits callers (lib/admin/auth.ts): a Microsoft Entra sign-in with an app role, or the function key alone (local runs). */
export const adminAuthModes = ['entra', 'functionKey'] as const;
export type AdminAuthMode = (typeof adminAuthModes)[number];

/** An organization feed: custom mitigations signed by its own CA (`emfleet package sign`). */
const orgFeedSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be lower-case letters, digits and - (at most 32)'),
    url: z.url({ protocol: /^https?$/ }),
    /** PEM text or a file path. */
    trustAnchors: z.string().min(1),
    anchorSha256: z.array(z.string()).default([]),
    signerSubject: z.string().min(1),
    signerEku: z.string().regex(/^\d+(\.\d+)+$/),
    /** Hex serials of this feed's certificates that must not sign (its own deny-list, apart from the Microsoft feed's revoked serials). */
    revokedSerials: z.array(z.string()).default([]),
    /** PEM text or a file path of the roots of the time-stamp authorities this feed's packages are countersigned by. */
    timestampAnchors: z.string().min(1).optional(),
    timestampAnchorSha256: z.array(z.string()).default([]),
  })
  .strict();
export type OrgFeedSetting = z.infer<typeof orgFeedSchema>;

const commaList = z.string().transform((text) =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== ''),
);

const cronExpression = (example: string) =>
  z.string().regex(/^\S+( \S+){5}$/, `must be a 6-field cron expression such as "${example}"`);
const httpUrl = () => z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/**
 * Every app setting emfleet reads, by its camelCase field, parsed once. The setting each field is
 * read from is in `settingNameOf`; `local.settings.sample.json` and infra/ list the same names (a
 * test checks), and an invalid value is reported with its setting's name.
 */
const appConfigSchema = z.object({
  /** PEM text, or a file path, of the certificates packages must chain to. No default: no built-in trust. */
  trustAnchors: z.string().optional(),
  /** Comma-separated SHA-256 fingerprints; every trust anchor must match one. */
  trustAnchorSha256: commaList.optional(),
  /**
   * PEM text, or a file path, of the roots of the time-stamp authorities whose RFC 3161
   * countersignature dates a package (Microsoft Root Certificate Authority 2010). Unset: time
   * stamps are not checked and certificates must be valid now.
   */
  timestampAnchors: z.string().optional(),
  /** Comma-separated SHA-256 fingerprints; every timestamp anchor must match one. */
  timestampAnchorSha256: commaList.optional(),
  signerSubject: z.string().min(1).default(microsoftSignerSubjectCn),
  signerEku: z
    .string()
    .regex(/^\d+(\.\d+)+$/, 'must be a dotted OID such as 1.3.6.1.4.1.311.76.57.1.11')
    .default(microsoftSignerEku),
  /** Comma-separated hex serials of certificates that must not sign, whatever their chain. */
  revokedSerials: commaList.optional(),
  /** Storage by connection string (Azurite, dev). Also the Functions host's own storage. */
  storageConnectionString: z.string().optional(),
  /** Storage by account name with DefaultAzureCredential (managed identity, production). */
  storageAccount: z
    .string()
    .regex(/^[a-z0-9]{3,24}$/, 'must be a storage account name (3-24 lower-case letters and digits)')
    .optional(),
  /** Prefix of emfleet's table names, so several deployments can share an account. */
  tablePrefix: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,40}$/, 'must start with a letter and hold only letters and digits')
    .optional(),
  /** The organization this deployment serves: the Servers partition and the org policy row. */
  org: orgName.default('default'),
  /** Policy as code (JSON text, from infra/policy.json); synced into Policy rows with source=bicep. Checked at each poll (lib/policy/declared.ts), so a bad declaration is reported there, not fatal here. */
  declaredPolicy: z.string().optional(),
  /** The mitigation feed; Microsoft's by default. */
  ocsUrl: httpUrl().default(microsoftFeedUrl),
  /** Azure Relay namespace host, e.g. contoso-emfleet.servicebus.windows.net. */
  relayNamespace: z
    .string()
    .regex(/^[A-Za-z0-9.-]+$/, 'must be a host name such as contoso.servicebus.windows.net')
    .optional(),
  /** Override of https://{namespace}, for the local relay emulator (http://127.0.0.1:PORT). */
  relayEndpoint: httpUrl().optional(),
  /** SAS send rule; without a key the app authenticates with its managed identity (Azure Relay Sender role). */
  relaySendKeyName: z.string().min(1).default('send'),
  relaySendKey: z.string().min(1).optional(),
  /** Rollout waves (JSON list; see lib/model/waves.ts); defaults: canary ring, 10%, the rest. */
  waves: jsonText(waveProfile).default(defaultWaves),
  /** Local runs and tests only: a prefix for queue names so several runs share one storage account. Leave unset in Azure. */
  queuePrefix: z
    .string()
    .regex(/^[a-z0-9]{1,20}$/, 'must be 1-20 lower-case letters and digits')
    .optional(),
  /** When pollOcs runs: a 6-field NCRONTAB expression in UTC (seconds first); hourly by default. */
  pollSchedule: cronExpression('0 0 * * * *').default('0 0 * * * *'),
  /** When reconcile runs (drift between desired and reported state): hourly, half past, by default. */
  reconcileSchedule: cronExpression('0 30 * * * *').default('0 30 * * * *'),
  /** The organization's own feeds besides Microsoft's (JSON list), each with its own trust. */
  orgFeeds: jsonText(z.array(orgFeedSchema).max(10)).default([]),
  /** Slack or Microsoft Teams incoming webhook for package, rollout and drift events; a secret (Key Vault reference). Unset: no notifications. */
  notifyUrl: httpUrl().optional(),
  /** The waves `--emergency` and `rollout expedite` switch to. */
  emergencyWaves: jsonText(waveProfile).default(defaultEmergencyWaves),
  /**
   * Who may call the admin API (lib/admin/auth.ts): `entra`, a Microsoft Entra sign-in through App
   * Service Authentication with the app role emfleet.Reader or emfleet.Operator; `functionKey`,
   * the function key alone, for local runs only.
   */
  adminAuth: z
    .enum(adminAuthModes, { error: `must be one of ${adminAuthModes.join(', ')}` })
    .default('entra'),
});

/** The app's configuration: every setting, typed, under its camelCase name. */
export type AppConfig = z.infer<typeof appConfigSchema>;
export type ConfigField = keyof AppConfig;

/**
 * The one table of setting names: the app setting (environment variable) each field is read
 * from. Everything else names a setting through it: messages that tell an admin what to set,
 * the export lines of `npm start`, the triggers' `%NAME%` schedules.
 */
export const settingNameOf = {
  trustAnchors: 'EMFLEET_TRUST_ANCHORS',
  trustAnchorSha256: 'EMFLEET_TRUST_ANCHOR_SHA256',
  timestampAnchors: 'EMFLEET_TIMESTAMP_ANCHORS',
  timestampAnchorSha256: 'EMFLEET_TIMESTAMP_ANCHOR_SHA256',
  signerSubject: 'EMFLEET_SIGNER_SUBJECT',
  signerEku: 'EMFLEET_SIGNER_EKU',
  revokedSerials: 'EMFLEET_REVOKED_SERIALS',
  storageConnectionString: 'AzureWebJobsStorage',
  storageAccount: 'EMFLEET_STORAGE_ACCOUNT',
  tablePrefix: 'EMFLEET_TABLE_PREFIX',
  org: 'EMFLEET_ORG',
  declaredPolicy: 'EMFLEET_POLICY',
  ocsUrl: 'EMFLEET_OCS_URL',
  relayNamespace: 'EMFLEET_RELAY_NAMESPACE',
  relayEndpoint: 'EMFLEET_RELAY_ENDPOINT',
  relaySendKeyName: 'EMFLEET_RELAY_SEND_KEY_NAME',
  relaySendKey: 'EMFLEET_RELAY_SEND_KEY',
  waves: 'EMFLEET_WAVES',
  queuePrefix: 'EMFLEET_QUEUE_PREFIX',
  pollSchedule: 'EMFLEET_POLL_SCHEDULE',
  reconcileSchedule: 'EMFLEET_RECONCILE_SCHEDULE',
  orgFeeds: 'EMFLEET_FEEDS',
  notifyUrl: 'EMFLEET_NOTIFY_URL',
  emergencyWaves: 'EMFLEET_EMERGENCY_WAVES',
  adminAuth: 'EMFLEET_ADMIN_AUTH',
} as const satisfies Record<ConfigField, string>;
export type SettingName = (typeof settingNameOf)[ConfigField];

/** Every setting name, in the table's order. */
export const settingNames: readonly SettingName[] = Object.values(settingNameOf);

const fieldsBySetting = new Map<string, ConfigField>(
  Object.entries(settingNameOf).map(([field, name]) => [name, field as ConfigField]),
);

/** The field a setting name is read into; undefined for a name lib/config does not read. */
export function configFieldOf(name: string): ConfigField | undefined {
  return fieldsBySetting.get(name);
}

/** A trigger option that the Functions host resolves from an app setting (`%EMFLEET_POLL_SCHEDULE%`). */
export function settingReference(field: ConfigField): `%${SettingName}%` {
  return `%${settingNameOf[field]}%`;
}

/**
 * The connection setting of the queue triggers: the host's own storage, which emfleet's queues
 * live in (`AzureWebJobsStorage`, or its `__accountName`/`__credential` form in Azure).
 */
export const hostStorageConnection = settingNameOf.storageConnectionString;

/**
 * Settings from a config's values as text (JSON for the lists): what a local run puts in the
 * environment of its host and prints as `export` lines for a second terminal.
 */
export function settingsEnvironment(values: Partial<Record<ConfigField, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values)
      .filter((entry): entry is [ConfigField, string] => entry[1] !== undefined)
      .map(([field, value]) => [settingNameOf[field as ConfigField], value]),
  );
}

/**
 * Reads the configuration from the environment (the app settings), once per worker: blank
 * settings count as unset, defaults fill the rest. Throws a ConfigError naming each setting that
 * is wrong and what is wrong with it.
 */
export function loadConfig(environment: Record<string, string | undefined> = process.env): AppConfig {
  const present: Partial<Record<ConfigField, string>> = {};
  for (const [field, name] of Object.entries(settingNameOf) as [ConfigField, SettingName][]) {
    const value = environment[name];
    if (value !== undefined && value.trim() !== '') present[field] = value;
  }
  const parsed = appConfigSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const [field, ...inside] = issue.path;
      const name = settingNameOf[field as ConfigField] ?? String(field);
      const where = inside
        .map((step) => (typeof step === 'number' ? `[${step}]` : `.${String(step)}`))
        .join('');
      return `${name}${where}: ${issue.message}`;
    });
    throw new ConfigError(`invalid settings: ${problems.join('; ')}`, {
      context: { settings: parsed.error.issues.map((issue) => settingNameOf[issue.path[0] as ConfigField]) },
    });
  }
  return parsed.data;
}

/**
 * The `emfleet` command's own environment, apart from the app settings: where the function app is
 * for what goes through it (`test-connectivity --from-cloud`, `emfleet sites`).
 */
export const cliEnvironmentNames = { apiUrl: 'EMFLEET_API_URL', apiKey: 'EMFLEET_API_KEY' } as const;

/**
 * A process flag, not an app setting: set where emfleet runs the functions itself (`npm start`,
 * tests), so that lib/functions.ts does not register them with a Functions host that is not there.
 */
export const localHostFlag = 'EMFLEET_LOCAL_HOST';
