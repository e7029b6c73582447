import type { Node } from 'web-tree-sitter';
import { settingNameOf } from '../../lib/config/index.js';
import {
  isComment,
  isType,
  objectProperties,
  problemAt,
  property,
  resources,
  stringLiteral,
  type BicepDocument,
  type InfraProblem,
} from './bicep.js';

/**
 * The one list of app settings that are not simply "every name in lib/config": what the Functions
 * host reads itself, and which lib/config settings stay out of Azure. The settings test and
 * infra/README.md both use it.
 */
export interface SettingException {
  /** Where the name appears besides (or instead of) lib/config's schema. */
  readonly in: readonly ('sample' | 'bicep')[];
  readonly why: string;
}

/** Read by the Functions host or the platform, never by lib/config. */
export const hostSettings: Readonly<Record<string, SettingException>> = {
  FUNCTIONS_WORKER_RUNTIME: {
    in: ['sample'],
    why: 'the local Functions host needs it; on Flex Consumption the runtime is functionAppConfig.runtime (node 22) and the app setting is not allowed',
  },
  AzureWebJobsStorage__accountName: {
    in: ['bicep'],
    why: "the host's own storage (leases, timers, function keys, queue triggers) through the managed identity; replaces the AzureWebJobsStorage connection string in Azure",
  },
  AzureWebJobsStorage__credential: {
    in: ['bicep'],
    why: '`managedidentity`: the host authenticates to its storage with the app identity',
  },
  APPLICATIONINSIGHTS_CONNECTION_STRING: {
    in: ['bicep'],
    why: 'where the host sends telemetry',
  },
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: {
    in: ['bicep'],
    why: '`Authorization=AAD`: telemetry with an Entra token, as the Application Insights resource refuses its key',
  },
};

/** lib/config settings for local runs and tests only, never set in Azure. */
export const localOnlySettings: Readonly<Record<string, string>> = {
  [settingNameOf.storageConnectionString]: `a connection string (Azurite). In Azure the host uses ${settingNameOf.storageConnectionString}__accountName and emfleet uses ${settingNameOf.storageAccount}, both with the managed identity`,
  [settingNameOf.queuePrefix]:
    'lets several local runs share one storage account; the queue triggers listen on the unprefixed names',
  [settingNameOf.relayEndpoint]: `points the app at the local relay emulator instead of https://${settingNameOf.relayNamespace}`,
};

/**
 * The names of the app settings in a Bicep file: the `properties` of its one
 * Microsoft.Web/sites/config resource named `appsettings`, which must be an object literal so
 * every name is visible. Undefined when the file has none.
 */
export function appSettingNames(
  document: BicepDocument,
): { names: string[]; values: Map<string, Node>; problems: InfraProblem[] } | undefined {
  const configs = resources(document).filter(
    (resource) =>
      isType(resource, 'Microsoft.Web/sites/config') &&
      stringLiteral(property(resource.body, 'name')) === 'appsettings',
  );
  if (configs.length === 0) return undefined;
  const problems: InfraProblem[] = configs
    .slice(1)
    .map((extra) =>
      problemAt(
        document,
        extra.node,
        'a second appsettings resource: each replaces all app settings, so keep them in one',
      ),
    );
  const settings = property(configs[0]!.body, 'properties');
  if (settings?.type !== 'object') {
    problems.push(
      problemAt(
        document,
        settings ?? configs[0]!.node,
        'appsettings properties must be an object literal, so every setting name is visible',
      ),
    );
    return { names: [], values: new Map(), problems };
  }
  const entries = objectProperties(settings);
  const spreads = settings.namedChildren.filter(
    (child) => child.type !== 'object_property' && !isComment(child),
  );
  for (const spread of spreads)
    problems.push(problemAt(document, spread, 'appsettings must list each setting by name'));
  return {
    names: entries.map((entry) => entry.key),
    values: new Map(entries.map((entry) => [entry.key, entry.value])),
    problems,
  };
}
