// The function app: Flex Consumption (FC1), Node.js 22, a system-assigned managed identity, code
// deployed from a blob container with that identity. Its app settings are in main.bicep, next to
// the parameters they come from; its roles are in rbac.bicep.

param name string
param location string
param tags object
param deploymentContainerUrl string
param maximumInstanceCount int
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int
@description('Application (client) ID of the Microsoft Entra app registration that fronts the admin API.')
param adminApiClientId string
@description('Object IDs of the users and service principals allowed to call the admin API at all (App Service Authentication); empty: any principal the app registration issues tokens to, which the app then checks for an app role.')
param adminApiPrincipalIds string[]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

// Deployment goes through Entra ID (az functionapp deployment / OneDeploy), never basic credentials.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// App Service Authentication in front of the admin API: a caller needs a Microsoft Entra token for
// the app registration AND the function key. The signed-in principal reaches the app as
// x-ms-client-principal (its claims, app roles included); lib/admin/auth.ts requires the app role
// emfleet.Reader or emfleet.Operator on every route and the audit names the principal. Only the
// principals in adminApiPrincipalIds get past this gate when the list is given. Requiring an app
// role assignment for the token itself (appRoleAssignmentRequired) and creating the app roles is
// done in Microsoft Entra ID, not here: infra/README.md. Timers and queue triggers do not pass
// through it.
resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      // An API: no login redirect; browsers sign in at /.auth/login/aad.
      unauthenticatedClientAction: 'Return401'
      redirectToProvider: 'azureactivedirectory'
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: adminApiClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${adminApiClientId}'
            adminApiClientId
          ]
          defaultAuthorizationPolicy: empty(adminApiPrincipalIds) ? {} : {
            allowedPrincipals: {
              identities: adminApiPrincipalIds
            }
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
    httpSettings: {
      requireHttps: true
    }
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output hostName string = site.properties.defaultHostName
