import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRequestLine } from '../../lib/cli/package-test.js';
import { UsageError } from '../../lib/cli/io.js';
import { runCli } from '../helpers/cli.js';
import { catalogueXml, createTestPki } from '../helpers/packages.js';

const proxyNotShell = (name: string, input: string, pattern: string): string =>
  `<rule name="${name}" stopProcessing="true"><match url=".*"/><conditions><add input="${input}" pattern="${pattern}"/></conditions><action type="AbortRequest"/></rule>`;

/** Two generations of the ProxyNotShell rule, a rewrite, a rule on another site and an app-pool mitigation. */
const packageXml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="M1" desc="ProxyNotShell, first published rule">
    <ActionList>
      <Action type="IisUrlRewrite" scope="Server" desc="block"><Value>${proxyNotShell('M1 - raw', '{REQUEST_URI}', '.*autodiscover\\.json.*Powershell.*')}</Value></Action>
    </ActionList>
  </Config>
  <Config id="M1.2" desc="ProxyNotShell, decoded">
    <ActionList>
      <Action type="IisUrlRewrite" scope="Server" desc="block"><Value>${proxyNotShell('M1.2 - decoded', '{UrlDecode:{REQUEST_URI}}', '(?=.*autodiscover)(?=.*powershell)')}</Value></Action>
    </ActionList>
  </Config>
  <Config id="RW1" desc="Move legacy path">
    <ActionList>
      <Action type="IisUrlRewrite" scope="Server" desc="rewrite"><Value site="Default Web Site"><rule name="legacy"><match url="^legacy/(.*)"/><action type="Rewrite" url="owa/{R:1}"/></rule></Value></Action>
      <Action type="IisUrlRewrite" scope="Server" desc="back end"><Value site="Exchange Back End"><rule name="deny ecp"><match url="^ecp/"/><action type="CustomResponse" statusCode="403" statusReason="Forbidden"/></rule></Value></Action>
    </ActionList>
  </Config>
  <Config id="EM2" desc="Disable OWA app pool">
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value></Action></ActionList>
  </Config>
</EOCS>
`;

const attack = 'GET /autodiscover/autodiscover.json?@evil.com/powershell/';
const encodedAttack = 'GET /autodiscover/autodiscover.json?@evil.com/%50owershell/';

let dir: string;
let packagePath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emfleet-package-test-'));
  packagePath = join(dir, 'package.xml');
  await writeFile(packagePath, packageXml);
});

const lastJson = (stdout: string): Record<string, any> => JSON.parse(stdout.trim().split('\n').at(-1)!);

describe('emfleet package test', () => {
  it('prints which rule of which mitigation blocks, rewrites or passes each request', async () => {
    const run = await runCli([
      'package',
      'test',
      packagePath,
      '--site',
      'Default Web Site',
      '--request',
      attack,
      '--request',
      encodedAttack,
      '--request',
      'GET /legacy/x?a=1',
      '--request',
      'GET /owa/',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^request\s+verdict\s+mitigation\s+rule\s+why$/);
    expect(lines[1]).toMatch(
      /^GET \/autodiscover\/autodiscover\.json\?@evil\.com\/powershell\/\s+Blocked\s+M1\s+M1 - raw\s+url "autodiscover\/autodiscover\.json" matches/,
    );
    // The encoded attack slips past the raw rule and is caught by the decoding one.
    expect(lines[2]).toMatch(
      /^GET \/autodiscover\/autodiscover\.json\?@evil\.com\/%50owershell\/\s+Blocked\s+M1\.2\s+M1\.2 - decoded\s+.*"\/autodiscover\/autodiscover\.json\?@evil\.com\/Powershell\/" matches/,
    );
    expect(lines[3]).toMatch(
      /^GET \/legacy\/x\?a=1\s+Rewritten\s+RW1\s+legacy\s+rewritten to \/owa\/x\?a=1$/,
    );
    expect(lines[4]).toMatch(/^GET \/owa\/\s+Passed\s+-\s+-\s+none of 3 rules ended or rewrote it$/);
    expect(lines.slice(5)).toEqual([
      'note: RW1 rule "deny ecp" is for site "Exchange Back End"',
      'note: EM2 disables app pool MSExchangeOWAAppPool (not evaluated: every request to it fails)',
    ]);
  });

  it('evaluates each site on its own and shows the site when there are several', async () => {
    const run = await runCli(['package', 'test', packagePath, '--request', 'GET /ecp/']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^request\s+site\s+verdict\s+mitigation\s+rule\s+why$/);
    expect(lines[1]).toMatch(/^GET \/ecp\/\s+Default Web Site\s+Passed\s/);
    expect(lines[2]).toMatch(
      /^GET \/ecp\/\s+Exchange Back End\s+Blocked\s+RW1\s+deny ecp\s+.*CustomResponse 403\.0$/,
    );
  });

  it('prints one JSON object with --json', async () => {
    const run = await runCli([
      'package',
      'test',
      packagePath,
      '--site',
      'Default Web Site',
      '--request',
      encodedAttack,
      '--request',
      'GET /owa/ | Cookie: a=b',
      '--json',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const json = lastJson(run.stdout);
    expect(json.ok).toBe(true);
    expect(json.counts).toEqual({ Blocked: 1, Rewritten: 0, Redirected: 0, Responded: 0, Passed: 1 });
    expect(json.rules).toEqual([
      { mitigation: 'M1', site: 'Default Web Site', rule: 'M1 - raw' },
      { mitigation: 'M1.2', site: 'Default Web Site', rule: 'M1.2 - decoded' },
      { mitigation: 'RW1', site: 'Default Web Site', rule: 'legacy' },
    ]);
    expect(json.results[0]).toMatchObject({
      source: '--request 1',
      request: { method: 'GET', url: '/autodiscover/autodiscover.json?@evil.com/%50owershell/' },
      site: 'Default Web Site',
      verdict: 'Blocked',
      mitigation: 'M1.2',
      rule: 'M1.2 - decoded',
      outcome: { kind: 'aborted', rule: 'M1.2 - decoded' },
    });
    expect(
      json.results[0].trace.map((step: { rule: string; matched: boolean }) => [step.rule, step.matched]),
    ).toEqual([
      ['M1 - raw', false],
      ['M1.2 - decoded', true],
    ]);
    expect(json.results[1]).toMatchObject({
      source: '--request 2',
      request: { headers: { Cookie: 'a=b' } },
      verdict: 'Passed',
      mitigation: null,
      rule: null,
    });
  });

  it('reads --requests: both forms, comments and blank lines skipped, sources by line', async () => {
    const file = join(dir, 'requests.txt');
    await writeFile(
      file,
      [
        '# must block',
        attack,
        '',
        '   # indented comment',
        '{"method":"POST","url":"/legacy/a","headers":{"Host":"mail.contoso.com"}}',
        'GET /owa/ | Host: mail.contoso.com | X-Test: 1',
      ].join('\n'),
    );
    const run = await runCli([
      'package',
      'test',
      packagePath,
      '--site',
      'Default Web Site',
      '--requests',
      file,
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const json = lastJson(run.stdout);
    expect(
      json.results.map((result: { source: string; verdict: string }) => [result.source, result.verdict]),
    ).toEqual([
      [`${file}:2`, 'Blocked'],
      [`${file}:5`, 'Rewritten'],
      [`${file}:6`, 'Passed'],
    ]);
    expect(json.results[2].request.headers).toEqual({ Host: 'mail.contoso.com', 'X-Test': '1' });
  });

  it('tests a signed package without checking its signature, and --build leaves out what does not apply', async () => {
    const pki = await createTestPki();
    const signed = join(dir, 'catalogue.signed.xml');
    await writeFile(signed, pki.sign(catalogueXml, { sequence: 3 }));
    const all = lastJson(
      (await runCli(['package', 'test', signed, '--request', 'GET /owa/', '--json'])).stdout,
    );
    expect(all.rules.map((entry: { mitigation: string }) => entry.mitigation)).toEqual(['EM1']);
    const later = await runCli([
      'package',
      'test',
      signed,
      '--request',
      'GET /owa/',
      '--build',
      '15.2.1544.4',
    ]);
    expect(later.code).toBe(0);
    expect(later.stdout).toMatch(/^GET \/owa\/\s+Passed\s+-\s+-\s+no rewrite rules on the site$/m);
    expect(later.stdout).toContain('note: EM1 not applied on build 15.2.1544.4');
  });

  it("--probes runs the package's own probes and says whether each got what it expects", async () => {
    const file = join(dir, 'catalogue.xml');
    await writeFile(file, catalogueXml);
    const run = await runCli(['package', 'test', file, '--probes', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const json = lastJson(run.stdout);
    expect(json.probes).toEqual({ total: 4, failed: 0 });
    expect(
      json.results.map((result: { source: string; expect: string; met: boolean; verdict: string }) => [
        result.source,
        result.expect,
        result.met,
        result.verdict,
      ]),
    ).toEqual([
      ['EM1 probe 1', 'blocked', true, 'Blocked'],
      ['EM1 probe 2', 'blocked', true, 'Blocked'],
      ['EM1 probe 3', 'passed', true, 'Passed'],
      ['EM1 probe 4', 'passed', true, 'Passed'],
    ]);
    expect(json.results[3].request.headers).toEqual({
      'User-Agent': 'emfleet-probe',
      Cookie: 'X-OWA-CANARY=probe',
    });
  });

  it('--probes exits 1 when a rule misses what its probes say it must block', async () => {
    const file = join(dir, 'weak-catalogue.xml');
    // A case-sensitive, undecoded copy of the rule: the kind of mistake the probes exist to catch.
    const weak = catalogueXml.replace(
      '{UrlDecode:{REQUEST_URI}}" pattern=".*autodiscover\\.json.*Powershell.*"',
      '{REQUEST_URI}" pattern="autodiscover\\.json.*powershell" ignoreCase="false"',
    );
    expect(weak).not.toBe(catalogueXml);
    await writeFile(file, weak);
    const run = await runCli(['package', 'test', file, '--probes']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      'emfleet: ProbeUnmet: 2 of 4 probes did not get what they expect; first: EM1 probe 1 must be blocked but was Passed',
    );
    expect(run.stdout).toMatch(
      /^GET \/autodiscover\/autodiscover\.json\?@evil\.com\/%50owershell\s+EM1 probe 2: must be blocked, FAILED\s+Passed\s/m,
    );
    expect(run.stdout).toMatch(/^GET \/owa\/\s+EM1 probe 4: must be passed, ok\s+Passed\s/m);
  });

  it.each<{ name: string; args: (file: string) => string[]; code: number; stderr: RegExp }>([
    {
      name: 'no requests',
      args: (file) => ['package', 'test', file],
      code: 2,
      stderr: /no requests: give --request "METHOD \/path", --requests FILE or --probes/,
    },
    {
      name: 'a request without a path',
      args: (file) => ['package', 'test', file, '--request', 'GET /owa/', '--request', 'GET owa'],
      code: 2,
      stderr: /--request 2: "owa" must start with "\/"/,
    },
    {
      name: 'a request with a host',
      args: (file) => ['package', 'test', file, '--request', 'GET https://mail.contoso.com/owa/'],
      code: 2,
      stderr: /--request 1: .* must start with "\/"/,
    },
    {
      name: 'a bad --build',
      args: (file) => ['package', 'test', file, '--request', 'GET /', '--build', '15.2'],
      code: 2,
      stderr: /--build "15\.2" is not an Exchange build/,
    },
    {
      name: 'an unreadable requests file',
      args: (file) => ['package', 'test', file, '--requests', join(file, 'nope')],
      code: 2,
      stderr: /cannot read/,
    },
    {
      name: 'an unreadable package',
      args: (file) => ['package', 'test', join(file, 'missing.xml'), '--request', 'GET /'],
      code: 1,
      stderr: /^emfleet: UnreadablePackage: cannot read .*missing\.xml: (ENOTDIR|ENOENT)$/,
    },
  ])('exit $code for $name', async ({ args, code, stderr }) => {
    const run = await runCli(args(packagePath));
    expect(run.code).toBe(code);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr.trim()).toMatch(stderr);
    expect(run.stdout).toBe('');
  });

  it('exit 2 naming the line of a malformed request in --requests', async () => {
    const file = join(dir, 'bad-requests.txt');
    await writeFile(file, ['# fine', 'GET /owa/', '', 'GET /owa/ | Cookie'].join('\n'));
    const run = await runCli(['package', 'test', packagePath, '--requests', file]);
    expect(run.code).toBe(2);
    expect(run.stderr.trim()).toBe(`emfleet: Usage: ${file}:4: "Cookie" is not a header ("Name: value")`);
  });

  it('exit 1 for a malformed package', async () => {
    const file = join(dir, 'malformed.xml');
    await writeFile(file, '<EOCS><Config id="X"></EOCS>');
    const run = await runCli(['package', 'test', file, '--request', 'GET /']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^emfleet: UnreadablePackage: .*malformed\.xml: Malformed: /);
  });

  it('exit 1 naming the mitigation and rule the evaluator cannot understand', async () => {
    const file = join(dir, 'bad-rule.xml');
    await writeFile(file, packageXml.replace('(?=.*autodiscover)(?=.*powershell)', '(?=.*autodiscover'));
    const run = await runCli(['package', 'test', file, '--request', 'GET /']);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(
      /^emfleet: InvalidRewriteRule: mitigation M1\.2: rule "M1\.2 - decoded": pattern "\(\?=\.\*autodiscover" is not a valid regular expression/,
    );
  });

  it('is described in --help', async () => {
    const run = await runCli(['package', 'test', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('--requests <file>');
    expect(run.stdout).toContain('Blocked (AbortRequest, or a CustomResponse of 400 or more)');
  });
});

describe('request lines', () => {
  it.each<{ name: string; line: string; expected: object }>([
    { name: 'method and url', line: 'GET /owa/', expected: { source: 's', method: 'GET', url: '/owa/' } },
    {
      name: 'extra spaces',
      line: '  POST   /ews/exchange.asmx  ',
      expected: { source: 's', method: 'POST', url: '/ews/exchange.asmx' },
    },
    {
      name: 'headers after " | "',
      line: 'GET /owa/ | Cookie: a=b; c=d | X-Forwarded-For: 1.2.3.4',
      expected: { headers: { Cookie: 'a=b; c=d', 'X-Forwarded-For': '1.2.3.4' } },
    },
    {
      name: 'a header value with a colon',
      line: 'GET / | Host: mail.contoso.com:443',
      expected: { headers: { Host: 'mail.contoso.com:443' } },
    },
    {
      name: 'JSON',
      line: '{"method":"GET","url":"/x","serverVariables":{"HTTPS":"on"}}',
      expected: { method: 'GET', url: '/x', serverVariables: { HTTPS: 'on' } },
    },
  ])('parses $name', ({ line, expected }) => {
    expect(parseRequestLine(line, 's')).toMatchObject(expected);
  });

  it.each<{ name: string; line: string; message: RegExp }>([
    { name: 'one word', line: 'GET', message: /^s: expected "METHOD \/path\?query"/ },
    { name: 'a space in the url', line: 'GET /a b', message: /^s: expected "METHOD \/path\?query"/ },
    { name: 'a bad method', line: 'G(T /', message: /"G\(T" is not an HTTP method/ },
    { name: 'bad JSON', line: '{"method":', message: /^s: not valid JSON/ },
    {
      name: 'JSON with an unknown field',
      line: '{"method":"GET","url":"/","body":"x"}',
      message: /^s: .*body/,
    },
    {
      name: 'JSON with a bad url',
      line: '{"method":"GET","url":"x"}',
      message: /^s: url: must start with "\/"/,
    },
  ])('refuses $name', ({ line, message }) => {
    expect(() => parseRequestLine(line, 's')).toThrow(UsageError);
    expect(() => parseRequestLine(line, 's')).toThrow(message);
  });
});
