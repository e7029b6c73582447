import type { Node } from 'web-tree-sitter';
import {
  isType,
  literalValue,
  problemAt,
  property,
  reachableStrings,
  resources,
  type BicepDocument,
  type InfraProblem,
} from './bicep.js';

/**
 * Least privilege, read from the Bicep tree: every role assignment on one named resource, with a
 * data-plane role emfleet needs or a custom role of data actions it needs; every Azure Relay rule
 * with a single right, and agents' rules on hybrid connections Listen only.
 */

/** The roles a deployment may grant, by built-in role definition ID. */
export const allowedRoles: Readonly<Record<string, string>> = {
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
  '26baccc8-eea7-41f1-98f4-1762cc7f685d': 'Azure Relay Sender',
  '4633458b-17de-408a-b874-0445c86b69e6': 'Key Vault Secrets User',
  '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
  '76199698-9eea-4c19-bc75-cec21354c6b6': 'Storage Table Data Reader',
  'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a': 'Storage Queue Data Message Sender',
};

/**
 * The data actions a custom role of the deployment may hold: reading and inserting table rows
 * (the Audit table's append-only operators). No management actions, no update, replace or delete.
 */
export const allowedCustomDataActions: readonly string[] = [
  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read',
  'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action',
];

/** Roles that manage resources or hand out access: never granted, named so the message says which. */
export const privilegedRoles: Readonly<Record<string, string>> = {
  '8e3af657-a8ff-443c-a75c-2fe8c4bcb635': 'Owner',
  'b24988ac-6180-42a0-ab88-20f7382dd24c': 'Contributor',
  '18d7d88d-d35e-4fb5-a5c3-7773c20a72d9': 'User Access Administrator',
  'f58310d9-a9f6-439a-9e8d-f62e7b41a168': 'Role Based Access Control Administrator',
  '2787bf04-f1f5-4bfe-8383-c8a24483ee38': 'Azure Relay Owner',
  '17d1049b-9a84-46fb-8f53-869881c3d3ab': 'Storage Account Contributor',
};

const guid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const broadScopes = new Set(['subscription', 'resourcegroup', 'managementgroup', 'tenant']);
const broadScopeTypes = new Set([
  'microsoft.resources/resourcegroups',
  'microsoft.resources/subscriptions',
  'microsoft.management/managementgroups',
]);

export function privilegeProblems(document: BicepDocument): InfraProblem[] {
  return [
    ...roleAssignmentProblems(document),
    ...customRoleProblems(document),
    ...relayRuleProblems(document),
    ...privilegedRoleMentions(document),
  ].sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The custom roles the file defines, by symbol: a role assignment may grant one as `symbol.id`. */
function customRoles(document: BicepDocument): Map<string, ReturnType<typeof resources>[number]> {
  return new Map(
    resources(document)
      .filter((resource) => !resource.existing && isType(resource, 'Microsoft.Authorization/roleDefinitions'))
      .map((resource) => [resource.symbol, resource]),
  );
}

/** A custom role holds no management action and only the data actions emfleet needs (allowedCustomDataActions). */
function customRoleProblems(document: BicepDocument): InfraProblem[] {
  const problems: InfraProblem[] = [];
  for (const [symbol, role] of customRoles(document)) {
    const permissionsNode = property(property(role.body, 'properties'), 'permissions');
    const permissions = literalValue(permissionsNode)?.value;
    const at = (node: Node | undefined, message: string): void =>
      void problems.push(problemAt(document, node ?? role.node, `custom role ${symbol}: ${message}`));
    if (!Array.isArray(permissions)) {
      at(permissionsNode, 'permissions must be a literal list, so the check can see them');
      continue;
    }
    for (const permission of permissions as Record<string, unknown>[]) {
      const actions = permission['actions'];
      if (Array.isArray(actions) && actions.length > 0)
        at(
          permissionsNode,
          `has management actions ${JSON.stringify(actions)}; a custom role of emfleet holds data actions only`,
        );
      const dataActions = permission['dataActions'];
      for (const action of Array.isArray(dataActions) ? dataActions : []) {
        if (typeof action !== 'string' || !allowedCustomDataActions.includes(action))
          at(
            permissionsNode,
            `has data action ${JSON.stringify(action)}, which is not one emfleet needs (tools/infra-checks/privilege.ts allowedCustomDataActions)`,
          );
      }
    }
  }
  return problems;
}

function roleAssignmentProblems(document: BicepDocument): InfraProblem[] {
  const problems: InfraProblem[] = [];
  const declared = resources(document);
  const typeOf = new Map(declared.map((resource) => [resource.symbol, resource.type.toLowerCase()]));
  for (const assignment of declared.filter(
    (resource) => !resource.existing && isType(resource, 'Microsoft.Authorization/roleAssignments'),
  )) {
    const at = (node: Node | undefined, message: string): void =>
      void problems.push(
        problemAt(document, node ?? assignment.node, `role assignment ${assignment.symbol}: ${message}`),
      );
    const scope = property(assignment.body, 'scope');
    if (!scope) {
      at(
        assignment.node,
        'no scope, so it applies to the whole resource group (or subscription) it is deployed to; set scope to the one resource it is for',
      );
    } else {
      const problem = scopeProblem(scope, typeOf);
      if (problem) at(scope, problem);
    }
    const roleDefinition = property(property(assignment.body, 'properties'), 'roleDefinitionId');
    if (!roleDefinition) {
      at(assignment.node, 'no properties.roleDefinitionId');
      continue;
    }
    // `auditAppender.id`: a custom role this file defines, checked on its own (customRoleProblems).
    const custom = /^(\w+)\.id$/.exec(roleDefinition.text)?.[1];
    if (custom !== undefined && customRoles(document).has(custom)) continue;
    const { strings, complete } = reachableStrings(document, roleDefinition);
    const roleIds = [
      ...new Set(strings.flatMap((text) => text.match(guid) ?? []).map((id) => id.toLowerCase())),
    ];
    if (roleIds.length === 0 || !complete)
      at(
        roleDefinition,
        'cannot tell which role it grants: use a literal role definition ID (or a variable holding one), not a parameter',
      );
    for (const roleId of roleIds) {
      if (privilegedRoles[roleId])
        at(
          roleDefinition,
          `grants ${privilegedRoles[roleId]} (${roleId}); grant a data-plane role on one resource instead`,
        );
      else if (!allowedRoles[roleId])
        at(
          roleDefinition,
          `grants role ${roleId}, which is not one of the roles emfleet needs (tools/infra-checks/privilege.ts allowedRoles)`,
        );
    }
  }
  return problems;
}

function scopeProblem(scope: Node, typeOf: ReadonlyMap<string, string>): string | undefined {
  if (scope.type === 'call_expression') {
    const name = scope.childForFieldName('function')?.text ?? '';
    if (broadScopes.has(name.toLowerCase()))
      return `scope is ${name}(); scope it to the one resource it is for`;
    return `scope is computed by ${name}(); use the symbol of the resource it is for`;
  }
  // `storage`, `hybridConnection[index]`, `storage::queueService`: the symbol they start from.
  const symbol =
    scope.type === 'identifier'
      ? scope.text
      : scope.type === 'subscript_expression'
        ? scope.childForFieldName('object')?.text
        : undefined;
  const type = symbol === undefined ? undefined : typeOf.get(symbol);
  if (type === undefined)
    return `scope ${JSON.stringify(scope.text)} is not a resource declared in this file; use the symbol of the resource it is for`;
  if (broadScopeTypes.has(type))
    return `scope ${symbol} is a ${type}; scope it to the one resource it is for`;
  return undefined;
}

function relayRuleProblems(document: BicepDocument): InfraProblem[] {
  const problems: InfraProblem[] = [];
  for (const rule of resources(document).filter(
    (resource) =>
      !resource.existing && /^microsoft\.relay\/namespaces\/(.+\/)?authorizationrules$/i.test(resource.type),
  )) {
    const onHybridConnection = /\/hybridconnections\/authorizationrules$/i.test(rule.type);
    const rightsNode = property(property(rule.body, 'properties'), 'rights');
    const rights = literalValue(rightsNode)?.value;
    const at = (message: string): void =>
      void problems.push(
        problemAt(document, rightsNode ?? rule.node, `relay rule ${rule.symbol}: ${message}`),
      );
    if (!Array.isArray(rights) || rights.some((right) => typeof right !== 'string')) {
      at('rights must be a literal list, so the check can see them');
      continue;
    }
    if (rights.includes('Manage'))
      at('has Manage rights, which include Send and Listen and control of the rule keys');
    else if (onHybridConnection && (rights.length !== 1 || rights[0] !== 'Listen'))
      at(
        `an agent's rule must be ['Listen'] only, has ${JSON.stringify(rights)}: with Send it could call other agents`,
      );
    else if (rights.length !== 1)
      at(
        `has ${JSON.stringify(rights)}; a rule carries one right, Listen (agents) or Send (the app's SAS fallback)`,
      );
  }
  return problems;
}

/**
 * A privileged role's ID anywhere else (a variable, a module parameter) is already a mistake; in
 * a role assignment's own roleDefinitionId it is reported above.
 */
function privilegedRoleMentions(document: BicepDocument): InfraProblem[] {
  const reported = resources(document)
    .filter((resource) => isType(resource, 'Microsoft.Authorization/roleAssignments'))
    .map((assignment) => property(property(assignment.body, 'properties'), 'roleDefinitionId'))
    .filter((node) => node !== undefined);
  const problems: InfraProblem[] = [];
  for (const text of document.root.descendantsOfType('string_content')) {
    if (reported.some((node) => text.startIndex >= node.startIndex && text.endIndex <= node.endIndex))
      continue;
    for (const id of text.text.match(guid) ?? []) {
      const role = privilegedRoles[id.toLowerCase()];
      if (role)
        problems.push(
          problemAt(
            document,
            text,
            `mentions the ${role} role (${id}); emfleet grants data-plane roles only`,
          ),
        );
    }
  }
  return problems;
}

/** The rule Azure Relay creates in every namespace: Manage, Send and Listen on every hybrid connection. */
export const relayRootRuleName = 'RootManageSharedAccessKey';

/**
 * Over the whole deployment: a relay namespace it creates has its default RootManageSharedAccessKey
 * watched (an activity log alert on reading, regenerating or re-creating its keys), since a
 * deployment cannot delete that rule (infra/README.md deletes it by hand); and nothing declares
 * a rule of that name again.
 */
export function relayRootKeyProblems(documents: readonly BicepDocument[]): InfraProblem[] {
  const problems: InfraProblem[] = [];
  const watched = documents.some((document) =>
    resources(document).some(
      (resource) =>
        !resource.existing &&
        isType(resource, 'Microsoft.Insights/activityLogAlerts') &&
        resource.body?.text.includes(`/authorizationRules/${relayRootRuleName}`) &&
        resource.body.text.includes('Microsoft.Relay/namespaces/authorizationRules/listKeys/action'),
    ),
  );
  for (const document of documents) {
    for (const resource of resources(document).filter((item) => !item.existing)) {
      if (isType(resource, 'Microsoft.Relay/namespaces') && !watched) {
        problems.push(
          problemAt(
            document,
            resource.node,
            `relay namespace ${resource.symbol}: its default ${relayRootRuleName} (Manage) is not watched; add an activity log alert on Microsoft.Relay/namespaces/authorizationRules/listKeys/action for it`,
          ),
        );
      }
      if (
        /^microsoft\.relay\/namespaces\/(.+\/)?authorizationrules$/i.test(resource.type) &&
        literalValue(property(resource.body, 'name'))?.value === relayRootRuleName
      ) {
        problems.push(
          problemAt(
            document,
            resource.node,
            `relay rule ${resource.symbol}: declares ${relayRootRuleName} again; emfleet's rules are Listen per hybrid connection and, in the SAS fallback, one Send rule`,
          ),
        );
      }
    }
  }
  return problems;
}
