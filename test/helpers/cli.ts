import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const emfleetBin = fileURLToPath(new URL('../../bin/emfleet.js', import.meta.url));

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real `emfleet` binary (compiled by `npm test`'s build step) in a child process. */
export function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  for (const name of Object.keys(env)) {
    if ((name.startsWith('EMFLEET_') || name === 'AzureWebJobsStorage') && !options.env?.[name])
      delete env[name];
  }
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [emfleetBin, ...args],
      { cwd: options.cwd, env, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}
