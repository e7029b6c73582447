// Contoso's deployment: two sites (their servers are registered with `emfleet servers add --site`,
// not listed here), keyless relay sending. The ids and the trust anchor come from the environment
// of whoever deploys, so nothing made up is deployed (README.md "Prerequisites"):
//   export EMFLEET_TRUST_ANCHORS="$(cat MicrosoftRootCertificateAuthority2011.pem)"
//   export EMFLEET_TIMESTAMP_ANCHORS="$(cat MicrosoftRootCertificateAuthority2010.pem)"
//   export EMFLEET_ADMIN_API_CLIENT_ID=$appId                    # the admin API's app registration
//   export EMFLEET_OPERATOR_OBJECT_IDS="$(az ad signed-in-user show --query id -o tsv)"   # comma-separated
//   az deployment group create --resource-group rg-emfleet --template-file infra/main.bicep --parameters infra/main.bicepparam

using 'main.bicep'

param name = 'contoso'
param org = 'contoso'

// One hybrid connection per site, for its relay hub (`emfleet agent --hub`); named site-{name}
// unless given. A site added later: `emfleet sites add NAME` (no redeployment).
param sites = [
  { name: 'Amsterdam' }
  { name: 'Fabrikam', hybridConnection: 'site-fabrikam-hq' }
]

param relayAuth = 'managedIdentity'

// The app registration created for the admin API (README.md "Prerequisites").
param adminApiClientId = readEnvironmentVariable('EMFLEET_ADMIN_API_CLIENT_ID')

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

// Object ids of the operators (people or groups), comma-separated; none: no operator roles.
param operatorPrincipalIds = filter(split(readEnvironmentVariable('EMFLEET_OPERATOR_OBJECT_IDS', ''), ','), id => !empty(trim(id)))

param tags = {
  workload: 'emfleet'
  owner: 'exchange-admins@contoso.com'
}
