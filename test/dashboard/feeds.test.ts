import { describe, expect, it } from 'vitest';
import { pollResultOf } from '../../lib/dashboard/feeds.js';

const at = (second: number): Date => new Date(Date.UTC(2026, 10, 1, 12, 0, second));

describe('pollResultOf: what the last poll came to', () => {
  it.each([
    { name: 'never polled', state: undefined, result: null },
    { name: 'polled, nothing else', state: { lastPollAt: at(10) }, result: 'Success' },
    {
      name: 'an error in the last poll',
      state: { lastPollAt: at(10), lastErrorAt: at(10) },
      result: 'Failed',
    },
    {
      name: 'an error in an earlier poll',
      state: { lastPollAt: at(20), lastErrorAt: at(10) },
      result: 'Success',
    },
    {
      name: 'a rejection in the last poll',
      state: { lastPollAt: at(10), lastRejectedAt: at(10) },
      result: 'Rejected',
    },
    {
      name: 'a rejection stamped a millisecond after the poll',
      state: { lastPollAt: at(10), lastRejectedAt: new Date(at(10).getTime() + 1) },
      result: 'Rejected',
    },
    {
      name: 'a rejection in an earlier poll',
      state: { lastPollAt: at(20), lastRejectedAt: at(10) },
      result: 'Success',
    },
  ])('$name → $result', ({ state, result }) => {
    expect(pollResultOf(state)).toBe(result);
  });
});
