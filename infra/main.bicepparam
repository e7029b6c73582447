// Contoso's deployment: two sites, ten Exchange servers, keyless relay sending.
//   export EMFLEET_TRUST_ANCHORS="$(cat MicrosoftRootCertificateAuthority2011.pem)"
//   export EMFLEET_TIMESTAMP_ANCHORS="$(cat MicrosoftRootCertificateAuthority2010.pem)"
//   az deployment group create --resource-group rg-emfleet --template-file infra/main.bicep --parameters infra/main.bicepparam

using 'main.bicep'

param name = 'contoso'
param org = 'contoso'

// One hybrid connection per server (named after it unless given); add a server here, deploy,
// then give its agent the listen key (README.md "Add a server").
param servers = [
  { name: 'ex01.contoso.com' }
  { name: 'ex02.contoso.com' }
  { name: 'ex03.contoso.com' }
  { name: 'ex04.contoso.com' }
  { name: 'ex05.contoso.com' }
  { name: 'ex06.contoso.com' }
  { name: 'ex07.contoso.com' }
  { name: 'ex08.contoso.com' }
  { name: 'ex09.contoso.com' }
  { name: 'ex10.fabrikam.contoso.com', hybridConnection: 'ex10-fabrikam' }
]

param relayAuth = 'managedIdentity'

// The app registration created for the admin API (README.md "Prerequisites").
param adminApiClientId = '6f0b2a51-9c3d-4e8f-a1b7-2d4c6e8f0a13'

// Microsoft Root Certificate Authority 2011, supplied by the admin and pinned by fingerprint.
param trustAnchors = readEnvironmentVariable('EMFLEET_TRUST_ANCHORS')
param trustAnchorSha256 = [
  '847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61'
]

// Microsoft Root Certificate Authority 2010, the root of Microsoft's time-stamp service: the RFC
// 3161 countersignature of each package is its signing time, so packages signed by a certificate
// that has since expired (Microsoft rotates it yearly) still verify.
param timestampAnchors = readEnvironmentVariable('EMFLEET_TIMESTAMP_ANCHORS')
param timestampAnchorSha256 = [
  'DF545BF919A2439C36983B54CDFC903DFA4F37D3996D8D84B4C31EEC6F3C163E'
]

param waves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 2, maxErrors: 0, bake: 'PT2H' }
  { name: 'early', select: { ring: 'early' }, maxConcurrency: '50%', maxErrors: 1, bake: 'PT4H' }
  { name: 'broad', select: { percent: 100 }, maxConcurrency: '25%', maxErrors: '10%', bake: 'PT0S' }
]

// The webhook is a secret: read from the environment at deployment, kept in Key Vault.
param notifyUrl = readEnvironmentVariable('EMFLEET_NOTIFY_URL', '')

param alertEmails = [
  'exchange-admins@contoso.com'
]

param operatorPrincipalIds = [
  '0c1d7e2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f'
]

param tags = {
  workload: 'emfleet'
  owner: 'exchange-admins@contoso.com'
}
