import { describe, expect, it } from 'vitest';
import { bitIsSet, bitsOf, setBits, withBit } from '../../lib/rollout/bits.js';

describe('bitsets of plan indices', () => {
  it.each([
    { name: 'empty', indices: [], expected: [] },
    { name: 'one bit in the first byte', indices: [3], expected: [3] },
    { name: 'bits across bytes', indices: [0, 7, 8, 15, 16], expected: [0, 7, 8, 15, 16] },
    { name: 'duplicates count once', indices: [5, 5, 5], expected: [5] },
    { name: 'out of order comes back sorted', indices: [12, 1, 9], expected: [1, 9, 12] },
    { name: 'the last server of a 10,000-server wave', indices: [9999], expected: [9999] },
  ])('$name: bitsOf and setBits round-trip', ({ indices, expected }) => {
    expect(setBits(bitsOf(indices))).toEqual(expected);
  });

  it.each([
    { name: 'an empty set holds nothing', bits: '', index: 0, expected: false },
    { name: 'a set bit', bits: bitsOf([4]), index: 4, expected: true },
    { name: 'its neighbour is not set', bits: bitsOf([4]), index: 5, expected: false },
    { name: 'an index past the stored bytes', bits: bitsOf([1]), index: 800, expected: false },
  ])('$name', ({ bits, index, expected }) => {
    expect(bitIsSet(bits, index)).toBe(expected);
  });

  it.each([
    { name: 'grows an empty set', bits: '', index: 17, expected: [17] },
    { name: 'adds beside the others', bits: bitsOf([1, 2]), index: 9, expected: [1, 2, 9] },
    {
      name: 'setting a set bit again changes nothing (a retried message)',
      bits: bitsOf([6]),
      index: 6,
      expected: [6],
    },
  ])('withBit $name', ({ bits, index, expected }) => {
    const before = bits;
    expect(setBits(withBit(bits, index))).toEqual(expected);
    expect(bits).toBe(before);
  });
});
