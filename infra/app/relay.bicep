// Azure Relay: the namespace and one hybrid connection per site, each with a Listen-only rule for
// the site's relay hub. Servers are inventory, not infrastructure: `emfleet servers add --site`
// registers a server behind its site's hub (no Azure resource at all), and the few servers that
// need a hybrid connection of their own get it from `emfleet servers add --own-hybrid-connection`
// through the management SDK, never from this template (ARM's 800-resource limit, and a full
// redeployment per server). The app sends with its managed identity (Azure Relay Sender, in
// rbac.bicep); a namespace-level Send-only rule exists only in the documented SAS fallback
// (relayAuth = 'sasKey').

import { site } from 'types.bicep'

param name string
param location string
param tags object
param sites site[]
@allowed([
  'managedIdentity'
  'sasKey'
])
param relayAuth string

// lib/relay/route.ts siteHybridConnectionName: what `emfleet sites add` creates for a site.
var hybridConnectionNames = [for item in sites: toLower(item.?hybridConnection ?? 'site-${item.name}')]
// EMFLEET_RELAY_SEND_KEY_NAME in the SAS fallback.
var sendRuleName = 'send'

resource namespace 'Microsoft.Relay/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
}

resource hybridConnection 'Microsoft.Relay/namespaces/hybridConnections@2024-01-01' = [for (item, index) in sites: {
  parent: namespace
  name: hybridConnectionNames[index]
  properties: {
    // Senders must present a token: without one anyone could call the agent.
    requiresClientAuthorization: true
    userMetadata: item.name
  }
}]

// The hub's key (hub.json relay.keyName "listen"): it can accept requests on its site's hybrid
// connection and do nothing else.
resource listenRule 'Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01' = [for (item, index) in sites: {
  parent: hybridConnection[index]
  name: 'listen'
  properties: {
    rights: [
      'Listen'
    ]
  }
}]

// SAS fallback only: a Send-only rule whose key goes to Key Vault (keyvault.bicep), never to an output.
resource sendRule 'Microsoft.Relay/namespaces/authorizationRules@2024-01-01' = if (relayAuth == 'sasKey') {
  parent: namespace
  name: sendRuleName
  properties: {
    rights: [
      'Send'
    ]
  }
}

output name string = namespace.name
output id string = namespace.id
@description('EMFLEET_RELAY_NAMESPACE: the namespace host name, e.g. contoso-emfleet.servicebus.windows.net.')
output host string = split(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':')[0]
output sendRuleName string = relayAuth == 'sasKey' ? sendRuleName : ''
output hybridConnections array = [for (item, index) in sites: {
  site: item.name
  hybridConnection: hybridConnection[index].name
  listenRule: listenRule[index].name
}]
