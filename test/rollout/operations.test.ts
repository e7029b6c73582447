import { describe, expect, it } from 'vitest';
import { applyMessage, operationIdOf } from '../../lib/rollout/operations.js';

describe('operationIdOf', () => {
  it.each([
    {
      name: 'a first pass',
      wave: 0,
      attempt: 0,
      expected: 'microsoft-000001-apply.w0.ex01.contoso.com',
    },
    {
      name: 'a retry is a new operation',
      wave: 1,
      attempt: 2,
      expected: 'microsoft-000001-apply.w1.r2.ex01.contoso.com',
    },
  ])('$name', ({ wave, attempt, expected }) => {
    expect(operationIdOf('microsoft-000001-apply', wave, 'ex01.contoso.com', attempt)).toBe(expected);
  });

  it('stays within the protocol’s 128 characters for a long rollout id, and differs per server', () => {
    const long = 'r'.repeat(200);
    const one = operationIdOf(long, 0, 'ex01.contoso.com');
    expect(one).toMatch(/^op\.[0-9a-f]{40}$/);
    expect(operationIdOf(long, 0, 'ex02.contoso.com')).not.toBe(one);
    expect(operationIdOf(long, 0, 'ex01.contoso.com', 1)).not.toBe(one);
  });
});

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
