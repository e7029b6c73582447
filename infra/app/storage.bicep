// The one storage account: the Functions host's own storage, the Flex Consumption deployment
// container, and emfleet's queues and tables. Reached only with Microsoft Entra ID (no shared keys).

param name string
param location string
param tags object
@description('Standard_LRS, Standard_ZRS (where the region offers it), Standard_GRS or Standard_GZRS.')
param skuName string
@description('EMFLEET_TABLE_PREFIX: lets several deployments share one account.')
param tablePrefix string
param deploymentContainerName string
@description('Log Analytics workspace that keeps Storage\'s own log of every table write and delete.')
param workspaceId string

// lib/fleet/queues.ts queueNames (+ the host's poison queue for apply) and lib/fleet/storage.ts
// tableNames; a test keeps these lists equal to the code's.
var queueNames = [
  'emfleet-waves'
  'emfleet-apply'
  'emfleet-gate'
  'emfleet-apply-poison'
]
var tableNames = [
  'Servers'
  'Policy'
  'Packages'
  'Rollouts'
  'Results'
  'Audit'
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }

  resource blobs 'blobServices' = {
    name: 'default'

    resource deployment 'containers' = {
      name: deploymentContainerName
    }
  }

  resource queueService 'queueServices' = {
    name: 'default'

    resource queue 'queues' = [for queue in queueNames: {
      name: queue
    }]
  }

  resource tableService 'tableServices' = {
    name: 'default'

    resource table 'tables' = [for table in tableNames: {
      name: '${tablePrefix}${table}'
    }]
  }
}

// Storage's own record of every write and delete on the tables, with the caller's Entra identity,
// in the Log Analytics workspace (StorageTableLogs), where operators have no role: the copy of the
// Audit table for changes made outside the app (the CLI writes the tables directly); changes made
// through the app are also logged as AuditRecorded to Application Insights (lib/fleet/audit.ts).
resource tableLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: storage::tableService
  name: 'emfleet-table-writes'
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = storage.name
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
