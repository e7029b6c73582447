import { describe, expect, it } from 'vitest';
import { nextOccurrence } from '../lib/ncrontab.js';

/** NCRONTAB as the Functions timer trigger reads it: six fields, UTC, day and weekday both matching. */

const at = (iso: string): Date => new Date(iso);

describe('nextOccurrence', () => {
  it.each([
    // expression, after, next — every field type
    ['* * * * * *', '2025-03-10T08:15:30.000Z', '2025-03-10T08:15:31.000Z'],
    ['* * * * * *', '2025-03-10T08:15:30.600Z', '2025-03-10T08:15:31.000Z'],
    ['*/1 * * * * *', '2025-03-10T08:15:59.000Z', '2025-03-10T08:16:00.000Z'],
    ['0 0 * * * *', '2025-03-10T08:15:30.000Z', '2025-03-10T09:00:00.000Z'],
    ['0 0 * * * *', '2025-03-10T09:00:00.000Z', '2025-03-10T10:00:00.000Z'],
    ['30 5 12 * * *', '2025-03-10T12:05:30.000Z', '2025-03-11T12:05:30.000Z'],
    ['0 */15 * * * *', '2025-03-10T08:15:00.000Z', '2025-03-10T08:30:00.000Z'],
    ['0 */15 * * * *', '2025-03-10T08:46:00.000Z', '2025-03-10T09:00:00.000Z'],
    ['0 5,20,40 * * * *', '2025-03-10T08:21:00.000Z', '2025-03-10T08:40:00.000Z'],
    ['0 0 9-11 * * *', '2025-03-10T11:30:00.000Z', '2025-03-11T09:00:00.000Z'],
    ['0 0 8-18/4 * * *', '2025-03-10T12:00:00.000Z', '2025-03-10T16:00:00.000Z'],
    ['0 0 8-18/4 * * *', '2025-03-10T16:00:00.000Z', '2025-03-11T08:00:00.000Z'],
    ['10/20 * * * * *', '2025-03-10T08:00:31.000Z', '2025-03-10T08:00:50.000Z'],
    ['0 0 0 1,15 * *', '2025-03-02T00:00:00.000Z', '2025-03-15T00:00:00.000Z'],
    // month and year boundaries
    ['0 0 0 1 * *', '2025-01-31T23:59:59.000Z', '2025-02-01T00:00:00.000Z'],
    ['59 59 23 31 12 *', '2025-06-01T00:00:00.000Z', '2025-12-31T23:59:59.000Z'],
    ['0 0 0 1 1 *', '2025-12-31T23:59:59.999Z', '2026-01-01T00:00:00.000Z'],
    ['0 0 0 31 * *', '2025-04-01T00:00:00.000Z', '2025-05-31T00:00:00.000Z'],
    ['0 0 12 29 2 *', '2025-01-01T00:00:00.000Z', '2028-02-29T12:00:00.000Z'],
    ['0 0 0 * 2 *', '2025-02-28T00:00:00.000Z', '2026-02-01T00:00:00.000Z'],
    ['0 0 6 * Mar-May *', '2025-01-10T00:00:00.000Z', '2025-03-01T06:00:00.000Z'],
    ['0 30 9 * Jan Mon', '2025-01-07T00:00:00.000Z', '2025-01-13T09:30:00.000Z'],
    // weekday (0 = Sunday); 2025-03-10 is a Monday
    ['0 0 9 * * 1-5', '2025-03-14T10:00:00.000Z', '2025-03-17T09:00:00.000Z'],
    ['0 0 0 * * 0', '2025-03-10T00:00:00.000Z', '2025-03-16T00:00:00.000Z'],
    ['0 0 0 * * 6', '2025-03-10T00:00:00.000Z', '2025-03-15T00:00:00.000Z'],
    ['0 0 0 * * sat,sun', '2025-03-10T00:00:00.000Z', '2025-03-15T00:00:00.000Z'],
    // day and weekday restricted: both must match (NCrontab), Friday the 13th
    ['0 0 0 13 * 5', '2025-01-01T00:00:00.000Z', '2025-06-13T00:00:00.000Z'],
  ])('%s after %s is %s', (expression, after, next) => {
    expect(nextOccurrence(expression, at(after)).toISOString()).toBe(next);
  });

  it('works in UTC whatever the machine zone', () => {
    const next = nextOccurrence('0 0 2 * * *', at('2025-03-30T00:30:00+01:00'));
    expect(next.toISOString()).toBe('2025-03-30T02:00:00.000Z');
  });

  it('walks a schedule forward one occurrence at a time', () => {
    const times: string[] = [];
    let time = at('2025-03-10T08:00:00.000Z');
    for (let index = 0; index < 4; index += 1) {
      time = nextOccurrence('0 0 */6 * * *', time);
      times.push(time.toISOString());
    }
    expect(times).toEqual([
      '2025-03-10T12:00:00.000Z',
      '2025-03-10T18:00:00.000Z',
      '2025-03-11T00:00:00.000Z',
      '2025-03-11T06:00:00.000Z',
    ]);
  });

  it.each([
    ['0 * * * *', /expected 6 fields/],
    ['', /expected 6 fields .*got 0/],
    ['0 0 * * * * *', /expected 6 fields .*got 7/],
    ['60 * * * * *', /second 60 is outside 0-59/],
    ['0 0 24 * * *', /hour 24 is outside 0-23/],
    ['0 0 0 0 * *', /day 0 is outside 1-31/],
    ['0 0 0 * 13 *', /month 13 is outside 1-12/],
    ['0 0 0 * * 7', /weekday 7 is outside 0-6/],
    ['*/0 * * * * *', /step "0" in second/],
    ['0 0 10-5 * * *', /hour range 10-5 runs backwards/],
    ['0 0 0 * Foo *', /"Foo" is not a month value/],
    ['0 0 0 * * 1,', /"" is not a weekday value/],
    ['0 0 0 1-2-3 * *', /"1-2-3" is not a day range/],
    ['0 0 0 31 2 *', /never occurs/],
  ])('rejects %j', (expression, message) => {
    expect(() => nextOccurrence(expression, at('2025-01-01T00:00:00Z'))).toThrow(message);
  });

  it('names the expression in its errors', () => {
    expect(() => nextOccurrence('0 0 25 * * *', new Date())).toThrow(
      'invalid NCRONTAB expression "0 0 25 * * *"',
    );
  });
});
