import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { StateDirectoryError, secureStateDirectory } from '../../lib/agent/state-directory.js';

const directories: string[] = [];
afterAll(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

async function scratch(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-state-'));
  directories.push(directory);
  return directory;
}

describe('secureStateDirectory (POSIX: mode bits)', () => {
  it('creates the directory for the agent alone (700)', async () => {
    const directory = join(await scratch(), 'state');
    await secureStateDirectory(directory, { platform: 'linux' });
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
  });

  it('tightens a directory of its own that others could write', async () => {
    const directory = join(await scratch(), 'state');
    await mkdir(directory);
    await chmod(directory, 0o777);
    await writeFile(join(directory, 'journal.json'), '{}', { mode: 0o640 });
    await secureStateDirectory(directory, { platform: 'linux' });
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
    expect((await stat(join(directory, 'journal.json'))).mode & 0o777).toBe(0o600);
  });

  it('refuses a journal others can write, and changes nothing', async () => {
    const directory = join(await scratch(), 'state');
    await mkdir(directory, { mode: 0o755 });
    const journal = join(directory, 'journal.json');
    await writeFile(journal, '{}');
    await chmod(journal, 0o666);
    const error = await secureStateDirectory(directory, { platform: 'linux' }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(StateDirectoryError);
    expect((error as StateDirectoryError).code).toBe('StateDirectoryUnsafe');
    expect((error as Error).message).toMatch(/journal\.json can be written by others \(mode 666/);
    expect((await stat(journal)).mode & 0o777).toBe(0o666);
    expect((await stat(directory)).mode & 0o777).toBe(0o755);
  });

  // Giving a file to another user needs root.
  it.skipIf(process.getuid?.() !== 0)('refuses a journal another (unprivileged) user owns', async () => {
    const directory = await scratch();
    await writeFile(join(directory, 'journal.json'), '{}', { mode: 0o600 });
    await chown(join(directory, 'journal.json'), 4321, 4321);
    await expect(secureStateDirectory(directory, { platform: 'linux' })).rejects.toThrow(/owner uid 4321/);
  });
});

describe('secureStateDirectory (Windows: the PowerShell check)', () => {
  it('refuses when anyone but SYSTEM and Administrators can write the journal, naming them', async () => {
    const directory = await scratch();
    const windows = async (): Promise<string[]> => ['S-1-5-32-545'];
    await expect(secureStateDirectory(directory, { platform: 'win32', windows })).rejects.toThrow(
      /can be written by S-1-5-32-545, not only SYSTEM and Administrators/,
    );
  });

  it('passes the directory to the check and accepts a clean answer', async () => {
    const seen: string[] = [];
    await secureStateDirectory('C:\\ProgramData\\emfleet\\state', {
      platform: 'win32',
      windows: async (directory) => (seen.push(directory), []),
    });
    expect(seen).toEqual(['C:\\ProgramData\\emfleet\\state']);
  });
});
