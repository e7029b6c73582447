import { describe, expect, it } from 'vitest';
import {
  failureOutcomes,
  mitigationOutcome,
  outcomes,
  verdictOf,
  type Outcome,
  type Verdict,
} from '../../lib/model/outcomes.js';

describe('failureOutcomes', () => {
  const counted: Record<Outcome, boolean> = {
    Applied: false,
    AlreadyApplied: false,
    Removed: false,
    NotApplicable: false,
    Blocked: false,
    Disabled: false,
    PolicyError: false,
    Unsupported: false,
    Skipped: false,
    Failed: true,
    Unreachable: true,
    Degraded: true,
    Ineffective: true,
    RolledBack: true,
  };

  it.each(outcomes.map((outcome) => ({ name: outcome, outcome, fails: counted[outcome] })))(
    '$name counts against the error budget: $fails',
    ({ outcome, fails }) => {
      expect(failureOutcomes.includes(outcome)).toBe(fails);
    },
  );

  it('holds only known outcomes, each once', () => {
    expect(new Set(failureOutcomes).size).toBe(failureOutcomes.length);
    for (const outcome of failureOutcomes) expect(outcomes).toContain(outcome);
  });
});

describe('verdictOf', () => {
  const of = (...values: Outcome[]) =>
    Object.fromEntries(values.map((outcome, index) => [`EM${index + 1}`, { outcome }]));

  it.each<{ name: string; results: Record<string, { outcome: Outcome }>; expected: Verdict }>([
    { name: 'all applied', results: of('Applied', 'AlreadyApplied'), expected: 'succeeded' },
    { name: 'removed', results: of('Removed'), expected: 'succeeded' },
    {
      name: 'policy outcomes are not failures',
      results: of('NotApplicable', 'Blocked', 'Disabled', 'PolicyError', 'Unsupported'),
      expected: 'succeeded',
    },
    { name: 'one failure among successes', results: of('Applied', 'Failed'), expected: 'failed' },
    { name: 'unreachable', results: of('Unreachable'), expected: 'failed' },
    { name: 'rolled back by the probes', results: of('Applied', 'RolledBack'), expected: 'failed' },
    { name: 'degraded and kept', results: of('Degraded'), expected: 'failed' },
    { name: 'ineffective rule', results: of('Ineffective'), expected: 'failed' },
    { name: 'all skipped', results: of('Skipped', 'Skipped'), expected: 'skipped' },
    { name: 'skipped beside applied is a success', results: of('Skipped', 'Applied'), expected: 'succeeded' },
    { name: 'a failure outweighs skips', results: of('Skipped', 'Failed'), expected: 'failed' },
    { name: 'nothing to do', results: {}, expected: 'succeeded' },
  ])('$name → $expected', ({ results, expected }) => {
    expect(verdictOf(results)).toBe(expected);
  });
});

describe('mitigationOutcome', () => {
  it.each([
    {
      name: 'detail defaults to empty',
      input: { outcome: 'Applied' },
      expected: { outcome: 'Applied', detail: '' },
    },
    {
      name: 'endpoints kept',
      input: { outcome: 'RolledBack', detail: 'ecp down', endpoints: ['/ecp/healthcheck.htm'] },
      expected: { outcome: 'RolledBack', detail: 'ecp down', endpoints: ['/ecp/healthcheck.htm'] },
    },
  ])('$name', ({ input, expected }) => {
    expect(mitigationOutcome.parse(input)).toEqual(expected);
  });

  it.each([
    { name: 'unknown outcome', input: { outcome: 'Succeeded' } },
    { name: 'outcome in the wrong case', input: { outcome: 'applied' } },
    { name: 'no outcome', input: { detail: 'x' } },
    { name: 'too many endpoints', input: { outcome: 'Degraded', endpoints: Array(51).fill('/ecp') } },
    { name: 'endpoint too long', input: { outcome: 'Degraded', endpoints: ['/'.repeat(257)] } },
  ])('rejects $name', ({ input }) => {
    expect(mitigationOutcome.safeParse(input).success).toBe(false);
  });
});
