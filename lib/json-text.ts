import { z } from 'zod';

/**
 * JSON held as text, parsed and then validated by `schema`: list properties of Tables rows (Tables
 * has no arrays) and JSON app settings (EMFLEET_WAVES, EMFLEET_FEEDS). Text that is not JSON fails
 * with "is not valid JSON"; JSON that does not fit fails with the schema's own issue and path.
 */
export function jsonText<T extends z.ZodType>(schema: T) {
  return z
    .string()
    .transform((text, context) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        context.addIssue({ code: 'custom', message: 'is not valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(schema);
}
