/**
 * How the cloud reaches a server: its relay address, the path after the namespace.
 *
 * - Own hybrid connection (the server's agent listens on it): `{hybridConnection}`.
 * - Behind its site's relay hub (the hub listens on the site's hybrid connection and forwards
 *   `/{relayPath}/…` to the server's agent over the site LAN): `{hybridConnection}/{relayPath}`.
 *
 * The Servers row chooses: an empty `relayPath` is the first layout, a set one the second. Both
 * layouts live side by side in one fleet. Everything downstream (plan rows, queue messages, the
 * sender) carries the address as one string, so neither the rollout nor the sweeps know which.
 */
export interface RelayRoute {
  /** The hybrid connection the request is sent to (the server's own, or its site's). */
  readonly hybridConnection: string;
  /** The server's name at its site hub; undefined when the agent listens itself. */
  readonly relayPath: string | undefined;
}

/** What a Servers row says about reaching its server. */
export interface RoutedServer {
  readonly rowKey: string;
  readonly relayHybridConnection: string;
  readonly relayPath: string;
}

/** A relay path names one server at its hub: one URL segment, letters, digits, . _ - (a host name fits). */
export const relayPathPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
/** Azure Relay hybrid connection names: letters, digits, . _ - , starting with a letter or digit (at most 260). */
export const hybridConnectionPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$/;

export function relayAddress(server: RoutedServer): string {
  const hybridConnection = server.relayHybridConnection || server.rowKey;
  return server.relayPath === '' ? hybridConnection : `${hybridConnection}/${server.relayPath}`;
}

export function parseRelayAddress(address: string): RelayRoute {
  const [hybridConnection = '', ...rest] = address.split('/').filter(Boolean);
  return { hybridConnection, relayPath: rest.length === 0 ? undefined : rest.join('/') };
}

/** The hybrid connection `emfleet sites add` creates for a site, and infra/app/relay.bicep's default: site-{name}, lower case. */
export function siteHybridConnectionName(site: string): string {
  return `site-${site}`.toLowerCase();
}
