import type { FunctionDefinition } from '../../functions.js';

/**
 * `%NAME%` in a schedule or queue name replaced by the app setting NAME, as the real host binds
 * them; an unset setting is an error naming the function and the text.
 */
export function resolveSettingReferences(
  definition: FunctionDefinition,
  what: string,
  text: string,
  settings: Readonly<Record<string, string>>,
): string {
  return text.replace(/%([^%]+)%/g, (_whole, name: string) => {
    const value = settings[name];
    if (value === undefined)
      throw new Error(
        `function ${definition.name}: ${what} "${text}" names app setting ${name}, which is not set`,
      );
    return value;
  });
}

/** Options the local host would otherwise silently drop: it binds triggers only. */
export function refuseUnboundOptions(definition: FunctionDefinition): void {
  const options = definition.options as {
    trigger?: unknown;
    return?: { type?: string };
    extraInputs?: unknown[];
    extraOutputs?: unknown[];
    retry?: unknown;
  };
  const unbound = [
    options.trigger !== undefined && 'trigger',
    options.return !== undefined &&
      !(definition.kind === 'http' && options.return.type === 'http') &&
      'return',
    (options.extraInputs?.length ?? 0) > 0 && 'extraInputs',
    (options.extraOutputs?.length ?? 0) > 0 && 'extraOutputs',
    options.retry !== undefined && 'retry',
  ].filter(Boolean);
  if (unbound.length > 0)
    throw new Error(
      `function ${definition.name}: the local host does not support ${unbound.join(', ')}; declare the trigger through its options and write outputs from the handler`,
    );
}
