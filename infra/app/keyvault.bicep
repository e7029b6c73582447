// Key Vault (RBAC, no access policies) for the app's secrets, read through Key Vault references
// (@Microsoft.KeyVault(SecretUri=...)) with the app's managed identity (Key Vault Secrets User).

param name string
param location string
param tags object
@description('\'recover\' brings back this vault\'s soft-deleted self (same name) after its resource group was recreated; \'default\' creates or updates it.')
param createMode string
@description('The relay namespace and its Send-only rule; empty rule name: keyless (no SAS key stored).')
param relayNamespaceName string
param relaySendRuleName string
@secure()
@description('EMFLEET_NOTIFY_URL: the Teams or Slack webhook URL (a secret); empty: no notifications.')
param notifyUrl string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    createMode: createMode
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

// Keyless (the default) has no send rule: its name and the listKeys() call below are guarded, so
// nothing refers to a rule that does not exist (ARM evaluates only the branch of if() it takes).
var hasSendRule = !empty(relaySendRuleName)

resource relayNamespace 'Microsoft.Relay/namespaces@2024-01-01' existing = {
  name: relayNamespaceName
}

resource sendRule 'Microsoft.Relay/namespaces/authorizationRules@2024-01-01' existing = if (hasSendRule) {
  parent: relayNamespace
  name: hasSendRule ? relaySendRuleName : 'none'
}

// The key is read from the rule at deployment time and never leaves Azure Resource Manager.
resource relaySendKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (hasSendRule) {
  parent: vault
  name: 'relay-send-key'
  properties: {
    value: hasSendRule ? sendRule.listKeys().primaryKey : ''
    contentType: 'Azure Relay SAS key of the namespace rule "${relaySendRuleName}" (Send only)'
  }
}

resource notifyUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(notifyUrl)) {
  parent: vault
  name: 'notify-url'
  properties: {
    value: notifyUrl
    contentType: 'Teams or Slack incoming webhook URL'
  }
}

output name string = vault.name
// Versionless URIs: a rotated secret is picked up without a redeployment.
output relaySendKeySecretUri string = hasSendRule ? relaySendKey.properties.secretUri : ''
output notifyUrlSecretUri string = empty(notifyUrl) ? '' : notifyUrlSecret.properties.secretUri
