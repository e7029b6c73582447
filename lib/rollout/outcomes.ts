import type { MitigationOutcome, Outcome } from '../model/outcomes.js';
import { clip, endpointName } from '../text.js';

/*
 * What a server's outcomes mean for its wave and for what it has applied. Pure: the steps pass the
 * outcomes the agent (or the poison handler) gave and store what these return.
 */

/** What the probes found: the halt reason names the mitigation and the endpoints. */
const probeFailures: readonly Outcome[] = ['Degraded', 'RolledBack', 'Ineffective'];

/** How long a wave's note on one server may be (it ends up in the halt reason). */
export const maxNoteLength = 200;

/** "EM2 RolledBack: ecp" for each mitigation a probe failed, so the halt reason says what went down where; undefined when none. */
export function failureNote(outcomes: Readonly<Record<string, MitigationOutcome>>): string | undefined {
  const found = Object.entries(outcomes)
    .filter(([, result]) => probeFailures.includes(result.outcome))
    .map(
      ([id, result]) =>
        `${id} ${result.outcome}${result.endpoints && result.endpoints.length > 0 ? `: ${result.endpoints.map(endpointName).join(', ')}` : ''}`,
    );
  return found.length > 0 ? clip(found.join('; '), maxNoteLength) : undefined;
}

/** The mitigations of a plan row. */
export interface PlannedChange {
  readonly apply: readonly string[];
  readonly remove: readonly string[];
}

/** The same outcome for every mitigation of the plan row (Skipped, Unreachable). */
export function sameOutcome(
  plan: PlannedChange,
  outcome: Outcome,
  detail: string,
): Record<string, MitigationOutcome> {
  return Object.fromEntries([...plan.apply, ...plan.remove].map((id) => [id, { outcome, detail }]));
}

/** Whether the agent answered (anything but Skipped or Unreachable): then its Servers row is brought up to date. */
export function answeredByAgent(outcomes: Readonly<Record<string, MitigationOutcome>>): boolean {
  return Object.values(outcomes).some(
    (result) => result.outcome !== 'Skipped' && result.outcome !== 'Unreachable',
  );
}

/**
 * What a server has applied after this operation, sorted. A Degraded or Ineffective apply stays in
 * place (keep policy, a rule that harms nothing); a RolledBack one does not; a Degraded removal did
 * remove, and removing what is NotApplicable leaves it gone.
 */
export function appliedAfter(
  applied: readonly string[],
  plan: PlannedChange,
  outcomes: Readonly<Record<string, MitigationOutcome>>,
): string[] {
  const now = new Set(applied);
  for (const [id, result] of Object.entries(outcomes)) {
    const kept =
      plan.apply.includes(id) && (result.outcome === 'Degraded' || result.outcome === 'Ineffective');
    const gone =
      result.outcome === 'Removed' ||
      result.outcome === 'RolledBack' ||
      (plan.remove.includes(id) && (result.outcome === 'NotApplicable' || result.outcome === 'Degraded'));
    if (result.outcome === 'Applied' || result.outcome === 'AlreadyApplied' || kept) now.add(id);
    if (gone) now.delete(id);
  }
  return [...now].sort();
}
