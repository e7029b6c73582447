import { agentMain } from './main.js';

// The entry esbuild bundles into emfleet-agent.js (tools/package-agent.ts).
void agentMain(process.argv).then((code) => {
  process.exitCode = code;
});
