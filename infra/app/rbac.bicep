// Every role the deployment grants, each on one resource, data-plane roles only (a test rejects
// role assignments at subscription or resource-group scope, privileged roles, roles not listed
// here, and custom roles with management actions or data actions beyond tools/infra-checks/privilege.ts's).

param appPrincipalId string
param storageAccountName string
param relayNamespaceName string
@description('Assign Azure Relay Sender only when the app sends with its identity.')
param relaySendWithIdentity bool
param keyVaultName string
param appInsightsName string
@description('People or groups who run the emfleet CLI (servers, policy, rollouts) against the tables and queues.')
param operatorPrincipalIds string[]
@description('EMFLEET_TABLE_PREFIX: the operators\' roles are on the tables by name.')
param tablePrefix string

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
  // Operators: the Results table is the agents' answers, read but never written by hand.
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  // Operators: resume, expedite and `feed accept` enqueue wave and gate messages.
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
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

// Operators (the emfleet CLI) get exactly the tables and queues it uses, each role on the one
// table or queue: read-write on Servers, Policy, Rollouts and Packages (servers, policy,
// rollout pause/resume/abort/expedite, `feed accept`), read-only on Results, append-only on Audit,
// send-only on the waves and gate queues. Nothing on the account, blobs (the host's keys and
// leases) or the apply queue. The app keeps its account-wide roles above: the Audit table is
// append-only for everyone but the app.

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource serversTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Servers'
}

resource policyTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Policy'
}

resource rolloutsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Rollouts'
}

resource packagesTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Packages'
}

resource resultsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Results'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: '${tablePrefix}Audit'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource wavesQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: 'emfleet-waves'
}

resource gateQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: 'emfleet-gate'
}

// Append-only: read and insert entities, never update, replace or delete them (lib/fleet/audit.ts
// writes audit rows with insert only). A custom role because no built-in table role stops at insert.
resource auditAppender 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'emfleet-audit-appender')
  properties: {
    roleName: 'emfleet Audit Appender (${resourceGroup().name})'
    description: 'Read and insert rows of the emfleet Audit table; no update, replace or delete.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/read'
          'Microsoft.Storage/storageAccounts/tableServices/tables/entities/add/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource operatorServers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: serversTable
  name: guid(serversTable.id, operator, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: operator
  }
}]

resource operatorPolicy 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: policyTable
  name: guid(policyTable.id, operator, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: operator
  }
}]

resource operatorRollouts 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: rolloutsTable
  name: guid(rolloutsTable.id, operator, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: operator
  }
}]

resource operatorPackages 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: packagesTable
  name: guid(packagesTable.id, operator, roles.storageTableDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: operator
  }
}]

resource operatorResults 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: resultsTable
  name: guid(resultsTable.id, operator, roles.storageTableDataReader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
    principalId: operator
  }
}]

resource operatorAudit 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: auditTable
  name: guid(auditTable.id, operator, auditAppender.id)
  properties: {
    roleDefinitionId: auditAppender.id
    principalId: operator
  }
}]

resource operatorWaves 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: wavesQueue
  name: guid(wavesQueue.id, operator, roles.storageQueueDataMessageSender)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: operator
  }
}]

resource operatorGate 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operatorPrincipalIds: {
  scope: gateQueue
  name: guid(gateQueue.id, operator, roles.storageQueueDataMessageSender)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataMessageSender)
    principalId: operator
  }
}]
