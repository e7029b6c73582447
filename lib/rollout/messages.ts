import { z } from 'zod';

/**
 * Queue messages carry only where to look (rollout, wave, plan index), never what to do: a
 * forged or replayed message can at most make a step re-read stored state.
 */
const rolloutId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);

export const startWaveMessage = z.object({ rolloutId, wave: z.number().int().min(0).max(98) }).strict();
/** `attempt`: the wave's retry the message belongs to (absent on a first pass); a message of an earlier pass is ignored. */
export const applyServerMessage = z
  .object({
    rolloutId,
    wave: z.number().int().min(0).max(98),
    index: z.number().int().min(0).max(999_999),
    attempt: z.number().int().min(1).max(999).optional(),
  })
  .strict();
export const gateWaveMessage = startWaveMessage;

export type StartWaveMessage = z.infer<typeof startWaveMessage>;
export type ApplyServerMessage = z.infer<typeof applyServerMessage>;
export type GateWaveMessage = z.infer<typeof gateWaveMessage>;
