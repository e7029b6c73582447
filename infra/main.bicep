// emfleet: cloud-managed Exchange Emergency Mitigation for a fleet. See README.md.
//   az deployment group create --resource-group <rg> --template-file infra/main.bicep --parameters infra/main.bicepparam

metadata description = 'emfleet: Functions on Flex Consumption, Storage (identity only), Azure Relay hybrid connections, Key Vault, Application Insights with alerts.'

targetScope = 'resourceGroup'

import { server } from 'app/types.bicep'

@minLength(2)
@maxLength(12)
@description('Short name of this deployment (lower-case letters, digits, hyphens); resource names are built from it and a hash of the resource group.')
param name string = 'emfleet'

param location string = resourceGroup().location
param tags object = {}

@description('EMFLEET_ORG: the organization this deployment serves.')
param org string

@minLength(1)
@description('The Exchange servers: one hybrid connection with a Listen-only rule each.')
param servers server[]

@allowed([
  'managedIdentity'
  'sasKey'
])
@description('How the app authenticates to the relay: its managed identity with Azure Relay Sender (keyless, the default), or, as a fallback, a Send-only SAS rule whose key is kept in Key Vault.')
param relayAuth string = 'managedIdentity'

@description('Application (client) ID of the Microsoft Entra app registration for the admin API (App Service Authentication).')
param adminApiClientId string

@description('EMFLEET_TRUST_ANCHORS: PEM text of the certificate(s) packages must chain to (Microsoft Root Certificate Authority 2011 for Microsoft\'s feed). No default: emfleet has no built-in trust.')
param trustAnchors string

@description('EMFLEET_TRUST_ANCHOR_SHA256: SHA-256 fingerprints every trust anchor must match.')
param trustAnchorSha256 string[] = []

@description('EMFLEET_TIMESTAMP_ANCHORS: PEM text of the roots of the time-stamp authorities whose RFC 3161 countersignature dates a package (Microsoft Root Certificate Authority 2010 for Microsoft\'s feed). Empty: time stamps are not checked and the signer must be valid now, which Microsoft\'s yearly rotated signing certificate is not for long.')
param timestampAnchors string = ''

@description('EMFLEET_TIMESTAMP_ANCHOR_SHA256: SHA-256 fingerprints every timestamp anchor must match.')
param timestampAnchorSha256 string[] = []

@description('EMFLEET_SIGNER_SUBJECT: the signer certificate\'s required CN.')
param signerSubject string = 'Microsoft Exchange XML Signing'

@description('EMFLEET_SIGNER_EKU: the signer certificate\'s required extended key usage.')
param signerEku string = '1.3.6.1.4.1.311.76.57.1.11'

@description('EMFLEET_REVOKED_SERIALS: hex serials of certificates that must not sign.')
param revokedSerials string[] = []

@description('EMFLEET_OCS_URL: the Microsoft mitigation feed.')
param ocsUrl string = 'https://officeclient.microsoft.com/getexchangemitigations'

@description('EMFLEET_FEEDS: the organization\'s own feeds (see lib/config); empty: Microsoft\'s only.')
param feeds array = []

@description('EMFLEET_WAVES: rollout waves (see lib/rollout/waves.ts); empty: the built-in canary ring, 10%, the rest.')
param waves array = []

@description('EMFLEET_EMERGENCY_WAVES: the waves of --emergency and `rollout expedite`; empty: the built-in emergency profile.')
param emergencyWaves array = []

@description('EMFLEET_POLL_SCHEDULE: 6-field NCRONTAB, UTC.')
param pollSchedule string = '0 0 * * * *'

@description('EMFLEET_RECONCILE_SCHEDULE: 6-field NCRONTAB, UTC.')
param reconcileSchedule string = '0 30 * * * *'

@description('EMFLEET_TABLE_PREFIX: prefix of the table names, so several deployments can share an account.')
param tablePrefix string = ''

@secure()
@description('EMFLEET_NOTIFY_URL: Teams or Slack incoming webhook; stored in Key Vault. Empty: no notifications.')
param notifyUrl string = ''

@description('E-mail addresses told when an alert fires.')
param alertEmails string[] = []

@description('Object IDs of the people or groups who run the emfleet CLI against this deployment\'s tables and queues.')
param operatorPrincipalIds string[] = []

@description('Flex Consumption scale limit; one instance runs many rollout steps at once.')
param maximumInstanceCount int = 40

param instanceMemoryMB int = 2048

var token = uniqueString(resourceGroup().id, name)
var functionAppName = 'func-${name}-${token}'
var deploymentContainerName = 'app-package'

// Policy as code: validated against policy.schema.json by editors and by the test suite, synced
// into the Policy table with source=bicep on every poll.
var declaredPolicy = loadJsonContent('policy.json')

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: take('st${replace(name, '-', '')}${token}', 24)
    location: location
    tags: tags
    tablePrefix: tablePrefix
    deploymentContainerName: deploymentContainerName
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    name: '${name}-${token}'
    location: location
    tags: tags
    alertEmails: alertEmails
  }
}

module relay 'app/relay.bicep' = {
  name: 'relay'
  params: {
    name: 'relay-${name}-${token}'
    location: location
    tags: tags
    servers: servers
    relayAuth: relayAuth
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: take('kv-${name}-${token}', 24)
    location: location
    tags: tags
    relayNamespaceName: relay.outputs.name
    relaySendRuleName: relay.outputs.sendRuleName
    notifyUrl: notifyUrl
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  params: {
    name: functionAppName
    location: location
    tags: tags
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    adminApiClientId: adminApiClientId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    appPrincipalId: functionApp.outputs.principalId
    storageAccountName: storage.outputs.name
    relayNamespaceName: relay.outputs.name
    relaySendWithIdentity: relayAuth == 'managedIdentity'
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    operatorPrincipalIds: operatorPrincipalIds
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Every setting lib/config reads, except the local-only ones, plus what the Functions host needs
// (lib/infra/settings.ts lists both; a test keeps this list, lib/config and
// local.settings.sample.json in step). An empty value means "unset": lib/config's default applies.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // The Functions host: its storage through the managed identity, telemetry with an Entra token.
    AzureWebJobsStorage__accountName: storage.outputs.name
    AzureWebJobsStorage__credential: 'managedidentity'
    APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'

    // emfleet (lib/config).
    EMFLEET_TRUST_ANCHORS: trustAnchors
    EMFLEET_TRUST_ANCHOR_SHA256: join(trustAnchorSha256, ',')
    EMFLEET_TIMESTAMP_ANCHORS: timestampAnchors
    EMFLEET_TIMESTAMP_ANCHOR_SHA256: join(timestampAnchorSha256, ',')
    EMFLEET_SIGNER_SUBJECT: signerSubject
    EMFLEET_SIGNER_EKU: signerEku
    EMFLEET_REVOKED_SERIALS: join(revokedSerials, ',')
    EMFLEET_STORAGE_ACCOUNT: storage.outputs.name
    EMFLEET_TABLE_PREFIX: tablePrefix
    EMFLEET_ORG: org
    EMFLEET_POLICY: string(declaredPolicy)
    EMFLEET_OCS_URL: ocsUrl
    EMFLEET_RELAY_NAMESPACE: relay.outputs.host
    EMFLEET_RELAY_SEND_KEY_NAME: relay.outputs.sendRuleName
    // Empty: keyless, the managed identity's Entra token (lib/relay/settings.ts).
    EMFLEET_RELAY_SEND_KEY: relayAuth == 'sasKey' ? '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.relaySendKeySecretUri})' : ''
    EMFLEET_WAVES: empty(waves) ? '' : string(waves)
    EMFLEET_EMERGENCY_WAVES: empty(emergencyWaves) ? '' : string(emergencyWaves)
    EMFLEET_POLL_SCHEDULE: pollSchedule
    EMFLEET_RECONCILE_SCHEDULE: reconcileSchedule
    EMFLEET_FEEDS: empty(feeds) ? '' : string(feeds)
    EMFLEET_NOTIFY_URL: empty(notifyUrl) ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.notifyUrlSecretUri})'
  }
  dependsOn: [
    functionApp
    rbac
  ]
}

output functionAppName string = functionApp.outputs.name
output functionAppHostName string = functionApp.outputs.hostName
@description('The relay namespace host name (agent.json relay.namespace).')
output relayNamespace string = relay.outputs.host
@description('Each server\'s hybrid connection and listen rule (agent.json relay.hybridConnection and relay.keyName).')
output hybridConnections array = relay.outputs.hybridConnections
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
