import type { ApplyServerMessage } from './messages.js';

/** A first pass's messages keep the shape they had before retries existed. */
export function applyMessage(
  rolloutId: string,
  wave: number,
  index: number,
  attempt: number,
): ApplyServerMessage {
  return { rolloutId, wave, index, ...(attempt > 0 ? { attempt } : {}) };
}
