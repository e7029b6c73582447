import functions, {
  type HttpFunctionOptions,
  type StorageQueueFunctionOptions,
  type TimerFunctionOptions,
} from '@azure/functions';
import { localHostFlag } from './config/index.js';

// @azure/functions is CommonJS whose exports Node cannot name statically: import the whole module.
const { app } = functions;

/**
 * A trigger as `functions/*.ts` declare it: what the Functions host registers, and what the local
 * host (lib/local/host) and the tests run without it (DESIGN §9).
 */
export type FunctionDefinition =
  | { readonly kind: 'timer'; readonly name: string; readonly options: TimerFunctionOptions }
  | { readonly kind: 'storageQueue'; readonly name: string; readonly options: StorageQueueFunctionOptions }
  | { readonly kind: 'http'; readonly name: string; readonly options: HttpFunctionOptions };

/**
 * Registers with the v4 programming model and returns the definition. Where emfleet runs the
 * functions itself (`npm start`, tests: `localHostFlag` set to 1, a process flag, not an app setting)
 * registration is skipped: outside the Functions host the library would only warn and discard it.
 */
export function register<T extends FunctionDefinition>(definition: T): T {
  if (process.env[localHostFlag] === '1') return definition;
  switch (definition.kind) {
    case 'timer':
      app.timer(definition.name, definition.options);
      break;
    case 'storageQueue':
      app.storageQueue(definition.name, definition.options);
      break;
    case 'http':
      app.http(definition.name, definition.options);
      break;
  }
  return definition;
}

export function isFunctionDefinition(value: unknown): value is FunctionDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as { kind?: unknown; name?: unknown; options?: { handler?: unknown } };
  return (
    (candidate.kind === 'timer' || candidate.kind === 'storageQueue' || candidate.kind === 'http') &&
    typeof candidate.name === 'string' &&
    typeof candidate.options?.handler === 'function'
  );
}
