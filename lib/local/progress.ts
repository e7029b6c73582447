import type { RolloutStateRow, WaveRow } from '../fleet/schemas.js';
import { renderReason } from '../model/reasons.js';

/** One line of the progress view; `key` says which line a later version of it replaces. */
export interface ProgressLine {
  readonly key: string;
  readonly text: string;
}

const barWidth = 24;

/**
 * The lines that show one rollout: its state (with the halt or pause reason), then one line per
 * wave. On a terminal each wave carries a bar of succeeded (█), failed (✗) and pending (░) servers;
 * plain output gives the same counts in words, so logs and pipes stay readable.
 */
export function rolloutLines(
  rollout: { state: RolloutStateRow; waves: readonly WaveRow[] },
  options: { terminal: boolean; now: Date },
): ProgressLine[] {
  const { state, waves } = rollout;
  const id = state.partitionKey;
  const headline = `rollout ${id} (${state.operation}): ${state.state}${state.reasonCode ? ` — ${renderReason(state)}` : ''}${bakeNote(state, waves[state.currentWave], options)}`;
  const nameWidth = Math.max(...waves.map((wave) => wave.name.length));
  return [
    { key: id, text: headline },
    ...waves.map((wave, index) => {
      const done = wave.succeeded + wave.failed + wave.skipped;
      const counts = `${done}/${wave.servers} done, ${wave.succeeded} ok, ${wave.failed} failed${wave.skipped ? `, ${wave.skipped} skipped` : ''}`;
      const label = `  wave ${index + 1} ${options.terminal ? wave.name.padEnd(nameWidth) : wave.name}`;
      return {
        key: `${id}#${index}`,
        text: options.terminal ? `${label} ${waveBar(wave)} ${counts}` : `${label}: ${counts}`,
      };
    }),
  ];
}

/** `[████✗✗░░░░]`: succeeded, failed (skipped counts as failed here: it did not get the change), pending. */
export function waveBar(
  wave: Pick<WaveRow, 'servers' | 'succeeded' | 'failed' | 'skipped'>,
  width = barWidth,
): string {
  if (wave.servers === 0) return `[${' '.repeat(width)}]`;
  const cells = (count: number): number => Math.round((Math.min(count, wave.servers) / wave.servers) * width);
  const ok = cells(wave.succeeded);
  const failed = Math.min(width - ok, cells(wave.failed + wave.skipped));
  return `[${'█'.repeat(ok)}${'✗'.repeat(failed)}${'░'.repeat(width - ok - failed)}]`;
}

/** A countdown on a terminal; in plain output the gate's time, so a long bake prints one line, not one a second. */
function bakeNote(
  state: RolloutStateRow,
  wave: WaveRow | undefined,
  options: { terminal: boolean; now: Date },
): string {
  if (state.state !== 'Baking' || !wave) return '';
  const gateAt = state.updatedAt.getTime() + wave.bakeInMs;
  if (!options.terminal) return `, next gate at ${new Date(gateAt).toISOString().slice(11, 19)} UTC`;
  return `, next gate in ${Math.max(0, Math.ceil((gateAt - options.now.getTime()) / 1000))}s`;
}

/**
 * Shows progress lines as they change. On a terminal the whole block is redrawn in place (cursor
 * up, clear line), so each wave keeps one line with a moving bar; otherwise only lines whose text
 * changed are printed, once each, which is what a log file or a CI console wants.
 */
export class ProgressDisplay {
  private readonly printed = new Map<string, string>();
  private drawnLines = 0;

  constructor(
    private readonly output: {
      readonly line: (text: string) => void;
      readonly terminal?: (text: string) => void;
    },
  ) {}

  /** Whether lines are redrawn in place (a terminal) rather than appended. */
  get terminal(): boolean {
    return this.output.terminal !== undefined;
  }

  show(lines: readonly ProgressLine[]): void {
    const terminal = this.output.terminal;
    if (terminal) {
      const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
      terminal(up + lines.map((line) => `\x1b[2K${line.text}\n`).join(''));
      this.drawnLines = lines.length;
      return;
    }
    for (const line of lines) {
      if (this.printed.get(line.key) === line.text) continue;
      this.printed.set(line.key, line.text);
      this.output.line(line.text);
    }
  }
}
