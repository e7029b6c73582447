import { describe, expect, it } from 'vitest';
import { explainPackage } from '../../lib/policy/explain.js';
import type { ScopeRows } from '../../lib/model/policy.js';
import type { Mitigation } from '../../lib/package/model.js';
import { disablePool, rewrite } from '../helpers/actions.js';

const mitigations: Mitigation[] = [
  { id: 'EM1', description: 'rewrite', applicability: [], actions: [rewrite] },
  { id: 'EM2', description: 'pool', applicability: [], actions: [disablePool] },
];
const servers = ['ex02.contoso.com', 'ex01.contoso.com', 'ex03.contoso.com'].map((name) => ({
  name,
  build: '15.2.1118.7',
  reportedApplied: [],
}));

describe('explainPackage', () => {
  it('gives every server × mitigation its decision and the onDegraded policy with where it came from, servers by name', () => {
    const org: ScopeRows = { bicep: { onDegraded: 'keep', blockedMitigations: ['EM2'] } };
    const serverRows = new Map<string, ScopeRows>([
      ['ex01.contoso.com', { table: { onDegraded: 'rollback' } }],
      ['ex03.contoso.com', { problem: 'row server/ex03.contoso.com: onDegraded must be rollback or keep' }],
    ]);
    const explained = explainPackage(org, serverRows, servers, mitigations);
    expect(
      explained.map((row) => [row.server, row.mitigation, row.decision, row.reason, row.onDegraded]),
    ).toEqual([
      [
        'ex01.contoso.com',
        'EM1',
        'Apply',
        'Applicable',
        { value: 'rollback', scope: 'server', source: 'table' },
      ],
      [
        'ex01.contoso.com',
        'EM2',
        'Skip',
        'Blocked (org)',
        { value: 'rollback', scope: 'server', source: 'table' },
      ],
      ['ex02.contoso.com', 'EM1', 'Apply', 'Applicable', { value: 'keep', scope: 'org', source: 'bicep' }],
      ['ex02.contoso.com', 'EM2', 'Skip', 'Blocked (org)', { value: 'keep', scope: 'org', source: 'bicep' }],
      ['ex03.contoso.com', 'EM1', 'Skip', 'PolicyError', { value: 'keep', scope: 'org', source: 'bicep' }],
      ['ex03.contoso.com', 'EM2', 'Skip', 'PolicyError', { value: 'keep', scope: 'org', source: 'bicep' }],
    ]);
  });

  it('with no policy anywhere, rollback by default', () => {
    const [first] = explainPackage(undefined, new Map(), servers.slice(0, 1), mitigations.slice(0, 1));
    expect(first?.onDegraded).toEqual({ value: 'rollback', scope: 'default', source: 'default' });
  });
});
