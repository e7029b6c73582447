import { agentMain } from './main.js';

// The entry esbuild bundles into emfleet-agent.js (tools/package-agent.ts).
// `emfleet-agent --help | more` closing the pipe early is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
process.exitCode = await agentMain(process.argv);
