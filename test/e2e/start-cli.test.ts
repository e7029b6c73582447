import { execFile, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { emfleetBin } from '../helpers/cli.js';

/**
 * A second terminal beside `npm start`: the export lines it prints, pasted into a shell, point the
 * `emfleet` binary at the local run (its Azurite, org, trust anchor and relay).
 */
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Runs `script` in sh with none of the run's settings in the environment, from another directory. */
function shell(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('EMFLEET_') && name !== 'AzureWebJobsStorage',
    ),
  );
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', script],
      { cwd: tmpdir(), env, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm start and the emfleet command in another terminal', () => {
  it('prints export lines that make `emfleet rollout list --json` and `reconcile --dry-run` see the local run', {
    timeout: 120_000,
  }, async () => {
    const child = spawn(process.execPath, ['dist/lib/local/start.js', '--servers', '3', '--faulty', '1'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => stdout, { timeout: 90_000, interval: 200 }).toMatch(/press Ctrl-C to stop/);
      const exports = stdout.split('\n').filter((line) => line.startsWith('export '));
      expect(exports.map((line) => /^export ([A-Za-z_]+)=/.exec(line)?.[1]).sort()).toEqual(
        expect.arrayContaining([
          'AzureWebJobsStorage',
          'EMFLEET_ORG',
          'EMFLEET_TRUST_ANCHORS',
          'EMFLEET_RELAY_NAMESPACE',
          'EMFLEET_RELAY_ENDPOINT',
          'EMFLEET_RELAY_SEND_KEY_NAME',
          'EMFLEET_RELAY_SEND_KEY',
          'EMFLEET_WAVES',
          'EMFLEET_API_URL',
          'EMFLEET_API_KEY',
        ]),
      );

      const list = await shell(
        `${exports.join('\n')}\nexec "${process.execPath}" "${emfleetBin}" rollout list --json`,
      );
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      expect(JSON.parse(list.stdout)).toEqual([
        expect.objectContaining({ id: 'microsoft-000001-apply', state: 'Halted', feed: 'microsoft' }),
      ]);

      // Reconcile through the run's relay (the sweep asks its agents), holding what the halted canary holds.
      const dryRun = await shell(
        `${exports.join('\n')}\nexec "${process.execPath}" "${emfleetBin}" reconcile --dry-run --json`,
      );
      expect(dryRun.code).toBe(0);
      const report = JSON.parse(dryRun.stdout) as {
        dryRun: boolean;
        feeds: { feed: string; holds: { rolloutId: string }[]; held: unknown[] }[];
      };
      expect(report.dryRun).toBe(true);
      expect(report.feeds[0]?.holds.length).toBeGreaterThan(0);
      expect(report.feeds[0]?.holds.every((hold) => hold.rolloutId === 'microsoft-000001-apply')).toBe(true);
      expect(report.feeds[0]?.held.length).toBeGreaterThan(0);

      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
