import { describe, it, expect } from 'vitest';
import { isRollback, type AcceptedMark } from '../../lib/package/freshness.js';

const t = (iso: string): Date => new Date(iso);
const earlier = t('2026-11-01T00:00:00Z');
const later = t('2026-11-02T12:00:00Z');

describe('isRollback', () => {
  it.each<{ name: string; candidate: AcceptedMark; last: AcceptedMark; expected: boolean }>([
    // By sequence, when both carry one (the organization's own feeds).
    { name: 'lower sequence', candidate: { sequence: 6 }, last: { sequence: 7 }, expected: true },
    { name: 'same sequence (re-polling the same package)', candidate: { sequence: 7 }, last: { sequence: 7 }, expected: false },
    { name: 'higher sequence', candidate: { sequence: 8 }, last: { sequence: 7 }, expected: false },
    { name: 'sequence 0 after 1', candidate: { sequence: 0 }, last: { sequence: 1 }, expected: true },
    { name: 'sequence compared as a number (10 after 9)', candidate: { sequence: 10 }, last: { sequence: 9 }, expected: false },
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
    { name: 'older signing time', candidate: { signingTime: earlier }, last: { signingTime: later }, expected: true },
    { name: 'same signing time', candidate: { signingTime: later }, last: { signingTime: t('2026-11-02T12:00:00Z') }, expected: false },
    { name: 'newer signing time', candidate: { signingTime: later }, last: { signingTime: earlier }, expected: false },
    { name: 'one millisecond older', candidate: { signingTime: t('2026-11-02T11:59:59.999Z') }, last: { signingTime: later }, expected: true },
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
    { name: 'nothing accepted with a mark yet', candidate: { signingTime: earlier }, last: {}, expected: false },
    { name: 'neither has a mark (Microsoft packages)', candidate: {}, last: {}, expected: false },
    { name: 'unmarked candidate after a signed one', candidate: {}, last: { signingTime: earlier }, expected: true },
    { name: 'sequence-only candidate after a time-only one', candidate: { sequence: 9 }, last: { signingTime: earlier }, expected: true },
    // freshness.ts: "a package without any mark cannot be ordered after one that has it".
    { name: 'unmarked candidate after a sequence-only one', candidate: {}, last: { sequence: 7 }, expected: true },
  ])('$name → $expected', ({ candidate, last, expected }) => {
    expect(isRollback(candidate, last)).toBe(expected);
  });
});
