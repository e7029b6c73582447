import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Node, Parser } from 'web-tree-sitter';
import { buildFromSetup, type SetupValues } from '../../../lib/agent/build-detect.js';
import { parseAgentConfig } from '../../../lib/agent/config.js';
import { grammarParser, syntaxErrorNodes } from '../../../tools/tree-sitter.js';

/**
 * Install-EmfleetAgent.ps1 cannot run here. What can be checked is: it parses with a real
 * PowerShell grammar, its parameters are the ones README and docs name, it does what the issue asks
 * in the places that matter, and the golden cases its Pester tests (Install-EmfleetAgent.Tests.ps1,
 * run on Windows) hold it to agree with the agent: the same build from the same Setup values, and
 * an agent.json the agent accepts.
 */
const scriptUrl = new URL('../../../lib/agent/install/Install-EmfleetAgent.ps1', import.meta.url);
const script = readFileSync(scriptUrl, 'utf8');
const pester = readFileSync(
  new URL('../../../lib/agent/install/Install-EmfleetAgent.Tests.ps1', import.meta.url),
  'utf8',
);
const golden = new URL('./golden/install/', import.meta.url);
let parser: Parser;

beforeAll(async () => {
  parser = await grammarParser('tree-sitter-powershell/tree-sitter-powershell.wasm');
});

function tree(text: string): Node {
  const parsed = parser.parse(text);
  if (!parsed) throw new Error('the parser returned nothing');
  return parsed.rootNode;
}

function descendants(node: Node, type: string): Node[] {
  return node.descendantsOfType(type).filter((found): found is Node => found !== null);
}

describe('Install-EmfleetAgent.ps1', () => {
  it.each([
    ['Install-EmfleetAgent.ps1', script],
    ['Install-EmfleetAgent.Tests.ps1', pester],
  ])('%s parses with tree-sitter-powershell', (_name, text) => {
    expect(
      syntaxErrorNodes(tree(text)).map(
        (node) => `${node.type} at ${node.startPosition.row + 1}:${node.startPosition.column + 1}`,
      ),
    ).toEqual([]);
  });

  it('takes the parameters the README names', () => {
    // The script's own param block is the first; each parameter's variable follows its type or last attribute.
    const block = descendants(tree(script), 'param_block')[0]!;
    const parameters = [...block.text.matchAll(/\]\s*\$(\w+)/g)].map((match) => match[1]);
    expect(parameters).toEqual([
      'Server',
      'RelayNamespace',
      'HybridConnection',
      'ListenKey',
      'TrustAnchor',
      'TimestampAnchor',
      'ListenKeyName',
      'Build',
      'Uninstall',
      'Force',
      'InstallDirectory',
      'DataDirectory',
    ]);
    expect(script).toMatch(/\[System\.Security\.SecureString\] \$ListenKey/);
  });

  it('defines the functions its Pester tests call', () => {
    const functions = descendants(tree(script), 'function_statement').map(
      (node) => node.text.match(/^function\s+([\w-]+)/i)?.[1],
    );
    for (const name of [
      'ConvertTo-ExchangeBuild',
      'New-AgentConfigJson',
      'Get-PrerequisiteProblems',
      'Get-MitigationServiceWarning',
      'Get-ServersAddLine',
    ]) {
      expect(functions).toContain(name);
      expect(pester).toContain(name);
    }
  });

  it('writes the key and agent.json without a BOM and never with > or Out-File (UTF-16 in Windows PowerShell 5.1)', () => {
    expect(script).toMatch(
      /\[System\.IO\.File\]::WriteAllText\(\$Path, \$Text, \(New-Object System\.Text\.UTF8Encoding \$false\)\)/,
    );
    expect(script).not.toMatch(/Out-File|Set-Content|\s>\s*\$|\s>>/);
    // SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544) only, inheritance off.
    expect(script).toMatch(/SetAccessRuleProtection\(\$true, \$false\)/);
    expect(script).toMatch(/@\('S-1-5-18', 'S-1-5-32-544'\)/);
  });

  it('checks each prerequisite, registers a restarting start-up task, warns about EM, restores before uninstalling', () => {
    for (const check of [
      'Is64BitProcess',
      'PowerShellVersion',
      'MailboxRole',
      'URL Rewrite',
      'Microsoft.Web.Administration, Version=7.0.0.0',
    ])
      expect(script).toContain(check);
    expect(script).toMatch(/New-ScheduledTaskTrigger -AtStartup/);
    expect(script).toMatch(/\$trigger\.Delay = 'PT1M'/);
    expect(script).toMatch(/-RestartCount 999 -RestartInterval/);
    expect(script).toMatch(/New-EventLog -LogName Application -Source \$EventSource/);
    expect(script).toMatch(/MSExchangeMitigation/);
    const uninstall = script.slice(script.indexOf('function Uninstall-Agent'));
    expect(uninstall.indexOf("'restore-all'")).toBeGreaterThan(0);
    expect(uninstall.indexOf("'restore-all'")).toBeLessThan(uninstall.indexOf('Unregister-ScheduledTask'));
    expect(uninstall).toMatch(/-not \$Force -and -not \$PSCmdlet\.ShouldContinue/);
  });
});

describe('golden cases of the pure parts', () => {
  const buildCases = JSON.parse(readFileSync(new URL('build-cases.json', golden), 'utf8')) as {
    name: string;
    parameters: SetupValues;
    expected: string | null;
  }[];
  it.each(buildCases)('build: $name, as the agent reads it', ({ parameters, expected }) => {
    expect(buildFromSetup(parameters).build ?? null).toBe(expected);
  });

  const configCases = JSON.parse(readFileSync(new URL('config-cases.json', golden), 'utf8')) as {
    name: string;
    goldenFile: string;
    parameters: {
      Server: string;
      RelayNamespace: string;
      HybridConnection: string;
      ListenKeyName: string;
      KeyFile: string;
      Anchors: string[];
      TimestampAnchors: string[];
      StateDirectory: string;
      Build: string;
    };
  }[];
  it.each(configCases)(
    'agent.json: $name ($goldenFile) is ASCII, LF, and what the agent accepts',
    ({ goldenFile, parameters }) => {
      const bytes = readFileSync(new URL(goldenFile, golden));
      expect([...bytes].every((byte) => byte < 0x80)).toBe(true);
      expect(bytes.includes(0x0d)).toBe(false);
      const config = parseAgentConfig(JSON.parse(bytes.toString('ascii')), 'C:\\', goldenFile);
      expect(config).toMatchObject({
        server: parameters.Server,
        relay: {
          namespace: parameters.RelayNamespace,
          hybridConnection: parameters.HybridConnection,
          keyName: parameters.ListenKeyName,
        },
        applier: { kind: 'powershell' },
      });
      expect(config.build).toBe(parameters.Build === '' ? undefined : parameters.Build);
      const raw = JSON.parse(bytes.toString('ascii')) as {
        relay: { keyFile: string };
        trust: { anchors: string[]; timestampAnchors?: string[] };
        stateDirectory: string;
      };
      expect(raw.relay.keyFile).toBe(parameters.KeyFile);
      expect(raw.trust.anchors).toEqual(parameters.Anchors);
      expect(raw.trust.timestampAnchors ?? []).toEqual(parameters.TimestampAnchors);
      expect(raw.stateDirectory).toBe(parameters.StateDirectory);
    },
  );
});
