import { describe, it, expect } from 'vitest';
import {
  compareFreshness,
  isRollback,
  type AcceptedMark,
  type Freshness,
} from '../../lib/package/freshness.js';

const t = (iso: string): Date => new Date(iso);
const earlier = t('2026-11-01T00:00:00Z');
const later = t('2026-11-02T12:00:00Z');

describe('isRollback', () => {
  it.each<{ name: string; candidate: AcceptedMark; last: AcceptedMark; expected: boolean }>([
    // By sequence, when both carry one (the organization's own feeds).
    { name: 'lower sequence', candidate: { sequence: 6 }, last: { sequence: 7 }, expected: true },
    {
      name: 'same sequence (re-polling the same package)',
      candidate: { sequence: 7 },
      last: { sequence: 7 },
      expected: false,
    },
    { name: 'higher sequence', candidate: { sequence: 8 }, last: { sequence: 7 }, expected: false },
    { name: 'sequence 0 after 1', candidate: { sequence: 0 }, last: { sequence: 1 }, expected: true },
    {
      name: 'sequence compared as a number (10 after 9)',
      candidate: { sequence: 10 },
      last: { sequence: 9 },
      expected: false,
    },
    {
      name: 'higher sequence wins over an older signing time',
      candidate: { sequence: 8, signingTime: earlier },
      last: { sequence: 7, signingTime: later },
      expected: false,
    },
    {
      name: 'lower sequence loses despite a newer signing time',
      candidate: { sequence: 6, signingTime: later },
      last: { sequence: 7, signingTime: earlier },
      expected: true,
    },
    // Else by signing time.
    {
      name: 'older signing time',
      candidate: { signingTime: earlier },
      last: { signingTime: later },
      expected: true,
    },
    {
      name: 'same signing time',
      candidate: { signingTime: later },
      last: { signingTime: t('2026-11-02T12:00:00Z') },
      expected: false,
    },
    {
      name: 'newer signing time',
      candidate: { signingTime: later },
      last: { signingTime: earlier },
      expected: false,
    },
    {
      name: 'one millisecond older',
      candidate: { signingTime: t('2026-11-02T11:59:59.999Z') },
      last: { signingTime: later },
      expected: true,
    },
    {
      name: 'sequence on one side only: by signing time (older)',
      candidate: { sequence: 100, signingTime: earlier },
      last: { signingTime: later },
      expected: true,
    },
    {
      name: 'sequence on one side only: by signing time (newer)',
      candidate: { signingTime: later },
      last: { sequence: 100, signingTime: earlier },
      expected: false,
    },
    // Missing marks.
    {
      name: 'nothing accepted with a mark yet',
      candidate: { signingTime: earlier },
      last: {},
      expected: false,
    },
    { name: 'neither has a mark (Microsoft packages)', candidate: {}, last: {}, expected: false },
    {
      name: 'unmarked candidate after a signed one',
      candidate: {},
      last: { signingTime: earlier },
      expected: true,
    },
    {
      name: 'sequence-only candidate after a time-only one',
      candidate: { sequence: 9 },
      last: { signingTime: earlier },
      expected: true,
    },
    // freshness.ts: "a package without any mark cannot be ordered after one that has it".
    {
      name: 'unmarked candidate after a sequence-only one',
      candidate: {},
      last: { sequence: 7 },
      expected: true,
    },
  ])('$name → $expected', ({ candidate, last, expected }) => {
    expect(isRollback(candidate, last)).toBe(expected);
  });
});

describe('compareFreshness', () => {
  it.each<{ name: string; candidate: AcceptedMark; last: AcceptedMark; expected: Freshness }>([
    { name: 'newer by sequence', candidate: { sequence: 8 }, last: { sequence: 7 }, expected: 'newer' },
    { name: 'same sequence', candidate: { sequence: 7 }, last: { sequence: 7 }, expected: 'same' },
    { name: 'older by sequence', candidate: { sequence: 6 }, last: { sequence: 7 }, expected: 'older' },
    {
      name: 'newer by signing time',
      candidate: { signingTime: later },
      last: { signingTime: earlier },
      expected: 'newer',
    },
    {
      name: 'older by signing time',
      candidate: { signingTime: earlier },
      last: { signingTime: later },
      expected: 'older',
    },
    {
      name: 'no mark on the candidate, one on the last: cannot be shown newer',
      candidate: {},
      last: { signingTime: later },
      expected: 'older',
    },
    { name: 'no mark on either: its age cannot be told', candidate: {}, last: {}, expected: 'unknown' },
    {
      name: 'a time on the candidate only (the last predates trusted times)',
      candidate: { signingTime: later },
      last: {},
      expected: 'unknown',
    },
  ])('$name: $expected', ({ candidate, last, expected }) => {
    expect(compareFreshness(candidate, last)).toBe(expected);
    expect(isRollback(candidate, last)).toBe(expected === 'older');
  });
});
