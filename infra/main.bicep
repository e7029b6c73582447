// emfleet: cloud-managed Exchange Emergency Mitigation for a fleet. See README.md.
//   az deployment group create --resource-group <rg> --template-file infra/main.bicep --parameters infra/main.bicepparam

metadata description = 'emfleet: Functions on Flex Consumption, Storage (identity only), Azure Relay hybrid connections, Key Vault, Application Insights with alerts.'

targetScope = 'resourceGroup'

import { site } from 'app/types.bicep'

@minLength(2)
@maxLength(12)
@description('Short name of this deployment (lower-case letters, digits, single hyphens, starting with a letter); resource names are built from it and a hash of the resource group.')
param name string = 'emfleet'

param location string = resourceGroup().location
param tags object = {}

@description('EMFLEET_ORG: the organization this deployment serves.')
param org string

@description('The sites: one hybrid connection with a Listen-only rule each, for the site\'s relay hub. Servers are not listed here: `emfleet servers add NAME --site S` registers them (README "Add a server").')
param sites site[] = []

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

@description('EMFLEET_WAVES: rollout waves (see lib/model/waves.ts); empty: the built-in canary ring, 10%, the rest.')
param waves array = []

@description('EMFLEET_EMERGENCY_WAVES: the waves of --emergency and `rollout expedite`; empty: the built-in emergency profile.')
param emergencyWaves array = []

@description('EMFLEET_POLL_SCHEDULE: 6-field NCRONTAB, UTC.')
param pollSchedule string = '0 0 * * * *'

@description('EMFLEET_RECONCILE_SCHEDULE: 6-field NCRONTAB, UTC.')
param reconcileSchedule string = '0 30 * * * *'

@maxLength(32)
@description('EMFLEET_TABLE_PREFIX: prefix of the table names (letters and digits, starting with a letter), so several deployments can share an account.')
param tablePrefix string = ''

@secure()
@description('EMFLEET_NOTIFY_URL: Teams or Slack incoming webhook; stored in Key Vault. Empty: no notifications.')
param notifyUrl string = ''

@description('E-mail addresses told when an alert fires.')
param alertEmails string[] = []

@description('Object IDs of the people or groups who run the emfleet CLI against this deployment\'s tables and queues.')
param operatorPrincipalIds string[] = []

@description('Object IDs of the users and service principals App Service Authentication lets call the admin API; empty: any holder of a token for the app registration (the app still requires the app role emfleet.Reader or emfleet.Operator).')
param adminApiPrincipalIds string[] = []

@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale limit (1-1000); one instance runs many rollout steps at once.')
param maximumInstanceCount int = 40

param instanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
@description('The storage account\'s redundancy. Standard_ZRS (zone-redundant) where the region offers it with Flex Consumption; Standard_LRS deploys everywhere.')
param storageSku string = 'Standard_LRS'

@allowed([
  'default'
  'recover'
])
@description('Key Vault create mode: \'recover\' once, after the resource group was deleted and created again within the vault\'s 90-day soft-delete retention (its name is still taken by its deleted self, and purge protection forbids purging it).')
param keyVaultCreateMode string = 'default'

// Bicep has no pattern decorator: names are checked here, and a bad one fails the deployment
// (fail() stops it with the message) before any resource is created from it.
var lowerLetters = 'abcdefghijklmnopqrstuvwxyz'
var digits = '0123456789'
var nameBadCharacters = filter(range(0, length(name)), i => !contains('${lowerLetters}${digits}-', substring(name, i, 1)))
var tablePrefixBadCharacters = filter(range(0, length(tablePrefix)), i => !contains('${lowerLetters}${digits}', toLower(substring(tablePrefix, i, 1))))
var nameIsValid = empty(nameBadCharacters) && !contains(name, '--') && contains(lowerLetters, first(name)) && !endsWith(name, '-')
var tablePrefixIsValid = empty(tablePrefixBadCharacters) && (empty(tablePrefix) || !contains(digits, first(tablePrefix)))
var deploymentName = nameIsValid ? name : fail('name \'${name}\' must be lower-case letters, digits and single hyphens, start with a letter and not end with a hyphen')
var checkedTablePrefix = tablePrefixIsValid ? tablePrefix : fail('tablePrefix \'${tablePrefix}\' must be letters and digits, starting with a letter (Azure table names are alphanumeric)')

var token = uniqueString(resourceGroup().id, deploymentName)
var functionAppName = 'func-${deploymentName}-${token}'
var deploymentContainerName = 'app-package'

// Policy as code: validated against policy.schema.json by editors and by the test suite, synced
// into the Policy table with source=bicep on every poll.
var declaredPolicy = loadJsonContent('policy.json')

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: take('st${replace(deploymentName, '-', '')}${token}', 24)
    location: location
    tags: tags
    skuName: storageSku
    tablePrefix: checkedTablePrefix
    deploymentContainerName: deploymentContainerName
    workspaceId: monitoring.outputs.workspaceId
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    name: '${deploymentName}-${token}'
    location: location
    tags: tags
    alertEmails: alertEmails
    relayNamespaceId: relay.outputs.id
  }
}

module relay 'app/relay.bicep' = {
  name: 'relay'
  params: {
    name: 'relay-${deploymentName}-${token}'
    location: location
    tags: tags
    sites: sites
    relayAuth: relayAuth
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: take('kv-${deploymentName}-${token}', 24)
    location: location
    tags: tags
    createMode: keyVaultCreateMode
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
    adminApiPrincipalIds: adminApiPrincipalIds
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
    tablePrefix: checkedTablePrefix
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// Every setting lib/config reads, except the local-only ones, plus what the Functions host needs
// (tools/infra-checks/settings.ts lists both; a test keeps this list, lib/config and
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
    EMFLEET_TABLE_PREFIX: checkedTablePrefix
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
    // Every admin route needs a Microsoft Entra sign-in with the app role emfleet.Reader or emfleet.Operator (lib/admin/auth.ts).
    EMFLEET_ADMIN_AUTH: 'entra'
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
@description('Each site\'s hybrid connection and listen rule (hub.json relay.hybridConnection and relay.keyName).')
output hybridConnections array = relay.outputs.hybridConnections
output storageAccountName string = storage.outputs.name
output keyVaultName string = keyVault.outputs.name
