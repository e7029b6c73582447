import { policySchemaText } from './policy-schema.js';

// node dist/tools/infra-checks/print-policy-schema.js > infra/policy.schema.json
process.stdout.write(policySchemaText());
