import { ConfigError } from '../errors.js';
import { microsoftFeedName } from '../ocs/client.js';
import type { FeedSource } from '../ocs/feeds.js';
import type { RelayTarget } from '../relay/settings.js';
import { settingNameOf, type AppConfig } from './index.js';

/*
 * What the config says about the places the app talks to: its storage, its relay, its feeds and
 * their trust, as plain data for lib/fleet, lib/relay and lib/ocs, which do not read the config
 * themselves. Errors name the settings to set.
 */

/** Storage as the config names it: a connection string (Azurite, dev) first, else an account with the managed identity. */
export function storageConnectionOf(
  config: Pick<AppConfig, 'storageConnectionString' | 'storageAccount'>,
):
  | { readonly kind: 'connectionString'; readonly connectionString: string }
  | { readonly kind: 'account'; readonly accountName: string } {
  if (config.storageConnectionString)
    return { kind: 'connectionString', connectionString: config.storageConnectionString };
  if (config.storageAccount) return { kind: 'account', accountName: config.storageAccount };
  throw new ConfigError(
    `no storage configured: set ${settingNameOf.storageConnectionString} (connection string) or ${settingNameOf.storageAccount} (managed identity)`,
  );
}

/** Every configured feed's name: Microsoft's, then the organization feeds in order. */
export function configuredFeedNames(config: Pick<AppConfig, 'orgFeeds'>): string[] {
  return [microsoftFeedName, ...config.orgFeeds.map((feed) => feed.name)];
}

/** Microsoft's feed as the config describes it: `ocsUrl` with the trust settings. */
export function microsoftFeedSource(config: AppConfig): FeedSource {
  return {
    name: microsoftFeedName,
    url: config.ocsUrl,
    trustAnchors: config.trustAnchors,
    anchorSha256: config.trustAnchorSha256 ?? [],
    timestampAnchors: config.timestampAnchors,
    timestampAnchorSha256: config.timestampAnchorSha256 ?? [],
    signerSubject: config.signerSubject,
    signerEku: config.signerEku,
    revokedSerials: config.revokedSerials ?? [],
    anchorsSetting: settingNameOf.trustAnchors,
    timestampAnchorsSetting: settingNameOf.timestampAnchors,
  };
}

/** Every feed the config describes, for lib/ocs/feeds.ts to build their trust: Microsoft's, then each organization feed. */
export function feedSources(config: AppConfig): FeedSource[] {
  return [
    microsoftFeedSource(config),
    ...config.orgFeeds.map((feed) => ({
      name: feed.name,
      url: feed.url,
      trustAnchors: feed.trustAnchors,
      anchorSha256: feed.anchorSha256,
      timestampAnchors: feed.timestampAnchors,
      timestampAnchorSha256: feed.timestampAnchorSha256,
      signerSubject: feed.signerSubject,
      signerEku: feed.signerEku,
      revokedSerials: feed.revokedSerials,
      anchorsSetting: `${settingNameOf.orgFeeds} ${feed.name}`,
      timestampAnchorsSetting: `${settingNameOf.orgFeeds} ${feed.name} timestampAnchors`,
    })),
  ];
}

/**
 * Where the app's relay client sends: the relay endpoint (the local emulator) or the namespace,
 * with the SAS send rule when a key is set. Throws naming the settings when there is no relay.
 */
export function relayTargetOf(
  config: Pick<AppConfig, 'relayEndpoint' | 'relayNamespace' | 'relaySendKeyName' | 'relaySendKey'>,
): RelayTarget {
  const baseUrl =
    config.relayEndpoint ?? (config.relayNamespace ? `https://${config.relayNamespace}` : undefined);
  if (!baseUrl)
    throw new ConfigError(
      `no relay configured: set ${settingNameOf.relayNamespace} (or ${settingNameOf.relayEndpoint} for a local emulator)`,
    );
  return {
    baseUrl,
    ...(config.relaySendKey
      ? { sendKey: { keyName: config.relaySendKeyName, key: config.relaySendKey } }
      : {}),
  };
}
