import type { WaveProgress } from './progress.js';
import { bitsOf, isSetIn, setBits } from './bits.js';

/*
 * A wave's pass: the plan indices it sends, in order. The first pass sends every server of the
 * wave; a retry sends only those that did not succeed (failed, skipped or never counted), under
 * new operation ids, with the error count started afresh. Pure: the steps read the wave row, ask
 * these functions, and write once.
 */

/** The plan indices the wave's current pass sends, in order. */
export function passIndices(wave: Pick<WaveProgress, 'servers' | 'attempt' | 'pass'>): number[] {
  return wave.attempt === 0 ? Array.from({ length: wave.servers }, (_, index) => index) : setBits(wave.pass);
}

/**
 * The next positions of the pass to send so that at most `maxConcurrency` servers are in flight,
 * given `answered` results about to be counted: positions from `dispatched` on, with their plan
 * indices. Servers the pass does not send (they succeeded before a retry) count as done.
 */
export function nextWindow(
  wave: Pick<
    WaveProgress,
    'servers' | 'attempt' | 'pass' | 'succeeded' | 'failed' | 'skipped' | 'dispatched' | 'maxConcurrency'
  >,
  answered: number,
): { position: number; index: number }[] {
  // On the hot path of every count: a first pass (position = plan index) builds no list of its servers.
  const indices = wave.attempt === 0 ? undefined : passIndices(wave);
  const length = indices?.length ?? wave.servers;
  const doneInPass = wave.succeeded + wave.failed + wave.skipped - (wave.servers - length);
  const target = Math.min(length, doneInPass + answered + wave.maxConcurrency);
  const window: { position: number; index: number }[] = [];
  for (let position = wave.dispatched; position < target; position++)
    window.push({ position, index: indices ? indices[position]! : position });
  return window;
}

/**
 * The wave row for retry number `attempt`: the pass holds the servers of the current pass that did
 * not succeed, the servers that did count as succeeded, and everything else starts afresh. A row
 * written before failures were kept per index (`failedIndices` empty with failures counted) cannot
 * tell who failed: its whole pass is sent again, which agents answer AlreadyApplied where done.
 */
export function retriedWave<W extends WaveProgress>(wave: W, attempt: number): W {
  const indices = passIndices(wave);
  const unknown = wave.failedIndices === '' && wave.failed + wave.skipped > 0;
  const counted = Buffer.from(wave.counted, 'base64');
  const failed = Buffer.from(wave.failedIndices, 'base64');
  const again = unknown
    ? indices
    : indices.filter((index) => !isSetIn(counted, index) || isSetIn(failed, index));
  return {
    ...wave,
    failureNotes: undefined,
    attempt,
    pass: bitsOf(again),
    succeeded: wave.servers - again.length,
    failed: 0,
    skipped: 0,
    dispatched: 0,
    counted: '',
    failedIndices: '',
    failedServers: [],
  };
}

/** The servers a retry of this wave would send again (plan indices), for the dashboard's confirmation and the CLI. */
export function retryCount(wave: WaveProgress): number {
  return wave.servers - retriedWave(wave, wave.attempt + 1).succeeded;
}
