import { settingNameOf, type AppConfig } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { AgentClient, defaultAzureCredentialAuth, RelaySender } from './sender.js';

/** The settings of the app's relay client. */
export type RelayConfig = Pick<
  AppConfig,
  'relayEndpoint' | 'relayNamespace' | 'relaySendKeyName' | 'relaySendKey'
>;

/**
 * The app's client for its agents, as the config describes it: a SAS send key when one is set,
 * else keyless with the app's managed identity (Azure Relay Sender role).
 */
export async function agentClientOf(config: RelayConfig): Promise<AgentClient> {
  const baseUrl =
    config.relayEndpoint ?? (config.relayNamespace ? `https://${config.relayNamespace}` : undefined);
  if (!baseUrl)
    throw new ConfigError(
      `no relay configured: set ${settingNameOf.relayNamespace} (or ${settingNameOf.relayEndpoint} for a local emulator)`,
    );
  const auth = config.relaySendKey
    ? { kind: 'sas' as const, keyName: config.relaySendKeyName, key: config.relaySendKey }
    : await defaultAzureCredentialAuth();
  return new AgentClient(new RelaySender({ baseUrl, auth }));
}
