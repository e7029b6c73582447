import { describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/main.js';

async function help(...args: string[]): Promise<string> {
  const out: string[] = [];
  await main(['node', 'emfleet', ...args, '--help'], {
    stdout: (line) => out.push(line),
    stderr: () => undefined,
    env: {},
  });
  return out.join('\n');
}

const commandsIn = (text: string): string[] =>
  text.includes('Commands:')
    ? [...text.slice(text.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*)/gm)]
        .map((match) => match[1]!)
        .filter((name) => name !== 'help')
    : [];

describe('emfleet --help', () => {
  it('every command has an example and --json (the agent excepted: it is a long-running service)', async () => {
    const missing: string[] = [];
    const commands: string[][] = [];
    for (const group of commandsIn(await help())) {
      const subcommands = commandsIn(await help(group));
      commands.push(...(subcommands.length > 0 ? subcommands.map((sub) => [group, sub]) : [[group]]));
    }
    expect(commands.map((command) => command.join(' '))).toEqual(
      expect.arrayContaining(['status', 'poll', 'servers show', 'package show', 'test-connectivity']),
    );
    for (const command of commands) {
      const text = await help(...command);
      if (!/\nExamples?:\n {2}emfleet /.test(text)) missing.push(`${command.join(' ')}: no example`);
      if (command[0] !== 'agent' && !text.includes('--json')) missing.push(`${command.join(' ')}: no --json`);
      if (
        ['status', 'poll', 'servers', 'policy', 'rollout'].includes(command[0]!) &&
        !text.includes('--org <name>')
      )
        missing.push(`${command.join(' ')}: no --org`);
    }
    expect(missing).toEqual([]);
  });
});
