import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem, parseBicep, type BicepDocument } from '../../../tools/infra-checks/bicep.js';
import {
  bicepSecretProblems,
  parameterFileSecretProblems,
  sampleSettingProblems,
  secretTextProblems,
  secureParameters,
  usingTarget,
} from '../../../tools/infra-checks/secrets.js';
import { repoBicep, repoDocument, repoRoot } from './fixture.js';

/** Keys shaped like the real thing, made up here (never a real key in the repository, not even in tests). */
const fakeAccountKey = `${'Ab3'.repeat(29)}x==`;

async function templateOf(parameters: BicepDocument): Promise<BicepDocument> {
  const target = usingTarget(parameters);
  if (!target) throw new Error(`${parameters.file} has no using statement`);
  return repoDocument(join(parameters.file, '..', target).split('\\').join('/'));
}

describe('no secret literals', () => {
  it('none in any .bicep or .bicepparam file', async () => {
    const problems: string[] = [];
    for (const document of await repoBicep()) {
      problems.push(...secretTextProblems(document.file, document.text).map(formatProblem));
      if (document.kind === 'bicep') problems.push(...bicepSecretProblems(document).map(formatProblem));
      else
        problems.push(
          ...parameterFileSecretProblems(document, secureParameters(await templateOf(document))).map(
            formatProblem,
          ),
        );
    }
    expect(problems).toEqual([]);
  });

  it('none in the samples: local.settings.sample.json and the JSON under infra/', () => {
    const samples = [
      'local.settings.sample.json',
      ...readdirSync(join(repoRoot, 'infra'))
        .filter((name) => name.endsWith('.json'))
        .map((name) => `infra/${name}`),
    ];
    expect(samples).toContain('infra/policy.json');
    const problems = samples.flatMap((file) => {
      const text = readFileSync(join(repoRoot, file), 'utf8');
      return [
        ...secretTextProblems(file, text),
        ...(file === 'local.settings.sample.json' ? sampleSettingProblems(file, text) : []),
      ];
    });
    expect(problems.map(formatProblem)).toEqual([]);
  });

  it('knows which parameters are secret: the notify webhook', async () => {
    expect([...secureParameters(await repoDocument('infra/main.bicep'))]).toEqual(['notifyUrl']);
  });

  it.each([
    {
      name: 'a storage connection string',
      text: `var c = 'DefaultEndpointsProtocol=https;AccountName=st;AccountKey=${fakeAccountKey};EndpointSuffix=core.windows.net'\n`,
      message: /^bad\.bicep:1:\d+: a storage account key/,
    },
    {
      name: 'a key in a comment',
      text: `// old key: ${fakeAccountKey}\nvar x = 1\n`,
      message: /^bad\.bicep:1:13: a base64 key is written here/,
    },
    {
      name: 'a relay key',
      text: `var c = 'Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=${fakeAccountKey.slice(0, 44)}'\n`,
      message: /a shared access key/,
    },
    {
      name: 'a SAS token',
      text: "var t = 'SharedAccessSignature sr=http%3A%2F%2Fns%2Fex01&sig=abc&se=1&skn=send'\n",
      message: /^bad\.bicep:1:10: a shared access signature/,
    },
    {
      name: 'a private key',
      text: "var k = '''\n-----BEGIN PRIVATE KEY-----\nMIIE\n'''\n",
      message: /^bad\.bicep:2:1: a private key/,
    },
    {
      name: 'a Teams webhook',
      text: "var u = 'https://contoso.webhook.office.com/webhookb2/1111@2222/IncomingWebhook/abc/def'\n",
      message: /a webhook URL/,
    },
  ])('catches $name in the text', ({ text, message }) => {
    expect(secretTextProblems('bad.bicep', text).map(formatProblem)).toContainEqual(
      expect.stringMatching(message),
    );
  });

  it('leaves fingerprints, GUIDs and resource types alone', () => {
    const text =
      "var pin = '847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61'\nvar id = '26baccc8-eea7-41f1-98f4-1762cc7f685d'\nvar t = 'Microsoft.Relay/namespaces/hybridConnections/authorizationRules@2024-01-01'\n";
    expect(secretTextProblems('ok.bicep', text)).toEqual([]);
  });

  it.each([
    {
      name: 'a @secure() parameter with a literal default',
      text: "@secure()\nparam notifyUrl string = 'https://example.org/hook'\n",
      message: /^bad\.bicep:2:26: @secure\(\) parameter notifyUrl has a literal default/,
    },
    {
      name: 'a Key Vault secret with a literal value',
      text: "resource kv 'Microsoft.KeyVault/vaults@2023-07-01' existing = {\n  name: 'kv'\n}\nresource s 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {\n  parent: kv\n  name: 's'\n  properties: {\n    value: 'hunter2'\n  }\n}\n",
      message: /^bad\.bicep:8:12: Key Vault secret s has a literal value/,
    },
    {
      name: 'a password property',
      text: "var login = {\n  adminPassword: 'hunter2'\n}\n",
      message: /^bad\.bicep:2:18: adminPassword has a literal value/,
    },
  ])('catches $name in the tree', async ({ text, message }) => {
    expect(bicepSecretProblems(await parseBicep('bad.bicep', text)).map(formatProblem)).toEqual([
      expect.stringMatching(message),
    ]);
  });

  it('accepts an empty default for a @secure() parameter', async () => {
    expect(
      bicepSecretProblems(await parseBicep('ok.bicep', "@secure()\nparam notifyUrl string = ''\n")),
    ).toEqual([]);
  });

  it('catches a literal given to a @secure() parameter in a parameters file', async () => {
    const secure = secureParameters(await repoDocument('infra/main.bicep'));
    const literal = await parseBicep(
      'bad.bicepparam',
      "using 'main.bicep'\nparam notifyUrl = 'https://example.org/hook'\n",
    );
    expect(parameterFileSecretProblems(literal, secure).map(formatProblem)).toEqual([
      expect.stringMatching(/^bad\.bicepparam:2:19: @secure\(\) parameter notifyUrl is given a literal/),
    ]);
    const fromEnvironment = await parseBicep(
      'ok.bicepparam',
      "using 'main.bicep'\nparam notifyUrl = readEnvironmentVariable('EMFLEET_NOTIFY_URL', '')\n",
    );
    expect(parameterFileSecretProblems(fromEnvironment, secure)).toEqual([]);
  });

  it('catches a credential in local.settings.sample.json', () => {
    const text = JSON.stringify(
      {
        IsEncrypted: false,
        Values: { EMFLEET_RELAY_SEND_KEY_NAME: 'send', EMFLEET_RELAY_SEND_KEY: 'not-empty' },
      },
      null,
      2,
    );
    expect(sampleSettingProblems('local.settings.sample.json', text).map(formatProblem)).toEqual([
      'local.settings.sample.json:5:5: EMFLEET_RELAY_SEND_KEY holds a credential; the sample leaves it empty',
    ]);
  });
});
