import { type FileHandle, open } from 'node:fs/promises';
import { EmfleetError } from '../errors.js';
import type { Reason } from '../model/reasons.js';

/** Where a command writes. Tests and the real binary use the same commands. */
export interface CliIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
  readonly env: Record<string, string | undefined>;
}

export const processIo: CliIo = {
  stdout: (line) => process.stdout.write(line + '\n'),
  stderr: (line) => process.stderr.write(line + '\n'),
  env: process.env,
};

/** Exit codes (DESIGN §10): 0 success, 1 the work failed or was refused, 2 usage error. */
export const exitCodes = { ok: 0, failed: 1, usage: 2 } as const;

/**
 * A rejection or a refusal as every command reports it (DESIGN §10): one line on stderr,
 * `emfleet: <Code>: <detail>` with the catalogue's code (lib/model/reasons.ts); the command exits 1.
 */
export function reportReason(io: CliIo, given: Reason<string>): void {
  io.stderr(`emfleet: ${given.reasonCode}: ${given.reasonDetail.replace(/\s+/g, ' ').trim()}`);
}

/** Bad arguments or unreadable inputs named by arguments: exit 2, nothing done. */
export class UsageError extends EmfleetError {
  override readonly name = 'UsageError';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super('Usage', message, options);
  }
}

/**
 * Reads a file named on the command line, never more than `maxBytes + 1` bytes, so an oversized
 * input is refused by size without loading it.
 */
export async function readInputFile(path: string, maxBytes: number): Promise<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      cause: error,
    });
  }
  try {
    const buffer = Buffer.alloc(maxBytes + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {
      cause: error,
    });
  } finally {
    await handle.close();
  }
}

export async function readTextFile(path: string, what: string): Promise<string> {
  const bytes = await readInputFile(path, 1024 * 1024).catch((error: unknown) => {
    throw new UsageError(`${what}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  });
  return Buffer.from(bytes).toString('utf8');
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
