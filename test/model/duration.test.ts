import { describe, it, expect } from 'vitest';
import { parseDurationInMs } from '../../lib/model/duration.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface ValidRow {
  readonly name: string;
  readonly text: string;
  readonly ms: number;
}

const valid: readonly ValidRow[] = [
  { name: 'zero seconds (no bake)', text: 'PT0S', ms: 0 },
  { name: 'thirty minutes', text: 'PT30M', ms: 30 * MINUTE },
  { name: 'one hour', text: 'PT1H', ms: HOUR },
  { name: 'one day', text: 'P1D', ms: DAY },
  { name: 'a day and a half, date and time parts', text: 'P1DT12H', ms: DAY + 12 * HOUR },
  { name: 'fractional seconds', text: 'PT1.5S', ms: 1500 },
  { name: 'one week', text: 'P1W', ms: 7 * DAY },
  {
    name: 'hours, minutes and seconds together',
    text: 'PT2H15M10S',
    ms: 2 * HOUR + 15 * MINUTE + 10 * SECOND,
  },
  { name: 'minutes are minutes after T (not months)', text: 'PT1M', ms: MINUTE },
];

interface InvalidRow {
  readonly name: string;
  readonly text: string;
}

const invalid: readonly InvalidRow[] = [
  { name: 'empty', text: '' },
  { name: 'P alone', text: 'P' },
  { name: 'PT with no time part', text: 'PT' },
  { name: 'a date part followed by an empty T', text: 'P1DT' },
  { name: 'years (calendar-dependent)', text: 'P1Y' },
  { name: 'months are refused (calendar-dependent)', text: 'P1M' },
  { name: 'not ISO-8601', text: '1h' },
  { name: 'negative minutes', text: 'PT-5M' },
  { name: 'a leading minus', text: '-PT5M' },
  { name: 'lower case', text: 'pt5m' },
  { name: 'a time unit without T', text: 'P5H' },
  { name: 'surrounding spaces', text: ' PT5M ' },
];

describe('parseDurationInMs', () => {
  it.each(valid)('$name: $text', (row) => {
    expect(parseDurationInMs(row.text)).toBe(row.ms);
  });

  it.each(invalid)('refuses $name: "$text"', (row) => {
    expect(parseDurationInMs(row.text)).toBeUndefined();
  });
});
