import { describe, expect, it } from 'vitest';
import type { MitigationOutcome, Outcome } from '../../lib/model/outcomes.js';
import {
  answeredByAgent,
  appliedAfter,
  failureNote,
  maxNoteLength,
  sameOutcome,
} from '../../lib/rollout/outcomes.js';

const of = (outcome: Outcome, endpoints?: string[]): MitigationOutcome => ({
  outcome,
  detail: '',
  ...(endpoints ? { endpoints } : {}),
});

describe('failureNote', () => {
  it.each([
    { name: 'no probe failure: no note', outcomes: { EM1: of('Failed') }, expected: undefined },
    {
      name: 'names the endpoints a rollback took down',
      outcomes: { EM2: of('RolledBack', ['/ecp/healthcheck.htm', '/owa/healthcheck.htm']) },
      expected: 'EM2 RolledBack: ecp, owa',
    },
    {
      name: 'ineffective without endpoints',
      outcomes: { EM3: of('Ineffective') },
      expected: 'EM3 Ineffective',
    },
    {
      name: 'several mitigations, in order, a failure that is no probe left out',
      outcomes: { EM1: of('Degraded', ['/mapi/healthcheck.htm']), EM2: of('Failed'), EM3: of('RolledBack') },
      expected: 'EM1 Degraded: mapi; EM3 RolledBack',
    },
  ])('$name', ({ outcomes, expected }) => {
    expect(failureNote(outcomes)).toBe(expected);
  });

  it('is clipped to the note length with an ellipsis', () => {
    const outcomes = Object.fromEntries(
      Array.from({ length: 40 }, (_, index) => [`EM${index}`, of('Degraded', ['/ecp/healthcheck.htm'])]),
    );
    const note = failureNote(outcomes)!;
    expect(note).toHaveLength(maxNoteLength);
    expect(note.endsWith('…')).toBe(true);
  });
});

describe('sameOutcome and answeredByAgent', () => {
  it('gives every planned mitigation, applied and removed, the same outcome', () => {
    expect(sameOutcome({ apply: ['EM1'], remove: ['EM2'] }, 'Skipped', 'rollout is Aborted')).toEqual({
      EM1: { outcome: 'Skipped', detail: 'rollout is Aborted' },
      EM2: { outcome: 'Skipped', detail: 'rollout is Aborted' },
    });
  });

  it.each([
    { name: 'all skipped: the agent was not asked', outcomes: { EM1: of('Skipped') }, expected: false },
    { name: 'unreachable: the agent did not answer', outcomes: { EM1: of('Unreachable') }, expected: false },
    { name: 'nothing at all', outcomes: {}, expected: false },
    {
      name: 'an answer beside an unreachable one',
      outcomes: { EM1: of('Unreachable'), EM2: of('Failed') },
      expected: true,
    },
    { name: 'applied', outcomes: { EM1: of('Applied') }, expected: true },
  ])('answeredByAgent: $name', ({ outcomes, expected }) => {
    expect(answeredByAgent(outcomes)).toBe(expected);
  });
});

describe('appliedAfter', () => {
  it.each([
    {
      name: 'applied adds',
      applied: [],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('Applied') },
      expected: ['EM1'],
    },
    {
      name: 'already applied adds (adopted)',
      applied: [],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('AlreadyApplied') },
      expected: ['EM1'],
    },
    {
      name: 'a degraded apply stays in place (keep)',
      applied: [],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('Degraded') },
      expected: ['EM1'],
    },
    {
      name: 'an ineffective apply stays in place',
      applied: [],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('Ineffective') },
      expected: ['EM1'],
    },
    {
      name: 'a rolled back apply is gone',
      applied: ['EM1'],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('RolledBack') },
      expected: [],
    },
    {
      name: 'removed removes',
      applied: ['EM1', 'EM2'],
      plan: { apply: [], remove: ['EM1'] },
      outcomes: { EM1: of('Removed') },
      expected: ['EM2'],
    },
    {
      name: 'a degraded removal did remove',
      applied: ['EM1'],
      plan: { apply: [], remove: ['EM1'] },
      outcomes: { EM1: of('Degraded') },
      expected: [],
    },
    {
      name: 'removing what is not there',
      applied: ['EM1'],
      plan: { apply: [], remove: ['EM1'] },
      outcomes: { EM1: of('NotApplicable') },
      expected: [],
    },
    {
      name: 'not applicable on apply changes nothing',
      applied: ['EM2'],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('NotApplicable') },
      expected: ['EM2'],
    },
    {
      name: 'a failed apply changes nothing',
      applied: [],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('Failed') },
      expected: [],
    },
    {
      name: 'a failed removal keeps it',
      applied: ['EM1'],
      plan: { apply: [], remove: ['EM1'] },
      outcomes: { EM1: of('Failed') },
      expected: ['EM1'],
    },
    {
      name: 'duplicates and order: a sorted set',
      applied: ['EM3', 'EM1', 'EM1'],
      plan: { apply: ['EM2'], remove: [] },
      outcomes: { EM2: of('Applied') },
      expected: ['EM1', 'EM2', 'EM3'],
    },
    {
      name: 'a retried message applies the same again: no change',
      applied: ['EM1'],
      plan: { apply: ['EM1'], remove: [] },
      outcomes: { EM1: of('Applied') },
      expected: ['EM1'],
    },
  ])('$name', ({ applied, plan, outcomes, expected }) => {
    expect(appliedAfter(applied, plan, outcomes)).toEqual(expected);
  });
});
