// Application Insights on a Log Analytics workspace (Entra ID ingestion only), and alert rules
// over the events the app logs.

param name string
param location string
param tags object
@description('Who is told when an alert fires; empty: the alerts show in Azure Monitor only.')
param alertEmails string[]
@description('The relay namespace, whose default RootManageSharedAccessKey is watched.')
param relayNamespaceId string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${name}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${name}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry only with the app's Entra token (Monitoring Metrics Publisher), not the key in the connection string.
    DisableLocalAuth: true
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmails)) {
  name: 'ag-${name}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'emfleet'
    enabled: true
    emailReceivers: [for (email, index) in alertEmails: {
      name: 'email-${index}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

// Each function invocation logs one JSON object per trace (lib/app.ts invocationLogger:
// {"event": ..., "invocationId": ..., fields}); the host sends it to App Insights `traces` as the
// message. An alert counts the traces of its events (and state) in its window, one alert per
// value of its dimension. A test checks the event names against the code and the query's
// filter against what the app actually logs.
var alerts = [
  {
    name: 'rollout-halted'
    displayName: 'emfleet: a rollout halted'
    description: 'A wave went over its error budget and the rollout stopped. `emfleet rollout show <id>` names the servers that failed; resume or abort it.'
    severity: 1
    events: [
      'RolloutTransition'
    ]
    state: 'Halted'
    dimension: 'rolloutId'
    window: 'PT5M'
  }
  {
    name: 'poll-failed'
    displayName: 'emfleet: a feed poll failed'
    description: 'A feed could not be fetched (PollFailed) or its trust settings are wrong (FeedMisconfigured); the last accepted package stays in force. `emfleet status` shows each feed\'s last error.'
    severity: 2
    events: [
      'PollFailed'
      'FeedMisconfigured'
    ]
    state: ''
    dimension: 'feed'
    window: 'PT15M'
  }
  {
    name: 'feed-frozen'
    displayName: 'emfleet: a feed is frozen or holds a package for an admin'
    description: 'A feed\'s current package no longer verifies, or the feed left the settings with mitigations applied (FeedFrozen): nothing of it is applied or removed until a verified package of it arrives. Or a package without a trusted signing time would withdraw mitigations (PackageHeld): `emfleet rollout plan` shows it, `emfleet feed accept SHA` approves it. `emfleet status` shows the reason.'
    severity: 1
    events: [
      'FeedFrozen'
      'PackageHeld'
    ]
    state: ''
    dimension: 'feed'
    window: 'PT1H'
  }
]

var queryTemplate = '''traces
| where message contains '"event"'
| extend entry = parse_json(message)
| where tostring(entry.event) in ({0}){1}
| project timestamp, event = tostring(entry.event), rolloutId = tostring(entry.rolloutId), feed = tostring(entry.feed), reasonCode = tostring(entry.reasonCode), reasonDetail = tostring(entry.reasonDetail), error = tostring(entry.error)'''

resource alertRule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for alert in alerts: {
  name: '${name}-${alert.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: alert.displayName
    description: alert.description
    severity: alert.severity
    enabled: true
    scopes: [
      appInsights.id
    ]
    evaluationFrequency: alert.window
    windowSize: alert.window
    criteria: {
      allOf: [
        {
          query: format(queryTemplate, '"${join(alert.events, '", "')}"', empty(alert.state) ? '' : '\n| where tostring(entry.state) == "${alert.state}"')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: alert.dimension
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // Every halt and every failed poll is news: no auto-resolve that could swallow the next one.
    autoMitigate: false
    actions: {
      actionGroups: empty(alertEmails) ? [] : [
        actionGroup.id
      ]
    }
  }
}]

// Azure Relay creates every namespace with the rule RootManageSharedAccessKey (Manage, Send and
// Listen on every hybrid connection: whoever holds its key can call any agent and impersonate any
// of them). emfleet never uses it. A deployment cannot delete it (Bicep deletes nothing it does not
// declare, and a deployment script that could would need a management role the privilege check
// refuses), so infra/README.md deletes it by hand after the first deployment, and this alert fires
// whenever anyone reads, regenerates or re-creates its keys: every use of the key starts there.
resource relayRootKeyAlert 'Microsoft.Insights/activityLogAlerts@2020-10-01' = {
  name: 'relay-root-key-${name}'
  location: 'global'
  tags: tags
  properties: {
    enabled: true
    description: 'Someone read, regenerated or re-created the keys of the relay namespace\'s RootManageSharedAccessKey, which emfleet never uses (Manage on every hybrid connection). Delete the rule (infra/README.md) and find out who.'
    scopes: [
      relayNamespaceId
    ]
    condition: {
      allOf: [
        {
          field: 'category'
          equals: 'Administrative'
        }
        {
          field: 'resourceId'
          equals: '${relayNamespaceId}/authorizationRules/RootManageSharedAccessKey'
        }
        {
          anyOf: [
            {
              field: 'operationName'
              equals: 'Microsoft.Relay/namespaces/authorizationRules/listKeys/action'
            }
            {
              field: 'operationName'
              equals: 'Microsoft.Relay/namespaces/authorizationRules/regenerateKeys/action'
            }
            {
              field: 'operationName'
              equals: 'Microsoft.Relay/namespaces/authorizationRules/write'
            }
          ]
        }
      ]
    }
    actions: {
      actionGroups: empty(alertEmails) ? [] : [
        {
          actionGroupId: actionGroup.id
        }
      ]
    }
  }
}

output appInsightsName string = appInsights.name
@description('The Log Analytics workspace: Storage\'s own logs of table writes go there too.')
output workspaceId string = workspace.id
output connectionString string = appInsights.properties.ConnectionString
