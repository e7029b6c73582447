import { describe, expect, it } from 'vitest';
import { formatProblem, parseBicep, syntaxProblems } from '../../tools/infra-checks/bicep.js';
import { repoBicep, repoDocument } from '../tools/infra-checks/fixture.js';

/** The Bicep CLI cannot run here: every template and parameters file is parsed by tree-sitter-bicep instead. */
describe('Bicep syntax', () => {
  it('finds the templates and the parameters file', async () => {
    const files = (await repoBicep()).map((document) => document.file);
    expect(files).toEqual(
      expect.arrayContaining([
        'infra/main.bicep',
        'infra/main.bicepparam',
        'infra/app/function.bicep',
        'infra/app/relay.bicep',
      ]),
    );
  });

  it('every .bicep and .bicepparam file parses without error nodes', async () => {
    const problems = (await repoBicep()).flatMap(syntaxProblems).map(formatProblem);
    expect(problems).toEqual([]);
  });

  it('reports a broken template by file, line and column', async () => {
    const main = await repoDocument('infra/main.bicep');
    // Drop the closing brace of the app settings' properties: the error is in that resource.
    const broken = main.text.replace(/(EMFLEET_NOTIFY_URL:[^\n]*\n)\s*\}\n/, '$1');
    expect(broken).not.toBe(main.text);
    const problems = syntaxProblems(await parseBicep('infra/main.bicep', broken)).map(formatProblem);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/^infra\/main\.bicep:\d+:\d+: syntax error/);
  });

  it.each([
    {
      name: 'unclosed object',
      text: "resource sa 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'x'\n",
      at: 'bad.bicep:',
    },
    { name: 'a stray token', text: 'param name string\nvar x = = 1\n', at: 'bad.bicep:2:' },
    { name: 'an unterminated string', text: "var x = 'abc\nvar y = 1\n", at: 'bad.bicep:' },
  ])('catches $name', async ({ text, at }) => {
    const problems = syntaxProblems(await parseBicep('bad.bicep', text)).map(formatProblem);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]!.startsWith(at)).toBe(true);
  });

  it('reads parameter assignments of any value in a .bicepparam file, at their own columns', async () => {
    const text =
      "using 'main.bicep'\nparam servers = [\n  { name: 'ex01' }\n]\nparam tags = {\n  a: 'b'\n}\nparam x = readEnvironmentVariable('X', '')\n";
    expect(syntaxProblems(await parseBicep('ok.bicepparam', text))).toEqual([]);
    const broken = await parseBicep('bad.bicepparam', "using 'main.bicep'\nparam tags = {\n  a: 'b' c\n}\n");
    expect(syntaxProblems(broken).map(formatProblem)[0]).toMatch(/^bad\.bicepparam:3:\d+: syntax error/);
  });

  it('a .bicepparam file may assign, not declare', async () => {
    const problems = syntaxProblems(
      await parseBicep('bad.bicepparam', "using 'main.bicep'\nparam org string\n"),
    ).map(formatProblem);
    expect(problems).toEqual([
      'bad.bicepparam:2:1: a parameters file assigns values (param NAME = value); declare the parameter and its type in the .bicep file',
    ]);
  });
});
