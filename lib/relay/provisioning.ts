import type { TokenCredential } from '@azure/core-auth';
import { ConfigError, EmfleetError } from '../errors.js';

/**
 * Hybrid connections made from the inventory, not the template: `emfleet sites add` (a site's
 * hybrid connection for its hub) and `emfleet servers add --own-hybrid-connection` (a server that
 * keeps one of its own). Azure Resource Manager is reached through one narrow port, so the logic
 * here (idempotent, refuses to adopt an entity that would weaken the fleet) is tested against a
 * fake ARM endpoint, and production uses @azure/arm-relay with DefaultAzureCredential.
 */

export interface HybridConnectionFacts {
  readonly requiresClientAuthorization: boolean;
  readonly userMetadata?: string;
}

export interface RelayManagementPort {
  getHybridConnection(name: string): Promise<HybridConnectionFacts | undefined>;
  /** Creates it with requiresClientAuthorization (a sender must present a token). */
  createHybridConnection(name: string, userMetadata: string): Promise<void>;
  getAuthorizationRule(
    hybridConnection: string,
    rule: string,
  ): Promise<{ readonly rights: readonly string[] } | undefined>;
  createListenRule(hybridConnection: string, rule: string): Promise<void>;
}

/** Where the relay namespace is in Azure Resource Manager. */
export interface RelayNamespaceRef {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  /** The namespace's name, e.g. relay-contoso-abc123 (not its host name). */
  readonly namespace: string;
}

export type Provisioned = 'created' | 'existed';

export interface HybridConnectionProvisioning {
  readonly hybridConnection: string;
  readonly listenRule: string;
  readonly changes: { readonly hybridConnection: Provisioned; readonly listenRule: Provisioned };
}

/** The relay refused, or ARM did: the message says which call on which entity, with ARM's own words. */
export class RelayProvisioningError extends EmfleetError {
  override readonly name = 'RelayProvisioningError';

  constructor(message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super('RelayProvisioning', message, options);
  }
}

/**
 * Makes sure a hybrid connection and its Listen-only rule exist; safe to run again (what exists is
 * kept). An existing hybrid connection that lets anyone send, or a rule of that name with more
 * than Listen, is refused rather than used: the fleet never gets weaker by a retry.
 */
export async function ensureHybridConnection(
  port: RelayManagementPort,
  request: { hybridConnection: string; userMetadata: string; listenRule?: string },
): Promise<HybridConnectionProvisioning> {
  const { hybridConnection, userMetadata } = request;
  const listenRule = request.listenRule ?? 'listen';
  const existing = await port.getHybridConnection(hybridConnection);
  if (existing && !existing.requiresClientAuthorization) {
    throw new ConfigError(
      `hybrid connection ${hybridConnection} exists without client authorization (anyone could send to its listener); delete it or choose another name`,
    );
  }
  if (!existing) await port.createHybridConnection(hybridConnection, userMetadata);
  const rule = await port.getAuthorizationRule(hybridConnection, listenRule);
  if (rule && !(rule.rights.length === 1 && rule.rights[0] === 'Listen')) {
    throw new ConfigError(
      `rule ${listenRule} on ${hybridConnection} grants ${rule.rights.join(', ')}; a hub or agent key must grant Listen only`,
    );
  }
  if (!rule) await port.createListenRule(hybridConnection, listenRule);
  return {
    hybridConnection,
    listenRule,
    changes: { hybridConnection: existing ? 'existed' : 'created', listenRule: rule ? 'existed' : 'created' },
  };
}

export interface ArmRelayOptions {
  /** Default DefaultAzureCredential (Azure CLI login, managed identity, environment). */
  readonly credential?: TokenCredential;
  /** Default Azure public cloud (https://management.azure.com); tests point it at a fake ARM. */
  readonly endpoint?: string;
  /** Extra CA certificates to trust for `endpoint` (a fake ARM's own). */
  readonly trustedCa?: string;
}

/** The port over @azure/arm-relay: the only place that loads the management SDK. */
export async function armRelayManagement(
  ref: RelayNamespaceRef,
  options: ArmRelayOptions = {},
): Promise<RelayManagementPort> {
  const [{ RelayAPI }, credential] = await Promise.all([
    import('@azure/arm-relay'),
    options.credential ??
      import('@azure/identity').then(({ DefaultAzureCredential }) => new DefaultAzureCredential()),
  ]);
  const client = new RelayAPI(credential, ref.subscriptionId, {
    ...(options.endpoint
      ? { endpoint: options.endpoint, credentialScopes: [`${options.endpoint.replace(/\/+$/, '')}/.default`] }
      : {}),
    ...(options.trustedCa ? { tlsOptions: { ca: options.trustedCa } } : {}),
    // Idempotent calls: a retry after a lost answer finds what the first one made.
    retryOptions: { maxRetries: 3 },
  });
  const { resourceGroup, namespace } = ref;
  const where = (what: string): string =>
    `${what} in relay namespace ${namespace} (resource group ${resourceGroup}, subscription ${ref.subscriptionId})`;
  const orUndefined = async <T>(call: () => Promise<T>, what: string): Promise<T | undefined> => {
    try {
      return await call();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw armError(error, `reading ${where(what)}`);
    }
  };
  const orFail = async (call: () => Promise<unknown>, what: string): Promise<void> => {
    try {
      await call();
    } catch (error) {
      throw armError(error, `creating ${where(what)}`);
    }
  };
  return {
    getHybridConnection: async (name) => {
      const found = await orUndefined(
        () => client.hybridConnections.get(resourceGroup, namespace, name),
        `hybrid connection ${name}`,
      );
      return found
        ? {
            requiresClientAuthorization: found.requiresClientAuthorization !== false,
            ...(found.userMetadata === undefined ? {} : { userMetadata: found.userMetadata }),
          }
        : undefined;
    },
    createHybridConnection: (name, userMetadata) =>
      orFail(
        () =>
          client.hybridConnections.createOrUpdate(resourceGroup, namespace, name, {
            requiresClientAuthorization: true,
            userMetadata,
          }),
        `hybrid connection ${name}`,
      ),
    getAuthorizationRule: async (hybridConnection, rule) => {
      const found = await orUndefined(
        () => client.hybridConnections.getAuthorizationRule(resourceGroup, namespace, hybridConnection, rule),
        `rule ${rule} of ${hybridConnection}`,
      );
      return found ? { rights: found.rights ?? [] } : undefined;
    },
    createListenRule: (hybridConnection, rule) =>
      orFail(
        () =>
          client.hybridConnections.createOrUpdateAuthorizationRule(
            resourceGroup,
            namespace,
            hybridConnection,
            rule,
            { rights: ['Listen'] },
          ),
        `rule ${rule} of ${hybridConnection}`,
      ),
  };
}

function armError(error: unknown, what: string): RelayProvisioningError {
  const status = (error as { statusCode?: number }).statusCode;
  const advice =
    status === 401 || status === 403
      ? ': sign in (az login) as someone with Contributor (or Azure Relay Owner) on the namespace'
      : '';
  return new RelayProvisioningError(
    `${what} failed${status === undefined ? '' : ` (${status})`}: ${(error as Error).message}${advice}`,
    { cause: error, context: { status } },
  );
}
