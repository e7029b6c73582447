import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** Compares text with its checked-in golden file; UPDATE_GOLDEN=1 rewrites the file instead (review the diff). */
export async function expectGolden(file: URL, actual: string): Promise<void> {
  const path = fileURLToPath(file);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, actual);
    return;
  }
  const expected = await readFile(path, 'utf8').catch(() => undefined);
  expect(actual, `${path} differs from its golden file (review, then UPDATE_GOLDEN=1 rewrites it)`).toBe(
    expected,
  );
}
