import { describe, expect, it } from 'vitest';
import { operationId } from '../../lib/model/names.js';
import { operationIdOf } from '../../lib/model/operation-id.js';

const longServer = `${'a'.repeat(63)}.${'b'.repeat(63)}.contoso.com`;

describe('operationIdOf', () => {
  it.each([
    { name: 'first pass', wave: 0, attempt: 0, expected: 'r1.w0.ex01.contoso.com' },
    { name: 'a later wave', wave: 2, attempt: 0, expected: 'r1.w2.ex01.contoso.com' },
    { name: 'a retry is a new operation', wave: 2, attempt: 1, expected: 'r1.w2.r1.ex01.contoso.com' },
    { name: 'second retry', wave: 2, attempt: 2, expected: 'r1.w2.r2.ex01.contoso.com' },
  ])('$name', ({ wave, attempt, expected }) => {
    expect(operationIdOf('r1', wave, 'ex01.contoso.com', attempt)).toBe(expected);
  });

  it('an attempt left out is the first pass', () => {
    expect(operationIdOf('r1', 0, 'ex01')).toBe(operationIdOf('r1', 0, 'ex01', 0));
  });

  it.each([
    {
      name: 'long server name',
      rolloutId: 'r-20261207T120000Z-microsoft-0000000042',
      server: longServer,
      attempt: 0,
    },
    {
      name: 'long server name, retried',
      rolloutId: 'r-20261207T120000Z-microsoft-0000000042',
      server: longServer,
      attempt: 3,
    },
    { name: 'long rollout id', rolloutId: 'r'.repeat(200), server: 'ex01', attempt: 0 },
  ])('$name: hashed into an id the agent protocol accepts', ({ rolloutId, server, attempt }) => {
    const id = operationIdOf(rolloutId, 0, server, attempt);
    expect(id).toMatch(/^op\.[0-9a-f]{40}$/);
    expect(operationId.safeParse(id).success).toBe(true);
    expect(operationIdOf(rolloutId, 0, server, attempt)).toBe(id);
    expect(operationIdOf(rolloutId, 0, server, attempt + 1)).not.toBe(id);
    expect(operationIdOf(rolloutId, 1, server, attempt)).not.toBe(id);
  });

  it('keeps an id of exactly 120 characters as it is', () => {
    const server = 'e'.repeat(120 - 'r1.w0.'.length);
    expect(operationIdOf('r1', 0, server)).toBe(`r1.w0.${server}`);
    expect(operationIdOf('r1', 0, `${server}e`)).toMatch(/^op\./);
  });
});
