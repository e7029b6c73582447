import { describe, it, expect } from 'vitest';
import {
  compareBuilds,
  evaluateApplicability,
  exchangeBuild,
  formatBuild,
  parseBuild,
  type Applicability,
  type BuildRange,
} from '../../lib/model/build.js';
import { build, range } from '../helpers/packages.js';

describe('parseBuild', () => {
  it.each([
    { name: 'Exchange 2019 CU14 build', text: '15.2.1544.4', expected: [15, 2, 1544, 4] },
    { name: 'Exchange 2016 build', text: '15.1.2507.15', expected: [15, 1, 2507, 15] },
    { name: 'surrounding whitespace is trimmed', text: ' 15.2.1118.19\n', expected: [15, 2, 1118, 19] },
    { name: 'leading zeros are numbers, not text', text: '15.01.0020.003', expected: [15, 1, 20, 3] },
    { name: 'five-digit parts', text: '15.1.10000.99999', expected: [15, 1, 10000, 99999] },
    { name: 'all zeros', text: '0.0.0.0', expected: [0, 0, 0, 0] },
  ])('$name: "$text"', ({ text, expected }) => {
    expect(parseBuild(text)).toEqual(expected);
  });

  it.each([
    { name: 'three parts', text: '15.2.1544' },
    { name: 'five parts', text: '15.2.1544.4.1' },
    { name: 'empty', text: '' },
    { name: 'letters', text: '15.2.CU14.4' },
    { name: 'negative part', text: '15.2.-1.4' },
    { name: 'six-digit part', text: '15.2.154400.4' },
    { name: 'empty part', text: '15..1544.4' },
    { name: 'trailing dot', text: '15.2.1544.4.' },
    { name: 'exponent notation', text: '1e1.2.1544.4' },
    { name: 'inner whitespace', text: '15.2. 1544.4' },
    { name: 'fraction', text: '15.2.1544.4.5e-1' },
  ])('$name: "$text" is not a build', ({ text }) => {
    expect(parseBuild(text)).toBeUndefined();
  });

  it('formatBuild gives back the canonical text', () => {
    expect(formatBuild(build('15.01.0020.003'))).toBe('15.1.20.3');
    expect(formatBuild(build('15.2.1544.4'))).toBe('15.2.1544.4');
  });
});

describe('compareBuilds', () => {
  it.each([
    {
      name: 'numeric, not string, build part (2507 < 10000)',
      a: '15.1.2507.15',
      b: '15.1.10000.0',
      expected: -1,
    },
    { name: 'numeric revision (4 < 10)', a: '15.2.1544.4', b: '15.2.1544.10', expected: -1 },
    { name: 'numeric minor (2 < 10)', a: '15.2.0.0', b: '15.10.0.0', expected: -1 },
    { name: 'numeric major (9 < 15)', a: '9.0.0.0', b: '15.0.0.0', expected: -1 },
    { name: 'minor outranks build', a: '15.1.9999.9999', b: '15.2.0.0', expected: -1 },
    { name: 'build outranks revision', a: '15.2.1118.99', b: '15.2.1544.0', expected: -1 },
    { name: 'equal', a: '15.2.1544.4', b: '15.2.1544.4', expected: 0 },
    { name: 'equal with leading zeros', a: '15.02.1544.04', b: '15.2.1544.4', expected: 0 },
    { name: 'greater revision', a: '15.1.2507.16', b: '15.1.2507.15', expected: 1 },
    { name: 'greater build (10000 > 2507)', a: '15.1.10000.0', b: '15.1.2507.15', expected: 1 },
  ])('$name: $a vs $b', ({ a, b, expected }) => {
    expect(compareBuilds(build(a), build(b))).toBe(expected);
    expect(compareBuilds(build(b), build(a))).toBe(expected === 0 ? 0 : -expected);
  });
});

describe('evaluateApplicability', () => {
  /** The ranges of EM1 in the catalogue and in docs/package-format.md. */
  const em1 = [range('15.1.0.0', '15.1.2507.15'), range('15.2.0.0', '15.2.1118.19')];
  const gap = [range('15.2.0.0', '15.2.100.0'), range('15.2.200.0', '15.2.300.0')];

  it.each<{ name: string; ranges: readonly BuildRange[]; at: string; expected: Applicability }>([
    { name: 'no ranges: applies to any build', ranges: [], at: '15.2.1544.4', expected: 'Applies' },
    { name: 'no ranges: applies to an old build too', ranges: [], at: '8.3.83.6', expected: 'Applies' },
    { name: 'inside the first range', ranges: em1, at: '15.1.1000.0', expected: 'Applies' },
    { name: 'inside the second range', ranges: em1, at: '15.2.986.5', expected: 'Applies' },
    { name: 'min is inclusive', ranges: em1, at: '15.1.0.0', expected: 'Applies' },
    { name: 'max is inclusive', ranges: em1, at: '15.1.2507.15', expected: 'Applies' },
    { name: 'max of the second range is inclusive', ranges: em1, at: '15.2.1118.19', expected: 'Applies' },
    {
      name: 'one revision above max on the same line: fixed',
      ranges: em1,
      at: '15.1.2507.16',
      expected: 'Fixed',
    },
    { name: 'far above max on the same line: fixed', ranges: em1, at: '15.2.1544.4', expected: 'Fixed' },
    {
      name: 'numeric comparison: 15.1.10000.0 is above 15.1.2507.15',
      ranges: em1,
      at: '15.1.10000.0',
      expected: 'Fixed',
    },
    {
      name: 'older major version: not applicable',
      ranges: em1,
      at: '15.0.1497.2',
      expected: 'NotApplicable',
    },
    {
      name: 'newer minor line with no range: not applicable, not fixed',
      ranges: em1,
      at: '15.3.0.0',
      expected: 'NotApplicable',
    },
    {
      name: 'above the max of another line only: not fixed',
      ranges: [range('15.1.0.0', '15.1.2507.15')],
      at: '15.2.0.0',
      expected: 'NotApplicable',
    },
    {
      name: 'below min on the same line: not applicable',
      ranges: [range('15.2.1118.0', '15.2.1544.4')],
      at: '15.2.1117.99',
      expected: 'NotApplicable',
    },
    {
      name: 'single-build range',
      ranges: [range('15.2.1544.4', '15.2.1544.4')],
      at: '15.2.1544.4',
      expected: 'Applies',
    },
    {
      name: 'single-build range, next revision is fixed',
      ranges: [range('15.2.1544.4', '15.2.1544.4')],
      at: '15.2.1544.5',
      expected: 'Fixed',
    },
    {
      name: 'multiple ranges on one line: inside the second',
      ranges: gap,
      at: '15.2.250.0',
      expected: 'Applies',
    },
    {
      name: 'multiple ranges on one line: in the gap, above the first max',
      ranges: gap,
      at: '15.2.150.0',
      expected: 'Fixed',
    },
    { name: 'multiple ranges on one line: above both', ranges: gap, at: '15.2.300.1', expected: 'Fixed' },
    {
      name: 'range order does not matter',
      ranges: [...em1].reverse(),
      at: '15.1.2507.15',
      expected: 'Applies',
    },
  ])('$name ($at)', ({ ranges, at, expected }) => {
    expect(evaluateApplicability(ranges, build(at))).toBe(expected);
  });
});

describe('exchangeBuild (a build as text in rows, settings and flags)', () => {
  it.each([
    { name: 'Exchange 2019 CU14', text: '15.2.1544.4', ok: true },
    { name: 'surrounding whitespace (parseBuild trims)', text: ' 15.2.1544.4 ', ok: true },
    { name: 'three parts', text: '15.2.1544', ok: false },
    { name: 'CU name instead of a build', text: 'CU14', ok: false },
    { name: 'empty', text: '', ok: false },
    { name: 'six-digit part', text: '15.2.154400.4', ok: false },
    { name: 'trailing text', text: '15.2.1544.4 or 1=1', ok: false },
  ])('$name: $ok', ({ text, ok }) => {
    expect(exchangeBuild.safeParse(text).success).toBe(ok);
  });

  it('says what a build looks like', () => {
    const result = exchangeBuild.safeParse('CU14');
    expect(result.success ? undefined : result.error.issues[0]!.message).toBe(
      'must be an Exchange build such as 15.2.1544.4',
    );
  });
});
