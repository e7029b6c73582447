import { describe, it, expect } from 'vitest';
import { declaredLayers, parseDeclaredPolicy, type DeclaredPolicy } from '../../lib/policy/declared.js';

/** Parses policy JSON that the test expects to be valid. */
function parsed(value: unknown): DeclaredPolicy {
  const result = parseDeclaredPolicy(JSON.stringify(value), 'EMFLEET_POLICY');
  if (!result.ok) throw new Error(`test data: expected a valid policy, got: ${result.error}`);
  return result.policy;
}

/** Parses policy JSON that the test expects to be rejected; returns the error text. */
function rejected(text: string): string {
  const result = parseDeclaredPolicy(text, 'EMFLEET_POLICY');
  if (result.ok)
    throw new Error(`expected ${text} to be rejected, but it parsed as ${JSON.stringify(result.policy)}`);
  return result.error;
}

const realistic = {
  $schema: './policy.schema.json',
  org: { mitigationsEnabled: true, blockedMitigations: ['EM3'] },
  servers: {
    'EX01.contoso.com': { blockedMitigations: ['EM1'] },
    'ex02.contoso.com': { mitigationsEnabled: false },
  },
  rings: {
    canary: ['EX01.contoso.com'],
    early: ['ex03.contoso.com', 'ex04'],
    broad: ['ex05.contoso.com', 'ex06.contoso.com'],
  },
};

describe('parseDeclaredPolicy', () => {
  it('accepts a realistic policy and keeps what it says', () => {
    expect(parsed(realistic)).toEqual(realistic);
  });

  it.each([
    { name: 'empty object', value: {} },
    { name: 'only $schema', value: { $schema: 'x' } },
  ])('$name: missing sections default to empty', ({ value }) => {
    const policy = parsed(value);
    expect(policy.org).toEqual({});
    expect(policy.servers).toEqual({});
    expect(policy.rings).toEqual({});
  });

  it('onDegraded per org and per server becomes part of their layers', () => {
    const policy = parsed({
      org: { onDegraded: 'keep' },
      servers: { 'EX01.contoso.com': { onDegraded: 'rollback' } },
      rings: { canary: ['ex01.contoso.com'] },
    });
    const layers = declaredLayers(policy);
    expect(layers.org).toEqual({ onDegraded: 'keep' });
    expect(layers.servers.get('ex01.contoso.com')).toEqual({ onDegraded: 'rollback', ring: 'canary' });
  });

  it('an org without servers or rings is valid', () => {
    const policy = parsed({ org: { mitigationsEnabled: false } });
    expect(policy.org).toEqual({ mitigationsEnabled: false });
    expect(policy.servers).toEqual({});
    expect(policy.rings).toEqual({});
  });

  it('a server listed twice in the same ring is not a conflict', () => {
    expect(parsed({ rings: { canary: ['ex01', 'EX01'] } }).rings).toEqual({ canary: ['ex01', 'EX01'] });
  });

  it.each([
    {
      name: 'bad mitigation id in org.blockedMitigations',
      value: { org: { blockedMitigations: ['EM1', 'EM 2'] } },
      path: 'org.blockedMitigations[1]',
      mentions: 'mitigation id',
    },
    {
      name: 'mitigationsEnabled is a string',
      value: { org: { mitigationsEnabled: 'yes' } },
      path: 'org.mitigationsEnabled',
    },
    {
      name: 'blockedMitigations is a string, not a list',
      value: { servers: { ex01: { blockedMitigations: 'EM1' } } },
      path: 'servers.ex01.blockedMitigations',
    },
    {
      name: 'unknown top-level key (strict)',
      value: { org: {}, server: {} },
      path: '(top)',
      mentions: '"server"',
    },
    {
      name: 'unknown key inside the org',
      value: { org: { mitigationsBlocked: ['EM1'] } },
      path: 'org',
      mentions: '"mitigationsBlocked"',
    },
    {
      name: 'unknown key inside a server',
      value: { servers: { 'ex01.contoso.com': { ring: 'canary' } } },
      path: 'servers["ex01.contoso.com"]',
      mentions: '"ring"',
    },
    {
      name: 'bad server name',
      value: { servers: { 'ex01 contoso': { mitigationsEnabled: false } } },
      path: 'servers["ex01 contoso"]',
      mentions: 'must be a host name or FQDN',
    },
    {
      name: 'bad server name in a ring',
      value: { rings: { canary: ['ex01', 'ex_02'] } },
      path: 'rings.canary[1]',
    },
    {
      name: 'bad ring name',
      value: { rings: { 'first wave': ['ex01'] } },
      path: 'rings["first wave"]',
      mentions: 'must be letters, digits',
    },
    {
      name: 'a server in two rings (case-insensitively)',
      value: { rings: { canary: ['EX01.contoso.com'], broad: ['ex02.contoso.com', 'ex01.contoso.com'] } },
      path: 'rings.broad',
      mentions: 'ex01.contoso.com is already in ring canary',
    },
    {
      name: 'top level is a list',
      value: [],
      path: '(top)',
    },
    {
      name: 'onDegraded that is neither rollback nor keep',
      value: { servers: { ex01: { onDegraded: 'ignore' } } },
      path: 'servers.ex01.onDegraded',
      mentions: '"rollback"',
    },
  ])('$name → error names $path', ({ value, path, mentions }) => {
    const error = rejected(JSON.stringify(value));
    expect(error).toMatch(/^EMFLEET_POLICY at /);
    expect(error).toContain(`at ${path}:`);
    if (mentions !== undefined) expect(error).toContain(mentions);
  });

  it.each([
    { name: 'truncated object', text: '{"org": {' },
    { name: 'empty text', text: '' },
    { name: 'trailing comma', text: '{"org": {},}' },
  ])('invalid JSON ($name) → error mentions EMFLEET_POLICY', ({ text }) => {
    const error = rejected(text);
    expect(error).toContain('EMFLEET_POLICY');
    expect(error).toContain('not valid JSON');
  });

  it('names the setting it was given', () => {
    const result = parseDeclaredPolicy('{"org": 1}', 'infra/policy.json');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/^infra\/policy\.json at org:/);
  });
});

describe('declaredLayers', () => {
  it('the org layer is the org settings, without unset fields', () => {
    expect(declaredLayers(parsed(realistic)).org).toStrictEqual({
      mitigationsEnabled: true,
      blockedMitigations: ['EM3'],
    });
    expect(declaredLayers(parsed({})).org).toStrictEqual({});
    expect(declaredLayers(parsed({ org: { blockedMitigations: [] } })).org).toStrictEqual({
      blockedMitigations: [],
    });
  });

  it('server names are lower-cased', () => {
    const layers = declaredLayers(parsed({ servers: { 'EX02.Contoso.COM': { mitigationsEnabled: false } } }));
    expect([...layers.servers.keys()]).toEqual(['ex02.contoso.com']);
    expect(layers.servers.get('ex02.contoso.com')).toStrictEqual({ mitigationsEnabled: false });
  });

  it('ring members get the ring, lower-cased', () => {
    const layers = declaredLayers(parsed({ rings: { canary: ['EX03'], broad: ['ex04', 'Ex05'] } }));
    expect(Object.fromEntries(layers.servers)).toStrictEqual({
      ex03: { ring: 'canary' },
      ex04: { ring: 'broad' },
      ex05: { ring: 'broad' },
    });
  });

  it('a server in both `servers` and a ring gets its settings and the ring', () => {
    const layers = declaredLayers(parsed(realistic));
    expect(layers.servers.get('ex01.contoso.com')).toStrictEqual({
      blockedMitigations: ['EM1'],
      ring: 'canary',
    });
  });

  it('the realistic policy: one layer per mentioned server', () => {
    const layers = declaredLayers(parsed(realistic));
    expect(Object.fromEntries(layers.servers)).toStrictEqual({
      'ex01.contoso.com': { blockedMitigations: ['EM1'], ring: 'canary' },
      'ex02.contoso.com': { mitigationsEnabled: false },
      'ex03.contoso.com': { ring: 'early' },
      ex04: { ring: 'early' },
      'ex05.contoso.com': { ring: 'broad' },
      'ex06.contoso.com': { ring: 'broad' },
    });
  });

  it('the case of a name in `servers` and in a ring may differ', () => {
    const layers = declaredLayers(
      parsed({
        servers: { 'ex07.contoso.com': { mitigationsEnabled: false } },
        rings: { early: ['EX07.CONTOSO.COM'] },
      }),
    );
    expect(Object.fromEntries(layers.servers)).toStrictEqual({
      'ex07.contoso.com': { mitigationsEnabled: false, ring: 'early' },
    });
  });
});
