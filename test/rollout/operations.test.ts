import { describe, expect, it } from 'vitest';
import { applyMessage } from '../../lib/rollout/operations.js';

describe('applyMessage', () => {
  it.each([
    { name: 'a first pass carries no attempt', attempt: 0, expected: { rolloutId: 'r1', wave: 1, index: 7 } },
    {
      name: 'a retry carries its attempt',
      attempt: 2,
      expected: { rolloutId: 'r1', wave: 1, index: 7, attempt: 2 },
    },
  ])('$name', ({ attempt, expected }) => {
    expect(applyMessage('r1', 1, 7, attempt)).toEqual(expected);
  });
});
