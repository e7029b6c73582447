// `npm run test:stress [-- --runs N] [-- --busy N]`: the test suite N times in a row (default 3)
// with N busy-loop processes beside it (default 2: both cores of a 2-core CI machine busy), as a
// noisy shared CI machine runs it. Stops at the first failing run; the busy loops end with it.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const option = (name, fallback) => {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 0) {
    process.stderr.write(`test:stress: --${name} takes a whole number, got ${process.argv[index + 1]}\n`);
    process.exit(2);
  }
  return value;
};
const runs = option('runs', 3);
const busy = option('busy', 2);

const loops = Array.from({ length: busy }, () =>
  spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }),
);
/** The suite run under way, ended with the busy loops if this script is stopped. */
let current;
const stopAll = () => {
  for (const child of [...loops, current])
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
};
process.on('exit', stopAll);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

const run = (command, args) =>
  new Promise((resolve) => {
    current = spawn(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    current.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });

const log = (line) => process.stdout.write(`test:stress: ${line}\n`);
log(
  `${busy} busy loop(s) started (pids ${loops.map((loop) => loop.pid).join(', ')}); ${runs} run(s) of the suite`,
);
// The CLI and e2e tests run the compiled dist/: build once, as npm test does.
if ((await run('npm', ['run', '-s', 'build'])) !== 0) {
  log('the build failed');
  process.exit(1);
}
const durations = [];
for (let index = 1; index <= runs; index += 1) {
  const started = Date.now();
  const code = await run(process.execPath, ['node_modules/vitest/vitest.mjs', 'run']);
  durations.push(Math.round((Date.now() - started) / 1000));
  log(`run ${index} of ${runs}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} in ${durations.at(-1)} s`);
  if (code !== 0) process.exit(code);
}
log(`${runs} of ${runs} runs passed with ${busy} busy loop(s) beside them (${durations.join(' s, ')} s)`);
