import { describe, it, expect } from 'vitest';
import {
  countOrPercent,
  defaultEmergencyWaves,
  defaultWaves,
  resolveCount,
  waveProfile,
  waveSelector,
  waveSpec,
  type CountOrPercent,
} from '../../lib/model/waves.js';
import { parseDurationInMs } from '../../lib/model/duration.js';

/** A valid wave; each test changes one field. */
const good = {
  name: 'early',
  select: { percent: 10 },
  maxConcurrency: '25%',
  maxErrors: 1,
  bake: 'PT4H',
} as const;

function issuePaths(value: unknown): string[] {
  const result = waveProfile.safeParse(value);
  return result.success ? [] : result.error.issues.map((issue) => issue.path.join('.'));
}

describe('default wave profiles', () => {
  it.each([
    { name: 'defaultWaves', profile: defaultWaves },
    { name: 'defaultEmergencyWaves', profile: defaultEmergencyWaves },
  ])('$name parse as a wave profile, unchanged', ({ profile }) => {
    const result = waveProfile.safeParse(profile);
    expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
    expect(result.data).toEqual(profile);
  });

  it('the emergency profile has fewer waves and a shorter total bake (DESIGN §7)', () => {
    const totalBake = (profile: typeof defaultWaves): number =>
      profile.reduce((sum, wave) => sum + parseDurationInMs(wave.bake)!, 0);
    expect(defaultEmergencyWaves.length).toBeLessThan(defaultWaves.length);
    expect(totalBake(defaultEmergencyWaves)).toBeLessThan(totalBake(defaultWaves));
  });

  it('the last wave of each default profile takes the rest (100%)', () => {
    expect(defaultWaves.at(-1)?.select).toEqual({ percent: 100 });
    expect(defaultEmergencyWaves.at(-1)?.select).toEqual({ percent: 100 });
  });
});

describe('waveProfile', () => {
  it('accepts a valid profile with a ring, a server list and a percentage wave', () => {
    const profile = [
      { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 5, maxErrors: 0, bake: 'PT1H' },
      {
        name: 'pilot',
        select: { servers: ['ex01.contoso.com', 'EX02'] },
        maxConcurrency: '50%',
        maxErrors: '10%',
        bake: 'P1DT12H',
      },
      { name: 'broad_2', select: { percent: 100 }, maxConcurrency: '12.5%', maxErrors: '5%', bake: 'PT0S' },
    ];
    expect(waveProfile.safeParse(profile).success).toBe(true);
  });

  it('refuses a wave name used twice, pointing at the second', () => {
    const result = waveProfile.safeParse([good, { ...good, bake: 'PT1H' }]);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => ({ path: issue.path, message: issue.message }))).toEqual([
      { path: [1, 'name'], message: expect.stringContaining('early') as unknown as string },
    ]);
  });

  it('refuses a name used three times twice (once per repeat)', () => {
    expect(issuePaths([good, { ...good }, { ...good }])).toEqual(['1.name', '2.name']);
  });

  it('refuses an empty profile and more than 20 waves', () => {
    expect(waveProfile.safeParse([]).success).toBe(false);
    const waves = Array.from({ length: 21 }, (_, index) => ({ ...good, name: `w${index}` }));
    expect(waveProfile.safeParse(waves).success).toBe(false);
    expect(waveProfile.safeParse(waves.slice(0, 20)).success).toBe(true);
  });

  it('reports the path of a bad field in the profile', () => {
    expect(issuePaths([good, { ...good, name: 'late', bake: 'soon' }])).toEqual(['1.bake']);
  });
});

describe('waveSpec', () => {
  const refused: readonly { name: string; wave: unknown; path: string }[] = [
    { name: 'bake empty', wave: { ...good, bake: '' }, path: 'bake' },
    { name: 'bake "1h" (not ISO-8601)', wave: { ...good, bake: '1h' }, path: 'bake' },
    { name: 'bake in months', wave: { ...good, bake: 'P1M' }, path: 'bake' },
    { name: 'bake "PT"', wave: { ...good, bake: 'PT' }, path: 'bake' },
    { name: 'bake negative', wave: { ...good, bake: 'PT-5M' }, path: 'bake' },
    { name: 'bake as a number of ms', wave: { ...good, bake: 3600000 }, path: 'bake' },
    {
      name: 'bake missing',
      wave: { name: 'early', select: { percent: 10 }, maxConcurrency: 1, maxErrors: 1 },
      path: 'bake',
    },
    { name: 'maxConcurrency "110%"', wave: { ...good, maxConcurrency: '110%' }, path: 'maxConcurrency' },
    { name: 'maxConcurrency "-1"', wave: { ...good, maxConcurrency: '-1' }, path: 'maxConcurrency' },
    { name: 'maxConcurrency -1', wave: { ...good, maxConcurrency: -1 }, path: 'maxConcurrency' },
    { name: 'maxConcurrency "ten"', wave: { ...good, maxConcurrency: 'ten' }, path: 'maxConcurrency' },
    { name: 'maxErrors "110%"', wave: { ...good, maxErrors: '110%' }, path: 'maxErrors' },
    { name: 'maxErrors "-1"', wave: { ...good, maxErrors: '-1' }, path: 'maxErrors' },
    { name: 'maxErrors "ten"', wave: { ...good, maxErrors: 'ten' }, path: 'maxErrors' },
    { name: 'maxErrors 1.5 (not a whole count)', wave: { ...good, maxErrors: 1.5 }, path: 'maxErrors' },
    { name: 'maxErrors "5" (a count as a string)', wave: { ...good, maxErrors: '5' }, path: 'maxErrors' },
    { name: 'an unknown field on the wave (strict)', wave: { ...good, pause: true }, path: '' },
    {
      name: 'an unknown field on the selector (strict)',
      wave: { ...good, select: { percent: 10, sites: ['a'] } },
      path: 'select',
    },
    {
      name: 'two selectors at once',
      wave: { ...good, select: { ring: 'canary', percent: 10 } },
      path: 'select',
    },
    { name: 'an empty selector', wave: { ...good, select: {} }, path: 'select' },
    { name: 'percent 0', wave: { ...good, select: { percent: 0 } }, path: 'select' },
    { name: 'percent 101', wave: { ...good, select: { percent: 101 } }, path: 'select' },
    { name: 'an empty server list', wave: { ...good, select: { servers: [] } }, path: 'select' },
    { name: 'a server name with a space', wave: { ...good, select: { servers: ['ex 01'] } }, path: 'select' },
    { name: 'a ring name with a space', wave: { ...good, select: { ring: 'the canaries' } }, path: 'select' },
    { name: 'a wave name with a space', wave: { ...good, name: 'early birds' }, path: 'name' },
    { name: 'a wave name of 33 characters', wave: { ...good, name: 'a'.repeat(33) }, path: 'name' },
    { name: 'an empty wave name', wave: { ...good, name: '' }, path: 'name' },
  ];

  it.each(refused)('refuses $name', ({ wave, path }) => {
    const result = waveSpec.safeParse(wave);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path[0] ?? '')).toContain(path);
  });

  it('accepts the valid base wave (so the refusals above are about the changed field)', () => {
    expect(waveSpec.safeParse(good).success).toBe(true);
    expect(waveSpec.safeParse({ ...good, name: 'a'.repeat(32) }).success).toBe(true);
  });
});

describe('countOrPercent', () => {
  it.each([
    { name: 'count 0', value: 0 },
    { name: 'count 5', value: 5 },
    { name: '0%', value: '0%' },
    { name: '10%', value: '10%' },
    { name: '12.5%', value: '12.5%' },
    { name: '100%', value: '100%' },
  ])('accepts $name', ({ value }) => {
    expect(countOrPercent.safeParse(value).success).toBe(true);
  });

  it.each([
    { name: '110%', value: '110%' },
    { name: '"-1"', value: '-1' },
    { name: '-1', value: -1 },
    { name: '"ten"', value: 'ten' },
    { name: '"-5%"', value: '-5%' },
    { name: '"10 %"', value: '10 %' },
    { name: '"%"', value: '%' },
    { name: 'a fraction of a server', value: 0.5 },
    { name: '"100.5%" (over 100)', value: '100.5%' },
  ])('refuses $name', ({ value }) => {
    expect(countOrPercent.safeParse(value).success).toBe(false);
  });
});

describe('waveSelector', () => {
  it.each([
    { name: 'a ring', select: { ring: 'canary' } },
    { name: 'servers', select: { servers: ['ex01.contoso.com'] } },
    { name: 'a share', select: { percent: 2 } },
    { name: 'a fractional share', select: { percent: 0.5 } },
  ])('accepts $name', ({ select }) => {
    expect(waveSelector.safeParse(select).success).toBe(true);
  });
});

describe('resolveCount', () => {
  const rows: readonly {
    name: string;
    value: CountOrPercent;
    total: number;
    minimum?: number;
    expected: number;
  }[] = [
    { name: 'a count below the total', value: 5, total: 100, expected: 5 },
    { name: 'a count of 0', value: 0, total: 10, expected: 0 },
    { name: 'a count above the total is clamped', value: 5, total: 3, expected: 3 },
    { name: '10% of 100', value: '10%', total: 100, expected: 10 },
    { name: '10% of 15 rounds down (1.5 → 1)', value: '10%', total: 15, expected: 1 },
    { name: '25% of 7 rounds down (1.75 → 1)', value: '25%', total: 7, expected: 1 },
    { name: '5% of 10 rounds down to 0', value: '5%', total: 10, expected: 0 },
    { name: '12.5% of 8', value: '12.5%', total: 8, expected: 1 },
    { name: '100% of 7', value: '100%', total: 7, expected: 7 },
    { name: '0% of 10', value: '0%', total: 10, expected: 0 },
    { name: '29% of 100 (no floating-point loss)', value: '29%', total: 100, expected: 29 },
    { name: '18.4% of 375 is exactly 69 (no floating-point loss)', value: '18.4%', total: 375, expected: 69 },
    { name: 'the minimum lifts 5% of 10 to 1', value: '5%', total: 10, minimum: 1, expected: 1 },
    { name: 'the minimum lifts a count of 0 to 1', value: 0, total: 10, minimum: 1, expected: 1 },
    { name: 'the minimum does not lower a larger count', value: '50%', total: 10, minimum: 1, expected: 5 },
    {
      name: 'a count with a minimum is still clamped to the total',
      value: 50,
      total: 4,
      minimum: 1,
      expected: 4,
    },
    { name: '0 servers: a count gives 0', value: 5, total: 0, expected: 0 },
    { name: '0 servers: a share gives 0', value: '10%', total: 0, expected: 0 },
    { name: '0 servers: 100% gives 0', value: '100%', total: 0, expected: 0 },
    {
      name: '0 servers with minimum 1: never 0 (concurrency stays usable)',
      value: '10%',
      total: 0,
      minimum: 1,
      expected: 1,
    },
  ];

  it.each(rows)('$name', ({ value, total, minimum, expected }) => {
    expect(minimum === undefined ? resolveCount(value, total) : resolveCount(value, total, minimum)).toBe(
      expected,
    );
  });
});
