import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { settingNames } from '../lib/config/index.js';
import { main } from '../lib/cli/main.js';

/** The README is the user's reference: these keep it in step with the code it describes. */
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  expect(start, `README has a "## ${title}" section`).toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The command names listed under "Commands:" in `emfleet ...args --help`. */
async function commandsOf(...args: string[]): Promise<string[]> {
  const out: string[] = [];
  await main(['node', 'emfleet', ...args, '--help'], { stdout: (line) => out.push(line), stderr: () => undefined, env: {} });
  const text = out.join('\n');
  const listed = text.slice(text.indexOf('Commands:'));
  return text.includes('Commands:') ? [...listed.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((match) => match[1]!).filter((name) => name !== 'help') : [];
}

describe('README', () => {
  it('has the two quick-start commands', () => {
    expect(section('Quick start')).toContain('npm ci && npm start');
    expect(section('Quick start')).toContain('npm ci && npm test');
  });

  it('lists exactly the settings lib/config reads', () => {
    const documented = [...section('Settings').matchAll(/^\| `([A-Za-z0-9_]+)` \|/gm)].map((match) => match[1]);
    expect(documented.sort()).toEqual([...settingNames].sort());
  });

  it('documents every emfleet command and subcommand in its CLI reference', async () => {
    const reference = section('The `emfleet` command').split('\n');
    const groups = await commandsOf();
    expect(groups.length).toBeGreaterThan(5);
    const missing: string[] = [];
    for (const group of groups) {
      const lines = reference.filter((line) => line.includes(`emfleet ${group}`));
      if (lines.length === 0) missing.push(group);
      for (const sub of await commandsOf(group)) {
        const named = new RegExp(`\\b${sub}\\b`);
        if (!lines.some((line) => named.test(line.slice(line.indexOf(`emfleet ${group}`))))) missing.push(`${group} ${sub}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('documents every npm start flag', () => {
    for (const flag of ['--once', '--servers', '--faulty', '--unreachable', '--break', '--port', '--json']) expect(section('Quick start')).toContain(`\`${flag}`);
  });
});
