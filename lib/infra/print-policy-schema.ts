import { policySchemaText } from './policy-schema.js';

// node dist/lib/infra/print-policy-schema.js > infra/policy.schema.json
process.stdout.write(policySchemaText());
