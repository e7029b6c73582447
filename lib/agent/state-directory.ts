import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EmfleetError } from '../errors.js';

/** The agent's state (journal, accepted packages) is writable by others: it is not trusted. */
export class StateDirectoryError extends EmfleetError {
  override readonly name = 'StateDirectoryError';

  constructor(message: string, context: Record<string, unknown>) {
    super('StateDirectoryUnsafe', message, { context });
  }
}

export interface StateDirectoryOptions {
  readonly platform?: NodeJS.Platform;
  /** Windows: checks who may write the journal and limits the directory to SYSTEM and Administrators; returns the other writers' SIDs (PowerShellApplier.secureStateDirectory). */
  readonly windows?: (directory: string) => Promise<string[]>;
  /** The user the agent runs as (POSIX); default the process's. */
  readonly uid?: number;
}

/**
 * Sets and checks who may write the agent's state directory before the journal is read: whoever
 * can write the journal chooses what a removal "restores". An existing journal that others can
 * write is refused (check it by hand, then fix its permissions); otherwise the directory is limited
 * to the agent: SYSTEM and Administrators on Windows (an ACL without inheritance), the owner on
 * other systems (mode 700, the journal 600).
 */
export async function secureStateDirectory(
  directory: string,
  options: StateDirectoryOptions = {},
): Promise<void> {
  const platform = options.platform ?? process.platform;
  const journal = join(directory, 'journal.json');
  if (platform === 'win32') {
    if (!options.windows) throw new TypeError('secureStateDirectory on Windows needs the PowerShell check');
    const writers = await options.windows(directory);
    if (writers.length > 0) {
      throw new StateDirectoryError(
        `the journal ${journal} can be written by ${writers.join(', ')}, not only SYSTEM and Administrators; the agent does not start on it. Check it, then remove those rights`,
        { journal, writers },
      );
    }
    return;
  }
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const unsafe = (mode: number, owner: number): boolean =>
    (mode & 0o022) !== 0 || (owner !== uid && owner !== 0);
  const existing = await stat(journal).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (existing && unsafe(existing.mode, existing.uid)) {
    throw new StateDirectoryError(
      `the journal ${journal} can be written by others (mode ${(existing.mode & 0o777).toString(8)}, owner uid ${existing.uid}); the agent does not start on it. Check it, then chmod 600 and chown it to the agent's user`,
      {
        journal,
        mode: existing.mode & 0o777,
        owner: existing.uid,
      },
    );
  }
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const folder = await stat(directory);
  if (folder.uid === uid) await chmod(directory, 0o700);
  if (existing && existing.uid === uid) await chmod(journal, 0o600);
  const after = await stat(directory);
  if (unsafe(after.mode, after.uid)) {
    throw new StateDirectoryError(
      `the state directory ${directory} can be written by others (mode ${(after.mode & 0o777).toString(8)}, owner uid ${after.uid}) and is not the agent's to change; use a directory of the agent's own`,
      {
        directory,
        mode: after.mode & 0o777,
        owner: after.uid,
      },
    );
  }
}
