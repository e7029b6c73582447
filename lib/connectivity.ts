import { mapWithConcurrency } from './concurrency.js';
import type { Settings } from './config/index.js';
import { getServer, listServers } from './fleet/servers.js';
import type { FleetTables } from './fleet/storage.js';
import { fetchFeed } from './ocs/client.js';
import type { PingReply } from './relay/protocol.js';
import { agentClientFromSettings } from './relay/settings.js';
import { trustPolicyFromSettings, type TrustPolicy } from './package/trust.js';
import { verifyPackage } from './package/verify.js';
import { relayAddress } from './relay/route.js';

export interface ConnectivityCheck {
  readonly name: string;
  readonly server?: string;
  readonly result: 'Success' | 'Failed';
  readonly detail: string;
}

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
export function connectivityProbesFromSettings(settings: Settings, servers: ConnectivityProbes['servers']): ConnectivityProbes {
  let client: ReturnType<typeof agentClientFromSettings> | undefined;
  return {
    feedUrl: settings.EMFLEET_OCS_URL,
    fetchFeed: async () => {
      const result = await fetchFeed({ url: settings.EMFLEET_OCS_URL });
      if (result.kind !== 'fetched') throw new Error('the feed answered 304 to an unconditional request');
      return result.bytes;
    },
    trust: () => trustPolicyFromSettings(settings),
    servers,
    ping: async (hybridConnection) => {
      // One client for every ping: it keeps its connections to the relay.
      client ??= agentClientFromSettings(settings);
      return (await client).ping(hybridConnection);
    },
  };
}

/** The agents to ping: one registered server, or all of them. */
export async function connectivityTargets(tables: FleetTables, org: string, server?: string): Promise<{ name: string; hybridConnection: string }[]> {
  const rows = server === undefined ? (await listServers(tables, org)).rows : [await getServer(tables, org, server)];
  return rows.map((row) => ({ name: row.rowKey, hybridConnection: relayAddress(row) }));
}

/**
 * The checks of `emfleet test-connectivity`, in order. A check that could not run because an
 * earlier one failed is Failed with that reason: it never reads as Success.
 */
export async function runConnectivityChecks(probes: ConnectivityProbes, onCheck: (check: ConnectivityCheck) => void = () => {}): Promise<ConnectivityCheck[]> {
  const checks: ConnectivityCheck[] = [];
  const record = (check: ConnectivityCheck): void => {
    checks.push(check);
    onCheck(check);
  };

  const feedCheck = `OCS reachable over HTTPS (${probes.feedUrl})`;
  let feed: Buffer | undefined;
  try {
    feed = await probes.fetchFeed();
    record({ name: feedCheck, result: 'Success', detail: `${feed.byteLength} bytes` });
  } catch (error) {
    record({ name: feedCheck, result: 'Failed', detail: message(error) });
  }

  const packageCheck = 'The mitigation package verifies';
  if (feed === undefined) {
    record({ name: packageCheck, result: 'Failed', detail: 'not run: the feed could not be fetched' });
  } else {
    try {
      const verified = verifyPackage(feed, { trust: probes.trust() });
      record(
        verified.ok
          ? { name: packageCheck, result: 'Success', detail: `${verified.package.mitigations.length} mitigations (${verified.package.mitigations.map((mitigation) => mitigation.id).join(', ')}) signed by ${verified.signer.subject}` }
          : { name: packageCheck, result: 'Failed', detail: `${verified.reason}: ${verified.detail}` },
      );
    } catch (error) {
      record({ name: packageCheck, result: 'Failed', detail: message(error) });
    }
  }

  const agentCheck = 'Agent answers through Azure Relay';
  let servers: readonly { name: string; hybridConnection: string }[];
  try {
    servers = await probes.servers();
  } catch (error) {
    record({ name: agentCheck, result: 'Failed', detail: `not run: ${message(error)}` });
    return checks;
  }
  if (servers.length === 0) record({ name: agentCheck, result: 'Failed', detail: 'not run: no servers are registered' });
  // Reported as each answer comes in: with thousands of servers the admin sees progress.
  await mapWithConcurrency(servers, pingConcurrency, async (server) => {
    try {
      const reply = await probes.ping(server.hybridConnection);
      record({ name: agentCheck, server: server.name, result: 'Success', detail: `${reply.server}, build ${reply.build}, agent ${reply.agentVersion}` });
    } catch (error) {
      record({ name: agentCheck, server: server.name, result: 'Failed', detail: message(error) });
    }
  });
  return checks;
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').trim();
}
