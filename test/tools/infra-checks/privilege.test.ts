import { describe, expect, it } from 'vitest';
import { formatProblem, parseBicep } from '../../../tools/infra-checks/bicep.js';
import { privilegeProblems, relayRootKeyProblems } from '../../../tools/infra-checks/privilege.js';
import { repoBicep, repoDocument } from './fixture.js';

async function problems(text: string): Promise<string[]> {
  return privilegeProblems(await parseBicep('bad.bicep', text)).map(formatProblem);
}

const storage =
  "resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {\n  name: 'st'\n}\n";
const blobOwner =
  "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b')";

function assignment(lines: { scope?: string; role?: string }): string {
  return [
    "resource grant 'Microsoft.Authorization/roleAssignments@2022-04-01' = {",
    "  name: guid('x')",
    ...(lines.scope === undefined ? [] : [`  scope: ${lines.scope}`]),
    '  properties: {',
    `    roleDefinitionId: ${lines.role ?? blobOwner}`,
    "    principalId: 'p'",
    '  }',
    '}',
  ].join('\n');
}

describe('least privilege', () => {
  it('the deployment grants only data-plane roles on single resources, and agents only Listen', async () => {
    expect((await repoBicep()).flatMap(privilegeProblems).map(formatProblem)).toEqual([]);
  });

  it("watches the relay namespace's default RootManageSharedAccessKey (a deployment cannot delete it): an alert on reading or regenerating its keys", async () => {
    const documents = await repoBicep();
    expect(relayRootKeyProblems(documents).map(formatProblem)).toEqual([]);
    const monitoring = await repoDocument('infra/app/monitoring.bicep');
    const unwatched = await parseBicep(
      'infra/app/monitoring.bicep',
      monitoring.text.replace(/resource relayRootKeyAlert [\s\S]*?\n}\n/, ''),
    );
    expect(unwatched.text).not.toBe(monitoring.text);
    const withoutAlert = documents.map((document) =>
      document.file === 'infra/app/monitoring.bicep' ? unwatched : document,
    );
    expect(relayRootKeyProblems(withoutAlert).map(formatProblem)).toEqual([
      expect.stringMatching(
        /^infra\/app\/relay\.bicep:\d+:\d+: relay namespace namespace: its default RootManageSharedAccessKey \(Manage\) is not watched/,
      ),
    ]);
    const redeclared = await parseBicep(
      'bad.bicep',
      "resource ns 'Microsoft.Relay/namespaces@2024-01-01' existing = {\n  name: 'ns'\n}\nresource root 'Microsoft.Relay/namespaces/authorizationRules@2024-01-01' = {\n  parent: ns\n  name: 'RootManageSharedAccessKey'\n  properties: {\n    rights: [\n      'Listen'\n    ]\n  }\n}\n",
    );
    expect(relayRootKeyProblems([...documents, redeclared]).map(formatProblem)).toEqual([
      expect.stringMatching(/^bad\.bicep:4:1: relay rule root: declares RootManageSharedAccessKey again/),
    ]);
  });

  it('sees every role assignment of the deployment, with the role it grants', async () => {
    // Guards the check itself: had it stopped recognising role assignments, the test above would pass vacuously.
    const rbac = await repoDocument('infra/app/rbac.bicep');
    const withOwner = rbac.text.replace(
      /storageBlobDataOwner: '[^']+'/,
      "storageBlobDataOwner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'",
    );
    const found = privilegeProblems(await parseBicep('infra/app/rbac.bicep', withOwner)).map(formatProblem);
    expect(found).toEqual([
      expect.stringMatching(/^infra\/app\/rbac\.bicep:\d+:\d+: mentions the Owner role/),
      expect.stringMatching(/^infra\/app\/rbac\.bicep:\d+:\d+: role assignment appBlob: grants Owner/),
    ]);
  });

  it('accepts a data-plane role on one resource, through a variable or a loop', async () => {
    expect(await problems(`${storage}${assignment({ scope: 'storage' })}`)).toEqual([]);
    const looped = `${storage}var roles = [\n  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'\n  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'\n]\nresource grants 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: {\n  name: guid(role)\n  scope: storage\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)\n    principalId: 'p'\n  }\n}]\n`;
    expect(await problems(looped)).toEqual([]);
  });

  it.each([
    {
      name: 'no scope (the resource group it is deployed to)',
      text: `${storage}${assignment({})}`,
      message: /^bad\.bicep:4:1: role assignment grant: no scope/,
    },
    {
      name: 'subscription()',
      text: `${storage}${assignment({ scope: 'subscription()' })}`,
      message: /^bad\.bicep:6:10: role assignment grant: scope is subscription\(\)/,
    },
    {
      name: 'resourceGroup()',
      text: `${storage}${assignment({ scope: 'resourceGroup()' })}`,
      message: /^bad\.bicep:6:10: role assignment grant: scope is resourceGroup\(\)/,
    },
    {
      name: 'a resource group symbol',
      text: `resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' existing = {\n  name: 'rg'\n}\n${assignment({ scope: 'rg' })}`,
      message: /^bad\.bicep:6:10: role assignment grant: scope rg is a microsoft\.resources\/resourcegroups/,
    },
    {
      name: 'a scope that is not a declared resource',
      text: assignment({ scope: 'someId' }),
      message:
        /^bad\.bicep:3:10: role assignment grant: scope "someId" is not a resource declared in this file/,
    },
    {
      name: 'Owner',
      text: `${storage}${assignment({ scope: 'storage', role: "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '8e3af657-a8ff-443c-a75c-2fe8c4bcb635')" })}`,
      message: /^bad\.bicep:8:23: role assignment grant: grants Owner/,
    },
    {
      name: 'Contributor through a variable',
      text: `var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c'\n${storage}${assignment({ scope: 'storage', role: "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)" })}`,
      message: /role assignment grant: grants Contributor/,
    },
    {
      name: 'User Access Administrator by its full ID',
      text: `${storage}${assignment({ scope: 'storage', role: "'/providers/Microsoft.Authorization/roleDefinitions/18d7d88d-d35e-4fb5-a5c3-7773c20a72d9'" })}`,
      message: /role assignment grant: grants User Access Administrator/,
    },
    {
      name: 'a role emfleet does not need',
      text: `${storage}${assignment({ scope: 'storage', role: "'acdd72a7-3385-48ef-bd42-f606fba81ae7'" })}`,
      message:
        /role assignment grant: grants role acdd72a7-3385-48ef-bd42-f606fba81ae7, which is not one of the roles emfleet needs/,
    },
    {
      name: 'a role from a parameter',
      text: `param role string\n${storage}${assignment({ scope: 'storage', role: 'role' })}`,
      message: /^bad\.bicep:9:23: role assignment grant: cannot tell which role it grants/,
    },
    {
      name: 'a role partly from a parameter',
      text: `param role string\n${storage}${assignment({ scope: 'storage', role: "true ? '974c5e8b-45b9-4653-ba55-5f855dd0fb88' : role" })}`,
      message: /^bad\.bicep:9:23: role assignment grant: cannot tell which role it grants/,
    },
    {
      name: 'a privileged role mentioned anywhere',
      text: "var roles = {\n  owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'\n}\n",
      message: /^bad\.bicep:2:11: mentions the Owner role/,
    },
  ])('rejects a role assignment with $name', async ({ text, message }) => {
    const found = await problems(text);
    expect(found).toContainEqual(expect.stringMatching(message));
  });

  const rule = (type: string, rights: string): string =>
    `resource ns 'Microsoft.Relay/namespaces@2024-01-01' existing = {\n  name: 'ns'\n}\nresource hc 'Microsoft.Relay/namespaces/hybridConnections@2024-01-01' existing = {\n  parent: ns\n  name: 'ex01'\n}\nresource rule '${type}' = {\n  parent: ${type.includes('hybridConnections') ? 'hc' : 'ns'}\n  name: 'r'\n  properties: {\n    rights: ${rights}\n  }\n}\n`;

  it.each([
    {
      name: 'an agent rule with Send',
      text: rule(
        'Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01',
        "[\n      'Listen'\n      'Send'\n    ]",
      ),
      message: /^bad\.bicep:12:13: relay rule rule: an agent's rule must be \['Listen'\] only/,
    },
    {
      name: 'an agent rule with Manage',
      text: rule(
        'Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01',
        "[\n      'Manage'\n      'Listen'\n      'Send'\n    ]",
      ),
      message: /^bad\.bicep:12:13: relay rule rule: has Manage rights/,
    },
    {
      name: 'an agent rule with Send only',
      text: rule(
        'Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01',
        "[\n      'Send'\n    ]",
      ),
      message: /an agent's rule must be \['Listen'\] only/,
    },
    {
      name: 'a namespace rule with Listen and Send',
      text: rule(
        'Microsoft.Relay/namespaces/authorizationRules@2024-01-01',
        "[\n      'Listen'\n      'Send'\n    ]",
      ),
      message: /^bad\.bicep:12:13: relay rule rule: has \["Listen","Send"\]; a rule carries one right/,
    },
    {
      name: 'rights from a parameter',
      text: `param rights array\n${rule('Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01', 'rights')}`,
      message: /^bad\.bicep:13:13: relay rule rule: rights must be a literal list/,
    },
  ])('rejects $name', async ({ text, message }) => {
    expect(await problems(text)).toEqual([expect.stringMatching(message)]);
  });

  const customRole = (dataActions: string[], actions: string[] = []): string =>
    `${storage}resource appender 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {\n  name: guid('a')\n  properties: {\n    roleName: 'r'\n    type: 'CustomRole'\n    permissions: [\n      {\n        actions: [${actions.map((action) => `\n          '${action}'`).join('')}\n        ]\n        dataActions: [${dataActions.map((action) => `\n          '${action}'`).join('')}\n        ]\n      }\n    ]\n    assignableScopes: [\n      resourceGroup().id\n    ]\n  }\n}\n${assignment({ scope: 'storage', role: 'appender.id' })}`;
  const read = 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read';
  const add = 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action';

  it("accepts a custom role that only reads and inserts table rows (the Audit table's append-only operators)", async () => {
    expect(await problems(customRole([read, add]))).toEqual([]);
  });

  it.each([
    {
      name: 'update (rewriting audit rows)',
      role: customRole([
        read,
        add,
        'Microsoft.Storage/storageAccounts/tableServices/tables/entities/update/action',
      ]),
      message:
        /custom role appender: has data action "Microsoft\.Storage\/storageAccounts\/tableServices\/tables\/entities\/update\/action", which is not one emfleet needs/,
    },
    {
      name: 'delete',
      role: customRole([read, 'Microsoft.Storage/storageAccounts/tableServices/tables/entities/delete']),
      message: /custom role appender: has data action ".*entities\/delete"/,
    },
    {
      name: 'a wildcard',
      role: customRole(['Microsoft.Storage/*']),
      message: /custom role appender: has data action "Microsoft\.Storage\/\*"/,
    },
    {
      name: 'management actions',
      role: customRole([read], ['Microsoft.Authorization/roleAssignments/write']),
      message:
        /custom role appender: has management actions \["Microsoft\.Authorization\/roleAssignments\/write"\]/,
    },
  ])('rejects a custom role with $name', async ({ role, message }) => {
    expect(await problems(role)).toEqual([expect.stringMatching(message)]);
  });

  it('sees nested rule declarations as the types they are', async () => {
    const nested =
      "resource ns 'Microsoft.Relay/namespaces@2024-01-01' = {\n  name: 'ns'\n  resource hc 'hybridConnections' = {\n    name: 'ex01'\n    resource listen 'authorizationRules' = {\n      name: 'listen'\n      properties: {\n        rights: [\n          'Listen'\n          'Send'\n        ]\n      }\n    }\n  }\n}\n";
    expect(await problems(nested)).toEqual([
      expect.stringMatching(/^bad\.bicep:8:17: relay rule listen: an agent's rule must be \['Listen'\] only/),
    ]);
  });
});
