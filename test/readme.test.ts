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
  await main(['node', 'emfleet', ...args, '--help'], {
    stdout: (line) => out.push(line),
    stderr: () => undefined,
    env: {},
  });
  const text = out.join('\n');
  const listed = text.slice(text.indexOf('Commands:'));
  return text.includes('Commands:')
    ? [...listed.matchAll(/^ {2}([a-z][a-z-]*)/gm)]
        .map((match) => match[1]!)
        .filter((name) => name !== 'help')
    : [];
}

describe('README', () => {
  it('has the two quick-start commands', () => {
    expect(section('Quick start')).toContain('npm ci && npm start');
    expect(section('Quick start')).toContain('npm ci && npm test');
  });

  it('lists exactly the settings lib/config reads', () => {
    const documented = [...section('Settings').matchAll(/^\| `([A-Za-z0-9_]+)` \|/gm)].map(
      (match) => match[1],
    );
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
        if (!lines.some((line) => named.test(line.slice(line.indexOf(`emfleet ${group}`)))))
          missing.push(`${group} ${sub}`);
      }
    }
    expect(missing).toEqual([]);
  });

  describe('"Install the agent": every command in it exists with those flags', () => {
    const install = section('Install the agent on an Exchange server');
    // Code blocks' lines, PowerShell continuations (a trailing backtick) and shell ones (\\) joined.
    const commands = [...install.matchAll(/```\w*\n([\s\S]*?)```/g)]
      .flatMap((block) => block[1]!.replace(/[`\\]\n\s*/g, ' ').split('\n'))
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    const emfleetCommands = commands.filter((line) => /^(npx )?emfleet /.test(line));
    const installCommands = commands.filter((line) => line.startsWith('.\\Install-EmfleetAgent.ps1'));

    it('has the commands the issue names', () => {
      expect(commands).toContain('npm ci && npm run package:agent');
      expect(emfleetCommands.map((line) => line.split(' --')[0])).toEqual([
        'npx emfleet servers add ex01.contoso.com',
        'npx emfleet servers add ex01.contoso.com',
        'npx emfleet test-connectivity',
      ]);
      expect(installCommands).toHaveLength(1);
    });

    it('npm run package:agent is a script', () => {
      const scripts = (
        JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
          scripts: Record<string, string>;
        }
      ).scripts;
      for (const line of commands.filter((candidate) => candidate.includes('npm run '))) {
        for (const match of line.matchAll(/npm run ([\w:-]+)/g))
          expect(scripts, line).toHaveProperty([match[1]!]);
      }
    });

    it('each emfleet command and flag is in its --help', async () => {
      for (const line of emfleetCommands) {
        const words = line.replace(/^npx /, '').split(/\s+/).slice(1);
        const path = words
          .slice(0, words.findIndex((word) => word.startsWith('--') || word.includes('.')) >>> 0)
          .filter((word) => /^[a-z-]+$/.test(word));
        const out: string[] = [];
        await main(['node', 'emfleet', ...path, '--help'], {
          stdout: (text) => out.push(text),
          stderr: () => undefined,
          env: {},
        });
        const help = out.join('\n');
        expect(help, line).toMatch(new RegExp(`^Usage: emfleet ${path.join(' ')} `, 'm'));
        for (const flag of words.filter((word) => word.startsWith('--')))
          expect(help, `${line}: ${flag}`).toMatch(new RegExp(`(^|[ ,])${flag}[ ,<]`, 'm'));
      }
    });

    it('each Install-EmfleetAgent.ps1 parameter is one the script declares', () => {
      const script = readFileSync(
        new URL('../lib/agent/install/Install-EmfleetAgent.ps1', import.meta.url),
        'utf8',
      );
      const declared = new Set(
        [...script.slice(script.indexOf('param('), script.indexOf('\n)\n')).matchAll(/\]\s*\$(\w+)/g)].map(
          (match) => match[1],
        ),
      );
      const used = [
        ...installCommands
          .join(' ')
          .replace(/\([^)]*\)/g, '()')
          .matchAll(/ -([A-Z]\w+)/g),
      ].map((match) => match[1]);
      expect(used).toEqual([
        'Server',
        'RelayNamespace',
        'HybridConnection',
        'ListenKey',
        'TrustAnchor',
        'TimestampAnchor',
      ]);
      for (const name of used) expect(declared, name).toContain(name);
      expect(install).toContain('.\\Install-EmfleetAgent.ps1 -Uninstall');
      expect(declared).toContain('Uninstall');
    });

    it('names the hybrid connection as servers add --own-hybrid-connection makes it: the server FQDN in lower case', () => {
      expect(readFileSync(new URL('../lib/cli/sites.ts', import.meta.url), 'utf8')).toContain(
        "checkedHybridConnection(flags.relayHc ?? server, '--relay-hc')",
      );
      expect(installCommands[0]).toMatch(
        /-Server ex01\.contoso\.com .*-HybridConnection ex01\.contoso\.com /,
      );
      expect(install).toMatch(/--hybrid-connection-name ex01\.contoso\.com --name listen /);
      // The key goes to the install script's prompt, never through `>` (UTF-16 with a BOM in Windows PowerShell 5.1).
      expect(install).not.toMatch(/-o tsv\s*>/);
    });
  });

  it('documents every npm start flag', () => {
    for (const flag of ['--once', '--servers', '--faulty', '--unreachable', '--break', '--port', '--json'])
      expect(section('Quick start')).toContain(`\`${flag}`);
  });
});
