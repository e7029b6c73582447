import { z } from 'zod';

/** What happened to one mitigation on one server (DESIGN §5, the Results table). */
export const outcomes = [
  'Applied',
  'AlreadyApplied',
  'Removed',
  'NotApplicable',
  'Blocked',
  'Disabled',
  'PolicyError',
  'Unsupported',
  'Skipped',
  'Failed',
  'Unreachable',
  'Degraded',
  'Ineffective',
  'RolledBack',
] as const;
export type Outcome = (typeof outcomes)[number];

/** Outcomes that count against a wave's error budget. */
export const failureOutcomes: readonly Outcome[] = [
  'Failed',
  'Unreachable',
  'Degraded',
  'Ineffective',
  'RolledBack',
];

/**
 * One mitigation's result on one server, as a Results row stores it; `endpoints` names the health
 * endpoints a Degraded or RolledBack change took down (e.g. /ecp/healthcheck.htm).
 */
export const mitigationOutcome = z.object({
  outcome: z.enum(outcomes),
  detail: z.string().default(''),
  endpoints: z.array(z.string().max(256)).max(50).optional(),
});
export type MitigationOutcome = z.infer<typeof mitigationOutcome>;

/** Whether a server's operation counts as a success, a failure or a skip in its wave's counters. */
export type Verdict = 'succeeded' | 'failed' | 'skipped';

/**
 * Any failure outcome fails the server; all Skipped (the rollout stopped before it) skips it;
 * anything else, including no mitigations at all, succeeds.
 *
 * @example verdictOf({ EM1: { outcome: 'Applied' }, EM2: { outcome: 'RolledBack' } }) === 'failed'
 */
export function verdictOf(results: Readonly<Record<string, { readonly outcome: Outcome }>>): Verdict {
  const values = Object.values(results).map((result) => result.outcome);
  if (values.some((outcome) => failureOutcomes.includes(outcome))) return 'failed';
  if (values.length > 0 && values.every((outcome) => outcome === 'Skipped')) return 'skipped';
  return 'succeeded';
}
