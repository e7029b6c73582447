import { readdirSync } from 'node:fs';
import { join, sep } from 'node:path';

/*
 * test/ mirrors the source tree (DESIGN §2, STYLE "tests read like specifications"): a reader who
 * opens lib/rollout/gate.ts finds its specification at test/rollout/gate.test.ts, and a test file
 * names the source it specifies. This is checked by test/tools/test-layout.test.ts over the real
 * tree, so a test that drifts from its source fails the suite instead of being found by a reader.
 */

/** Folders under test/ that are not specifications of one source file. */
export const testSupportFolders = ['e2e', 'helpers', 'setup'] as const;

/**
 * Where the source a test file specifies may live, for `test/<folder>/<name>[.<aspect>].test.ts`:
 * `lib/<folder>/<name>.ts` (or the folder `lib/<folder>/<name>/`), else `<folder>/<name>.<any>` at
 * the repository root (functions/, tools/, bench/, infra/ Bicep, web/, the README). The aspect part
 * (`verify.attacks.test.ts`) splits a long specification of one file by concern.
 */
export function sourceCandidates(testFile: string): readonly string[] {
  const path = testFile.split(sep).join('/');
  const match = /^test\/(?:(.+)\/)?([^/.]+)(?:\.[^/]+)?\.test\.ts$/.exec(path);
  if (!match) return [];
  const [, folder, name] = match as unknown as [string, string | undefined, string];
  const within = (root: string) => [root, folder].filter(Boolean).join('/');
  return [`${within('lib')}/${name}`, `${within('')}/${name}`.replace(/^\//, '')];
}

/**
 * The test files that specify no source file: each candidate is matched against the source tree's
 * files and folders without their extension, case-insensitively (README.md is `readme`).
 *
 * @example unmirroredTests(['test/rollout/gate.test.ts'], ['lib/rollout/gate.ts']) → []
 */
export function unmirroredTests(testFiles: readonly string[], sourcePaths: readonly string[]): string[] {
  const known = new Set(
    sourcePaths.flatMap((path) => {
      const normal = path.split(sep).join('/').toLowerCase();
      const withoutExtension = normal.replace(/\.[^/.]+$/, '');
      const folders = normal
        .split('/')
        .slice(0, -1)
        .map((_, index, parts) => parts.slice(0, index + 1).join('/'));
      return [withoutExtension, ...folders];
    }),
  );
  return testFiles.filter((testFile) => {
    const path = testFile.split(sep).join('/');
    if (testSupportFolders.some((folder) => path.startsWith(`test/${folder}/`))) return false;
    return !sourceCandidates(path).some((candidate) => known.has(candidate.toLowerCase()));
  });
}

/** Every file under `directory`, relative to `root`, skipping dependencies, builds and dot-folders. */
export function filesUnder(root: string, directory = '.'): string[] {
  const skipped = new Set(['node_modules', 'dist', 'test-output']);
  return readdirSync(join(root, directory), { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.name.startsWith('.') || skipped.has(entry.name)) return [];
    return entry.isDirectory() ? filesUnder(root, path) : [path];
  });
}
