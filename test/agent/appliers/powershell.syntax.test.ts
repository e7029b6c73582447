import { readdirSync, readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Parser } from 'web-tree-sitter';
import { powerShellScriptDirectory } from '../../../lib/agent/appliers/powershell.js';
import { grammarParser, syntaxErrorNodes } from '../../../tools/tree-sitter.js';

/**
 * PowerShell cannot run here, so the scripts the agent ships (the applier's, the build reader, the event log writer) are at least parsed by a real
 * PowerShell grammar (tree-sitter-powershell): a syntax error would otherwise only show on Windows.
 */
const goldenDirectory = pathToFileURL(powerShellScriptDirectory);
const scripts = readdirSync(goldenDirectory).filter((name) => name.endsWith('.ps1'));
let parser: Parser;

beforeAll(async () => {
  parser = await grammarParser('tree-sitter-powershell/tree-sitter-powershell.wasm');
});

function syntaxProblems(text: string): string[] {
  const tree = parser.parse(text);
  if (!tree) return ['the parser returned nothing'];
  return syntaxErrorNodes(tree.rootNode).map(
    (node) =>
      `${node.isMissing ? 'missing' : 'error'} ${node.type} at ${node.startPosition.row + 1}:${node.startPosition.column + 1}`,
  );
}

describe('generated PowerShell parses', () => {
  it('there are scripts to check', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(19);
  });

  it.each(scripts)('%s', (name) => {
    expect(syntaxProblems(readFileSync(new URL(name, goldenDirectory), 'utf8'))).toEqual([]);
  });

  it('the check catches a broken script', () => {
    const broken = readFileSync(new URL(scripts[0]!, goldenDirectory), 'utf8').replace(/\}\s*$/, '');
    expect(syntaxProblems(broken)).not.toEqual([]);
    expect(syntaxProblems('if ($x -eq 1 { Write-Output "no paren" }')).not.toEqual([]);
  });
});
