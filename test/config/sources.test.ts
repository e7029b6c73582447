import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config/index.js';
import { feedSources, relayTargetOf, storageConnectionOf } from '../../lib/config/sources.js';

describe('storageConnectionOf', () => {
  it.each([
    {
      name: 'a connection string wins',
      config: { storageConnectionString: 'cs', storageAccount: 'acct' },
      expected: { kind: 'connectionString', connectionString: 'cs' },
    },
    {
      name: 'else the account',
      config: { storageAccount: 'acct' },
      expected: { kind: 'account', accountName: 'acct' },
    },
  ])('$name', ({ config, expected }) => {
    expect(storageConnectionOf(config)).toEqual(expected);
  });

  it('without either, says which settings to set', () => {
    expect(() => storageConnectionOf({})).toThrow(
      'no storage configured: set AzureWebJobsStorage (connection string) or EMFLEET_STORAGE_ACCOUNT (managed identity)',
    );
  });
});

describe('feedSources', () => {
  it("Microsoft's feed first, then each organization feed, each naming the setting its trust comes from", () => {
    const sources = feedSources(
      loadConfig({
        EMFLEET_TRUST_ANCHORS: 'root.pem',
        EMFLEET_FEEDS: JSON.stringify([
          {
            name: 'contoso',
            url: 'https://x.example/f',
            trustAnchors: 'c.pem',
            signerSubject: 'S',
            signerEku: '1.2',
          },
        ]),
      }),
    );
    expect(
      sources.map(({ name, trustAnchors, anchorsSetting, timestampAnchorsSetting }) => ({
        name,
        trustAnchors,
        anchorsSetting,
        timestampAnchorsSetting,
      })),
    ).toEqual([
      {
        name: 'microsoft',
        trustAnchors: 'root.pem',
        anchorsSetting: 'EMFLEET_TRUST_ANCHORS',
        timestampAnchorsSetting: 'EMFLEET_TIMESTAMP_ANCHORS',
      },
      {
        name: 'contoso',
        trustAnchors: 'c.pem',
        anchorsSetting: 'EMFLEET_FEEDS contoso',
        timestampAnchorsSetting: 'EMFLEET_FEEDS contoso timestampAnchors',
      },
    ]);
  });
});

describe('relayTargetOf', () => {
  it.each([
    {
      name: 'the namespace, keyless (managed identity)',
      env: { EMFLEET_RELAY_NAMESPACE: 'contoso.servicebus.windows.net' },
      expected: { baseUrl: 'https://contoso.servicebus.windows.net' },
    },
    {
      name: 'the emulator endpoint wins, with the SAS send rule',
      env: {
        EMFLEET_RELAY_NAMESPACE: 'contoso.servicebus.windows.net',
        EMFLEET_RELAY_ENDPOINT: 'http://127.0.0.1:9',
        EMFLEET_RELAY_SEND_KEY: 'k',
      },
      expected: { baseUrl: 'http://127.0.0.1:9', sendKey: { keyName: 'send', key: 'k' } },
    },
  ])('$name', ({ env, expected }) => {
    expect(relayTargetOf(loadConfig(env))).toEqual(expected);
  });

  it('without a relay, says which settings to set', () => {
    expect(() => relayTargetOf(loadConfig({}))).toThrow(
      'no relay configured: set EMFLEET_RELAY_NAMESPACE (or EMFLEET_RELAY_ENDPOINT for a local emulator)',
    );
  });
});
