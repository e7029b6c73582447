import { describe, expect, it } from 'vitest';
import { defaultPricePerListenerMonthUsd, relayCost, relayQuotas } from '../../lib/relay/cost.js';

const price = defaultPricePerListenerMonthUsd;

describe('the relay cost of a fleet in both layouts', () => {
  it.each([
    {
      name: '10 servers, one site of 10, two hubs',
      servers: 10,
      serversPerSite: 50,
      own: { listeners: 10, namespaces: 1 },
      hub: { hybridConnections: 1, listeners: 2, namespaces: 1 },
    },
    {
      name: '100 servers, 2 sites',
      servers: 100,
      serversPerSite: 50,
      own: { listeners: 100, namespaces: 1 },
      hub: { hybridConnections: 2, listeners: 4, namespaces: 1 },
    },
    {
      name: '1,000 servers, 20 sites',
      servers: 1000,
      serversPerSite: 50,
      own: { listeners: 1000, namespaces: 1 },
      hub: { hybridConnections: 20, listeners: 40, namespaces: 1 },
    },
    {
      name: '10,000 servers, 200 sites: own listeners need two namespaces (5,000 connections each)',
      servers: 10_000,
      serversPerSite: 50,
      own: { listeners: 10_000, namespaces: 2 },
      hub: { hybridConnections: 200, listeners: 400, namespaces: 1 },
    },
    {
      name: '10,001 servers: the last site is a partial one',
      servers: 10_001,
      serversPerSite: 50,
      own: { listeners: 10_001, namespaces: 3 },
      hub: { hybridConnections: 201, listeners: 402, namespaces: 1 },
    },
  ])('$name', ({ servers, serversPerSite, own, hub }) => {
    const cost = relayCost({ servers, serversPerSite, hubsPerSite: 2, pricePerListenerMonthUsd: price });
    expect(cost.own).toMatchObject({ hybridConnections: servers, ...own, monthlyUsd: own.listeners * price });
    expect(cost.hub).toMatchObject({ ...hub, monthlyUsd: hub.listeners * price });
    expect(cost.own.perServerMonthUsd).toBeCloseTo(price);
    expect(cost.hub.perServerMonthUsd).toBeCloseTo((hub.listeners * price) / servers);
  });

  it("the issue's figure: one listener a server at 10,000 servers is about $98,000 a month; through hubs about $3,900", () => {
    const cost = relayCost({
      servers: 10_000,
      serversPerSite: 50,
      hubsPerSite: 2,
      pricePerListenerMonthUsd: price,
    });
    expect(Math.round(cost.own.monthlyUsd)).toBe(97_800);
    expect(Math.round(cost.hub.monthlyUsd)).toBe(3912);
  });

  it.each([
    { name: 'no servers', input: { servers: 0 } },
    {
      name: 'more hubs than a hybrid connection takes listeners',
      input: { hubsPerSite: relayQuotas.listenersPerHybridConnection + 1 },
    },
    { name: 'a negative price', input: { pricePerListenerMonthUsd: -1 } },
    { name: 'a fractional site size', input: { serversPerSite: 2.5 } },
  ])('refuses $name', ({ input }) => {
    expect(() =>
      relayCost({
        servers: 100,
        serversPerSite: 50,
        hubsPerSite: 2,
        pricePerListenerMonthUsd: price,
        ...input,
      }),
    ).toThrow(RangeError);
  });
});
