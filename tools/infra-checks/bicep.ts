import { readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Node } from 'web-tree-sitter';
import { grammarParser, syntaxErrorNodes } from '../tree-sitter.js';

/**
 * Bicep read with the tree-sitter-bicep grammar (the Bicep CLI is not available everywhere the
 * tests run): syntax errors by file, line and column, and a few helpers over the tree for the
 * infra checks. Positions are 1-based, as editors show them.
 */
export interface InfraProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export function formatProblem(problem: InfraProblem): string {
  return `${problem.file}:${problem.line}:${problem.column}: ${problem.message}`;
}

export interface BicepDocument {
  /** As given to parseBicep: the name problems are reported under. */
  readonly file: string;
  readonly kind: 'bicep' | 'bicepparam';
  /** The file's own text (the tree of a .bicepparam file is of a rewritten copy; see parseBicep). */
  readonly text: string;
  readonly root: Node;
}

/**
 * tree-sitter-bicep 1.1 knows `param NAME TYPE = value` but not a parameters file's untyped
 * `param NAME = value` (an object value even parses as a type). `var` plus two spaces has the
 * same length, so the rewritten copy parses as variables at the very same lines and columns.
 */
const parameterAssignment = /^([ \t]*)param(?=[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*=)/gm;

export async function parseBicep(file: string, text: string): Promise<BicepDocument> {
  const kind = file.endsWith('.bicepparam') ? 'bicepparam' : 'bicep';
  const source = kind === 'bicepparam' ? text.replace(parameterAssignment, '$1var  ') : text;
  const tree = (await grammarParser('tree-sitter-bicep/tree-sitter-bicep.wasm')).parse(source);
  if (!tree) throw new Error(`tree-sitter returned no tree for ${file}`);
  return { file, kind, text, root: tree.rootNode };
}

/** Every .bicep and .bicepparam file under `directory`, skipping dependencies and build output. */
export async function findBicepFiles(directory: string): Promise<string[]> {
  const skipped = new Set(['node_modules', 'dist', '.git', '.emfleet']);
  const found: string[] = [];
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!skipped.has(entry.name)) await walk(join(at, entry.name));
      } else if (entry.name.endsWith('.bicep') || entry.name.endsWith('.bicepparam')) {
        found.push(join(at, entry.name));
      }
    }
  };
  await walk(directory);
  return found.sort();
}

/** Reads and parses files; each document is named by its path relative to `base`, with forward slashes. */
export async function loadBicepFiles(paths: readonly string[], base: string): Promise<BicepDocument[]> {
  return Promise.all(
    paths.map(async (path) =>
      parseBicep(relative(base, path).split(sep).join('/'), await readFile(path, 'utf8')),
    ),
  );
}

export function problemAt(document: BicepDocument, node: Node, message: string): InfraProblem {
  return {
    file: document.file,
    line: node.startPosition.row + 1,
    column: node.startPosition.column + 1,
    message,
  };
}

/** ERROR and MISSING nodes, and typed declarations where a parameters file may only assign. */
export function syntaxProblems(document: BicepDocument): InfraProblem[] {
  const problems = syntaxErrorNodes(document.root).map((node) =>
    problemAt(
      document,
      node,
      node.isMissing
        ? `syntax error: missing ${node.type}`
        : `syntax error near ${JSON.stringify(node.text.split('\n')[0]!.slice(0, 40))}`,
    ),
  );
  if (document.kind === 'bicepparam') {
    for (const declaration of document.root.descendantsOfType('parameter_declaration')) {
      problems.push(
        problemAt(
          document,
          declaration,
          'a parameters file assigns values (param NAME = value); declare the parameter and its type in the .bicep file',
        ),
      );
    }
  }
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

// ---- reading the tree

/** The value of a string without interpolation, escapes decoded; undefined for anything else. */
export function stringLiteral(node: Node | undefined): string | undefined {
  if (node?.type !== 'string') return undefined;
  let value = '';
  for (const part of node.namedChildren) {
    if (part.type === 'string_content') value += part.text;
    else if (part.type === 'escape_sequence') value += unescapeSequence(part.text);
    else return undefined;
  }
  return value;
}

function unescapeSequence(sequence: string): string {
  const simple: Record<string, string> = {
    '\\n': '\n',
    '\\r': '\r',
    '\\t': '\t',
    "\\'": "'",
    '\\\\': '\\',
    '\\$': '$',
  };
  const unicode = /^\\u\{([0-9A-Fa-f]+)\}$/.exec(sequence);
  return simple[sequence] ?? (unicode ? String.fromCodePoint(Number.parseInt(unicode[1]!, 16)) : sequence);
}

/** The key of an object property: an identifier or a quoted name. */
export function propertyKey(property: Node): string | undefined {
  const key = property.namedChildren[0];
  if (key?.type === 'identifier') return key.text;
  return stringLiteral(key);
}

/** The properties of an object literal as [key, value] (nested resource declarations left out). */
export function objectProperties(object: Node): { key: string; keyNode: Node; value: Node }[] {
  const properties: { key: string; keyNode: Node; value: Node }[] = [];
  for (const property of object.namedChildren) {
    if (property.type !== 'object_property') continue;
    const key = propertyKey(property);
    const keyNode = property.namedChildren[0];
    const value = property.namedChildren[1];
    if (key !== undefined && keyNode && value) properties.push({ key, keyNode, value });
  }
  return properties;
}

export function property(object: Node | undefined, key: string): Node | undefined {
  if (object?.type !== 'object') return undefined;
  return objectProperties(object).find((entry) => entry.key === key)?.value;
}

/** Comments, and `#disable-next-line` linter directives, sit among an array's or object's items. */
export function isComment(node: Node): boolean {
  return node.type === 'comment' || node.type === 'diagnostic_comment';
}

/** A literal (string, number, boolean, null, array, object of literals) as a JavaScript value. */
export function literalValue(node: Node | undefined): { value: unknown } | undefined {
  if (!node) return undefined;
  switch (node.type) {
    case 'string': {
      const value = stringLiteral(node);
      return value === undefined ? undefined : { value };
    }
    case 'number':
      return { value: Number(node.text) };
    case 'boolean':
      return { value: node.text === 'true' };
    case 'null':
      return { value: null };
    case 'array': {
      const items: unknown[] = [];
      for (const item of node.namedChildren.filter((child) => !isComment(child))) {
        const literal = literalValue(item);
        if (!literal) return undefined;
        items.push(literal.value);
      }
      return { value: items };
    }
    case 'object': {
      const entries: [string, unknown][] = [];
      for (const { key, value } of objectProperties(node)) {
        const literal = literalValue(value);
        if (!literal) return undefined;
        entries.push([key, literal.value]);
      }
      return { value: Object.fromEntries(entries) };
    }
    default:
      return undefined;
  }
}

export interface Declaration {
  readonly kind: 'param' | 'var' | 'resource' | 'module' | 'output' | 'type';
  readonly name: string;
  readonly node: Node;
  /** The declared value (a param's default, a var's expression, a resource's body statement). */
  readonly value: Node | undefined;
  /** Decorator names, e.g. ['secure', 'description']. */
  readonly decorators: readonly string[];
}

const declarationKinds: Record<string, Declaration['kind']> = {
  parameter_declaration: 'param',
  variable_declaration: 'var',
  resource_declaration: 'resource',
  module_declaration: 'module',
  output_declaration: 'output',
  type_declaration: 'type',
};

/**
 * The file's top-level symbols by name: parameters, variables, resources, modules, types. In a
 * .bicepparam file the parameter assignments appear as `var`.
 */
export function declarations(document: BicepDocument): Map<string, Declaration> {
  return new Map(
    topLevel(document)
      .filter((item) => item.kind !== 'output')
      .map((item) => [item.name, item]),
  );
}

/** Outputs have a namespace of their own: `output name` may share a parameter's name. */
export function outputs(document: BicepDocument): Map<string, Declaration> {
  return new Map(
    topLevel(document)
      .filter((item) => item.kind === 'output')
      .map((item) => [item.name, item]),
  );
}

function topLevel(document: BicepDocument): Declaration[] {
  const found: Declaration[] = [];
  let pendingDecorators: string[] = [];
  for (const statement of document.root.namedChildren) {
    if (statement.type === 'decorators') {
      pendingDecorators = statement.namedChildren.map(
        (decorator) =>
          decorator.namedChildren[0]?.childForFieldName('function')?.text ??
          decorator.namedChildren[0]?.text ??
          '',
      );
      continue;
    }
    const kind = declarationKinds[statement.type];
    const name = statement.namedChildren.find((child) => child.type === 'identifier')?.text;
    if (kind && name) {
      // A param's default follows its type; everything else ends with its value.
      const children = statement.namedChildren;
      const typeIndex = children.findIndex((child) => child.type === 'type');
      const value =
        kind === 'param'
          ? typeIndex < 0
            ? undefined
            : children[typeIndex + 1]
          : children.length > 1
            ? children.at(-1)
            : undefined;
      found.push({ kind, name, node: statement, value, decorators: pendingDecorators });
    }
    pendingDecorators = [];
  }
  return found;
}

export interface ResourceDeclaration {
  readonly symbol: string;
  /** Fully qualified, without the API version: nested declarations carry their parents' type. */
  readonly type: string;
  readonly node: Node;
  /** Declared elsewhere and only referenced here. */
  readonly existing: boolean;
  /** The resource's object, looking through `[for ...]` and `if (...)`. */
  readonly body: Node | undefined;
}

/** Every resource declaration in the file, nested ones included. */
export function resources(document: BicepDocument): ResourceDeclaration[] {
  return document.root.descendantsOfType('resource_declaration').map((node) => ({
    symbol: node.namedChildren[0]?.text ?? '',
    type: fullType(node),
    node,
    existing: node.children.some((child) => child.type === 'existing'),
    body: declarationBody(node),
  }));
}

function ownType(declaration: Node): string {
  return (stringLiteral(declaration.namedChildren[1]) ?? '').replace(/@.*$/, '');
}

function fullType(declaration: Node): string {
  const own = ownType(declaration);
  if (own.includes('.')) return own;
  for (let parent = declaration.parent; parent; parent = parent.parent) {
    if (parent.type === 'resource_declaration') return `${fullType(parent)}/${own}`;
  }
  return own;
}

/** The object of a resource or module declaration, looking through `[for ...]` and `if (...)`. */
export function declarationBody(declaration: Node): Node | undefined {
  let value = declaration.namedChildren.at(-1);
  if (value?.type === 'for_statement') value = value.childForFieldName('body') ?? undefined;
  if (value?.type === 'if_statement') value = value.namedChildren.find((child) => child.type === 'object');
  return value?.type === 'object' ? value : undefined;
}

export function isType(resource: ResourceDeclaration, type: string): boolean {
  return resource.type.toLowerCase() === type.toLowerCase();
}

/**
 * The strings an expression can produce, following variables and loop variables to their
 * literals (over-approximating: a member of a variable's object that cannot be singled out yields
 * every string in that object). `complete` is false when a parameter, output of another
 * deployment or function result is involved, so the strings found are not the whole story.
 */
export function reachableStrings(
  document: BicepDocument,
  expression: Node,
): { strings: string[]; complete: boolean } {
  const scope = declarations(document);
  const strings: string[] = [];
  let complete = true;
  const seen = new Set<number>();
  const visit = (node: Node): void => {
    if (seen.has(node.id)) return;
    seen.add(node.id);
    switch (node.type) {
      case 'string': {
        for (const part of node.namedChildren) {
          if (part.type === 'string_content') strings.push(part.text);
          else if (part.type === 'interpolation') part.namedChildren.forEach(visit);
        }
        return;
      }
      case 'identifier': {
        const loop = loopIterable(node);
        if (loop) return visit(loop);
        const declared = scope.get(node.text);
        if (declared?.kind === 'var' && declared.value) return visit(declared.value);
        complete = false;
        return;
      }
      case 'member_expression': {
        const object = node.childForFieldName('object');
        const name = node.childForFieldName('property')?.text;
        const declared = object?.type === 'identifier' ? scope.get(object.text) : undefined;
        const member =
          declared?.kind === 'var' && name !== undefined ? property(declared.value, name) : undefined;
        if (member) return visit(member);
        if (object) visit(object);
        return;
      }
      case 'call_expression':
        node.childForFieldName('arguments')?.namedChildren.forEach(visit);
        return;
      default:
        node.namedChildren.forEach(visit);
    }
  };
  visit(expression);
  return { strings, complete };
}

/** For a loop variable, the expression it iterates over. */
function loopIterable(identifier: Node): Node | undefined {
  for (let parent = identifier.parent; parent; parent = parent.parent) {
    if (parent.type !== 'for_statement') continue;
    const head = parent.namedChildren[0];
    const variables =
      head?.type === 'for_loop_parameters'
        ? head.namedChildren.slice(0, 1).map((variable) => variable.text)
        : [head?.text];
    if (variables.includes(identifier.text) && parent.namedChildren[1]?.id !== identifier.id)
      return parent.namedChildren[1];
  }
  return undefined;
}
