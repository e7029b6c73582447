import { describe, it, expect } from 'vitest';
import { diffPackages, isEmptyDiff, type PackageDiff } from '../../lib/rollout/diff.js';
import type { EocsPackage, Mitigation } from '../../lib/package/model.js';
import { rewrite, disablePool, disableService, ping } from '../helpers/actions.js';
import { range } from '../helpers/packages.js';

const em1: Mitigation = {
  id: 'EM1',
  description: 'EM1 autodiscover',
  applicability: [range('15.1.0.0', '15.1.2507.15'), range('15.2.0.0', '15.2.1118.19')],
  actions: [rewrite],
};
const em2: Mitigation = {
  id: 'EM2',
  description: 'EM2 OWA pool',
  applicability: [range('15.2.0.0', '15.2.1118.19')],
  actions: [disablePool],
};
const em3: Mitigation = {
  id: 'EM3',
  description: 'EM3 UM service',
  applicability: [],
  actions: [disableService],
};
const ping1: Mitigation = { id: 'PING1', description: 'Ping mitigation', applicability: [], actions: [ping] };

function pkg(...mitigations: readonly Mitigation[]): EocsPackage {
  return { version: '1.0.4', mitigations, unknown: [] };
}

/** A deep copy, so "the same" never means "the same object". */
function copy<T>(value: T): T {
  return structuredClone(value);
}

const none: PackageDiff = { added: [], changed: [], withdrawn: [], unchanged: [] };

interface Row {
  readonly name: string;
  readonly previous: EocsPackage | undefined;
  readonly next: EocsPackage;
  readonly diff: PackageDiff;
  readonly empty: boolean;
}

const rows: readonly Row[] = [
  {
    name: 'no previous package: everything is added, sorted',
    previous: undefined,
    next: pkg(em3, ping1, em1, em2),
    diff: { ...none, added: ['EM1', 'EM2', 'EM3', 'PING1'] },
    empty: false,
  },
  {
    name: 'no previous package and an empty one: nothing',
    previous: undefined,
    next: pkg(),
    diff: none,
    empty: true,
  },
  {
    name: 'the same package (a deep copy): all unchanged',
    previous: pkg(em1, em2, em3),
    next: copy(pkg(em1, em2, em3)),
    diff: { ...none, unchanged: ['EM1', 'EM2', 'EM3'] },
    empty: true,
  },
  {
    name: 'the same mitigations in another order: all unchanged, sorted',
    previous: pkg(em3, em1, em2),
    next: pkg(em2, em3, em1),
    diff: { ...none, unchanged: ['EM1', 'EM2', 'EM3'] },
    empty: true,
  },
  {
    name: 'a newer version and signing time with the same mitigations: unchanged',
    previous: pkg(em1),
    next: { ...pkg(copy(em1)), version: '1.0.5', signingTime: new Date('2025-01-01T00:00:00Z'), sequence: 7 },
    diff: { ...none, unchanged: ['EM1'] },
    empty: true,
  },
  {
    name: 'a range max raised: changed',
    previous: pkg(em1, em2),
    next: pkg(
      { ...em1, applicability: [range('15.1.0.0', '15.1.2507.16'), range('15.2.0.0', '15.2.1118.19')] },
      em2,
    ),
    diff: { ...none, changed: ['EM1'], unchanged: ['EM2'] },
    empty: false,
  },
  {
    name: 'a range min lowered: changed',
    previous: pkg(em2),
    next: pkg({ ...em2, applicability: [range('15.2.0.1', '15.2.1118.19')] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'a range added: changed',
    previous: pkg(em2),
    next: pkg({ ...em2, applicability: [...em2.applicability, range('15.1.0.0', '15.1.2507.15')] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'ranges removed (now every build): changed',
    previous: pkg(em2),
    next: pkg({ ...em2, applicability: [] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'the rewrite rule XML changed: changed',
    previous: pkg(em1),
    next: pkg({
      ...em1,
      actions: [{ ...rewrite, ruleXml: '<rule name="EM1 rule"><match url=".*"/></rule>' }],
    }),
    diff: { ...none, changed: ['EM1'] },
    empty: false,
  },
  {
    name: 'the app pool changed: changed',
    previous: pkg(em2),
    next: pkg({ ...em2, actions: [{ ...disablePool, appPool: 'MSExchangeECPAppPool' }] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'the service changed: changed',
    previous: pkg(em3),
    next: pkg({ ...em3, actions: [{ ...disableService, service: 'MSExchangeIMAP4' }] }),
    diff: { ...none, changed: ['EM3'] },
    empty: false,
  },
  {
    name: 'a DoNothing value changed: changed',
    previous: pkg(ping1),
    next: pkg({ ...ping1, actions: [{ ...ping, value: 'DoSomething' }] }),
    diff: { ...none, changed: ['PING1'] },
    empty: false,
  },
  {
    name: 'an action scope changed: changed',
    previous: pkg(em3),
    next: pkg({ ...em3, actions: [{ ...disableService, scope: 'Server' }] }),
    diff: { ...none, changed: ['EM3'] },
    empty: false,
  },
  {
    name: 'an action added: changed',
    previous: pkg(em2),
    next: pkg({ ...em2, actions: [disablePool, disableService] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'actions reordered: changed',
    previous: pkg({ ...em2, actions: [disablePool, disableService] }),
    next: pkg({ ...em2, actions: [disableService, disablePool] }),
    diff: { ...none, changed: ['EM2'] },
    empty: false,
  },
  {
    name: 'the mitigation description only: unchanged',
    previous: pkg(em1),
    next: pkg({ ...em1, description: 'EM1 autodiscover, reworded' }),
    diff: { ...none, unchanged: ['EM1'] },
    empty: true,
  },
  {
    name: 'an action description only: unchanged',
    previous: pkg(em1),
    next: pkg({ ...em1, actions: [{ ...rewrite, description: 'reworded' }] }),
    diff: { ...none, unchanged: ['EM1'] },
    empty: true,
  },
  {
    name: 'an id removed: withdrawn',
    previous: pkg(em1, em2, em3),
    next: pkg(em1, em3),
    diff: { ...none, withdrawn: ['EM2'], unchanged: ['EM1', 'EM3'] },
    empty: false,
  },
  {
    name: 'everything removed: all withdrawn, sorted',
    previous: pkg(ping1, em2, em1),
    next: pkg(),
    diff: { ...none, withdrawn: ['EM1', 'EM2', 'PING1'] },
    empty: false,
  },
  {
    name: 'added, changed, withdrawn and unchanged at once, each sorted',
    previous: pkg(ping1, em3, em2, { ...em1, id: 'EM10' }),
    next: pkg({ ...em1, id: 'EM11' }, em1, ping1, {
      ...em3,
      applicability: [range('15.2.0.0', '15.2.9999.0')],
    }),
    diff: { added: ['EM1', 'EM11'], changed: ['EM3'], withdrawn: ['EM10', 'EM2'], unchanged: ['PING1'] },
    empty: false,
  },
];

describe('diffPackages', () => {
  it.each(rows)('$name', (row) => {
    const diff = diffPackages(row.previous, row.next);
    expect(diff).toEqual(row.diff);
    expect(isEmptyDiff(diff)).toBe(row.empty);
  });

  it('does not modify the packages', () => {
    const previous = pkg(em3, em1);
    const next = pkg(em2, em1);
    const snapshot = JSON.stringify([previous, next]);
    diffPackages(previous, next);
    expect(JSON.stringify([previous, next])).toBe(snapshot);
  });
});

describe('isEmptyDiff', () => {
  it.each([
    { name: 'nothing at all', diff: none, empty: true },
    { name: 'only unchanged', diff: { ...none, unchanged: ['EM1'] }, empty: true },
    { name: 'one added', diff: { ...none, added: ['EM1'] }, empty: false },
    { name: 'one changed', diff: { ...none, changed: ['EM1'] }, empty: false },
    { name: 'one withdrawn', diff: { ...none, withdrawn: ['EM1'] }, empty: false },
  ])('$name → $empty', ({ diff, empty }) => {
    expect(isEmptyDiff(diff)).toBe(empty);
  });
});
