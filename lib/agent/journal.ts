import { open, readFile, rename, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { EmfleetError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Applier, ApplicableAction, PriorState } from './applier.js';

const entrySchema = z.object({
  mitigationId: z.string(),
  operationId: z.string(),
  state: z.enum(['applying', 'applied', 'removing']),
  /** The actions as signed; kept so status can re-check them and removal needs no package. */
  actions: z.array(z.custom<ApplicableAction>((value) => typeof value === 'object' && value !== null && 'kind' in value)),
  priors: z.array(z.custom<PriorState>((value) => typeof value === 'object' && value !== null && 'kind' in value)),
  at: z.string(),
});
export type JournalEntry = z.infer<typeof entrySchema>;
const journalSchema = z.object({ version: z.literal(1), entries: z.record(z.string(), entrySchema) });

export class JournalError extends EmfleetError {
  override readonly name = 'JournalError';

  constructor(message: string, options: { cause?: unknown } = {}) {
    super('Journal', message, options);
  }
}

/**
 * The agent's write-ahead journal: before a change, the prior state of everything it will touch
 * is on disk (fsync, then an atomic rename). An entry left `applying` or `removing` by a crash
 * is repaired on start by restoring that prior state.
 */
export class Journal {
  readonly #file: string;
  #entries = new Map<string, JournalEntry>();

  private constructor(file: string) {
    this.#file = file;
  }

  static async open(file: string): Promise<Journal> {
    const journal = new Journal(file);
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new JournalError(`cannot read the journal ${file}`, { cause: error });
    }
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new JournalError(`the journal ${file} is not valid JSON; restore it from backup or remove it after checking the server by hand`, { cause: error });
      }
      const parsed = journalSchema.safeParse(json);
      if (!parsed.success) throw new JournalError(`the journal ${file} is invalid at ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
      journal.#entries = new Map(Object.entries(parsed.data.entries));
    }
    return journal;
  }

  entries(): JournalEntry[] {
    return [...this.#entries.values()];
  }

  get(mitigationId: string): JournalEntry | undefined {
    return this.#entries.get(mitigationId);
  }

  async put(entry: JournalEntry): Promise<void> {
    const next = new Map(this.#entries);
    next.set(entry.mitigationId, entry);
    await this.#persist(next);
  }

  async drop(mitigationId: string): Promise<void> {
    const next = new Map(this.#entries);
    next.delete(mitigationId);
    await this.#persist(next);
  }

  async #persist(entries: Map<string, JournalEntry>): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true });
    const temporary = `${this.#file}.tmp`;
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(JSON.stringify({ version: 1, entries: Object.fromEntries(entries) }, null, 2));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.#file);
    this.#entries = entries;
  }

  /**
   * Finishes what a crash interrupted: an unfinished apply is undone, an unfinished removal is
   * completed; both by restoring the recorded prior state, newest action first.
   */
  async repair(applier: Applier, logger: Logger): Promise<string[]> {
    const repaired: string[] = [];
    for (const entry of this.entries()) {
      if (entry.state === 'applied') continue;
      for (const prior of [...entry.priors].reverse()) await applier.restore(prior);
      await this.drop(entry.mitigationId);
      logger.warn('JournalRepaired', { mitigationId: entry.mitigationId, operationId: entry.operationId, interrupted: entry.state });
      repaired.push(entry.mitigationId);
    }
    return repaired;
  }
}
