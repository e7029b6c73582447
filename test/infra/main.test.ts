import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hubConfigSchema } from '../../lib/agent/config.js';
import { siteHybridConnectionName } from '../../lib/relay/route.js';
import {
  declarations,
  formatProblem,
  isType,
  literalValue,
  outputs,
  parseBicep,
  property,
  resources,
  stringLiteral,
  type BicepDocument,
  type ResourceDeclaration,
} from '../../tools/infra-checks/bicep.js';
import { moduleProblems } from '../../tools/infra-checks/modules.js';
import { allowedRoles } from '../../tools/infra-checks/privilege.js';
import { orgName, siteName } from '../../lib/model/names.js';
import { queueNames } from '../../lib/fleet/queues.js';
import { tableNames } from '../../lib/fleet/storage.js';
import { waveProfile } from '../../lib/model/waves.js';
import { allFunctions } from '../../functions/index.js';
import { repoBicep, repoDocument, repoRoot } from '../tools/infra-checks/fixture.js';

/** The template covers every resource the issue asks for, configured the way the code expects. */

async function resource(
  file: string,
  type: string,
): Promise<ResourceDeclaration & { document: BicepDocument }> {
  const document = await repoDocument(file);
  const found = resources(document).filter((item) => !item.existing && isType(item, type));
  expect(found, `${file} declares one ${type}`).toHaveLength(1);
  return { ...found[0]!, document };
}

function value(node: ReturnType<typeof property>): unknown {
  return literalValue(node)?.value;
}

function path(object: ReturnType<typeof property>, ...keys: string[]): ReturnType<typeof property> {
  return keys.reduce((at, key) => property(at, key), object);
}

describe('the template', () => {
  it('calls every module with the parameters it declares and reads only its outputs', async () => {
    const documents = await repoBicep();
    const problems = documents.flatMap((document) =>
      moduleProblems(document, (target) =>
        documents.find((candidate) => candidate.file === posix.join(posix.dirname(document.file), target)),
      ),
    );
    expect(problems.map(formatProblem)).toEqual([]);
    const main = await repoDocument('infra/main.bicep');
    const broken = await parseBicep(
      'infra/main.bicep',
      main.text
        .replace('tablePrefix: checkedTablePrefix', 'tablePrefx: checkedTablePrefix')
        .replace('relay.outputs.host', 'relay.outputs.hostname'),
    );
    expect(
      moduleProblems(broken, (target) =>
        documents.find((candidate) => candidate.file === posix.join('infra', target)),
      ).map(formatProblem),
    ).toEqual([
      expect.stringMatching(
        /^infra\/main\.bicep:\d+:1: module storage: required parameter tablePrefix of infra\/app\/storage\.bicep is not passed/,
      ),
      expect.stringMatching(
        /^infra\/main\.bicep:\d+:5: module storage: infra\/app\/storage\.bicep has no parameter tablePrefx/,
      ),
      expect.stringMatching(
        /^infra\/main\.bicep:\d+:\d+: module relay: infra\/app\/relay\.bicep has no output hostname/,
      ),
    ]);
  });

  it('runs the app on Flex Consumption (FC1), Node.js 22, with a system-assigned identity deploying from blob storage', async () => {
    const plan = await resource('infra/app/function.bicep', 'Microsoft.Web/serverfarms');
    expect(value(property(plan.body, 'sku'))).toEqual({ name: 'FC1', tier: 'FlexConsumption' });
    const site = await resource('infra/app/function.bicep', 'Microsoft.Web/sites');
    expect(value(property(site.body, 'identity'))).toEqual({ type: 'SystemAssigned' });
    expect(value(path(site.body, 'properties', 'httpsOnly'))).toBe(true);
    const config = path(site.body, 'properties', 'functionAppConfig');
    expect(value(property(config, 'runtime'))).toEqual({ name: 'node', version: '22' });
    expect(value(path(config, 'deployment', 'storage', 'authentication'))).toEqual({
      type: 'SystemAssignedIdentity',
    });
  });

  it("keeps Storage's own log of every table write and delete in the Log Analytics workspace", async () => {
    const logs = await resource('infra/app/storage.bicep', 'Microsoft.Insights/diagnosticSettings');
    expect(property(logs.body, 'scope')?.text).toBe('storage::tableService');
    expect(value(path(logs.body, 'properties', 'logs'))).toEqual([
      { category: 'StorageWrite', enabled: true },
      { category: 'StorageDelete', enabled: true },
    ]);
  });

  it('keeps storage identity-only, with the queues and tables the code uses', async () => {
    const storage = await resource('infra/app/storage.bicep', 'Microsoft.Storage/storageAccounts');
    expect(value(path(storage.body, 'properties', 'allowSharedKeyAccess'))).toBe(false);
    const variables = declarations(storage.document);
    expect(value(variables.get('queueNames')?.value)).toEqual([
      ...Object.values(queueNames),
      `${queueNames.apply}-poison`,
    ]);
    expect(value(variables.get('tableNames')?.value)).toEqual([...tableNames]);
    for (const type of ['blobServices/containers', 'queueServices/queues', 'tableServices/tables'])
      await resource('infra/app/storage.bicep', `Microsoft.Storage/storageAccounts/${type}`);
  });

  it('grants each data-plane role on the one resource that needs it; operators get the tables and queues the CLI uses, Audit append-only', async () => {
    const rbac = await repoDocument('infra/app/rbac.bicep');
    const roleIds = value(declarations(rbac).get('roles')?.value) as Record<string, string>;
    const declared = new Map(resources(rbac).map((item) => [item.symbol, item]));
    const grants = resources(rbac)
      .filter((item) => isType(item, 'Microsoft.Authorization/roleAssignments'))
      .map((item) => {
        const definition = path(item.body, 'properties', 'roleDefinitionId')?.text ?? '';
        const role =
          allowedRoles[roleIds[/roles\.(\w+)/.exec(definition)?.[1] ?? ''] ?? ''] ??
          (definition === 'auditAppender.id' ? 'emfleet Audit Appender' : definition);
        const scope = declared.get(property(item.body, 'scope')?.text ?? '');
        const scopeName = value(property(scope?.body, 'name'));
        return `${item.symbol}: ${role} on ${scope?.type.split('@')[0]}${typeof scopeName === 'string' ? ` ${scopeName}` : ''}`;
      });
    expect(grants).toEqual([
      'appBlob: Storage Blob Data Owner on Microsoft.Storage/storageAccounts',
      'appQueue: Storage Queue Data Contributor on Microsoft.Storage/storageAccounts',
      'appTable: Storage Table Data Contributor on Microsoft.Storage/storageAccounts',
      'appRelaySender: Azure Relay Sender on Microsoft.Relay/namespaces',
      'appSecrets: Key Vault Secrets User on Microsoft.KeyVault/vaults',
      'appTelemetry: Monitoring Metrics Publisher on Microsoft.Insights/components',
      'operatorServers: Storage Table Data Contributor on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorPolicy: Storage Table Data Contributor on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorRollouts: Storage Table Data Contributor on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorPackages: Storage Table Data Contributor on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorResults: Storage Table Data Reader on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorAudit: emfleet Audit Appender on Microsoft.Storage/storageAccounts/tableServices/tables',
      'operatorWaves: Storage Queue Data Message Sender on Microsoft.Storage/storageAccounts/queueServices/queues emfleet-waves',
      'operatorGate: Storage Queue Data Message Sender on Microsoft.Storage/storageAccounts/queueServices/queues emfleet-gate',
    ]);
    // Each operator table grant is on the table of its name (with the deployment's prefix).
    for (const [grant, table] of [
      ['operatorServers', 'serversTable'],
      ['operatorPolicy', 'policyTable'],
      ['operatorRollouts', 'rolloutsTable'],
      ['operatorPackages', 'packagesTable'],
      ['operatorResults', 'resultsTable'],
      ['operatorAudit', 'auditTable'],
    ] as const) {
      expect(property(declared.get(grant)?.body, 'scope')?.text).toBe(table);
      expect(property(declared.get(table)?.body, 'name')?.text).toBe(
        `'\${tablePrefix}${table.replace(/Table$/, '').replace(/^./, (first) => first.toUpperCase())}'`,
      );
    }
    expect(value(path(declared.get('auditAppender')?.body, 'properties', 'permissions'))).toEqual([
      {
        actions: [],
        notActions: [],
        dataActions: [
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read',
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action',
        ],
        notDataActions: [],
      },
    ]);
  });

  it('gives each site a hybrid connection that needs a token, with a Listen-only rule for its hub, and nothing per server', async () => {
    const relay = await repoDocument('infra/app/relay.bicep');
    const hybridConnection = await resource(
      'infra/app/relay.bicep',
      'Microsoft.Relay/namespaces/hybridConnections',
    );
    expect(hybridConnection.node.text).toMatch(/= \[for \(item, index\) in sites:/);
    expect(value(path(hybridConnection.body, 'properties', 'requiresClientAuthorization'))).toBe(true);
    const listen = await resource(
      'infra/app/relay.bicep',
      'Microsoft.Relay/namespaces/hybridConnections/authorizationRules',
    );
    expect(listen.node.text).toMatch(/= \[for \(item, index\) in sites:/);
    // The rule's name is the hub's (and agent's) default relay.keyName.
    expect(value(property(listen.body, 'name'))).toBe(
      hubConfigSchema.shape.relay.parse({ namespace: 'n', hybridConnection: 'h', key: 'k' }).keyName,
    );
    expect(declarations(relay).get('sendRuleName')?.value?.text).toBe("'send'");
    // The default name is the one `emfleet sites add` creates.
    expect(declarations(relay).get('hybridConnectionNames')?.value?.text).toBe(
      "[for item in sites: toLower(item.?hybridConnection ?? 'site-${item.name}')]",
    );
    expect(siteHybridConnectionName('Amsterdam')).toBe('site-amsterdam');
    // No parameter, loop or resource anywhere is per server: servers are rows, not resources.
    for (const document of await repoBicep()) {
      expect([...declarations(document).keys()], document.file).not.toContain('servers');
      expect(document.text, document.file).not.toMatch(/in servers\b/);
    }
  });

  it('keeps the SAS fallback key in Key Vault (RBAC), read from the rule itself', async () => {
    const vault = await resource('infra/app/keyvault.bicep', 'Microsoft.KeyVault/vaults');
    expect(value(path(vault.body, 'properties', 'enableRbacAuthorization'))).toBe(true);
    const secrets = resources(vault.document).filter((item) =>
      isType(item, 'Microsoft.KeyVault/vaults/secrets'),
    );
    const relayKey = secrets.find((item) => value(property(item.body, 'name')) === 'relay-send-key');
    expect(path(relayKey?.body, 'properties', 'value')?.text).toBe(
      "hasSendRule ? sendRule.listKeys().primaryKey : ''",
    );
  });

  it('puts App Service Authentication with Microsoft Entra ID in front of the admin API, which also needs a function key', async () => {
    const auth = resources(await repoDocument('infra/app/function.bicep')).find(
      (item) => value(property(item.body, 'name')) === 'authsettingsV2',
    );
    expect(value(path(auth?.body, 'properties', 'globalValidation'))).toMatchObject({
      requireAuthentication: true,
      unauthenticatedClientAction: 'Return401',
    });
    expect(
      value(path(auth?.body, 'properties', 'identityProviders', 'azureActiveDirectory', 'enabled')),
    ).toBe(true);
    // Only the listed principals, when given; the app checks the app roles on every route either way.
    expect(
      path(
        auth?.body,
        'properties',
        'identityProviders',
        'azureActiveDirectory',
        'validation',
        'defaultAuthorizationPolicy',
      )?.text,
    ).toMatch(/allowedPrincipals: \{\s*identities: adminApiPrincipalIds/);
    const settings = resources(await repoDocument('infra/main.bicep')).find(
      (item) => value(property(item.body, 'name')) === 'appsettings',
    );
    expect(value(path(settings?.body, 'properties', 'EMFLEET_ADMIN_AUTH'))).toBe('entra');
    const http = allFunctions.filter((definition) => definition.kind === 'http');
    expect(http.length).toBeGreaterThan(0);
    for (const definition of http)
      expect(definition.kind === 'http' && definition.options.authLevel, definition.name).toBe('function');
  });

  it('sends telemetry to Application Insights on a Log Analytics workspace and alerts on halts and poll failures', async () => {
    const insights = await resource('infra/app/monitoring.bicep', 'Microsoft.Insights/components');
    expect(path(insights.body, 'properties', 'WorkspaceResourceId')?.text).toBe('workspace.id');
    await resource('infra/app/monitoring.bicep', 'Microsoft.OperationalInsights/workspaces');
    const rule = await resource('infra/app/monitoring.bicep', 'Microsoft.Insights/scheduledQueryRules');
    expect(rule.node.text).toMatch(/= \[for alert in alerts:/);
    const alerts = value(declarations(rule.document).get('alerts')?.value) as {
      name: string;
      events: string[];
      state: string;
    }[];
    expect(alerts.map((alert) => alert.name)).toEqual(['rollout-halted', 'poll-failed', 'feed-frozen']);
    const logged = loggedEvents();
    for (const event of alerts.flatMap((alert) => alert.events))
      expect(logged, `lib/ logs ${event}`).toContain(event);
  });

  it("outputs the function app name, the relay namespace and each site's hybrid connection", async () => {
    const main = outputs(await repoDocument('infra/main.bicep'));
    expect([...main.keys()]).toEqual(
      expect.arrayContaining(['functionAppName', 'relayNamespace', 'hybridConnections']),
    );
    expect(main.get('hybridConnections')?.value?.text).toBe('relay.outputs.hybridConnections');
    expect(
      outputs(await repoDocument('infra/app/relay.bicep')).get('hybridConnections')?.value?.text,
    ).toMatch(
      /site: item\.name\s+hybridConnection: hybridConnection\[index\]\.name\s+listenRule: listenRule\[index\]\.name/,
    );
  });
});

describe('the parameters file', () => {
  it('is for main.bicep, assigns only its parameters and every required one', async () => {
    const parameters = await repoDocument('infra/main.bicepparam');
    expect(stringLiteral(parameters.root.descendantsOfType('using_statement')[0]?.namedChildren[0])).toBe(
      'main.bicep',
    );
    const declared = [...declarations(await repoDocument('infra/main.bicep')).values()].filter(
      (item) => item.kind === 'param',
    );
    const assigned = [...declarations(parameters).keys()];
    expect(assigned.filter((name) => !declared.some((item) => item.name === name))).toEqual([]);
    expect(
      declared
        .filter((item) => item.value === undefined)
        .map((item) => item.name)
        .filter((name) => !assigned.includes(name)),
    ).toEqual([]);
  });

  it('holds a realistic, valid example: sites, hybrid connections, org, waves, pins; ids and the anchor from the environment', async () => {
    const assigned = declarations(await repoDocument('infra/main.bicepparam'));
    const sites = value(assigned.get('sites')?.value) as { name: string; hybridConnection?: string }[];
    expect(sites.length).toBeGreaterThanOrEqual(2);
    for (const item of sites) {
      expect(siteName.safeParse(item.name).success, item.name).toBe(true);
      const hybridConnection = item.hybridConnection ?? siteHybridConnectionName(item.name);
      expect(
        hubConfigSchema.shape.relay.safeParse({
          namespace: 'contoso-emfleet.servicebus.windows.net',
          hybridConnection,
          key: 'k',
        }).success,
        hybridConnection,
      ).toBe(true);
    }
    expect(orgName.safeParse(value(assigned.get('org')?.value)).success).toBe(true);
    expect(waveProfile.safeParse(value(assigned.get('waves')?.value)).error).toBeUndefined();
    expect(value(assigned.get('trustAnchorSha256')?.value)).toEqual([
      expect.stringMatching(/^[0-9A-F]{64}$/),
    ]);
    expect(assigned.get('trustAnchors')?.value?.text).toBe(
      "readEnvironmentVariable('EMFLEET_TRUST_ANCHORS')",
    );
    // Made-up object and client ids fail role assignments with PrincipalNotFound: they are the deployer's to give.
    expect(assigned.get('adminApiClientId')?.value?.text).toBe(
      "readEnvironmentVariable('EMFLEET_ADMIN_API_CLIENT_ID')",
    );
    expect(assigned.get('operatorPrincipalIds')?.value?.text).toMatch(
      /^filter\(split\(readEnvironmentVariable\('EMFLEET_OPERATOR_OBJECT_IDS', ''\), ','\), /,
    );
    expect((await repoDocument('infra/main.bicepparam')).text).not.toMatch(
      /'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'/i,
    );
  });
});

describe('deployable as written', () => {
  const main = (): Promise<BicepDocument> => repoDocument('infra/main.bicep');

  /** The decorators written right above a parameter, as text. */
  function decoratorsOf(document: BicepDocument, name: string): string {
    const declaration = declarations(document).get(name);
    expect(declaration, `param ${name}`).toBeDefined();
    const previous = declaration!.node.previousNamedSibling;
    return previous?.type === 'decorators' ? previous.text : '';
  }

  it('name is checked (lower case, single hyphens) and only the checked name builds resource names', async () => {
    const document = await main();
    const scope = declarations(document);
    expect(scope.get('nameIsValid')?.value?.text).toBe(
      "empty(nameBadCharacters) && !contains(name, '--') && contains(lowerLetters, first(name)) && !endsWith(name, '-')",
    );
    expect(scope.get('nameBadCharacters')?.value?.text).toBe(
      "filter(range(0, length(name)), i => !contains('${lowerLetters}${digits}-', substring(name, i, 1)))",
    );
    expect(value(scope.get('lowerLetters')?.value)).toBe('abcdefghijklmnopqrstuvwxyz');
    expect(scope.get('deploymentName')?.value?.text).toMatch(/^nameIsValid \? name : fail\('name /);
    // After the checks, `name` appears only through deploymentName.
    // A reference to the parameter: `name` on its own (not `x.name`, not a `name:` key, not in a string or comment).
    const uses = document.root
      .descendantsOfType('identifier')
      .filter(
        (node) =>
          node.text === 'name' &&
          node.parent?.type !== 'member_expression' &&
          node.parent?.type !== 'object_property' &&
          node.parent?.type !== 'parameter_declaration',
      )
      .map((node) => node.startPosition.row + 1);
    const checkLines = ['nameBadCharacters', 'nameIsValid', 'deploymentName'].map(
      (symbol) => scope.get(symbol)!.node.startPosition.row + 1,
    );
    const paramLine = scope.get('name')!.node.startPosition.row + 1;
    expect(uses.filter((line) => line > paramLine && !checkLines.includes(line))).toEqual([]);
  });

  it('tablePrefix is checked (letters and digits, a letter first) and the checked one is used', async () => {
    const document = await main();
    const scope = declarations(document);
    expect(scope.get('tablePrefixIsValid')?.value?.text).toBe(
      'empty(tablePrefixBadCharacters) && (empty(tablePrefix) || !contains(digits, first(tablePrefix)))',
    );
    expect(scope.get('tablePrefixBadCharacters')?.value?.text).toContain(
      "!contains('${lowerLetters}${digits}', toLower(substring(tablePrefix, i, 1)))",
    );
    expect(scope.get('checkedTablePrefix')?.value?.text).toMatch(
      /^tablePrefixIsValid \? tablePrefix : fail\('tablePrefix /,
    );
    expect(document.text).not.toMatch(/: tablePrefix\b/);
    expect(document.text).toMatch(/EMFLEET_TABLE_PREFIX: checkedTablePrefix/);
  });

  it('maximumInstanceCount is 1 to 1000, as Flex Consumption allows', async () => {
    expect(decoratorsOf(await main(), 'maximumInstanceCount')).toMatch(/@minValue\(1\)\s+@maxValue\(1000\)/);
  });

  it('the storage SKU is a parameter (ZRS is not in every Flex Consumption region), passed to the account', async () => {
    const document = await main();
    expect(decoratorsOf(document, 'storageSku')).toMatch(
      /@allowed\(\[\s+'Standard_LRS'\s+'Standard_ZRS'\s+'Standard_GRS'\s+'Standard_GZRS'\s+\]\)/,
    );
    const storage = await resource('infra/app/storage.bicep', 'Microsoft.Storage/storageAccounts');
    expect(path(storage.body, 'sku', 'name')?.text).toBe('skuName');
    expect(document.text).toMatch(/skuName: storageSku/);
  });

  it('Key Vault can recover its soft-deleted self after the resource group is recreated', async () => {
    const document = await main();
    expect(decoratorsOf(document, 'keyVaultCreateMode')).toMatch(
      /@allowed\(\[\s+'default'\s+'recover'\s+\]\)/,
    );
    expect(value(declarations(document).get('keyVaultCreateMode')?.value)).toBe('default');
    const vault = await resource('infra/app/keyvault.bicep', 'Microsoft.KeyVault/vaults');
    expect(path(vault.body, 'properties', 'createMode')?.text).toBe('createMode');
    expect(document.text).toMatch(/createMode: keyVaultCreateMode/);
  });

  it('keyless (no send rule): the send rule is neither named nor asked for its keys', async () => {
    const vault = await repoDocument('infra/app/keyvault.bicep');
    const rule = resources(vault).find(
      (item) => item.existing && isType(item, 'Microsoft.Relay/namespaces/authorizationRules'),
    );
    expect(rule?.node.text).toMatch(/existing = if \(hasSendRule\)/);
    expect(property(rule?.body, 'name')?.text).toBe("hasSendRule ? relaySendRuleName : 'none'");
    expect(property(rule?.body, 'parent')?.text).toBe('relayNamespace');
    expect(declarations(vault).get('hasSendRule')?.value?.text).toBe('!empty(relaySendRuleName)');
    // Every listKeys() call sits in the true branch of hasSendRule.
    const calls = [...vault.text.matchAll(/\w+\.listKeys\(\)/g)].map((match) =>
      vault.text.slice(Math.max(0, match.index - 40), match.index + 'sendRule.'.length),
    );
    expect(calls.length).toBeGreaterThan(0);
    for (const before of calls) expect(before).toMatch(/hasSendRule \? sendRule\.$/);
    expect(outputs(vault).get('relaySendKeySecretUri')?.value?.text).toBe(
      "hasSendRule ? relaySendKey.properties.secretUri : ''",
    );
  });

  it('the admin API accepts v2 tokens for its app registration (issuer /v2.0, audience the client id or api://)', async () => {
    const auth = resources(await repoDocument('infra/app/function.bicep')).find(
      (item) => value(property(item.body, 'name')) === 'authsettingsV2',
    );
    const aad = path(auth?.body, 'properties', 'identityProviders', 'azureActiveDirectory');
    expect(path(aad, 'registration', 'openIdIssuer')?.text).toMatch(/\/v2\.0'$/);
    expect(path(aad, 'validation', 'allowedAudiences')?.text).toMatch(
      /'api:\/\/\$\{adminApiClientId\}'\s+adminApiClientId/,
    );
  });
});

/** Every event name lib/ logs through a Logger (`logger.info('Name', ...)` and the like). */
function loggedEvents(): Set<string> {
  const events = new Set<string>();
  const walk = (directory: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const at = join(directory, entry.name);
      if (entry.isDirectory()) walk(at);
      else if (entry.name.endsWith('.ts'))
        for (const match of readFileSync(at, 'utf8').matchAll(/\.(?:info|warn|error)\('([A-Z][A-Za-z]+)'/g))
          events.add(match[1]!);
    }
  };
  walk(join(repoRoot, 'lib'));
  return events;
}
