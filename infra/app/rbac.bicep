// Every role the deployment grants, each on one resource, data-plane roles only (a test rejects
// role assignments at subscription or resource-group scope, privileged roles, and roles not
// listed here).

param appPrincipalId string
param storageAccountName string
param relayNamespaceName string
@description('Assign Azure Relay Sender only when the app sends with its identity.')
param relaySendWithIdentity bool
param keyVaultName string
param appInsightsName string
@description('People or groups who run the emfleet CLI (servers, policy, rollouts) against the tables and queues.')
param operatorPrincipalIds string[]

// Built-in role definition IDs (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  // The Functions host: leases, timers and function keys in blobs, and the Flex deployment package.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Queue triggers (with their -poison queues) and the rollout steps that enqueue.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // emfleet's tables (lib/fleet).
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Send to the agents' hybrid connections with an Entra token (lib/relay/sender.ts).
  azureRelaySender: '26baccc8-eea7-41f1-98f4-1762cc7f685d'
  // Key Vault references in the app settings.
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  // Telemetry to Application Insights with local authentication off.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource relay 'Microsoft.Relay/namespaces@2024-01-01' existing = {
  name: relayNamespaceName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appRelaySender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (relaySendWithIdentity) {
  scope: relay
  name: guid(relay.id, appPrincipalId, roles.azureRelaySender)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.azureRelaySender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource operatorTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: storage
  name: guid(storage.id, operator, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: operator
  }
}]

resource operatorQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: storage
  name: guid(storage.id, operator, roles.storageQueueDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: operator
  }
}]
