import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { property, resources, stringLiteral } from '../../tools/infra-checks/bicep.js';
import { policySchemaText } from '../../tools/infra-checks/policy-schema.js';
import { parseDeclaredPolicy } from '../../lib/policy/declared.js';
import { repoDocument, repoRoot } from '../tools/infra-checks/fixture.js';

const policyText = readFileSync(join(repoRoot, 'infra/policy.json'), 'utf8');

describe('policy as code', () => {
  it('infra/policy.json is a valid declared policy', () => {
    const parsed = parseDeclaredPolicy(policyText, 'infra/policy.json');
    expect(parsed).toMatchObject({ ok: true });
    if (!parsed.ok) return;
    expect(parsed.policy.org.mitigationsEnabled).toBe(true);
    expect(parsed.policy.rings['canary']).toEqual(['ex01.contoso.com', 'ex02.contoso.com']);
  });

  it('infra/policy.schema.json is generated from the current zod schema', () => {
    const committed = readFileSync(join(repoRoot, 'infra/policy.schema.json'), 'utf8');
    // Failing here means lib/policy/declared.ts changed: regenerate the file.
    expect(
      committed,
      'regenerate: npx tsc -p . && node dist/tools/infra-checks/print-policy-schema.js > infra/policy.schema.json',
    ).toBe(policySchemaText());
  });

  it('editors validate infra/policy.json against that schema', () => {
    expect(JSON.parse(policyText).$schema).toBe('./policy.schema.json');
    const schema = JSON.parse(policySchemaText());
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(['$schema', 'org', 'servers', 'rings']);
  });

  it('main.bicep loads infra/policy.json with loadJsonContent into EMFLEET_POLICY', async () => {
    const main = await repoDocument('infra/main.bicep');
    const loads = main.root
      .descendantsOfType('call_expression')
      .filter((call) => call.childForFieldName('function')?.text === 'loadJsonContent');
    expect(loads.map((call) => stringLiteral(call.childForFieldName('arguments')?.namedChildren[0]))).toEqual(
      ['policy.json'],
    );
    const variable = loads[0]!.parent!.namedChildren[0]!.text;
    const settings = resources(main).find(
      (resource) => stringLiteral(property(resource.body, 'name')) === 'appsettings',
    );
    expect(property(property(settings?.body, 'properties'), 'EMFLEET_POLICY')?.text).toBe(
      `string(${variable})`,
    );
  });

  it('a declared policy that breaks the schema is refused with its path', () => {
    const broken = JSON.stringify({
      ...JSON.parse(policyText),
      servers: { 'ex05.contoso.com': { blockedMitigations: ['EM 2'] } },
    });
    expect(parseDeclaredPolicy(broken, 'infra/policy.json')).toEqual({
      ok: false,
      error: expect.stringMatching(
        /^infra\/policy\.json at servers\["ex05\.contoso\.com"\]\.blockedMitigations\[0\]: must be a mitigation id/,
      ),
    });
  });
});
