/**
 * What the relay costs a fleet in each layout, and the quotas that bound it. Azure Relay bills
 * Hybrid Connections per listener (each connected listener is billed for the hours it is
 * connected; 5 GB of data a listener a month included), so the layouts differ only in listeners:
 *
 * - own: every server's agent listens on a hybrid connection of its own: one listener a server;
 * - hub: each site's relay hubs listen on the site's hybrid connection: `hubsPerSite` listeners a
 *   site, however many servers it has.
 *
 * The price is a setting (`npm run bench -- --price-per-listener USD`; the app itself never reads
 * it): check the Hybrid Connections row of https://azure.microsoft.com/pricing/details/service-bus/
 * for your region and currency. emfleet sends a few kilobytes a day per server, far inside the
 * included 5 GB, so data transfer is left out.
 */

/** USD per listener per month (730 hours) on the published price list when this was written. */
export const defaultPricePerListenerMonthUsd = 9.78;

/** Azure Relay quotas (relay FAQ, "Quotas": https://learn.microsoft.com/azure/azure-relay/relay-faq#quotas). */
export const relayQuotas = {
  /** Concurrent listeners on one hybrid connection. */
  listenersPerHybridConnection: 25,
  /** Concurrent relay connections (listeners and senders) across a namespace's endpoints. */
  connectionsPerNamespace: 5000,
  /** Relay endpoints (hybrid connections) per namespace. */
  endpointsPerNamespace: 10_000,
} as const;

export type RelayLayout = 'own' | 'hub';

export interface CostInput {
  readonly servers: number;
  /** Servers per site (hub layout); the last site may have fewer. */
  readonly serversPerSite: number;
  /** Hubs per site (2: one can be restarted while the other serves). */
  readonly hubsPerSite: number;
  readonly pricePerListenerMonthUsd: number;
}

export interface LayoutCost {
  readonly layout: RelayLayout;
  readonly servers: number;
  readonly hybridConnections: number;
  readonly listeners: number;
  readonly monthlyUsd: number;
  readonly perServerMonthUsd: number;
  /** Namespaces the quotas call for (listener connections and endpoints each within a namespace's quota). */
  readonly namespaces: number;
}

export function relayCost(input: CostInput): { own: LayoutCost; hub: LayoutCost } {
  if (!Number.isInteger(input.servers) || input.servers < 1)
    throw new RangeError(`servers must be a whole number of at least 1, got ${input.servers}`);
  if (!Number.isInteger(input.serversPerSite) || input.serversPerSite < 1)
    throw new RangeError(`serversPerSite must be a whole number of at least 1, got ${input.serversPerSite}`);
  if (
    !Number.isInteger(input.hubsPerSite) ||
    input.hubsPerSite < 1 ||
    input.hubsPerSite > relayQuotas.listenersPerHybridConnection
  ) {
    throw new RangeError(
      `hubsPerSite must be from 1 to ${relayQuotas.listenersPerHybridConnection} (listeners per hybrid connection), got ${input.hubsPerSite}`,
    );
  }
  if (!(input.pricePerListenerMonthUsd >= 0))
    throw new RangeError(
      `the price per listener must not be negative, got ${input.pricePerListenerMonthUsd}`,
    );
  const layout = (name: RelayLayout, hybridConnections: number, listeners: number): LayoutCost => {
    const monthlyUsd = listeners * input.pricePerListenerMonthUsd;
    return {
      layout: name,
      servers: input.servers,
      hybridConnections,
      listeners,
      monthlyUsd,
      perServerMonthUsd: monthlyUsd / input.servers,
      namespaces: Math.max(
        Math.ceil(listeners / relayQuotas.connectionsPerNamespace),
        Math.ceil(hybridConnections / relayQuotas.endpointsPerNamespace),
      ),
    };
  };
  const sites = Math.ceil(input.servers / input.serversPerSite);
  return {
    own: layout('own', input.servers, input.servers),
    hub: layout('hub', sites, sites * input.hubsPerSite),
  };
}
