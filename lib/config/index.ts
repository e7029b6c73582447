import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { jsonText } from '../json-text.js';
import { orgName } from '../model/names.js';
import { defaultEmergencyWaves, defaultWaves, waveProfile } from '../rollout/waves.js';
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
    /** Hex serials of this feed's certificates that must not sign (its own deny-list, apart from EMFLEET_REVOKED_SERIALS). */
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

/**
 * Every app setting emfleet reads, parsed once. `local.settings.sample.json` and infra/ list the
 * same names (a test checks); an invalid value is reported with its name.
 */
export const settingsSchema = z.object({
  /** PEM text, or a file path, of the certificates packages must chain to. No default: no built-in trust. */
  EMFLEET_TRUST_ANCHORS: z.string().optional(),
  /** Comma-separated SHA-256 fingerprints; every trust anchor must match one. */
  EMFLEET_TRUST_ANCHOR_SHA256: commaList.optional(),
  /**
   * PEM text, or a file path, of the roots of the time-stamp authorities whose RFC 3161
   * countersignature dates a package (Microsoft Root Certificate Authority 2010). Unset: time
   * stamps are not checked and certificates must be valid now.
   */
  EMFLEET_TIMESTAMP_ANCHORS: z.string().optional(),
  /** Comma-separated SHA-256 fingerprints; every timestamp anchor must match one. */
  EMFLEET_TIMESTAMP_ANCHOR_SHA256: commaList.optional(),
  EMFLEET_SIGNER_SUBJECT: z.string().min(1).default(microsoftSignerSubjectCn),
  EMFLEET_SIGNER_EKU: z
    .string()
    .regex(/^\d+(\.\d+)+$/, 'must be a dotted OID such as 1.3.6.1.4.1.311.76.57.1.11')
    .default(microsoftSignerEku),
  /** Comma-separated hex serials of certificates that must not sign, whatever their chain. */
  EMFLEET_REVOKED_SERIALS: commaList.optional(),
  /** Storage by connection string (Azurite, dev). Also the Functions host's own storage. */
  AzureWebJobsStorage: z.string().optional(),
  /** Storage by account name with DefaultAzureCredential (managed identity, production). */
  EMFLEET_STORAGE_ACCOUNT: z
    .string()
    .regex(/^[a-z0-9]{3,24}$/, 'must be a storage account name (3-24 lower-case letters and digits)')
    .optional(),
  /** Prefix of emfleet's table names, so several deployments can share an account. */
  EMFLEET_TABLE_PREFIX: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9]{0,40}$/, 'must start with a letter and hold only letters and digits')
    .optional(),
  /** The organization this deployment serves: the Servers partition and the org policy row. */
  EMFLEET_ORG: orgName.default('default'),
  /** Policy as code (JSON, from infra/policy.json); synced into Policy rows with source=bicep. */
  EMFLEET_POLICY: z.string().optional(),
  /** The mitigation feed; Microsoft's by default. */
  EMFLEET_OCS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).default(microsoftFeedUrl),
  /** Azure Relay namespace host, e.g. contoso-emfleet.servicebus.windows.net. */
  EMFLEET_RELAY_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9.-]+$/, 'must be a host name such as contoso.servicebus.windows.net')
    .optional(),
  /** Override of https://{namespace}, for the local relay emulator (http://127.0.0.1:PORT). */
  EMFLEET_RELAY_ENDPOINT: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** SAS send rule; without a key the app authenticates with its managed identity (Azure Relay Sender role). */
  EMFLEET_RELAY_SEND_KEY_NAME: z.string().min(1).default('send'),
  EMFLEET_RELAY_SEND_KEY: z.string().min(1).optional(),
  /** Rollout waves (JSON list; see lib/rollout/waves.ts); defaults: canary ring, 10%, the rest. */
  EMFLEET_WAVES: jsonText(waveProfile).default(defaultWaves),
  /** Local runs and tests only: a prefix for queue names so several runs share one storage account. Leave unset in Azure. */
  EMFLEET_QUEUE_PREFIX: z
    .string()
    .regex(/^[a-z0-9]{1,20}$/, 'must be 1-20 lower-case letters and digits')
    .optional(),
  /** When pollOcs runs: a 6-field NCRONTAB expression in UTC (seconds first); hourly by default. */
  EMFLEET_POLL_SCHEDULE: z
    .string()
    .regex(/^\S+( \S+){5}$/, 'must be a 6-field cron expression such as "0 0 * * * *"')
    .default('0 0 * * * *'),
  /** When reconcile runs (drift between desired and reported state): hourly, half past, by default. */
  EMFLEET_RECONCILE_SCHEDULE: z
    .string()
    .regex(/^\S+( \S+){5}$/, 'must be a 6-field cron expression such as "0 30 * * * *"')
    .default('0 30 * * * *'),
  /** The organization's own feeds besides Microsoft's (JSON list), each with its own trust. */
  EMFLEET_FEEDS: jsonText(z.array(orgFeedSchema).max(10)).default([]),
  /** Slack or Microsoft Teams incoming webhook for package, rollout and drift events; a secret (Key Vault reference). Unset: no notifications. */
  EMFLEET_NOTIFY_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** The waves `--emergency` and `rollout expedite` switch to. */
  EMFLEET_EMERGENCY_WAVES: jsonText(waveProfile).default(defaultEmergencyWaves),
  /**
   * Who may call the admin API (lib/admin/auth.ts): `entra`, a Microsoft Entra sign-in through App
   * Service Authentication with the app role emfleet.Reader or emfleet.Operator; `functionKey`,
   * the function key alone, for local runs only.
   */
  EMFLEET_ADMIN_AUTH: z
    .enum(adminAuthModes, { error: `must be one of ${adminAuthModes.join(', ')}` })
    .default('entra'),
});

export type Settings = z.infer<typeof settingsSchema>;
export const settingNames = Object.keys(settingsSchema.shape) as (keyof Settings)[];

export function loadSettings(environment: Record<string, string | undefined> = process.env): Settings {
  const present: Record<string, string> = {};
  for (const name of settingNames) {
    const value = environment[name];
    if (value !== undefined && value.trim() !== '') present[name] = value;
  }
  const parsed = settingsSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid settings: ${problems.join('; ')}`);
  }
  return parsed.data;
}
