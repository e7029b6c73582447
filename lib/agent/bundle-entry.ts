import { agentMain } from './main.js';

// The entry esbuild bundles into emfleet-agent.js (tools/package-agent.ts).
process.exitCode = await agentMain(process.argv);
