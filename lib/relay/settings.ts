import { AgentClient, defaultAzureCredentialAuth, RelaySender } from './sender.js';

/** Where the app's relay client sends, and with which SAS send rule; none: the app's managed identity. */
export interface RelayTarget {
  readonly baseUrl: string;
  readonly sendKey?: { readonly keyName: string; readonly key: string } | undefined;
}

/**
 * The app's client for its agents (lib/config `relayTargetOf` says where): a SAS send key when one
 * is set, else keyless with the app's managed identity (Azure Relay Sender role).
 */
export async function agentClientFor(target: RelayTarget): Promise<AgentClient> {
  const auth = target.sendKey
    ? { kind: 'sas' as const, keyName: target.sendKey.keyName, key: target.sendKey.key }
    : await defaultAzureCredentialAuth();
  return new AgentClient(new RelaySender({ baseUrl: target.baseUrl, auth }));
}
