import { access, mkdtemp } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../helpers/cli.js';
import { useWorld } from '../helpers/e2e.js';

/**
 * Every `npx emfleet …` example of the README, run as a user runs it (the real binary, in a
 * directory of its own) against a local run: Azurite, the local Functions host, agents behind
 * the relay emulator, an OCS emulator; the environment is what `npm start`'s export lines give.
 */
const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The examples in fenced shell blocks, and those quoted inline, in README order; comments dropped. */
function readmeExamples(text: string, options: { faulty: boolean } = { faulty: false }): string[] {
  const examples: string[] = [];
  let inShell = false;
  // A block that starts `npm start -- … --faulty N` shows a halted rollout: its examples run against one.
  let faultyBlock = false;
  for (const line of text.split('\n')) {
    if (/^```/.test(line)) {
      inShell = !inShell && /^```(sh|bash|shell)?\s*$/.test(line);
      faultyBlock = false;
      continue;
    }
    if (inShell && /^npm start .*--faulty/.test(line)) faultyBlock = true;
    if (inShell && faultyBlock !== options.faulty) continue;
    if (!inShell && options.faulty) continue;
    if (inShell) {
      const command = line.replace(/\s+#.*$/, '').trim();
      if (command.startsWith('npx emfleet ')) examples.push(command);
    } else {
      for (const match of line.matchAll(/`(npx emfleet [^`]+)`/g))
        if (!match[1]!.includes('...')) examples.push(match[1]!);
    }
  }
  return examples;
}

/** Splits a command line as the shell would for these examples: spaces, and "double quotes". */
function shellWords(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => match[1] ?? match[2]!);
}

const world = useWorld();

describe('the README against a local run', () => {
  it('finds the examples: the admin session and the ones quoted in the text', () => {
    const examples = readmeExamples(readme);
    expect(examples.length).toBeGreaterThanOrEqual(16);
    for (const command of [
      'status',
      'servers show',
      'package show',
      'poll',
      'policy block',
      'test-connectivity --from-cloud',
    ]) {
      expect(
        examples.some((example) => example.startsWith(`npx emfleet ${command}`)),
        command,
      ).toBe(true);
    }
  });

  it("runs the quick start's examples against a fleet whose canary fails, as npm start --faulty makes it", async () => {
    const examples = readmeExamples(readme, { faulty: true });
    expect(examples.length).toBeGreaterThanOrEqual(3);
    const run = await world.deploy([
      { name: 'ex01', ring: 'canary', failOn: ['MSExchangeUM'] },
      { name: 'ex02', ring: 'broad' },
    ]);
    await run.host.runTimer('pollOcs');
    await run.settled('microsoft-000001-apply', ['Halted'], 60_000);
    const cwd = await mkdtemp(join(tmpdir(), 'emfleet-readme-'));
    for (const example of examples) {
      const [, , ...args] = shellWords(example);
      const result = await runCli(args, { cwd, env: { ...run.settings } });
      expect(result.code, `${example}\n${result.stdout}\n${result.stderr}`).toBe(0);
    }
  }, 300_000);

  it('runs every example, each exits 0, and says what the README promises', async () => {
    const run = await world.deploy([
      { name: 'ex01', ring: 'canary' },
      { name: 'ex02', ring: 'broad' },
      // The README's `servers add ex03…` updates this registration (its build and ring).
      { name: 'ex03', ring: 'broad' },
    ]);
    await run.host.runTimer('pollOcs');
    await run.settled('microsoft-000001-apply', ['Completed'], 60_000);
    const cwd = await mkdtemp(join(tmpdir(), 'emfleet-readme-'));
    const env = {
      ...run.settings,
      EMFLEET_API_URL: run.host.httpUrl,
      EMFLEET_API_KEY: run.host.functionKey,
      // The emergency profile without its 15-minute canary bake, so the block's removal finishes here.
      EMFLEET_EMERGENCY_WAVES: JSON.stringify([
        { name: 'canary', select: { percent: 2 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
        { name: 'all', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
      ]),
    };
    const outputs = new Map<string, CliRun>();
    // `servers add … --site S` puts a server behind its site's relay hub, which this run has none of
    // (test/e2e/hub.test.ts runs hubs); every other example runs.
    for (const example of readmeExamples(readme).filter((command) => !/ --site /.test(command))) {
      const [npx, emfleet, ...args] = shellWords(example);
      expect([npx, emfleet]).toEqual(['npx', 'emfleet']);
      const result = await runCli(args, { cwd, env });
      expect(result.code, `${example}\n${result.stdout}\n${result.stderr}`).toBe(0);
      outputs.set(args.join(' '), result);
    }
    const out = (args: string): string => {
      const found = outputs.get(args);
      if (!found) throw new Error(`the README has no example "emfleet ${args}"`);
      return found.stdout;
    };

    expect(out('status')).toMatch(
      /feed microsoft: http:\/\/127\.0\.0\.1:\d+\/getexchangemitigations\n {2}last poll: \S+, Success\n {2}current package: sequence 1, sha256 [0-9a-f]{64}\n {4}signed \S+ by CN=Microsoft Exchange XML Signing/,
    );
    expect(out('servers show ex01.contoso.com')).toMatch(/build: registered 15\.2\.1118\.7/);
    expect(out('servers add ex03.contoso.com --build 15.2.1544.4 --ring canary')).toMatch(
      /^updated server ex03\.contoso\.com \(build 15\.2\.1544\.4, the agent reports 15\.2\.1118\.7, which emfleet plans on, ring canary/,
    );
    expect(out('servers show ex01.contoso.com')).toMatch(
      /microsoft\s+EM1\s+Apply\s+Applicable\s+Applied\s+\S+\s+emfleet\s+none \(in place as policy wants\)/,
    );
    expect(out('servers show ex01.contoso.com')).toMatch(/^EM1 Applied: URL Rewrite rule .* added/m);
    await access(join(cwd, 'current.xml'));
    expect(out('package verify current.xml')).toMatch(/^verified: 4 mitigations \(PING1, EM1, EM2, EM3\)/);
    expect(out('policy set --server ex02.contoso.com --enabled false')).toMatch(
      /^server ex02\.contoso\.com: mitigations disabled\ntakes effect at the next reconcile, \d\d:\d\d UTC/,
    );
    // The block starts the removal at once, through the emergency waves, and names the rollout;
    // ex02 is disabled, so only ex01 and ex03 are touched.
    const blocked = /fix-up rollout (microsoft-now-\d{14}) started for 2 servers \(emergency waves\)/.exec(
      out('policy block --org-scope EM3 --now'),
    );
    expect(blocked, out('policy block --org-scope EM3 --now')).not.toBeNull();
    await run.settled(blocked![1]!, ['Completed'], 60_000);
    expect(out('poll')).toBe('feed microsoft: unchanged (the current package stays in force)\n');
    expect(out('test-connectivity --server ex01.contoso.com')).toMatch(
      /Result: Success\.\nMessage: The Mitigation Service endpoint \S+ is accessible from this computer/,
    );
    expect(out('test-connectivity --from-cloud --server ex01.contoso.com')).toMatch(
      /Result: Success\.\nMessage: The Mitigation Service endpoint \S+ is accessible from the function app/,
    );
    const status = JSON.parse(out('status --org contoso --json')) as {
      org: string;
      servers: { total: number };
    };
    expect(status).toMatchObject({ org: 'contoso', servers: { total: 3 } });

    // After the block ran: ex01's EM3 was removed by emfleet, and reconcile leaves it.
    const shown = JSON.parse(
      (await runCli(['servers', 'show', 'ex01.contoso.com', '--json'], { cwd, env })).stdout,
    ) as {
      mitigations: {
        mitigation: string;
        decision: string;
        reasonCode: string;
        lastOutcome: { outcome: string } | null;
        reconcile: { action: string };
      }[];
    };
    expect(shown.mitigations.find((row) => row.mitigation === 'EM3')).toMatchObject({
      decision: 'Skip',
      reasonCode: 'BlockedByOrg',
      lastOutcome: { outcome: 'Removed' },
      reconcile: { action: 'none' },
    });
    // Sixteen runs of the binary, each a Node start: minutes on a busy two-core machine.
  }, 300_000);
});
