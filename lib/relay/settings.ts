import type { Settings } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { AgentClient, defaultAzureCredentialAuth, RelaySender } from './sender.js';

/**
 * The app's client for its agents, as the settings describe it: a SAS send key when one is set,
 * else keyless with the app's managed identity (Azure Relay Sender role).
 */
export async function agentClientFromSettings(settings: Settings): Promise<AgentClient> {
  const baseUrl =
    settings.EMFLEET_RELAY_ENDPOINT ??
    (settings.EMFLEET_RELAY_NAMESPACE ? `https://${settings.EMFLEET_RELAY_NAMESPACE}` : undefined);
  if (!baseUrl)
    throw new ConfigError(
      'no relay configured: set EMFLEET_RELAY_NAMESPACE (or EMFLEET_RELAY_ENDPOINT for a local emulator)',
    );
  const auth = settings.EMFLEET_RELAY_SEND_KEY
    ? {
        kind: 'sas' as const,
        keyName: settings.EMFLEET_RELAY_SEND_KEY_NAME,
        key: settings.EMFLEET_RELAY_SEND_KEY,
      }
    : await defaultAzureCredentialAuth();
  return new AgentClient(new RelaySender({ baseUrl, auth }));
}
