import { describe, it, expect } from 'vitest';
import { effectiveScope, type EffectiveScope, type ScopeRows } from '../../lib/policy/effective.js';

describe('effectiveScope', () => {
  it.each<{ name: string; rows: ScopeRows | undefined; expected: EffectiveScope }>([
    {
      name: 'no rows at all → defaults: enabled, nothing blocked, no ring',
      rows: undefined,
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'default' }, blockedMitigations: { value: [], source: 'default' } },
    },
    {
      name: 'empty rows → defaults',
      rows: {},
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'default' }, blockedMitigations: { value: [], source: 'default' } },
    },
    {
      name: 'empty layers → defaults',
      rows: { table: {}, bicep: {} },
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'default' }, blockedMitigations: { value: [], source: 'default' } },
    },
    {
      name: 'bicep only',
      rows: { bicep: { mitigationsEnabled: false, blockedMitigations: ['EM1', 'EM2'], ring: 'canary' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'bicep' },
        blockedMitigations: { value: ['EM1', 'EM2'], source: 'bicep' },
        ring: { value: 'canary', source: 'bicep' },
      },
    },
    {
      name: 'table only',
      rows: { table: { mitigationsEnabled: false, blockedMitigations: ['EM3'], ring: 'broad' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'table' },
        blockedMitigations: { value: ['EM3'], source: 'table' },
        ring: { value: 'broad', source: 'table' },
      },
    },
    {
      name: 'bicep disabled + table enabled → enabled, from table',
      rows: { bicep: { mitigationsEnabled: false }, table: { mitigationsEnabled: true } },
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'table' }, blockedMitigations: { value: [], source: 'default' } },
    },
    {
      name: 'bicep enabled + table disabled → disabled, from table',
      rows: { bicep: { mitigationsEnabled: true }, table: { mitigationsEnabled: false } },
      expected: { valid: true, mitigationsEnabled: { value: false, source: 'table' }, blockedMitigations: { value: [], source: 'default' } },
    },
    {
      name: 'bicep blocks EM1 + table sets only mitigationsEnabled → blocked EM1 from bicep, enabled from table',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { mitigationsEnabled: true } },
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'table' }, blockedMitigations: { value: ['EM1'], source: 'bicep' } },
    },
    {
      name: 'table blockedMitigations [] overrides bicep [EM1]',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { blockedMitigations: [] } },
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'default' }, blockedMitigations: { value: [], source: 'table' } },
    },
    {
      name: 'table blockedMitigations replaces bicep, not merged',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { blockedMitigations: ['EM2'] } },
      expected: { valid: true, mitigationsEnabled: { value: true, source: 'default' }, blockedMitigations: { value: ['EM2'], source: 'table' } },
    },
    {
      name: 'ring from bicep when table has none',
      rows: { bicep: { ring: 'early' }, table: { mitigationsEnabled: false } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'table' },
        blockedMitigations: { value: [], source: 'default' },
        ring: { value: 'early', source: 'bicep' },
      },
    },
    {
      name: 'ring from table overrides bicep',
      rows: { bicep: { ring: 'early' }, table: { ring: 'canary' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        ring: { value: 'canary', source: 'table' },
      },
    },
    {
      name: 'a problem makes the scope invalid, whatever the layers say',
      rows: { problem: 'row server/ex01: ring is not a ring name', table: { mitigationsEnabled: true }, bicep: { blockedMitigations: ['EM1'], ring: 'canary' } },
      expected: { valid: false, problem: 'row server/ex01: ring is not a ring name' },
    },
    {
      name: 'a problem alone makes the scope invalid',
      rows: { problem: 'bad row' },
      expected: { valid: false, problem: 'bad row' },
    },
    {
      name: 'an empty problem text still makes the scope invalid',
      rows: { problem: '', table: { mitigationsEnabled: true } },
      expected: { valid: false, problem: '' },
    },
  ])('$name', ({ rows, expected }) => {
    // toStrictEqual: no `ring: undefined` key, no extra fields.
    expect(effectiveScope(rows)).toStrictEqual(expected);
  });

  it('has no ring key at all when no layer sets one', () => {
    expect('ring' in effectiveScope({ table: { mitigationsEnabled: true }, bicep: { blockedMitigations: ['EM1'] } })).toBe(false);
  });

  it('does not modify the rows', () => {
    const rows: ScopeRows = { bicep: { blockedMitigations: ['EM1'], ring: 'early' }, table: { mitigationsEnabled: false } };
    const snapshot = JSON.stringify(rows);
    effectiveScope(rows);
    expect(JSON.stringify(rows)).toBe(snapshot);
  });
});
