import { mapWithConcurrency } from '../concurrency.js';
import type { AppConfig } from '../config/index.js';
import { microsoftFeedSource, relayTargetOf } from '../config/sources.js';
import { getServer, listServers } from '../fleet/servers.js';
import type { FleetTables } from '../fleet/storage.js';
import { fetchFeed } from '../ocs/client.js';
import type { PingReply } from '../relay/protocol.js';
import { feedTrust } from '../ocs/feeds.js';
import { agentClientFor } from '../relay/settings.js';
import type { TrustPolicy } from '../package/trust.js';
import { verifyPackage } from '../package/verify.js';
import { relayAddress } from '../relay/route.js';
import { renderReason } from '../model/reasons.js';

export interface ConnectivityCheck {
  readonly name: string;
  readonly server?: string | undefined;
  readonly hybridConnection?: string | undefined;
  readonly result: 'Success' | 'Failed';
  readonly detail: string;
  /** EM's `Message:` line: what was checked, from where, and what failed. */
  readonly message: string;
}

/** Where EM sends an admin whose server cannot reach OCS. */
export const connectivityHelpUrl = 'https://aka.ms/HelpConnectivityEEMS';

export interface ConnectivityProbes {
  readonly feedUrl: string;
  /** The feed's body; throws when it cannot be fetched. */
  fetchFeed(): Promise<Buffer>;
  /** Throws when no trust is configured. */
  trust(): TrustPolicy;
  /** The servers to ping (one, or all registered); throws when storage is unreachable. */
  servers(): Promise<readonly { readonly name: string; readonly hybridConnection: string }[]>;
  /** Throws when the relay is not configured or the agent does not answer. */
  ping(hybridConnection: string): Promise<PingReply>;
}

const pingConcurrency = 16;

/**
 * The probes as the app's settings describe them (`emfleet test-connectivity` and the admin API
 * alike); `servers` says which agents to ping.
 */
export function connectivityProbesOf(
  config: AppConfig,
  servers: ConnectivityProbes['servers'],
): ConnectivityProbes {
  let client: ReturnType<typeof agentClientFor> | undefined;
  return {
    feedUrl: config.ocsUrl,
    fetchFeed: async () => {
      const result = await fetchFeed({ url: config.ocsUrl });
      if (result.kind !== 'fetched') throw new Error('the feed answered 304 to an unconditional request');
      return result.bytes;
    },
    trust: () => feedTrust(microsoftFeedSource(config)),
    servers,
    ping: async (hybridConnection) => {
      // One client for every ping: it keeps its connections to the relay.
      client ??= agentClientFor(relayTargetOf(config));
      return (await client).ping(hybridConnection);
    },
  };
}

/** The agents to ping: one registered server, or all of them. */
export async function connectivityTargets(
  tables: FleetTables,
  org: string,
  server?: string,
): Promise<{ name: string; hybridConnection: string }[]> {
  const rows =
    server === undefined ? (await listServers(tables, org)).rows : [await getServer(tables, org, server)];
  return rows.map((row) => ({ name: row.rowKey, hybridConnection: relayAddress(row) }));
}

/**
 * The checks of `emfleet test-connectivity`, in order. A check that could not run because an
 * earlier one failed is Failed with that reason: it never reads as Success.
 */
export async function runConnectivityChecks(
  probes: ConnectivityProbes,
  onCheck: (check: ConnectivityCheck) => void = () => {},
  options: { where?: string } = {},
): Promise<ConnectivityCheck[]> {
  const where = options.where ?? 'this computer';
  const checks: ConnectivityCheck[] = [];
  const record = (check: Omit<ConnectivityCheck, 'message'>): void => {
    const done = { ...check, message: checkMessage(check, probes.feedUrl, where) };
    checks.push(done);
    onCheck(done);
  };

  const feedCheck = ocsCheckName(probes.feedUrl);
  let feed: Buffer | undefined;
  try {
    feed = await probes.fetchFeed();
    record({ name: feedCheck, result: 'Success', detail: `${feed.byteLength} bytes` });
  } catch (error) {
    record({ name: feedCheck, result: 'Failed', detail: message(error) });
  }

  const packageCheck = packageCheckName;
  if (feed === undefined) {
    record({ name: packageCheck, result: 'Failed', detail: 'not run: the feed could not be fetched' });
  } else {
    try {
      const verified = verifyPackage(feed, { trust: probes.trust() });
      record(
        verified.ok
          ? {
              name: packageCheck,
              result: 'Success',
              detail: `${verified.package.mitigations.length} mitigations (${verified.package.mitigations.map((mitigation) => mitigation.id).join(', ')}) signed by ${verified.signer.subject}`,
            }
          : {
              name: packageCheck,
              result: 'Failed',
              detail: renderReason({ reasonCode: verified.reason, reasonDetail: verified.detail }),
            },
      );
    } catch (error) {
      record({ name: packageCheck, result: 'Failed', detail: message(error) });
    }
  }

  const agentCheck = agentCheckName;
  let servers: readonly { name: string; hybridConnection: string }[];
  try {
    servers = await probes.servers();
  } catch (error) {
    record({ name: agentCheck, result: 'Failed', detail: `not run: ${message(error)}` });
    return checks;
  }
  if (servers.length === 0)
    record({ name: agentCheck, result: 'Failed', detail: 'not run: no servers are registered' });
  // Reported as each answer comes in: with thousands of servers the admin sees progress.
  await mapWithConcurrency(servers, pingConcurrency, async (server) => {
    try {
      const reply = await probes.ping(server.hybridConnection);
      record({
        name: agentCheck,
        server: server.name,
        hybridConnection: server.hybridConnection,
        result: 'Success',
        detail: `${reply.server}, build ${reply.build}, agent ${reply.agentVersion}`,
      });
    } catch (error) {
      record({
        name: agentCheck,
        server: server.name,
        hybridConnection: server.hybridConnection,
        result: 'Failed',
        detail: message(error),
      });
    }
  });
  return checks;
}

const ocsCheckName = (url: string): string => `OCS reachable over HTTPS (${url})`;
const packageCheckName = 'The mitigation package verifies';
const agentCheckName = 'Agent answers through Azure Relay';

/**
 * EM's words where EM has them (Test-MitigationServiceConnectivity.ps1: "The Mitigation Service
 * endpoint is accessible from this computer." / "Unable to connect to … To learn about
 * connectivity requirements, see …"), and the same shape for the checks EM does not have.
 */
export function checkMessage(
  check: Omit<ConnectivityCheck, 'message'>,
  feedUrl: string,
  where: string,
): string {
  const ok = check.result === 'Success';
  if (check.name === ocsCheckName(feedUrl)) {
    return ok
      ? `The Mitigation Service endpoint ${feedUrl} is accessible from ${where} (${check.detail}).`
      : `Unable to connect to the Mitigation Service endpoint ${feedUrl} from ${where}: ${check.detail}. To learn about connectivity requirements, see ${connectivityHelpUrl}`;
  }
  if (check.name === packageCheckName) {
    return ok
      ? `The package served by ${feedUrl} verifies against the configured trust: ${check.detail}.`
      : `The package served by ${feedUrl} was not verified: ${check.detail}.`;
  }
  const agent =
    check.server === undefined
      ? 'the emfleet agents'
      : `the emfleet agent of ${check.server}${check.hybridConnection ? ` (hybrid connection ${check.hybridConnection})` : ''}`;
  return ok
    ? `${agent[0]!.toUpperCase()}${agent.slice(1)} answered through Azure Relay from ${where}: ${check.detail}.`
    : `Unable to reach ${agent} through Azure Relay from ${where}: ${check.detail}.`;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
}
