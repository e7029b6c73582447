import { describe, it, expect } from 'vitest';
import {
  planRollout,
  type PlanInput,
  type PlannedServerFacts,
  type PlannedWave,
  type RolloutPlan,
} from '../../lib/rollout/plan.js';
import type { RolloutOperation } from '../../lib/model/rollout.js';
import {
  defaultEmergencyWaves,
  defaultWaves,
  waveProfile,
  type WaveProfile,
  type WaveSelector,
} from '../../lib/model/waves.js';
import { decide, leftAlone } from '../../lib/policy/decide.js';
import { effectiveScope } from '../../lib/policy/effective.js';
import type { ScopeRows } from '../../lib/model/policy.js';
import type { BuildRange } from '../../lib/model/build.js';
import type { Mitigation, MitigationAction } from '../../lib/package/model.js';
import { rewrite, disablePool, disableService } from '../helpers/actions.js';
import { range } from '../helpers/packages.js';

// ---- test data ----------------------------------------------------------------------------------

function mitigation(
  id: string,
  applicability: readonly BuildRange[],
  actions: readonly MitigationAction[],
): Mitigation {
  return { id, description: `${id} test mitigation`, applicability, actions };
}

/** Exchange 2016 up to 15.1.2507.15, Exchange 2019 up to 15.2.1118.19. */
const em1 = mitigation(
  'EM1',
  [range('15.1.0.0', '15.1.2507.15'), range('15.2.0.0', '15.2.1118.19')],
  [rewrite],
);
/** Exchange 2019 only, up to 15.2.1118.19. */
const em2 = mitigation('EM2', [range('15.2.0.0', '15.2.1118.19')], [disablePool]);
/** Every build. */
const em3 = mitigation('EM3', [], [disableService]);
/** Exchange 2019 up to 15.2.1000.0: fixed on VULNERABLE. */
const em4 = mitigation('EM4', [range('15.2.0.0', '15.2.1000.0')], [rewrite, disablePool]);
const mitigations = [em1, em2, em3, em4];

const VULNERABLE = '15.2.1118.10';
const VULNERABLE_2016 = '15.1.2507.10';
const FIXED = '15.2.1544.4';
const EXCHANGE_2013 = '15.0.1497.2';

interface ServerOptions {
  readonly build?: string;
  readonly applied?: readonly string[];
  readonly ring?: string;
  readonly site?: string;
  readonly hybridConnection?: string;
}

function server(name: string, options: ServerOptions = {}): PlannedServerFacts {
  return {
    name,
    build: options.build ?? VULNERABLE,
    reportedApplied: options.applied ?? [],
    ring: options.ring ?? '',
    site: options.site ?? 'Default-First-Site',
    hybridConnection: options.hybridConnection ?? `hc-${name}`,
  };
}

/** ex01.contoso.com … exNN.contoso.com */
const host = (index: number): string => `ex${String(index).padStart(2, '0')}.contoso.com`;
function fleet(count: number, options: ServerOptions = {}): PlannedServerFacts[] {
  return Array.from({ length: count }, (_, index) => server(host(index + 1), options));
}

interface WaveOptions {
  readonly maxConcurrency?: number | string;
  readonly maxErrors?: number | string;
  readonly bake?: string;
}

/** Validated through the schema, so the test data is always a profile the settings would accept. */
function profile(
  ...waves: readonly (readonly [name: string, select: WaveSelector, options?: WaveOptions])[]
): WaveProfile {
  return waveProfile.parse(
    waves.map(([name, select, options = {}]) => ({
      name,
      select,
      maxConcurrency: options.maxConcurrency ?? '100%',
      maxErrors: options.maxErrors ?? 0,
      bake: options.bake ?? 'PT0S',
    })),
  );
}

const rest = { percent: 100 } as const;

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    operation: 'apply',
    mitigationIds: ['EM1'],
    mitigations,
    servers: [],
    orgPolicy: undefined,
    serverPolicy: new Map(),
    waves: profile(['all', rest]),
    ...overrides,
  };
}

const names = (wave: PlannedWave | undefined): string[] =>
  wave ? wave.servers.map((planned) => planned.server) : ['<no such wave>'];
const waveSizes = (plan: RolloutPlan): number[] => plan.waves.map((wave) => wave.servers.length);
const plannedNames = (plan: RolloutPlan): string[] => plan.waves.flatMap(names);
const leftOutNames = (plan: RolloutPlan): string[] => plan.leftOut.map((left) => left.server);
function plannedServer(plan: RolloutPlan, name: string) {
  return plan.waves.flatMap((wave) => wave.servers).find((planned) => planned.server === name);
}
function leftOutServer(plan: RolloutPlan, name: string) {
  return plan.leftOut.find((left) => left.server === name);
}

/** Seeded PRNG (mulberry32): the same seed gives the same fleet on every run. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}
function shuffled<T>(random: () => number, items: readonly T[]): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [copy[index], copy[other]] = [copy[other]!, copy[index]!];
  }
  return copy;
}

// ---- selection ------------------------------------------------------------------------------------

describe('planRollout: which wave takes which server', () => {
  it('a ring wave takes the servers of that ring; the next wave takes the rest', () => {
    const plan = planRollout(
      input({
        servers: [
          server('a.contoso.com', { ring: 'canary' }),
          server('b.contoso.com', { ring: 'broad' }),
          server('c.contoso.com', { ring: 'canary' }),
          server('d.contoso.com'),
        ],
        waves: profile(['canary', { ring: 'canary' }], ['broad', rest]),
      }),
    );
    expect(plan.waves.map(names)).toEqual([
      ['a.contoso.com', 'c.contoso.com'],
      ['b.contoso.com', 'd.contoso.com'],
    ]);
    expect(plan.leftOut).toEqual([]);
  });

  it('the ring from policy (ScopeRows) wins over the ring of the Servers row; Tables over Bicep', () => {
    const plan = planRollout(
      input({
        servers: [
          server('moved-in.contoso.com', { ring: 'broad' }),
          server('moved-out.contoso.com', { ring: 'canary' }),
          server('table-wins.contoso.com', { ring: 'broad' }),
          server('stays.contoso.com', { ring: 'canary' }),
        ],
        serverPolicy: new Map<string, ScopeRows>([
          ['moved-in.contoso.com', { table: { ring: 'canary' } }],
          ['moved-out.contoso.com', { bicep: { ring: 'broad' } }],
          ['table-wins.contoso.com', { bicep: { ring: 'broad' }, table: { ring: 'canary' } }],
          ['stays.contoso.com', { table: { mitigationsEnabled: true } }],
        ]),
        waves: profile(['canary', { ring: 'canary' }], ['late', { ring: 'nobody' }], ['broad', rest]),
      }),
    );
    expect(plan.waves.map(names)).toEqual([
      ['moved-in.contoso.com', 'stays.contoso.com', 'table-wins.contoso.com'],
      [],
      ['moved-out.contoso.com'],
    ]);
  });

  it('an explicit server wave takes the named servers (case-insensitive), ignores unknown names and servers with nothing to do', () => {
    const plan = planRollout(
      input({
        servers: [...fleet(5), server('ex06.contoso.com', { build: FIXED })],
        waves: profile(
          [
            'pilot',
            { servers: ['ex03.contoso.com', 'EX05.Contoso.com', 'ex06.contoso.com', 'missing.contoso.com'] },
          ],
          ['broad', rest],
        ),
      }),
    );
    expect(plan.waves.map(names)).toEqual([
      ['ex03.contoso.com', 'ex05.contoso.com'],
      ['ex01.contoso.com', 'ex02.contoso.com', 'ex04.contoso.com'],
    ]);
    expect(leftOutNames(plan)).toEqual(['ex06.contoso.com']);
  });

  it('a server taken by an earlier wave is not taken again by a later wave that names it', () => {
    const plan = planRollout(
      input({
        servers: [
          server('a.contoso.com', { ring: 'canary' }),
          server('b.contoso.com'),
          server('c.contoso.com'),
        ],
        waves: profile(
          ['canary', { ring: 'canary' }],
          ['pilot', { servers: ['a.contoso.com', 'b.contoso.com'] }],
          ['broad', rest],
        ),
      }),
    );
    expect(plan.waves.map(names)).toEqual([['a.contoso.com'], ['b.contoso.com'], ['c.contoso.com']]);
  });

  it('a percentage wave takes that share of the servers no earlier wave took', () => {
    const servers = fleet(10).map((facts, index) => (index < 2 ? { ...facts, ring: 'canary' } : facts));
    const plan = planRollout(
      input({
        servers,
        waves: profile(['canary', { ring: 'canary' }], ['early', { percent: 25 }], ['broad', rest]),
      }),
    );
    expect(waveSizes(plan)).toEqual([2, 2, 6]);
    expect(names(plan.waves[0])).toEqual(['ex01.contoso.com', 'ex02.contoso.com']);
    for (const name of names(plan.waves[1]))
      expect(['ex01.contoso.com', 'ex02.contoso.com']).not.toContain(name);
  });

  it('a percentage of a percentage: 50% then 50% of what is left', () => {
    const plan = planRollout(
      input({
        servers: fleet(20),
        waves: profile(['half', { percent: 50 }], ['quarter', { percent: 50 }], ['rest', rest]),
      }),
    );
    expect(waveSizes(plan)).toEqual([10, 5, 5]);
  });

  it('a share that rounds to zero servers leaves the wave empty and the servers flow to later waves (2% of 10)', () => {
    const plan = planRollout(
      input({
        servers: fleet(10),
        waves: profile(['canary', { percent: 2 }], ['early', { percent: 10 }], ['broad', rest]),
      }),
    );
    expect(plan.waves.map((wave) => wave.name)).toEqual(['canary', 'early', 'broad']);
    expect(waveSizes(plan)).toEqual([0, 1, 9]);
    expect(plannedNames(plan).sort()).toEqual(fleet(10).map((facts) => facts.name));
  });

  it('the emergency profile on 10 servers: an empty canary, everyone in "all"', () => {
    const plan = planRollout(input({ servers: fleet(10), waves: defaultEmergencyWaves }));
    expect(waveSizes(plan)).toEqual([0, 10]);
  });

  it('an empty wave stays in the plan, with 0 servers, its index and name', () => {
    const plan = planRollout(
      input({
        servers: fleet(3),
        waves: profile(
          ['canary', { ring: 'canary' }],
          ['pilot', { servers: ['nobody.contoso.com'] }],
          ['broad', rest],
        ),
      }),
    );
    expect(plan.waves.map(({ index, name, servers }) => ({ index, name, count: servers.length }))).toEqual([
      { index: 0, name: 'canary', count: 0 },
      { index: 1, name: 'pilot', count: 0 },
      { index: 2, name: 'broad', count: 3 },
    ]);
  });

  it.each([
    { name: 'a ring nobody is in', last: { ring: 'nobody' } as WaveSelector },
    { name: 'named servers that are not there', last: { servers: ['nobody.contoso.com'] } as WaveSelector },
    { name: 'a small share', last: { percent: 1 } as WaveSelector },
  ])('the last wave takes all that is left even if its selector ($name) would not', ({ last }) => {
    const servers = [
      server('a.contoso.com', { ring: 'canary' }),
      server('b.contoso.com', { ring: 'broad' }),
      server('c.contoso.com'),
      server('d.contoso.com', { ring: 'early' }),
    ];
    const plan = planRollout(
      input({ servers, waves: profile(['canary', { ring: 'canary' }], ['last', last]) }),
    );
    expect(plan.waves.map(names)).toEqual([
      ['a.contoso.com'],
      ['b.contoso.com', 'c.contoso.com', 'd.contoso.com'],
    ]);
  });

  it('a profile of one wave takes every server with work, whatever its selector', () => {
    const plan = planRollout(input({ servers: fleet(10), waves: profile(['only', { percent: 2 }]) }));
    expect(waveSizes(plan)).toEqual([10]);
  });

  it('servers in a wave are listed by name', () => {
    const plan = planRollout(
      input({ servers: fleet(30), waves: profile(['early', { percent: 40 }], ['broad', rest]) }),
    );
    for (const wave of plan.waves) expect(names(wave)).toEqual([...names(wave)].sort());
  });
});

// ---- decisions --------------------------------------------------------------------------------

describe('planRollout: who is left out, and what each server gets', () => {
  it('every server blocked: each left out with its reason, every wave empty', () => {
    const plan = planRollout(
      input({
        servers: fleet(4, { ring: 'canary' }),
        orgPolicy: { table: { blockedMitigations: ['EM1'] } },
        waves: defaultWaves,
      }),
    );
    expect(plan.waves).toHaveLength(defaultWaves.length);
    expect(waveSizes(plan)).toEqual([0, 0, 0]);
    expect(plan.leftOut.map(({ server: name, reason }) => ({ name, reason }))).toEqual(
      fleet(4).map((facts) => ({ name: facts.name, reason: 'EM1: Blocked (org)' })),
    );
  });

  it('blocked on one server: only that server is left out', () => {
    const plan = planRollout(
      input({
        servers: fleet(3),
        serverPolicy: new Map([['ex02.contoso.com', { bicep: { blockedMitigations: ['EM1'] } }]]),
      }),
    );
    expect(plannedNames(plan)).toEqual(['ex01.contoso.com', 'ex03.contoso.com']);
    expect(leftOutServer(plan, 'ex02.contoso.com')?.reason).toBe('EM1: Blocked (server)');
  });

  it('a disabled server is left out of an apply rollout with "Disabled (server)"', () => {
    const plan = planRollout(
      input({
        servers: fleet(2),
        serverPolicy: new Map([['ex01.contoso.com', { table: { mitigationsEnabled: false } }]]),
      }),
    );
    expect(plannedNames(plan)).toEqual(['ex02.contoso.com']);
    expect(leftOutServer(plan, 'ex01.contoso.com')?.reason).toBe('EM1: Disabled (server)');
  });

  it('an organization with mitigations disabled: everyone left out with "Disabled (org)", even a fixed server that reports it applied', () => {
    const plan = planRollout(
      input({
        servers: [...fleet(2), server('fixed.contoso.com', { build: FIXED, applied: ['EM1'] })],
        orgPolicy: { bicep: { mitigationsEnabled: false } },
      }),
    );
    expect(plannedNames(plan)).toEqual([]);
    expect(plan.leftOut.map((left) => left.reason)).toEqual([
      'EM1: Disabled (org)',
      'EM1: Disabled (org)',
      'EM1: Disabled (org)',
    ]);
  });

  it('an invalid server policy leaves that server out with PolicyError', () => {
    const plan = planRollout(
      input({
        servers: fleet(2),
        serverPolicy: new Map([['ex02.contoso.com', { problem: 'ring "x y" is not a ring name' }]]),
      }),
    );
    expect(plannedNames(plan)).toEqual(['ex01.contoso.com']);
    expect(leftOutServer(plan, 'ex02.contoso.com')?.reason).toBe('EM1: PolicyError');
  });

  it('a fixed build that reports the id applied is planned with remove, not apply', () => {
    const plan = planRollout(
      input({ servers: [server('fixed.contoso.com', { build: FIXED, applied: ['EM1'] })] }),
    );
    const planned = plannedServer(plan, 'fixed.contoso.com');
    expect(planned?.apply).toEqual([]);
    expect(planned?.remove).toEqual(['EM1']);
    expect(
      planned?.decisions.map(({ mitigation: id, decision, reason }) => ({ id, decision, reason })),
    ).toEqual([{ id: 'EM1', decision: 'Remove', reason: 'NotApplicable (fixed)' }]);
  });

  it('a fixed build that does not report the id applied is left out with "NotApplicable (fixed)"', () => {
    const plan = planRollout(input({ servers: [server('fixed.contoso.com', { build: FIXED })] }));
    expect(plannedNames(plan)).toEqual([]);
    expect(leftOutServer(plan, 'fixed.contoso.com')?.reason).toBe('EM1: NotApplicable (fixed)');
  });

  it('a server with both apply and remove work is planned once with both lists', () => {
    const plan = planRollout(
      input({
        mitigationIds: ['EM1', 'EM4', 'EM3'],
        servers: [server('both.contoso.com', { applied: ['EM4'], hybridConnection: 'hc-site-a' })],
      }),
    );
    expect(plan.waves[0]?.servers).toEqual([
      {
        server: 'both.contoso.com',
        hybridConnection: 'hc-site-a',
        apply: ['EM1', 'EM3'],
        remove: ['EM4'],
        decisions: [
          expect.objectContaining({ mitigation: 'EM1', decision: 'Apply', reason: 'Applicable' }),
          expect.objectContaining({ mitigation: 'EM4', decision: 'Remove', reason: 'NotApplicable (fixed)' }),
          expect.objectContaining({ mitigation: 'EM3', decision: 'Apply', reason: 'Applicable' }),
        ],
        onDegraded: 'rollback',
      },
    ]);
  });

  it("each planned server carries its effective onDegraded: its own setting, else the org's, else rollback", () => {
    const plan = planRollout(
      input({
        mitigationIds: ['EM3'],
        servers: [server('ex01.contoso.com'), server('ex02.contoso.com'), server('ex03.contoso.com')],
        orgPolicy: { bicep: { onDegraded: 'keep' } },
        serverPolicy: new Map<string, ScopeRows>([
          ['ex02.contoso.com', { table: { onDegraded: 'rollback' } }],
        ]),
      }),
    );
    expect(
      plan.waves.flatMap((wave) => wave.servers.map((planned) => [planned.server, planned.onDegraded])),
    ).toEqual([
      ['ex01.contoso.com', 'keep'],
      ['ex02.contoso.com', 'rollback'],
      ['ex03.contoso.com', 'keep'],
    ]);
    expect(
      planRollout(input({ mitigationIds: ['EM3'], servers: [server('ex04.contoso.com')] })).waves.flatMap(
        (wave) => wave.servers.map((planned) => planned.onDegraded),
      ),
    ).toEqual(['rollback']);
  });

  it('a server applies only the ids its build needs', () => {
    const plan = planRollout(
      input({
        mitigationIds: ['EM1', 'EM2', 'EM3'],
        servers: [server('e2016.contoso.com', { build: VULNERABLE_2016 })],
      }),
    );
    expect(plannedServer(plan, 'e2016.contoso.com')?.apply).toEqual(['EM1', 'EM3']);
  });

  it('a left-out reason names every mitigation with its reason, in the order of the ids', () => {
    const plan = planRollout(
      input({
        mitigationIds: ['EM2', 'EM1'],
        servers: [
          server('e2013.contoso.com', { build: EXCHANGE_2013 }),
          server('fixed.contoso.com', { build: FIXED }),
        ],
      }),
    );
    expect(plan.leftOut.map(({ server: name, reason }) => ({ name, reason }))).toEqual([
      { name: 'e2013.contoso.com', reason: 'EM2: NotApplicable; EM1: NotApplicable' },
      { name: 'fixed.contoso.com', reason: 'EM2: NotApplicable (fixed); EM1: NotApplicable (fixed)' },
    ]);
    expect(
      leftOutServer(plan, 'e2013.contoso.com')?.decisions.map((decision) => decision.mitigation),
    ).toEqual(['EM2', 'EM1']);
  });

  it('an id that is not in the package gives a server nothing to do: "no mitigation in scope"', () => {
    const plan = planRollout(input({ mitigationIds: ['EM99'], servers: fleet(1) }));
    expect(plan.leftOut).toEqual([
      { server: 'ex01.contoso.com', reason: 'no mitigation in scope', decisions: [] },
    ]);
  });

  it('echoes the operation and the mitigation ids', () => {
    const plan = planRollout(input({ mitigationIds: ['EM3', 'EM1'], servers: fleet(1) }));
    expect({ operation: plan.operation, ids: plan.mitigationIds }).toEqual({
      operation: 'apply',
      ids: ['EM3', 'EM1'],
    });
  });
});

describe('planRollout: withdrawn mitigations (operation remove)', () => {
  const withdrawn = (overrides: Partial<PlanInput>): PlanInput =>
    input({ operation: 'remove', mitigationIds: ['EM9'], mitigations: [em1], ...overrides });

  it('targets only the servers that report the withdrawn id applied', () => {
    const plan = planRollout(
      withdrawn({
        servers: [
          server('has-it.contoso.com', { applied: ['EM1', 'EM9'] }),
          server('other.contoso.com', { applied: ['EM1'] }),
          server('none.contoso.com'),
        ],
      }),
    );
    expect(plan.operation).toBe('remove');
    expect(plannedNames(plan)).toEqual(['has-it.contoso.com']);
    const planned = plannedServer(plan, 'has-it.contoso.com');
    expect({ apply: planned?.apply, remove: planned?.remove }).toEqual({ apply: [], remove: ['EM9'] });
    expect(planned?.decisions).toEqual([
      expect.objectContaining({ mitigation: 'EM9', decision: 'Remove', reason: 'Withdrawn' }),
    ]);
    expect(leftOutNames(plan)).toEqual(['none.contoso.com', 'other.contoso.com']);
    expect(leftOutServer(plan, 'other.contoso.com')?.reason).toBe('no mitigation in scope');
  });

  it('removes whatever the build and blocks say (a withdrawn id is gone from the package)', () => {
    const plan = planRollout(
      withdrawn({
        servers: [
          server('fixed.contoso.com', { build: FIXED, applied: ['EM9'] }),
          server('e2013.contoso.com', { build: EXCHANGE_2013, applied: ['EM9'] }),
        ],
        orgPolicy: { table: { blockedMitigations: ['EM9'] } },
      }),
    );
    expect(plannedNames(plan)).toEqual(['e2013.contoso.com', 'fixed.contoso.com']);
  });

  it('a disabled server that reports the id applied is left out with "Disabled (server)", and the id stays', () => {
    const plan = planRollout(
      withdrawn({
        servers: [
          server('disabled.contoso.com', { applied: ['EM9'] }),
          server('enabled.contoso.com', { applied: ['EM9'] }),
        ],
        serverPolicy: new Map([['disabled.contoso.com', { table: { mitigationsEnabled: false } }]]),
      }),
    );
    expect(plannedNames(plan)).toEqual(['enabled.contoso.com']);
    const left = leftOutServer(plan, 'disabled.contoso.com');
    expect(left?.reason).toBe('EM9: Disabled (server)');
    expect(left?.decisions).toEqual([
      expect.objectContaining({ mitigation: 'EM9', decision: 'Skip', reason: 'Disabled (server)' }),
    ]);
    expect(left?.decisions[0]?.detail).toContain('EM9 stays');
  });

  it('an organization with mitigations disabled removes nothing', () => {
    const plan = planRollout(
      withdrawn({
        servers: fleet(3, { applied: ['EM9'] }),
        orgPolicy: { table: { mitigationsEnabled: false } },
      }),
    );
    expect(plannedNames(plan)).toEqual([]);
    expect(plan.leftOut.map((left) => left.reason)).toEqual([
      'EM9: Disabled (org)',
      'EM9: Disabled (org)',
      'EM9: Disabled (org)',
    ]);
  });

  it('several withdrawn ids: each server removes the ones it reports', () => {
    const plan = planRollout(
      withdrawn({
        mitigationIds: ['EM8', 'EM9'],
        servers: [
          server('a.contoso.com', { applied: ['EM9'] }),
          server('b.contoso.com', { applied: ['EM9', 'EM8'] }),
        ],
      }),
    );
    expect(plannedServer(plan, 'a.contoso.com')?.remove).toEqual(['EM9']);
    expect(plannedServer(plan, 'b.contoso.com')?.remove).toEqual(['EM8', 'EM9']);
  });
});

// ---- wave parameters ----------------------------------------------------------------------------

describe('planRollout: wave parameters', () => {
  // 20 servers: 4 in the canary ring, then 8 (50% of 16), then 8.
  const servers = fleet(20).map((facts, index) => (index < 4 ? { ...facts, ring: 'canary' } : facts));

  it.each([
    {
      name: 'a share of the wave, not of the fleet (50% of 4)',
      maxConcurrency: '50%',
      maxErrors: '50%',
      expected: { maxConcurrency: 2, maxErrors: 2 },
    },
    {
      name: 'shares round down (30% of 4 = 1.2)',
      maxConcurrency: '30%',
      maxErrors: '30%',
      expected: { maxConcurrency: 1, maxErrors: 1 },
    },
    {
      name: 'a share that rounds to 0: concurrency at least 1, errors 0',
      maxConcurrency: '10%',
      maxErrors: '10%',
      expected: { maxConcurrency: 1, maxErrors: 0 },
    },
    {
      name: 'counts are clamped to the wave size',
      maxConcurrency: 10,
      maxErrors: 7,
      expected: { maxConcurrency: 4, maxErrors: 4 },
    },
    {
      name: 'a count of 0: concurrency 1, errors 0',
      maxConcurrency: 0,
      maxErrors: 0,
      expected: { maxConcurrency: 1, maxErrors: 0 },
    },
    {
      name: 'counts within the wave',
      maxConcurrency: 3,
      maxErrors: 1,
      expected: { maxConcurrency: 3, maxErrors: 1 },
    },
  ])('maxConcurrency and maxErrors: $name', ({ maxConcurrency, maxErrors, expected }) => {
    const plan = planRollout(
      input({
        servers,
        waves: profile(['canary', { ring: 'canary' }, { maxConcurrency, maxErrors }], ['broad', rest]),
      }),
    );
    expect(plan.waves[0]?.servers).toHaveLength(4);
    expect({ maxConcurrency: plan.waves[0]?.maxConcurrency, maxErrors: plan.waves[0]?.maxErrors }).toEqual(
      expected,
    );
  });

  it('each wave resolves its shares against its own size', () => {
    const plan = planRollout(
      input({
        servers,
        waves: profile(
          ['canary', { ring: 'canary' }, { maxConcurrency: '25%', maxErrors: 0 }],
          ['early', { percent: 50 }, { maxConcurrency: '25%', maxErrors: '25%' }],
          ['broad', rest, { maxConcurrency: '50%', maxErrors: '12.5%' }],
        ),
      }),
    );
    expect(
      plan.waves.map(({ servers: members, maxConcurrency, maxErrors }) => ({
        size: members.length,
        maxConcurrency,
        maxErrors,
      })),
    ).toEqual([
      { size: 4, maxConcurrency: 1, maxErrors: 0 },
      { size: 8, maxConcurrency: 2, maxErrors: 2 },
      { size: 8, maxConcurrency: 4, maxErrors: 1 },
    ]);
  });

  it('an empty wave has concurrency 1 and error budget 0', () => {
    const plan = planRollout(
      input({
        servers,
        waves: profile(['nobody', { ring: 'nobody' }, { maxConcurrency: 5, maxErrors: 3 }], ['broad', rest]),
      }),
    );
    expect(plan.waves[0]).toMatchObject({ maxConcurrency: 1, maxErrors: 0, servers: [] });
  });

  it('bakeInMs is the wave’s ISO-8601 bake in milliseconds', () => {
    const plan = planRollout(
      input({
        servers,
        waves: profile(
          ['a', { ring: 'canary' }, { bake: 'PT1H' }],
          ['b', { percent: 10 }, { bake: 'P1DT12H' }],
          ['c', { percent: 10 }, { bake: 'PT1.5S' }],
          ['d', rest, { bake: 'PT0S' }],
        ),
      }),
    );
    expect(plan.waves.map((wave) => wave.bakeInMs)).toEqual([3_600_000, 129_600_000, 1_500, 0]);
  });

  it('the default profile: canary 1h, early 4h, broad no bake', () => {
    const plan = planRollout(input({ servers, waves: defaultWaves }));
    expect(plan.waves.map((wave) => [wave.name, wave.bakeInMs])).toEqual([
      ['canary', 3_600_000],
      ['early', 14_400_000],
      ['broad', 0],
    ]);
  });
});

// ---- determinism and properties ---------------------------------------------------------------

interface GeneratedFleet {
  readonly servers: PlannedServerFacts[];
  readonly serverPolicy: Map<string, ScopeRows>;
  readonly orgPolicy: ScopeRows | undefined;
  readonly waves: WaveProfile;
}

const builds = [VULNERABLE, VULNERABLE, VULNERABLE_2016, FIXED, EXCHANGE_2013, 'not a build'];
const rings = ['canary', 'early', 'broad', '', ''];
const appliedIds = ['EM1', 'EM2', 'EM3', 'EM4', 'EM9'];

function generate(seed: number, count: number): GeneratedFleet {
  const random = prng(seed);
  const servers = Array.from({ length: count }, (_, index) =>
    server(`ex${String(index).padStart(4, '0')}.site${Math.floor(random() * 5)}.contoso.com`, {
      build: pick(random, builds),
      applied: appliedIds.filter(() => random() < 0.3),
      ring: pick(random, rings),
      site: `site${Math.floor(random() * 5)}`,
      hybridConnection: `hc${Math.floor(random() * 3)}`,
    }),
  );
  const serverPolicy = new Map<string, ScopeRows>();
  for (const facts of servers) {
    const roll = random();
    if (roll < 0.08) serverPolicy.set(facts.name, { table: { mitigationsEnabled: false } });
    else if (roll < 0.14) serverPolicy.set(facts.name, { bicep: { blockedMitigations: ['EM1'] } });
    else if (roll < 0.24)
      serverPolicy.set(facts.name, { table: { ring: pick(random, ['canary', 'early', 'broad']) } });
    else if (roll < 0.27) serverPolicy.set(facts.name, { problem: 'bad row' });
  }
  const named = Array.from({ length: 6 }, () => pick(random, servers).name.toUpperCase()).concat(
    'missing.contoso.com',
  );
  const profiles: readonly WaveProfile[] = [
    defaultWaves,
    defaultEmergencyWaves,
    profile(
      ['pilot', { servers: named }],
      ['early', { ring: 'early' }],
      ['thirty', { percent: 30 }],
      ['half', { percent: 50 }],
      ['last', { ring: 'nobody' }],
    ),
    profile(
      ['tiny', { percent: 0.5 }],
      ['canary', { ring: 'canary' }, { maxConcurrency: '10%', maxErrors: '5%' }],
      ['rest', { percent: 100 }],
    ),
  ];
  const orgPolicy: ScopeRows | undefined =
    random() < 0.2 ? { bicep: { blockedMitigations: ['EM3'] } } : undefined;
  return { servers, serverPolicy, orgPolicy, waves: pick(random, profiles) };
}

/** Independently of the planner: does this server have something to apply or remove? */
function hasWork(plan: PlanInput, facts: PlannedServerFacts): boolean {
  const org = effectiveScope(plan.orgPolicy);
  const scope = effectiveScope(plan.serverPolicy.get(facts.name));
  if (plan.operation === 'remove')
    return (
      plan.mitigationIds.some((id) => facts.reportedApplied.includes(id)) &&
      leftAlone(org, scope, facts.name) === undefined
    );
  return plan.mitigationIds.some((id) => {
    const found = plan.mitigations.find((candidate) => candidate.id === id);
    return found !== undefined && decide(org, scope, facts, found).decision !== 'Skip';
  });
}

function effectiveRing(plan: PlanInput, facts: PlannedServerFacts): string {
  const rows = plan.serverPolicy.get(facts.name);
  return rows?.table?.ring ?? rows?.bicep?.ring ?? facts.ring;
}

const cases = Array.from({ length: 12 }, (_, index) => ({
  name: `seed ${index + 1}, ${index % 2 === 0 ? 'apply' : 'remove'}`,
  seed: index + 1,
  operation: (index % 2 === 0 ? 'apply' : 'remove') as RolloutOperation,
}));

function generatedInput(seed: number, operation: RolloutOperation, count = 300): PlanInput {
  const generated = generate(seed, count);
  return input({
    operation,
    mitigationIds: operation === 'apply' ? ['EM1', 'EM2', 'EM3', 'EM4'] : ['EM9', 'EM2'],
    mitigations: operation === 'apply' ? mitigations : [em1, em3, em4],
    ...generated,
  });
}

describe('planRollout: determinism', () => {
  it('the same input twice gives the same plan', () => {
    const planInput = generatedInput(42, 'apply');
    expect(planRollout(planInput)).toEqual(planRollout(planInput));
  });

  it.each([1, 2, 3, 4, 5])(
    'servers given in a shuffled order (shuffle %i) give the same plan',
    (shuffleSeed) => {
      const planInput = generatedInput(7, 'apply');
      const reordered = { ...planInput, servers: shuffled(prng(1000 + shuffleSeed), planInput.servers) };
      expect(reordered.servers.map((facts) => facts.name)).not.toEqual(
        planInput.servers.map((facts) => facts.name),
      );
      expect(planRollout(reordered)).toEqual(planRollout(planInput));
    },
  );

  it('the percentage waves do not take servers in alphabetical runs', () => {
    const plan = planRollout(
      input({ servers: fleet(40), waves: profile(['early', { percent: 25 }], ['broad', rest]) }),
    );
    expect(names(plan.waves[0])).not.toEqual(fleet(10).map((facts) => facts.name));
  });

  it('does not modify its input', () => {
    const planInput = generatedInput(9, 'apply', 50);
    const snapshot = JSON.stringify({ ...planInput, serverPolicy: [...planInput.serverPolicy] });
    planRollout(planInput);
    expect(JSON.stringify({ ...planInput, serverPolicy: [...planInput.serverPolicy] })).toBe(snapshot);
  });
});

describe('planRollout: properties over generated fleets of 300 servers', () => {
  it.each(cases)('$name', ({ seed, operation }) => {
    const planInput = generatedInput(seed, operation);
    const plan = planRollout(planInput);

    // Every wave of the profile is there, in order.
    expect(plan.waves.map((wave) => [wave.index, wave.name])).toEqual(
      planInput.waves.map((wave, index) => [index, wave.name]),
    );

    // Every server appears exactly once: in one wave, or left out.
    const everyone = [...plannedNames(plan), ...leftOutNames(plan)].sort();
    expect(everyone).toEqual(planInput.servers.map((facts) => facts.name).sort());

    // Exactly the servers with work are planned.
    const withWork = planInput.servers
      .filter((facts) => hasWork(planInput, facts))
      .map((facts) => facts.name)
      .sort();
    expect(plannedNames(plan).sort()).toEqual(withWork);
    expect(withWork.length).toBeGreaterThan(0);
    expect(plan.leftOut.length).toBeGreaterThan(0);

    for (const wave of plan.waves) {
      for (const planned of wave.servers) {
        expect(planned.apply.length + planned.remove.length, planned.server).toBeGreaterThan(0);
        expect(planned.apply).toEqual(
          planned.decisions
            .filter((decision) => decision.decision === 'Apply')
            .map((decision) => decision.mitigation),
        );
        expect(planned.remove).toEqual(
          planned.decisions
            .filter((decision) => decision.decision === 'Remove')
            .map((decision) => decision.mitigation),
        );
        if (operation === 'remove') expect(planned.apply).toEqual([]);
      }
      expect(wave.maxConcurrency).toBeGreaterThanOrEqual(1);
      expect(wave.maxConcurrency).toBeLessThanOrEqual(Math.max(1, wave.servers.length));
      expect(wave.maxErrors).toBeGreaterThanOrEqual(0);
      expect(wave.maxErrors).toBeLessThanOrEqual(wave.servers.length);
    }
    for (const left of plan.leftOut) {
      expect(
        left.decisions.filter((decision) => decision.decision !== 'Skip'),
        left.server,
      ).toEqual([]);
    }

    // Waves before the last take all of what their selector names among the servers left, or a share of them.
    const byName = new Map(planInput.servers.map((facts) => [facts.name, facts]));
    let remaining = withWork;
    planInput.waves.forEach((spec, index) => {
      const wave = plan.waves[index]!;
      const isLast = index === planInput.waves.length - 1;
      if (isLast) {
        expect(names(wave)).toEqual(remaining);
      } else if ('ring' in spec.select) {
        const ring = spec.select.ring;
        expect(names(wave)).toEqual(
          remaining.filter((name) => effectiveRing(planInput, byName.get(name)!) === ring),
        );
      } else if ('servers' in spec.select) {
        const listed = spec.select.servers.map((name) => name.toLowerCase());
        expect(names(wave)).toEqual(remaining.filter((name) => listed.includes(name)));
      } else {
        const share = (remaining.length * spec.select.percent) / 100;
        expect(wave.servers.length).toBeGreaterThanOrEqual(Math.floor(share));
        expect(wave.servers.length).toBeLessThanOrEqual(Math.ceil(share));
        for (const name of names(wave)) expect(remaining).toContain(name);
      }
      remaining = remaining.filter((name) => !names(wave).includes(name));
    });
    expect(remaining).toEqual([]);
  });
});
