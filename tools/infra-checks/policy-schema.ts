import { z } from 'zod';
import { declaredPolicySchema } from '../../lib/policy/declared.js';

/**
 * infra/policy.schema.json: the declared-policy schema (lib/policy/declared.ts) as JSON Schema,
 * so editors check infra/policy.json as it is typed. It describes the file as written (defaults
 * make keys optional); checks JSON Schema cannot express (a server in two rings) stay with zod.
 * Regenerate: npx tsc -p . && node dist/tools/infra-checks/print-policy-schema.js > infra/policy.schema.json
 */
export function policyJsonSchema(): Record<string, unknown> {
  const { $schema, ...generated } = z.toJSONSchema(declaredPolicySchema, { io: 'input' });
  return {
    $schema,
    title: 'emfleet declared policy (EMFLEET_POLICY)',
    description:
      'Policy as code: the org baseline, per-server settings and rings. Bicep loads infra/policy.json into the EMFLEET_POLICY app setting; each poll syncs it into the Policy table with source=bicep, and rows edited in Tables (source=table) override it for their scope.',
    ...generated,
  };
}

export function policySchemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}
