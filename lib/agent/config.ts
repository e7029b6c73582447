import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, win32 } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { exchangeBuild, serverName } from '../fleet/schemas.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../package/format.js';
import { defaultHealthEndpoints, defaultProbeRoundDeadlineInMs, defaultProbeTimeoutInMs } from './probes.js';

const endpointPath = z.string().regex(/^\/[^\s?#\u0000-\u001f\u007f]{1,255}$/, 'must be a path such as /owa/healthcheck.htm');

const feedTrustSchema = z
  .object({
    /** PEM files (or PEM text) of the anchors this entry trusts. */
    anchors: z.array(z.string().min(1)).min(1),
    anchorSha256: z.array(z.string()).default([]),
    signerSubject: z.string().min(1).default(microsoftSignerSubjectCn),
    signerEku: z.string().regex(/^\d+(\.\d+)+$/).default(microsoftSignerEku),
    revokedSerials: z.array(z.string()).default([]),
    /** PEM files (or PEM text) of the time-stamp authorities' roots (Microsoft Root Certificate Authority 2010); none: time stamps are not checked. */
    timestampAnchors: z.array(z.string().min(1)).default([]),
    timestampAnchorSha256: z.array(z.string()).default([]),
  })
  .strict();

/** agent.json: everything one agent needs. Paths are relative to the file. */
export const agentConfigSchema = z
  .object({
    server: serverName,
    /** The Exchange build of this server, e.g. 15.2.1544.4 (what applicability is judged on). */
    build: exchangeBuild,
    relay: z
      .object({
        /** e.g. contoso-emfleet.servicebus.windows.net */
        namespace: z.string().min(1),
        hybridConnection: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/, 'must be a hybrid connection name'),
        /** Override of wss://{namespace}:443, for the local relay emulator (ws://127.0.0.1:PORT). */
        endpoint: z.string().regex(/^wss?:\/\/[^/]+$/, 'must be ws://host:port or wss://host:port').optional(),
        keyName: z.string().min(1).default('listen'),
        key: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
      })
      .strict()
      .refine((relay) => (relay.key === undefined) !== (relay.keyFile === undefined), { message: 'give exactly one of key or keyFile', path: ['key'] }),
    /**
     * What this agent trusts, whatever the cloud says: one entry per feed it serves, each binding
     * its anchors to its own signer (subject CN, EKU), so a key of one feed cannot sign for another.
     * A single object is one entry.
     */
    trust: z.preprocess((trust) => (Array.isArray(trust) ? trust : [trust]), z.array(feedTrustSchema).min(1).max(10)),
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
              z.object({ appPools: z.array(z.string().min(1)).optional(), services: z.array(z.string().min(1)).optional() }).strict(),
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
            .refine((path) => win32.isAbsolute(path) && /^([A-Za-z]:\\|\\\\)/.test(path), 'must be a full path such as C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe')
            .optional(),
          /** Per script; Exchange services can take minutes to stop. The script's own waits end 30 s earlier. */
          timeoutInMs: z.number().int().min(60_000).default(300_000),
        })
        .strict(),
    ]),
    stateDirectory: z.string().min(1),
    /** Whether a request's `onDegraded: keep` may leave a degraded change in place; otherwise the agent rolls back whatever the request says. */
    allowKeepOnDegraded: z.boolean().default(false),
    /** Restores that failed (and changes a crash interrupted) are retried this often while serving. */
    retryRestoresEveryInMs: z.number().int().min(1000).default(300_000),
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
          .regex(/^https?:\/\/[^/?#@\s]+(\/[^?#\s]*)?$/, 'must be http(s)://host[:port][/prefix] without query or credentials')
          .optional(),
        endpoints: z.array(endpointPath).min(1).max(50).default([...defaultHealthEndpoints]),
        timeoutInMs: z.number().int().min(100).max(30_000).default(defaultProbeTimeoutInMs),
        /** A whole round (all endpoints, or all of a rule's probes) ends by then; the relay allows 60 s per reply. */
        roundDeadlineInMs: z.number().int().min(100).max(45_000).default(defaultProbeRoundDeadlineInMs),
      })
      .strict()
      .refine((probes) => probes.timeoutInMs <= probes.roundDeadlineInMs, { message: 'timeoutInMs must not exceed roundDeadlineInMs', path: ['timeoutInMs'] })
      .prefault({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof agentConfigSchema>;

/** Reads and validates agent.json; an error names the field. Relative paths are made absolute. */
export async function loadAgentConfig(path: string): Promise<AgentConfig> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseAgentConfig(json, dirname(resolve(path)), path);
}

export function parseAgentConfig(json: unknown, baseDirectory: string, where = 'agent config'): AgentConfig {
  const parsed = agentConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${where}: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  const config = parsed.data;
  const absolute = (path: string): string => (isAbsolute(path) || path.includes('-----BEGIN') ? path : resolve(baseDirectory, path));
  return {
    ...config,
    relay: { ...config.relay, ...(config.relay.keyFile === undefined ? {} : { keyFile: absolute(config.relay.keyFile) }) },
    trust: config.trust.map((entry) => ({ ...entry, anchors: entry.anchors.map(absolute), timestampAnchors: entry.timestampAnchors.map(absolute) })),
    applier: config.applier.kind === 'simulated' && config.applier.stateFile !== undefined ? { ...config.applier, stateFile: absolute(config.applier.stateFile) } : config.applier,
    stateDirectory: absolute(config.stateDirectory),
  };
}
