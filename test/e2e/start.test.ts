import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { LocalRunSummary } from '../../lib/local/run.js';
import { patienceMs, waitFor } from '../helpers/wait.js';

/** `npm start` as a user runs it (the compiled script, from the repository root), with --once --json. */
const root = fileURLToPath(new URL('../../', import.meta.url));

function npmStart(args: string[]): Promise<{ code: number; summary: LocalRunSummary; progress: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['dist/lib/local/start.js', '--once', '--json', ...args],
      { cwd: root, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const last = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve({
            code: error ? Number(error.code ?? 1) : 0,
            summary: JSON.parse(last) as LocalRunSummary,
            progress: stderr,
          });
        } catch {
          reject(
            new Error(`no JSON summary (exit ${error?.code}): ${stdout.slice(-500)} ${stderr.slice(-1500)}`),
          );
        }
      },
    );
  });
}

describe('npm start', () => {
  it('protects a mixed fleet: every applicable server applied, fixed builds left out', async () => {
    const { code, summary, progress } = await npmStart(['--servers', '12']);
    expect(code).toBe(0);
    expect(summary.servers).toBe(12);
    expect(summary.package.mitigations).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(summary.rollouts).toHaveLength(1);
    const [rollout] = summary.rollouts;
    expect(rollout).toMatchObject({ id: 'microsoft-000001-apply', operation: 'apply', state: 'Completed' });
    expect(rollout!.waves.reduce((total, wave) => total + wave.succeeded, 0)).toBe(12);
    // PING1 and EM3 on all 12; EM1 and EM2 not on the four servers whose builds are fixed or out of range.
    expect(summary.outcomes).toEqual({ Applied: 40, NotApplicable: 8 });
    expect(progress).toMatch(
      /OCS package 1 accepted: sha256 [0-9a-f]{12}…, mitigations PING1, EM1, EM2, EM3/,
    );
    expect(progress).toMatch(/rollout microsoft-000001-apply \(apply\): Completed/);
    expect(progress).toMatch(/wave 3 broad: 7\/7 done, 7 ok, 0 failed/);
  });

  it('halts on a faulty canary and touches no server outside the canary ring', async () => {
    const { code, summary, progress } = await npmStart(['--servers', '10', '--faulty', '1']);
    expect(code).toBe(0);
    const [rollout] = summary.rollouts;
    expect(rollout?.state).toBe('Halted');
    expect(
      rollout!.waves
        .slice(1)
        .every((wave) => wave.succeeded + wave.failed === 0 && wave.state === 'NotStarted'),
    ).toBe(true);
    // The canary ring is ex001 (faulty) and nothing else; everything outside it is still to do.
    // The halted rollout never reached them: "Not started (rollout … halted)", not "Pending".
    expect(summary.outcomes).toEqual({ Failed: 3, Applied: 1, NotStarted: 30, NotApplicable: 6 });
    expect(progress).toMatch(/ex010\.contoso\.com .*Not started \(rollout microsoft-000001-apply halted\)/);
    expect(progress).not.toMatch(/\bPending\b/);
  });

  it("--sites 3: the fleet behind three site relay hubs; the server without an agent is Unreachable with its hub's answer, and the halt names its site", async () => {
    const { code, summary, progress } = await npmStart([
      '--servers',
      '12',
      '--sites',
      '3',
      '--unreachable',
      '1',
    ]);
    expect(code).toBe(0);
    expect(progress).toMatch(/12 servers registered, 11 agents listening behind 3 site relay hubs/);
    // ex012 (every mitigation applicable) has no agent behind Site3's hub; it is in the early wave,
    // whose budget is 0: the rollout halts there, the servers through the hubs applied before it.
    expect(summary.outcomes).toMatchObject({ Unreachable: 4, NotApplicable: 8 });
    expect(summary.outcomes['Applied']).toBeGreaterThanOrEqual(8);
    expect(summary.rollouts[0]!.waves[0]).toMatchObject({
      name: 'canary',
      servers: 2,
      succeeded: 2,
      failed: 0,
    });
    expect(progress).toContain("ex012.contoso.com [Unreachable behind site Site3's relay hub on site-site3]");
    expect(progress).toMatch(
      /ex012\.contoso\.com +PING1 +Unreachable +hub Site3-hub of site Site3 could not get an answer from ex012\.contoso\.com at https:\/\/127\.0\.0\.1:1: ECONNREFUSED/,
    );
  });

  it('--break: the canary OWA pool takes ECP down, so both canaries roll back and the rollout halts there', async () => {
    const { code, summary, progress } = await npmStart(['--servers', '12', '--break', '2']);
    expect(code).toBe(0);
    const [rollout] = summary.rollouts;
    expect(rollout?.state).toBe('Halted');
    expect(rollout!.waves[0]).toMatchObject({
      name: 'canary',
      servers: 2,
      succeeded: 0,
      failed: 2,
      state: 'Halted',
    });
    expect(
      rollout!.waves
        .slice(1)
        .every((wave) => wave.succeeded + wave.failed === 0 && wave.state === 'NotStarted'),
    ).toBe(true);
    // Both canaries: PING1, EM1 and EM3 applied, EM2 rolled back; the ten others untouched.
    expect(summary.outcomes).toEqual({ Applied: 6, RolledBack: 2, NotStarted: 32, NotApplicable: 8 });
    const reason = /Halted — (WaveHalted: .*)/.exec(progress)?.[1] ?? '';
    expect(reason).toContain('ex001.contoso.com [EM2 RolledBack: ecp]');
    expect(reason).toContain('ex002.contoso.com [EM2 RolledBack: ecp]');
    expect(progress).toMatch(
      /ex002\.contoso\.com +EM2 +RolledBack .*ecp: 503 after apply \(was 200\); rolled back/,
    );
  });
});

/** Every process started under `pid`, read from /proc (Linux): field 4 of /proc/N/stat is the parent. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended while we looked
    }
  }
  const below = (parent: number): number[] =>
    [...parents].filter(([, of]) => of === parent).flatMap(([child]) => [child, ...below(child)]);
  return below(pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start without --once', () => {
  it('serves the admin API until Ctrl-C, then stops cleanly with no process left behind', async () => {
    const child = spawn(process.execPath, ['dist/lib/local/start.js', '--servers', '3'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await expect.poll(() => stdout, { timeout: 60_000, interval: 200 }).toMatch(/press Ctrl-C to stop/);
      const [, url, key] = /admin API: (\S+)\s+\(header x-functions-key: (\S+)\)/.exec(stdout) ?? [];
      const status = await fetch(url!, { headers: { 'x-functions-key': key! } });
      expect(status.status).toBe(200);
      expect(await status.json()).toMatchObject({ org: 'contoso', servers: { total: 3 } });
      const [, dashboard] = /dashboard: (\S+)/.exec(stdout) ?? [];
      const page = await fetch(dashboard!);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      const started = descendants(child.pid!);
      expect(started.length).toBeGreaterThan(0); // Azurite at least

      child.kill('SIGINT');
      await waitFor('emfleet start to exit after SIGINT', () => child.exitCode !== null, {
        timeoutMs: patienceMs,
      });
      expect(await exited).toBe(0);
      expect(started.filter(alive)).toEqual([]);
      await expect(fetch(url!, { headers: { 'x-functions-key': key! } })).rejects.toThrow();
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
