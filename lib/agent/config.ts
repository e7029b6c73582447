import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, win32 } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { exchangeBuild } from '../model/build.js';
import { serverName, siteName } from '../model/names.js';
import { hybridConnectionPattern, relayPathPattern } from '../relay/route.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../package/format.js';
import { defaultLogFiles } from './logging.js';
import { defaultHealthEndpoints, defaultProbeRoundDeadlineInMs, defaultProbeTimeoutInMs } from './probes.js';

const endpointPath = z
  .string()
  .regex(/^\/[^\s?#\u0000-\u001f\u007f]{1,255}$/, 'must be a path such as /owa/healthcheck.htm');

const feedTrustSchema = z
  .object({
    /** PEM files (or PEM text) of the anchors this entry trusts. */
    anchors: z.array(z.string().min(1)).min(1),
    anchorSha256: z.array(z.string()).default([]),
    signerSubject: z.string().min(1).default(microsoftSignerSubjectCn),
    signerEku: z
      .string()
      .regex(/^\d+(\.\d+)+$/)
      .default(microsoftSignerEku),
    revokedSerials: z.array(z.string()).default([]),
    /** PEM files (or PEM text) of the time-stamp authorities' roots (Microsoft Root Certificate Authority 2010); none: time stamps are not checked. */
    timestampAnchors: z.array(z.string().min(1)).default([]),
    timestampAnchorSha256: z.array(z.string()).default([]),
  })
  .strict();

const relaySchema = z
  .object({
    /** e.g. contoso-emfleet.servicebus.windows.net */
    namespace: z.string().min(1),
    hybridConnection: z.string().regex(hybridConnectionPattern, 'must be a hybrid connection name'),
    /** Override of wss://{namespace}:443, for the local relay emulator (ws://127.0.0.1:PORT). */
    endpoint: z
      .string()
      .regex(/^wss?:\/\/[^/]+$/, 'must be ws://host:port or wss://host:port')
      .optional(),
    keyName: z.string().min(1).default('listen'),
    key: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
  })
  .strict()
  .refine((relay) => (relay.key === undefined) !== (relay.keyFile === undefined), {
    message: 'give exactly one of key or keyFile',
    path: ['key'],
  });

/** A base64 secret given inline or in a file (exactly one). */
const secretSource = {
  secret: z.string().min(1).optional(),
  secretFile: z.string().min(1).optional(),
};
const oneSecret = { message: 'give exactly one of secret or secretFile', path: ['secret'] };

const siteLinkSchema = z
  .object({
    /** Where the agent listens for its site hub (default all interfaces, port 8443). */
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8443),
    /** PEM file (or PEM text) of this agent's TLS certificate; the hub pins its SHA-256 fingerprint. */
    certificate: z.string().min(1),
    privateKey: z.string().min(1),
    /** This server's name at the hub (its Servers row's relayPath); default the server name in lower case. */
    relayPath: z
      .string()
      .regex(relayPathPattern, 'must be one path segment: letters, digits, . _ -')
      .optional(),
    ...secretSource,
  })
  .strict()
  .refine((link) => (link.secret === undefined) !== (link.secretFile === undefined), oneSecret);

/** agent.json: everything one agent needs. Paths are relative to the file. */
export const agentConfigSchema = z
  .object({
    server: serverName,
    /**
     * An override of the Exchange build the agent detects itself (Setup registry key, ExSetup.exe),
     * e.g. 15.2.1544.4; leave it out unless detection is wrong.
     */
    build: exchangeBuild.optional(),
    relay: relaySchema.optional(),
    /** Listen for the site relay hub on the LAN (lib/agent/site-link.ts); with or instead of `relay`. */
    siteLink: siteLinkSchema.optional(),
    /**
     * What this agent trusts, whatever the cloud says: one entry per feed it serves, each binding
     * its anchors to its own signer (subject CN, EKU), so a key of one feed cannot sign for another.
     * A single object is one entry.
     */
    trust: z.preprocess(
      (trust) => (Array.isArray(trust) ? trust : [trust]),
      z.array(feedTrustSchema).min(1).max(10),
    ),
    applier: z.discriminatedUnion('kind', [
      z
        .object({
          kind: z.literal('simulated'),
          stateFile: z.string().optional(),
          failOn: z.array(z.string()).default([]),
          delayInMs: z.number().int().nonnegative().default(0),
          /** Virtual directory → extra pools and services it needs: a server where a change takes down more than it declares. */
          couplings: z
            .record(
              z.string().regex(/^\/[A-Za-z0-9-]{1,64}$/, 'must be a virtual directory such as /ecp'),
              z
                .object({
                  appPools: z.array(z.string().min(1)).optional(),
                  services: z.array(z.string().min(1)).optional(),
                })
                .strict(),
            )
            .optional(),
        })
        .strict(),
      z
        .object({
          kind: z.literal('powershell'),
          /** Default: %SystemRoot%\System32\WindowsPowerShell\v1.0\powershell.exe (Sysnative from a 32-bit process). A full path, never a name the search path resolves. */
          executable: z
            .string()
            .refine(
              (path) => win32.isAbsolute(path) && /^([A-Za-z]:\\|\\\\)/.test(path),
              'must be a full path such as C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
            )
            .optional(),
          /** Per script; Exchange services can take minutes to stop. The script's own waits end 30 s earlier. */
          timeoutInMs: z.number().int().min(60_000).default(300_000),
          /** At start, how long to wait for W3SVC and WAS to be Running before repairing or applying anything (lib/agent/iis-ready.ts). */
          waitForIisInMs: z.number().int().nonnegative().default(600_000),
        })
        .strict(),
    ]),
    stateDirectory: z.string().min(1),
    /** Whether a request's `onDegraded: keep` may leave a degraded change in place; otherwise the agent rolls back whatever the request says. */
    allowKeepOnDegraded: z.boolean().default(false),
    /** Restores that failed (and changes a crash interrupted) are retried this often while serving. */
    retryRestoresEveryInMs: z.number().int().min(1000).default(300_000),
    /** The rotating JSON-lines log (docs/agent.md, "Logs"): {stateDirectory}/logs/agent.log unless said. */
    logs: z
      .object({
        directory: z.string().min(1).optional(),
        maxBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(1024 * 1024 * 1024)
          .default(defaultLogFiles.maxBytes),
        keep: z.number().int().min(1).max(100).default(defaultLogFiles.keep),
      })
      .strict()
      .prefault({}),
    replyWithinMs: z.number().int().min(100).max(50_000).default(20_000),
    /** Health and effectiveness probes of this server's own front end (docs/agent.md). */
    probes: z
      .object({
        /**
         * Default https://{server}: the server itself, so certificate checks may be relaxed for it.
         * A simulated server without one gets its own simulated front end on loopback.
         */
        baseUrl: z
          .string()
          .regex(
            /^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/,
            'must be http(s)://host[:port][/prefix] without query or credentials',
          )
          .optional(),
        endpoints: z
          .array(endpointPath)
          .min(1)
          .max(50)
          .default([...defaultHealthEndpoints]),
        timeoutInMs: z.number().int().min(100).max(30_000).default(defaultProbeTimeoutInMs),
        /** A whole round (all endpoints, or all of a rule's probes) ends by then; the relay allows 60 s per reply. */
        roundDeadlineInMs: z.number().int().min(100).max(45_000).default(defaultProbeRoundDeadlineInMs),
      })
      .strict()
      .refine((probes) => probes.timeoutInMs <= probes.roundDeadlineInMs, {
        message: 'timeoutInMs must not exceed roundDeadlineInMs',
        path: ['timeoutInMs'],
      })
      .prefault({}),
    mode: z.literal('server').optional(),
  })
  .strict()
  .refine((config) => config.relay !== undefined || config.siteLink !== undefined, {
    message:
      'give relay (the agent listens on its own hybrid connection), siteLink (it is behind its site hub), or both',
    path: ['relay'],
  });

export type AgentConfig = z.infer<typeof agentConfigSchema>;

/**
 * hub.json (`"mode": "hub"`): a site relay hub listens on the site's hybrid connection and forwards
 * to the agents listed here by relay path. No trust anchors, applier or state: it verifies and
 * applies nothing, and keeps nothing between requests.
 */
export const hubConfigSchema = z
  .object({
    mode: z.literal('hub'),
    /** This hub's name in answers and logs; default the machine's host name. */
    name: z.string().min(1).max(128).optional(),
    site: siteName.refine((site) => site !== '', 'must name the site'),
    relay: relaySchema,
    /** Each server behind this hub, by its relay path: where its agent listens and its certificate's SHA-256. */
    agents: z
      .record(
        z.string().regex(relayPathPattern, 'must be a relay path: letters, digits, . _ -'),
        z
          .object({
            url: z.string().regex(/^https:\/\/[^/?#@\s]+$/, 'must be https://host:port'),
            certificateSha256: z
              .string()
              .regex(
                /^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/,
                'must be a SHA-256 fingerprint (64 hex digits, colons allowed)',
              ),
          })
          .strict(),
      )
      .refine((agents) => Object.keys(agents).length > 0, 'must list at least one agent'),
    /** A forward gives up after this (then 503 AgentTimeout); inside the relay's 60 s and above the agents' replyWithinMs. */
    forwardTimeoutInMs: z.number().int().min(1000).max(55_000).default(25_000),
    ...secretSource,
  })
  .strict()
  .refine((hub) => (hub.secret === undefined) !== (hub.secretFile === undefined), oneSecret);

export type HubConfig = z.infer<typeof hubConfigSchema>;

/** Reads and validates agent.json; an error names the field. Relative paths are made absolute. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  return parseAgentConfig(await readJson(path), dirname(resolve(path)), path);
}

export function parseAgentConfig(json: unknown, baseDirectory: string, where = 'agent config'): AgentConfig {
  const parsed = agentConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${where}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  const config = parsed.data;
  const absolute = absoluteIn(baseDirectory);
  return {
    ...config,
    ...(config.relay ? { relay: absoluteRelay(config.relay, absolute) } : {}),
    ...(config.siteLink
      ? {
          siteLink: {
            ...config.siteLink,
            certificate: absolute(config.siteLink.certificate),
            privateKey: absolute(config.siteLink.privateKey),
            ...(config.siteLink.secretFile === undefined
              ? {}
              : { secretFile: absolute(config.siteLink.secretFile) }),
          },
        }
      : {}),
    trust: config.trust.map((entry) => ({
      ...entry,
      anchors: entry.anchors.map(absolute),
      timestampAnchors: entry.timestampAnchors.map(absolute),
    })),
    applier:
      config.applier.kind === 'simulated' && config.applier.stateFile !== undefined
        ? { ...config.applier, stateFile: absolute(config.applier.stateFile) }
        : config.applier,
    stateDirectory: absolute(config.stateDirectory),
    logs: {
      ...config.logs,
      directory: absolute(config.logs.directory ?? join(config.stateDirectory, 'logs')),
    },
  };
}

/** Reads and validates hub.json; an error names the field. Relative paths are made absolute. */
export async function loadHubConfig(path: string): Promise<HubConfig> {
  return parseHubConfig(await readJson(path), dirname(resolve(path)), path);
}

export function parseHubConfig(json: unknown, baseDirectory: string, where = 'hub config'): HubConfig {
  const parsed = hubConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${where}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  const absolute = absoluteIn(baseDirectory);
  const config = parsed.data;
  return {
    ...config,
    relay: absoluteRelay(config.relay, absolute),
    ...(config.secretFile === undefined ? {} : { secretFile: absolute(config.secretFile) }),
  };
}

/** Whether a config file is a hub's (`"mode": "hub"`), before it is validated as one or the other. */
export async function readConfigMode(path: string): Promise<'hub' | 'server'> {
  const json = await readJson(path);
  return typeof json === 'object' && json !== null && (json as Record<string, unknown>)['mode'] === 'hub'
    ? 'hub'
    : 'server';
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function absoluteIn(baseDirectory: string): (path: string) => string {
  return (path) => (isAbsolute(path) || path.includes('-----BEGIN') ? path : resolve(baseDirectory, path));
}

function absoluteRelay<T extends { keyFile?: string | undefined }>(
  relay: T,
  absolute: (path: string) => string,
): T {
  return relay.keyFile === undefined ? relay : { ...relay, keyFile: absolute(relay.keyFile) };
}
