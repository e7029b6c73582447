import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configFieldOf, loadConfig, settingNames } from '../../lib/config/index.js';
import {
  declarations,
  findBicepFiles,
  formatProblem,
  literalValue,
  loadBicepFiles,
  parseBicep,
} from '../../tools/infra-checks/bicep.js';
import { appSettingNames, hostSettings, localOnlySettings } from '../../tools/infra-checks/settings.js';
import { parseDeclaredPolicy } from '../../lib/policy/declared.js';
import { emfleetVersion } from '../../lib/version.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readRepoFile = (file: string): string =>
  readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

/** The host's own settings that appear in a place (tools/infra-checks/settings.ts keeps the one list). */
function hostSettingsIn(place: 'sample' | 'bicep'): string[] {
  return Object.entries(hostSettings)
    .filter(([, setting]) => setting.in.includes(place))
    .map(([name]) => name);
}

async function bicepAppSettings(): Promise<ReturnType<typeof appSettingNames>[]> {
  const documents = await loadBicepFiles(await findBicepFiles(`${root}infra`), root);
  return documents.map(appSettingNames).filter((found) => found !== undefined);
}

describe('settings', () => {
  it("local.settings.sample.json lists exactly the settings lib/config reads, and the local host's own", () => {
    const sample = JSON.parse(readRepoFile('local.settings.sample.json'));
    expect(Object.keys(sample.Values).sort()).toEqual([...settingNames, ...hostSettingsIn('sample')].sort());
  });

  it("the app settings in Bicep are lib/config's, less the local-only ones, and the Functions host's own", async () => {
    const found = await bicepAppSettings();
    expect(found, 'one appsettings resource under infra/').toHaveLength(1);
    expect(found[0]!.problems.map(formatProblem)).toEqual([]);
    const expected = [
      ...settingNames.filter((name) => !(name in localOnlySettings)),
      ...hostSettingsIn('bicep'),
    ];
    expect([...found[0]!.names].sort()).toEqual(expected.sort());
  });

  it("the exceptions are exceptions: local-only settings are lib/config's, host settings are not", () => {
    expect(
      Object.keys(localOnlySettings).filter((name) => !(settingNames as string[]).includes(name)),
    ).toEqual([]);
    expect(Object.keys(hostSettings).filter((name) => (settingNames as string[]).includes(name))).toEqual([]);
  });

  it('infra/README.md documents every exception', () => {
    const readme = readRepoFile('infra/README.md');
    for (const name of [...Object.keys(hostSettings), ...Object.keys(localOnlySettings)])
      expect(readme, name).toContain(`\`${name}\``);
  });

  it('reads the setting names from the Bicep tree, and refuses settings it cannot see', async () => {
    const settings = (properties: string): string =>
      `resource site 'Microsoft.Web/sites@2024-04-01' existing = {\n  name: 'app'\n}\nresource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {\n  parent: site\n  name: 'appsettings'\n  properties: ${properties}\n}\n`;
    const listed = appSettingNames(
      await parseBicep(
        'ok.bicep',
        settings(
          "{\n    // a comment\n    EMFLEET_ORG: org\n    'AzureWebJobsStorage__accountName': 'st'\n  }",
        ),
      ),
    );
    expect(listed?.names).toEqual(['EMFLEET_ORG', 'AzureWebJobsStorage__accountName']);
    expect(listed?.problems).toEqual([]);
    const hidden = appSettingNames(
      await parseBicep('bad.bicep', settings('union(common, {\n    EMFLEET_ORG: org\n  })')),
    );
    expect(hidden?.problems.map(formatProblem)).toEqual([
      'bad.bicep:7:15: appsettings properties must be an object literal, so every setting name is visible',
    ]);
    const nested = appSettingNames(
      await parseBicep(
        'nested.bicep',
        "resource site 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'app'\n  resource config 'config' = {\n    name: 'appsettings'\n    properties: {\n      EMFLEET_ORG: 'contoso'\n    }\n  }\n}\n",
      ),
    );
    expect(nested?.names).toEqual(['EMFLEET_ORG']);
  });

  it("main.bicep passes settings straight from parameters whose defaults are lib/config's defaults", async () => {
    const main = (await loadBicepFiles([`${root}infra/main.bicep`], root))[0]!;
    const parameters = declarations(main);
    const defaults = loadConfig({});
    const fromParameters = [...appSettingNames(main)!.values].filter(
      ([, value]) => parameters.get(value.text)?.kind === 'param',
    );
    expect(fromParameters.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        'EMFLEET_SIGNER_SUBJECT',
        'EMFLEET_SIGNER_EKU',
        'EMFLEET_OCS_URL',
        'EMFLEET_POLL_SCHEDULE',
        'EMFLEET_RECONCILE_SCHEDULE',
      ]),
    );
    for (const [name, value] of fromParameters) {
      const fallback = parameters.get(value.text)!.value;
      if (fallback === undefined) continue;
      const literal = literalValue(fallback)?.value;
      expect(typeof literal, `${name}: default of ${value.text}`).toBe('string');
      const field = configFieldOf(name)!;
      expect(loadConfig({ [name]: literal as string })[field], name).toEqual(defaults[field]);
    }
  });

  it('a setting missing from Bicep is noticed', async () => {
    const main = readRepoFile('infra/main.bicep');
    const withoutOrg = appSettingNames(
      await parseBicep('infra/main.bicep', main.replace(/\n\s*EMFLEET_ORG: org\n/, '\n')),
    );
    expect(withoutOrg?.names).not.toContain('EMFLEET_ORG');
    expect(withoutOrg?.names.length).toBe((await bicepAppSettings())[0]!.names.length - 1);
  });

  it('infra/policy.json, which Bicep sets as EMFLEET_POLICY, passes lib/config and the declared-policy schema', () => {
    const policy = readRepoFile('infra/policy.json');
    const config = loadConfig({ EMFLEET_POLICY: JSON.stringify(JSON.parse(policy)) });
    expect(parseDeclaredPolicy(config.declaredPolicy!, 'EMFLEET_POLICY')).toMatchObject({ ok: true });
  });

  it('every sample value in local.settings.sample.json is valid', () => {
    const sample = JSON.parse(readRepoFile('local.settings.sample.json'));
    const config = loadConfig(sample.Values);
    expect(config.waves.map((wave) => wave.name)).toEqual(['canary', 'early', 'broad']);
    expect(config.org).toBe('contoso');
  });
});

describe('version', () => {
  it('lib/version.ts says what package.json says', () => {
    const manifest = JSON.parse(readRepoFile('package.json'));
    expect(emfleetVersion).toBe(manifest.version);
  });
});
