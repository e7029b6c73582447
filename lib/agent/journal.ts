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
  actions: z.array(
    z.custom<ApplicableAction>((value) => typeof value === 'object' && value !== null && 'kind' in value),
  ),
  priors: z.array(
    z.custom<PriorState>((value) => typeof value === 'object' && value !== null && 'kind' in value),
  ),
  at: z.string(),
  /** Found in place and adopted (lib/agent/adoption.ts): the priors are the change absent. */
  adopted: z.boolean().optional(),
});
export type JournalEntry = z.infer<typeof entrySchema>;
/** The last package accepted from a feed (identified by its signer): older ones are refused as Rollback. */
const acceptedSchema = z.object({
  sha256: z.string(),
  signingTime: z.string().optional(),
  sequence: z.number().optional(),
  at: z.string(),
});
export type AcceptedPackage = z.infer<typeof acceptedSchema>;
const journalSchema = z.object({
  version: z.literal(1),
  entries: z.record(z.string(), entrySchema),
  accepted: z.record(z.string(), acceptedSchema).default({}),
});

/**
 * What a prior state is about on the server. Two journal entries with a prior of one target share
 * it (two mitigations stopping one pool; every pool or service mitigation holding the Health
 * Manager): the first one's prior is what was there before emfleet, and only the last entry to go
 * puts it back.
 */
export function priorTarget(prior: PriorState): string | undefined {
  switch (prior.kind) {
    case 'DoNothing':
      return undefined;
    case 'IisUrlRewrite':
      return `rule:${prior.site.toLowerCase()}/${prior.ruleName.toLowerCase()}`;
    case 'DisableAppPool':
      return `appPool:${prior.appPool.toLowerCase()}`;
    case 'DisableService':
      return `service:${prior.service.toLowerCase()}`;
    case 'HealthManager':
      return 'healthManager';
  }
}

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
  #accepted: Record<string, AcceptedPackage> = {};

  private constructor(file: string) {
    this.#file = file;
  }

  static async open(file: string): Promise<Journal> {
    const journal = new Journal(file);
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new JournalError(`cannot read the journal ${file}`, { cause: error });
    }
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw new JournalError(
          `the journal ${file} is not valid JSON; restore it from backup or remove it after checking the server by hand`,
          { cause: error },
        );
      }
      const parsed = journalSchema.safeParse(json);
      if (!parsed.success)
        throw new JournalError(
          `the journal ${file} is invalid at ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`,
        );
      journal.#entries = new Map(Object.entries(parsed.data.entries));
      journal.#accepted = parsed.data.accepted;
    }
    return journal;
  }

  entries(): JournalEntry[] {
    return [...this.#entries.values()];
  }

  get(mitigationId: string): JournalEntry | undefined {
    return this.#entries.get(mitigationId);
  }

  /** Another entry's prior of the same target, if another entry holds it (see priorTarget). */
  heldElsewhere(prior: PriorState, mitigationId: string): PriorState | undefined {
    const target = priorTarget(prior);
    if (target === undefined) return undefined;
    for (const entry of this.#entries.values()) {
      if (entry.mitigationId === mitigationId) continue;
      const found = entry.priors.find((candidate) => priorTarget(candidate) === target);
      if (found) return found;
    }
    return undefined;
  }

  lastAccepted(feed: string): AcceptedPackage | undefined {
    return this.#accepted[feed];
  }

  async accept(feed: string, accepted: AcceptedPackage): Promise<void> {
    await this.#persist(this.#entries, { ...this.#accepted, [feed]: accepted });
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

  async #persist(entries: Map<string, JournalEntry>, accepted = this.#accepted): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true, mode: 0o700 });
    const temporary = `${this.#file}.tmp`;
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(
        JSON.stringify({ version: 1, entries: Object.fromEntries(entries), accepted }, null, 2),
      );
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, this.#file);
    this.#entries = entries;
    this.#accepted = accepted;
  }

  /**
   * Undoes one entry: marked `removing`, then its prior states restored newest first, except those
   * another entry still holds (that entry restores them when it goes). Trouble with the Health
   * Manager is a warning, never the undo's failure: the entry then stays `removing` with that prior
   * alone, and the agent retries it (repair). Any other failure throws and leaves the entry
   * `removing` whole, for the same retry.
   */
  async undo(entry: JournalEntry, applier: Applier): Promise<string[]> {
    await this.put({ ...entry, state: 'removing' });
    const warnings: string[] = [];
    let healthManager: PriorState | undefined;
    for (const prior of [...entry.priors].reverse()) {
      if (this.heldElsewhere(prior, entry.mitigationId)) continue;
      if (prior.kind !== 'HealthManager') {
        await applier.restore(prior);
        continue;
      }
      try {
        await applier.restore(prior);
      } catch (error) {
        healthManager = prior;
        warnings.push(
          `warning: the Health Manager was not restored (${error instanceof Error ? error.message : String(error)}); the agent retries`,
        );
      }
    }
    if (healthManager) await this.put({ ...entry, state: 'removing', priors: [healthManager] });
    else await this.drop(entry.mitigationId);
    return warnings;
  }

  /**
   * Finishes what a crash or a failed restore left: an unfinished apply is undone, an unfinished
   * removal is completed; both by restoring the recorded prior state, newest action first. One
   * entry that cannot be repaired now is logged and left for the next try; it never stops the rest.
   */
  async repair(applier: Applier, logger: Logger): Promise<{ repaired: string[]; failed: string[] }> {
    const repaired: string[] = [];
    const failed: string[] = [];
    for (const entry of this.entries()) {
      if (entry.state === 'applied') continue;
      try {
        const warnings = await this.undo(entry, applier);
        if (warnings.length > 0) {
          logger.warn('JournalRepairIncomplete', {
            mitigationId: entry.mitigationId,
            operationId: entry.operationId,
            warnings,
          });
          failed.push(entry.mitigationId);
          continue;
        }
      } catch (error) {
        logger.error('JournalRepairFailed', {
          mitigationId: entry.mitigationId,
          operationId: entry.operationId,
          interrupted: entry.state,
          error: error instanceof Error ? error.message : String(error),
        });
        failed.push(entry.mitigationId);
        continue;
      }
      logger.warn('JournalRepaired', {
        mitigationId: entry.mitigationId,
        operationId: entry.operationId,
        interrupted: entry.state,
      });
      repaired.push(entry.mitigationId);
    }
    return { repaired, failed };
  }
}
