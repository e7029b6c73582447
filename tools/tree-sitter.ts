import { createRequire } from 'node:module';
import { Language, Parser, type Node } from 'web-tree-sitter';

/**
 * tree-sitter grammars shipped as WASM in npm packages (tree-sitter-bicep, tree-sitter-powershell):
 * how the infra checks read Bicep and the applier's tests read PowerShell where neither tool runs.
 */
const parsers = new Map<string, Promise<Parser>>();

/** A parser for the grammar at `wasm` (a package path such as `tree-sitter-bicep/tree-sitter-bicep.wasm`), loaded once. */
export function grammarParser(wasm: string): Promise<Parser> {
  let parser = parsers.get(wasm);
  if (!parser) {
    parser = (async () => {
      await Parser.init();
      return new Parser().setLanguage(await Language.load(createRequire(import.meta.url).resolve(wasm)));
    })();
    parsers.set(wasm, parser);
  }
  return parser;
}

/** The outermost ERROR and MISSING nodes of a tree, in document order: where parsing went wrong. */
export function syntaxErrorNodes(root: Node): Node[] {
  const found: Node[] = [];
  const walk = (node: Node): void => {
    if (node.isMissing || node.isError) {
      found.push(node);
      return;
    }
    for (const child of node.children) if (child.hasError || child.isMissing) walk(child);
  };
  walk(root);
  return found;
}
