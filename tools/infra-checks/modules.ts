import {
  declarationBody,
  declarations,
  objectProperties,
  outputs as outputsOf,
  problemAt,
  property,
  stringLiteral,
  type BicepDocument,
  type InfraProblem,
} from './bicep.js';

/**
 * What the Bicep compiler would say about module calls, as far as the tree shows it: the module
 * file exists, every parameter passed is declared there, every required one is passed, and every
 * `module.outputs.name` read is an output of the module.
 */
export function moduleProblems(
  document: BicepDocument,
  load: (path: string) => BicepDocument | undefined,
): InfraProblem[] {
  const problems: InfraProblem[] = [];
  const modules = new Map<string, BicepDocument>();
  for (const declaration of document.root.descendantsOfType('module_declaration')) {
    const symbol = declaration.namedChildren[0]?.text ?? '';
    const path = stringLiteral(declaration.namedChildren[1]);
    const target = path === undefined ? undefined : load(path);
    if (!target) {
      problems.push(
        problemAt(
          document,
          declaration.namedChildren[1] ?? declaration,
          `module ${symbol}: cannot find ${path ?? 'its file'}`,
        ),
      );
      continue;
    }
    modules.set(symbol, target);
    const declared = [...declarations(target).values()].filter((item) => item.kind === 'param');
    const params = property(declarationBody(declaration), 'params');
    const passed = params?.type === 'object' ? objectProperties(params) : [];
    for (const { key, keyNode } of passed) {
      if (!declared.some((item) => item.name === key))
        problems.push(
          problemAt(document, keyNode, `module ${symbol}: ${target.file} has no parameter ${key}`),
        );
    }
    for (const item of declared) {
      const optional =
        item.value !== undefined ||
        item.node.namedChildren.find((child) => child.type === 'type')?.text.endsWith('?');
      if (!optional && !passed.some(({ key }) => key === item.name))
        problems.push(
          problemAt(
            document,
            declaration,
            `module ${symbol}: required parameter ${item.name} of ${target.file} is not passed`,
          ),
        );
    }
  }
  for (const read of document.root.descendantsOfType('member_expression')) {
    const outputs = read.childForFieldName('object');
    if (outputs?.type !== 'member_expression' || outputs.childForFieldName('property')?.text !== 'outputs')
      continue;
    const symbol = outputs.childForFieldName('object')?.text ?? '';
    const target = modules.get(symbol);
    const name = read.childForFieldName('property')?.text ?? '';
    if (target && !outputsOf(target).has(name))
      problems.push(problemAt(document, read, `module ${symbol}: ${target.file} has no output ${name}`));
  }
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}
