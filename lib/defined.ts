/**
 * The properties that are set. With exactOptionalPropertyTypes an optional property may be left out
 * but not given undefined; values read from settings, queries or zod come with undefined in them.
 */
export function definedOnly<T extends Record<string, unknown>>(
  value: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
