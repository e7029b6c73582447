#!/usr/bin/env node
// The CLI is compiled by `npm ci` (the `prepare` script) into dist/.
const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  process.stderr.write(
    `emfleet: needs Node.js 22 or later, this is ${process.version}; run it as \`npx emfleet\` so the node@22 dev dependency is used\n`,
  );
  process.exit(2);
}
// `emfleet ... | head` closes the pipe early; that is not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});
const { main } = await import('../dist/lib/cli/main.js');
process.exitCode = await main(process.argv);
