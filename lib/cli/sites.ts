import { settingNameOf } from '../config/index.js';
import { Command } from 'commander';
import { siteName } from '../model/names.js';
import {
  armRelayManagement,
  ensureHybridConnection,
  type HybridConnectionProvisioning,
  type RelayManagementPort,
  type RelayNamespaceRef,
} from '../relay/provisioning.js';
import { hybridConnectionPattern, siteHybridConnectionName } from '../relay/route.js';
import { checkedValue } from './fleet.js';
import { UsageError, type CliIo } from './io.js';

/**
 * `emfleet sites add` and the relay side of `emfleet servers add`: hybrid connections and listen
 * rules made through Azure Resource Manager (lib/relay/provisioning.ts), never the template.
 */

export interface RelayManagementFlags {
  readonly subscription?: string;
  readonly resourceGroup?: string;
  readonly relayNamespace?: string;
}

/** How the CLI reaches ARM; tests give a port over a fake ARM endpoint. */
export type RelayManagementFactory = (ref: RelayNamespaceRef) => Promise<RelayManagementPort>;

export const defaultRelayManagement: RelayManagementFactory = (ref) => armRelayManagement(ref);

export function addRelayManagementOptions(command: Command): Command {
  return command
    .option('--resource-group <rg>', "the resource group of the relay namespace (the deployment's)")
    .option('--subscription <id>', 'its subscription (default: AZURE_SUBSCRIPTION_ID)')
    .option(
      '--relay-namespace <name>',
      `the relay namespace's name (default: from ${settingNameOf.relayNamespace}, e.g. relay-contoso-abc.servicebus.windows.net)`,
    );
}

/** The namespace from the flags and the environment; a missing piece is named. */
export function relayNamespaceRef(
  flags: RelayManagementFlags,
  env: Readonly<Record<string, string | undefined>>,
): RelayNamespaceRef {
  const subscriptionId = flags.subscription ?? env['AZURE_SUBSCRIPTION_ID'];
  const namespace = flags.relayNamespace ?? env[settingNameOf.relayNamespace]?.split('.')[0];
  if (!flags.resourceGroup) throw new UsageError('--resource-group is required to create hybrid connections');
  if (!subscriptionId) throw new UsageError('give --subscription or set AZURE_SUBSCRIPTION_ID');
  if (!namespace) throw new UsageError(`give --relay-namespace or set ${settingNameOf.relayNamespace}`);
  return { subscriptionId, resourceGroup: flags.resourceGroup, namespace };
}

export function checkedHybridConnection(name: string, what: string): string {
  if (!hybridConnectionPattern.test(name))
    throw new UsageError(
      `${what} "${name}" must be letters, digits, . _ - and start with a letter or digit (at most 260)`,
    );
  return name.toLowerCase();
}

export function describeProvisioning(result: HybridConnectionProvisioning): string {
  return `hybrid connection ${result.hybridConnection} (${result.changes.hybridConnection}), listen rule ${result.listenRule} (${result.changes.listenRule})`;
}

/** The commands an admin runs on the site's hub, with the names filled in. */
export function hubInstallLines(
  ref: RelayNamespaceRef,
  site: string,
  result: HybridConnectionProvisioning,
): string[] {
  const hubConfig = {
    mode: 'hub',
    site,
    relay: {
      namespace: `${ref.namespace}.servicebus.windows.net`,
      hybridConnection: result.hybridConnection,
      keyName: result.listenRule,
      keyFile: 'listen.key',
    },
    secretFile: 'site.secret',
    agents: {},
  };
  return [
    `az relay hyco authorization-rule keys list --subscription ${ref.subscriptionId} -g ${ref.resourceGroup} --namespace-name ${ref.namespace} --hybrid-connection-name ${result.hybridConnection} --name ${result.listenRule} --query primaryKey -o tsv > listen.key`,
    `hub.json: ${JSON.stringify(hubConfig)}`,
    'emfleet agent --hub --config hub.json',
  ];
}

export function sitesCommand(
  io: CliIo,
  management: RelayManagementFactory = defaultRelayManagement,
): Command {
  const command = new Command('sites').description(
    'sites whose servers sit behind one relay hub (one hybrid connection each)',
  );
  addRelayManagementOptions(
    command
      .command('add')
      .description(
        "create the site's hybrid connection and its Listen-only rule for the hub (idempotent), and print how to install the hub",
      )
      .argument('<site>', 'the site name, as given to `servers add --site`')
      .option(
        '--hybrid-connection <name>',
        "name it differently (default: site-{site} in lower case, as infra/main.bicep's sites)",
      )
      .option('--json', 'print JSON on stdout'),
  )
    .addHelpText(
      'after',
      `
Needs an Azure sign-in (DefaultAzureCredential: az login, managed identity or environment) with
Contributor or Azure Relay Owner on the namespace. Running it again changes nothing.

Example:
  emfleet sites add Amsterdam --resource-group rg-emfleet --subscription 00000000-0000-0000-0000-000000000000`,
    )
    .action(
      async (site: string, flags: RelayManagementFlags & { hybridConnection?: string; json?: boolean }) => {
        const name = checkedValue(siteName, site, 'site');
        if (name === '') throw new UsageError('site must not be empty');
        const hybridConnection = checkedHybridConnection(
          flags.hybridConnection ?? siteHybridConnectionName(name),
          '--hybrid-connection',
        );
        const ref = relayNamespaceRef(flags, io.env);
        const result = await ensureHybridConnection(await management(ref), {
          hybridConnection,
          userMetadata: `emfleet site ${name}`,
        });
        const install = hubInstallLines(ref, name, result);
        if (flags.json) {
          io.stdout(JSON.stringify({ ok: true, site: name, ...result, install }));
          return;
        }
        io.stdout(`site ${name}: ${describeProvisioning(result)}`);
        io.stdout("On the site's hub, with the site secret the agents' install wrote (site.secret):");
        for (const line of install) io.stdout(`  ${line}`);
        io.stdout(`Then register its servers: emfleet servers add NAME --build B --site ${name}`);
      },
    );
  return command;
}

export interface ServerRelayFlags extends RelayManagementFlags {
  readonly site?: string;
  readonly relayHc?: string;
  readonly ownHybridConnection?: boolean;
}

/**
 * Where `servers add` puts a server: behind its site's hub (--site, the default layout for a site),
 * or on a hybrid connection of its own (--own-hybrid-connection, created here through ARM).
 * Without either, the registration keeps whatever the row had (a new row: its own hybrid
 * connection, named after it, which must already exist).
 */
export async function serverRelayPlacement(
  server: string,
  flags: ServerRelayFlags,
  io: CliIo,
  management: RelayManagementFactory,
): Promise<{
  relayHybridConnection?: string;
  relayPath?: string;
  provisioned?: HybridConnectionProvisioning;
}> {
  if (flags.ownHybridConnection) {
    const hybridConnection = checkedHybridConnection(flags.relayHc ?? server, '--relay-hc');
    const provisioned = await ensureHybridConnection(await management(relayNamespaceRef(flags, io.env)), {
      hybridConnection,
      userMetadata: `emfleet server ${server}`,
    });
    return { relayHybridConnection: hybridConnection, relayPath: '', provisioned };
  }
  if (flags.site !== undefined && flags.site !== '') {
    return {
      relayHybridConnection: checkedHybridConnection(
        flags.relayHc ?? siteHybridConnectionName(flags.site),
        '--relay-hc',
      ),
      relayPath: server,
    };
  }
  return flags.relayHc === undefined
    ? {}
    : { relayHybridConnection: checkedHybridConnection(flags.relayHc, '--relay-hc') };
}
