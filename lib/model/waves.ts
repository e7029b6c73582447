import { z } from 'zod';
import { ringName, serverName } from './names.js';
import { parseDurationInMs } from './duration.js';

/** A count (5) or a share of the wave ("10%"). */
export const countOrPercent = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .regex(
      /^(100(\.0+)?|\d{1,2}(\.\d+)?)%$/,
      'must be a count or a percentage from 0% to 100%, such as "10%"',
    ),
]);
export type CountOrPercent = z.infer<typeof countOrPercent>;

export const waveSelector = z.union([
  z.object({ ring: ringName }).strict(),
  z.object({ servers: z.array(serverName).min(1) }).strict(),
  /** A share of the servers no earlier wave took; 100 takes the rest. */
  z.object({ percent: z.number().gt(0).max(100) }).strict(),
]);
export type WaveSelector = z.infer<typeof waveSelector>;

export const waveSpec = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, 'must be letters, digits, _ or - (at most 32)'),
    select: waveSelector,
    maxConcurrency: countOrPercent,
    maxErrors: countOrPercent,
    /** ISO-8601 duration to watch the wave before the next starts, e.g. PT1H. */
    bake: z
      .string()
      .refine(
        (text) => parseDurationInMs(text) !== undefined,
        'must be an ISO-8601 duration such as PT30M or P1D',
      ),
  })
  .strict();
export type WaveSpec = z.infer<typeof waveSpec>;

export const waveProfile = z
  .array(waveSpec)
  .min(1)
  .max(20)
  .superRefine((waves, context) => {
    const names = new Set<string>();
    waves.forEach((wave, index) => {
      if (names.has(wave.name))
        context.addIssue({
          code: 'custom',
          path: [index, 'name'],
          message: `wave name ${wave.name} is used twice`,
        });
      names.add(wave.name);
    });
  });
export type WaveProfile = z.infer<typeof waveProfile>;

/** Canary by ring or 2%, then 10%, then the rest: a day of watching before the broad wave. */
export const defaultWaves: WaveProfile = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 5, maxErrors: 0, bake: 'PT1H' },
  { name: 'early', select: { percent: 10 }, maxConcurrency: '25%', maxErrors: '5%', bake: 'PT4H' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: '10%', maxErrors: '5%', bake: 'PT0S' },
];

/** For an exploited zero-day: a short canary, then everyone. */
export const defaultEmergencyWaves: WaveProfile = [
  { name: 'canary', select: { percent: 2 }, maxConcurrency: 10, maxErrors: 0, bake: 'PT15M' },
  { name: 'all', select: { percent: 100 }, maxConcurrency: '20%', maxErrors: '10%', bake: 'PT0S' },
];

/** A count, or a share of `total` rounded down; `minimum` keeps concurrency from reaching 0. */
export function resolveCount(value: CountOrPercent, total: number, minimum = 0): number {
  const count = typeof value === 'number' ? value : shareOf(total, value);
  return Math.max(minimum, Math.min(count, total));
}

/** total × "18.4%" rounded down, in integers: floating point would make 375 × 18.4% come out as 68. */
function shareOf(total: number, percent: string): number {
  const [whole = '0', fraction = ''] = percent.slice(0, -1).split('.');
  const scale = 10 ** fraction.length;
  return Math.floor((total * (Number(whole) * scale + Number(fraction || '0'))) / (100 * scale));
}
