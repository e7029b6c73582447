import { describe, it, expect } from 'vitest';
import { effectiveOnDegraded, effectiveScope, type EffectiveScope } from '../../lib/policy/effective.js';
import type { ScopeRows } from '../../lib/model/policy.js';

const rollback = { value: 'rollback', source: 'default' } as const;

describe('effectiveScope', () => {
  it.each<{ name: string; rows: ScopeRows | undefined; expected: EffectiveScope }>([
    {
      name: 'no rows at all → defaults: enabled, nothing blocked, no ring',
      rows: undefined,
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: rollback,
      },
    },
    {
      name: 'empty rows → defaults',
      rows: {},
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: rollback,
      },
    },
    {
      name: 'empty layers → defaults',
      rows: { table: {}, bicep: {} },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: rollback,
      },
    },
    {
      name: 'bicep only',
      rows: { bicep: { mitigationsEnabled: false, blockedMitigations: ['EM1', 'EM2'], ring: 'canary' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'bicep' },
        blockedMitigations: { value: ['EM1', 'EM2'], source: 'bicep' },
        ring: { value: 'canary', source: 'bicep' },
        onDegraded: rollback,
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
        onDegraded: rollback,
      },
    },
    {
      name: 'bicep disabled + table enabled → enabled, from table',
      rows: { bicep: { mitigationsEnabled: false }, table: { mitigationsEnabled: true } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'table' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: rollback,
      },
    },
    {
      name: 'bicep enabled + table disabled → disabled, from table',
      rows: { bicep: { mitigationsEnabled: true }, table: { mitigationsEnabled: false } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'table' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: rollback,
      },
    },
    {
      name: 'bicep blocks EM1 + table sets only mitigationsEnabled → blocked EM1 from bicep, enabled from table',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { mitigationsEnabled: true } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'table' },
        blockedMitigations: { value: ['EM1'], source: 'bicep' },
        onDegraded: rollback,
      },
    },
    {
      name: 'table blockedMitigations [] overrides bicep [EM1]',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { blockedMitigations: [] } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'table' },
        onDegraded: rollback,
      },
    },
    {
      name: 'table blockedMitigations replaces bicep, not merged',
      rows: { bicep: { blockedMitigations: ['EM1'] }, table: { blockedMitigations: ['EM2'] } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: ['EM2'], source: 'table' },
        onDegraded: rollback,
      },
    },
    {
      name: 'ring from bicep when table has none',
      rows: { bicep: { ring: 'early' }, table: { mitigationsEnabled: false } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: false, source: 'table' },
        blockedMitigations: { value: [], source: 'default' },
        ring: { value: 'early', source: 'bicep' },
        onDegraded: rollback,
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
        onDegraded: rollback,
      },
    },
    {
      name: 'onDegraded from bicep',
      rows: { bicep: { onDegraded: 'keep' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: { value: 'keep', source: 'bicep' },
      },
    },
    {
      name: 'onDegraded from table overrides bicep',
      rows: { bicep: { onDegraded: 'keep' }, table: { onDegraded: 'rollback' } },
      expected: {
        valid: true,
        mitigationsEnabled: { value: true, source: 'default' },
        blockedMitigations: { value: [], source: 'default' },
        onDegraded: { value: 'rollback', source: 'table' },
      },
    },
    {
      name: 'a problem makes the scope invalid, whatever the layers say',
      rows: {
        problem: 'row server/ex01: ring is not a ring name',
        table: { mitigationsEnabled: true },
        bicep: { blockedMitigations: ['EM1'], ring: 'canary' },
      },
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
    expect(
      'ring' in
        effectiveScope({ table: { mitigationsEnabled: true }, bicep: { blockedMitigations: ['EM1'] } }),
    ).toBe(false);
  });

  it('does not modify the rows', () => {
    const rows: ScopeRows = {
      bicep: { blockedMitigations: ['EM1'], ring: 'early' },
      table: { mitigationsEnabled: false },
    };
    const snapshot = JSON.stringify(rows);
    effectiveScope(rows);
    expect(JSON.stringify(rows)).toBe(snapshot);
  });
});

describe('effectiveOnDegraded', () => {
  const scope = (rows: ScopeRows | undefined): EffectiveScope => effectiveScope(rows);
  it.each<{
    name: string;
    org: ScopeRows | undefined;
    server: ScopeRows | undefined;
    expected: ReturnType<typeof effectiveOnDegraded>;
  }>([
    {
      name: 'nothing set anywhere → rollback, by default',
      org: undefined,
      server: undefined,
      expected: { value: 'rollback', scope: 'default', source: 'default' },
    },
    {
      name: 'org keep → keep, from the org',
      org: { table: { onDegraded: 'keep' } },
      server: undefined,
      expected: { value: 'keep', scope: 'org', source: 'table' },
    },
    {
      name: 'org keep, server rollback → the server wins',
      org: { bicep: { onDegraded: 'keep' } },
      server: { table: { onDegraded: 'rollback' } },
      expected: { value: 'rollback', scope: 'server', source: 'table' },
    },
    {
      name: 'org rollback, server keep (bicep) → keep, from the server',
      org: { table: { onDegraded: 'rollback' } },
      server: { bicep: { onDegraded: 'keep' } },
      expected: { value: 'keep', scope: 'server', source: 'bicep' },
    },
    {
      name: 'server sets other fields only → the org decides',
      org: { table: { onDegraded: 'keep' } },
      server: { table: { mitigationsEnabled: true } },
      expected: { value: 'keep', scope: 'org', source: 'table' },
    },
    {
      name: "invalid server scope → the org's setting (the server is left alone anyway)",
      org: { table: { onDegraded: 'keep' } },
      server: { problem: 'bad row' },
      expected: { value: 'keep', scope: 'org', source: 'table' },
    },
    {
      name: 'invalid org scope → default',
      org: { problem: 'bad row', table: { onDegraded: 'keep' } },
      server: undefined,
      expected: { value: 'rollback', scope: 'default', source: 'default' },
    },
  ])('$name', ({ org, server, expected }) => {
    expect(effectiveOnDegraded(scope(org), scope(server))).toEqual(expected);
  });
});
