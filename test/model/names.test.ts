import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  mitigationId,
  operationId,
  orgName,
  ringName,
  serverName,
  siteName,
  storedServerName,
  tableKey,
} from '../../lib/model/names.js';

/** The first issue's message, or undefined when the name is accepted. */
function problemOf(schema: z.ZodType, value: unknown): string | undefined {
  const result = schema.safeParse(value);
  return result.success ? undefined : result.error.issues[0]!.message;
}

const label63 = 'a'.repeat(63);

describe('serverName', () => {
  it.each([
    { name: 'short host name', value: 'ex01' },
    { name: 'FQDN', value: 'ex01.contoso.com' },
    { name: 'upper case (names are case-insensitive)', value: 'EX01.Contoso.COM' },
    { name: 'hyphen inside a label', value: 'ex-01.contoso-mail.com' },
    { name: 'label of 63 characters', value: `${label63}.contoso.com` },
    { name: 'digits first', value: '01ex.contoso.com' },
  ])('accepts $name', ({ value }) => {
    expect(problemOf(serverName, value)).toBeUndefined();
  });

  it.each([
    { name: 'empty', value: '' },
    { name: 'leading hyphen', value: '-ex01' },
    { name: 'label of 64 characters', value: `${label63}a.contoso.com` },
    { name: 'trailing dot', value: 'ex01.contoso.com.' },
    { name: 'empty label', value: 'ex01..contoso.com' },
    { name: 'underscore', value: 'ex_01' },
    { name: 'space', value: 'ex 01' },
    { name: 'trailing newline (log injection)', value: 'ex01\n' },
    { name: 'path traversal', value: '../ex01' },
    { name: 'slash (a Tables key separator)', value: 'contoso/ex01' },
    { name: 'Cyrillic look-alike letter', value: 'еx01.contoso.com' },
    { name: 'URL', value: 'https://ex01.contoso.com' },
    { name: 'PowerShell metacharacters', value: 'ex01;Remove-Item' },
    { name: 'not a string', value: 42 },
  ])('rejects $name', ({ value }) => {
    expect(problemOf(serverName, value)).toBeDefined();
  });

  it('rejects a name longer than 253 characters, even when each label is valid', () => {
    const long = Array.from({ length: 4 }, () => label63).join('.');
    expect(long.length).toBe(255);
    expect(problemOf(serverName, long)).toBeDefined();
  });

  it('says what a server name must be', () => {
    expect(problemOf(serverName, 'ex 01')).toBe('must be a host name or FQDN (letters, digits, -, dots)');
  });
});

describe('storedServerName', () => {
  it.each([
    { name: 'lower case', value: 'ex01.contoso.com', problem: undefined },
    {
      name: 'upper case',
      value: 'EX01.contoso.com',
      problem: 'must be lower case (emfleet stores server names in lower case)',
    },
    {
      name: 'invalid before case is looked at',
      value: 'ex 01',
      problem: 'must be a host name or FQDN (letters, digits, -, dots)',
    },
  ])('$name', ({ value, problem }) => {
    expect(problemOf(storedServerName, value)).toBe(problem);
  });
});

describe.each([
  { schema: orgName, label: 'orgName' },
  { schema: ringName, label: 'ringName' },
])('$label', ({ schema }) => {
  it.each([
    { name: 'letters', value: 'contoso', ok: true },
    { name: 'digits, _ and -', value: 'ring_1-canary', ok: true },
    { name: '63 characters', value: label63, ok: true },
    { name: '64 characters', value: `${label63}a`, ok: false },
    { name: 'empty', value: '', ok: false },
    { name: 'leading underscore', value: '_contoso', ok: false },
    { name: 'dot', value: 'contoso.com', ok: false },
    { name: 'pipe (the declared-row suffix)', value: 'contoso|bicep', ok: false },
    { name: 'OData quote', value: "contoso' or 'a'='a", ok: false },
    { name: 'control character', value: 'contoso\u0000', ok: false },
  ])('$name: $ok', ({ value, ok }) => {
    expect(problemOf(schema, value) === undefined).toBe(ok);
  });
});

describe('siteName', () => {
  it.each([
    { name: 'empty (no site)', value: '', ok: true },
    { name: 'AD site with spaces', value: 'Default-First-Site-Name', ok: true },
    { name: 'spaces and dots', value: 'London HQ 2.0', ok: true },
    { name: '128 characters', value: 's'.repeat(128), ok: true },
    { name: '129 characters', value: 's'.repeat(129), ok: false },
    { name: 'newline', value: 'London\nHQ', ok: false },
    { name: 'NUL', value: 'London\u0000', ok: false },
    { name: 'DEL', value: 'London\u007f', ok: false },
    { name: 'C1 control (NEL)', value: 'London\u0085', ok: false },
    { name: 'slash', value: 'London/HQ', ok: false },
  ])('$name: $ok', ({ value, ok }) => {
    expect(problemOf(siteName, value) === undefined).toBe(ok);
  });
});

describe('mitigationId', () => {
  it.each([
    { name: 'EM id', value: 'EM1', ok: true },
    { name: 'ping', value: 'PING1', ok: true },
    { name: 'dots, _ and -', value: 'CONTOSO.zero-day_2', ok: true },
    { name: '64 characters', value: `M${'1'.repeat(63)}`, ok: true },
    { name: '65 characters', value: `M${'1'.repeat(64)}`, ok: false },
    { name: 'empty', value: '', ok: false },
    { name: 'leading dot (a hidden file name)', value: '.EM1', ok: false },
    { name: 'path traversal', value: '../EM1', ok: false },
    { name: 'backslash', value: 'EM1\\x', ok: false },
    { name: 'space', value: 'EM 1', ok: false },
    { name: 'JSON injection', value: 'EM1","x":"', ok: false },
  ])('$name: $ok', ({ value, ok }) => {
    expect(problemOf(mitigationId, value) === undefined).toBe(ok);
  });
});

describe('tableKey', () => {
  it.each([
    { name: 'feed name', value: 'microsoft', problem: undefined },
    { name: 'rollout id with dots and colons', value: 'r-20261207.1:apply', problem: undefined },
    { name: '512 characters', value: 'k'.repeat(512), problem: undefined },
    { name: 'empty', value: '', problem: 'must not be empty' },
    { name: 'slash', value: 'a/b', problem: 'must not contain / \\ # ? or control characters' },
    { name: 'backslash', value: 'a\\b', problem: 'must not contain / \\ # ? or control characters' },
    { name: 'hash', value: 'a#b', problem: 'must not contain / \\ # ? or control characters' },
    { name: 'question mark', value: 'a?b', problem: 'must not contain / \\ # ? or control characters' },
    { name: 'tab', value: 'a\tb', problem: 'must not contain / \\ # ? or control characters' },
  ])('$name', ({ value, problem }) => {
    expect(problemOf(tableKey, value)).toBe(problem);
  });

  it('rejects a key longer than 512 characters', () => {
    expect(problemOf(tableKey, 'k'.repeat(513))).toBeDefined();
  });
});

describe('operationId', () => {
  it.each([
    { name: 'rollout, wave and server', value: 'r1.w0.ex01.contoso.com', ok: true },
    { name: 'retry and colon', value: 'r1.w0.r2.ex01:remove', ok: true },
    { name: '128 characters', value: `o${'1'.repeat(127)}`, ok: true },
    { name: '129 characters', value: `o${'1'.repeat(128)}`, ok: false },
    { name: 'leading dot', value: '.r1', ok: false },
    { name: 'slash (a URL path)', value: 'r1/w0', ok: false },
    { name: 'space', value: 'r1 w0', ok: false },
  ])('$name: $ok', ({ value, ok }) => {
    expect(problemOf(operationId, value) === undefined).toBe(ok);
  });
});
