import { describe, expect, it } from 'vitest';
import { EmfleetError } from '../../lib/errors.js';
import {
  cancellations,
  effectiveRules,
  evaluateInbound,
  evaluateOutbound,
  isBlocked,
  RewriteRuleError,
  type RewriteRequest,
  type RewriteVerdict,
  type SiteRewriteConfig,
  type SiteRule,
} from '../../lib/iis/rewrite.js';

const rule = (name: string, body: string, attributes = ''): SiteRule => ({
  name,
  xml: `<rule name="${name}"${attributes ? ` ${attributes}` : ''}>${body}</rule>`,
});
const get = (url: string, extra: Partial<RewriteRequest> = {}): RewriteRequest => ({
  method: 'GET',
  url,
  ...extra,
});
const abort = '<action type="AbortRequest"/>';

/** The ProxyNotShell (CVE-2022-41040) rule as Microsoft published it, in its successive versions. */
const proxyNotShell = (input: string, pattern: string, match = '<add'): SiteRule =>
  rule(
    'PowerShell - inbound',
    `<match url=".*"/><conditions>${match} input="${input}" pattern="${pattern}"/></conditions>${abort}`,
    'stopProcessing="true"',
  );
const variants = {
  /** MSRC guidance of 2022-09-29: request blocking on {REQUEST_URI}. */
  v1: proxyNotShell('{REQUEST_URI}', '.*autodiscover\\.json.*\\@.*Powershell.*'),
  /** 2022-10-02: the "@" was not needed by the exploit, so it was dropped. */
  v2: proxyNotShell('{REQUEST_URI}', '.*autodiscover\\.json.*Powershell.*'),
  /** 2022-10-05 (EOMTv2 22.10.05, and the EM rule): the input URL-decoded first. */
  v3: proxyNotShell('{UrlDecode:{REQUEST_URI}}', '.*autodiscover\\.json.*Powershell.*'),
  /** EOMTv2 later and CSS-Exchange EOMT today: both words anywhere, in either order. */
  v4: proxyNotShell('{UrlDecode:{REQUEST_URI}}', '(?=.*autodiscover)(?=.*powershell)'),
};
/** The same rule typed with a space after the function's colon. */
const v3WithSpace = proxyNotShell('{UrlDecode: {REQUEST_URI}}', '.*autodiscover\\.json.*Powershell.*');

type Outcome = 'blocked' | 'passed' | 'error 500';
function outcome(verdict: RewriteVerdict): Outcome {
  if (verdict.kind === 'aborted') return 'blocked';
  if (verdict.kind === 'passed') return 'passed';
  if (verdict.kind === 'customResponse' && verdict.statusCode === 500) return 'error 500';
  throw new Error(`unexpected verdict ${JSON.stringify(verdict)}`);
}

describe('the published ProxyNotShell rules against bypass attempts', () => {
  // Columns: v1, v2, v3, v4. The first rules were bypassed in the wild; the evaluator shows how.
  it.each<{ name: string; url: string; expected: [Outcome, Outcome, Outcome, Outcome] }>([
    {
      name: 'the published exploit request',
      url: '/autodiscover/autodiscover.json?@evil.com/powershell/?X-Rps-CAT=VgEAVAdXaW5kb3dzQw==&Email=autodiscover/autodiscover.json%3F@evil.com',
      expected: ['blocked', 'blocked', 'blocked', 'blocked'],
    },
    {
      name: 'no "@" (bypasses v1)',
      url: '/autodiscover/autodiscover.json?a..foo.var/powershell/?X-Rps-CAT=x&Email=autodiscover/autodiscover.json%3Fa..foo.var',
      expected: ['passed', 'blocked', 'blocked', 'blocked'],
    },
    {
      name: 'case folding /AutoDiscover/...PowerShell (ignoreCase defaults to true)',
      url: '/AutoDiscover/AutoDiscover.JSON?@evil.com/PowerShell/',
      expected: ['blocked', 'blocked', 'blocked', 'blocked'],
    },
    {
      name: '%50owershell (bypasses the raw {REQUEST_URI} rules)',
      url: '/autodiscover/autodiscover.json?@evil.com/%50owershell/',
      expected: ['passed', 'passed', 'blocked', 'blocked'],
    },
    {
      name: 'autodiscover%2Ejson',
      url: '/autodiscover/autodiscover%2Ejson?@evil.com/powershell/',
      expected: ['passed', 'passed', 'blocked', 'blocked'],
    },
    {
      name: '%2F for the slashes',
      url: '/autodiscover/autodiscover.json?@evil.com%2Fpowershell%2F',
      expected: ['blocked', 'blocked', 'blocked', 'blocked'],
    },
    // UrlDecode refuses double encoding (IIS default): the request fails with 500.50 rather than pass.
    {
      name: 'double encoding %2550owershell',
      url: '/autodiscover/autodiscover.json?@evil.com/%2550owershell/',
      expected: ['passed', 'passed', 'error 500', 'error 500'],
    },
    {
      name: 'another autodiscover endpoint (only v4 does not need ".json")',
      url: '/autodiscover/autodiscover.xml?@evil.com/powershell/',
      expected: ['passed', 'passed', 'passed', 'blocked'],
    },
    // ECMAScript "." stops at a line terminator, so a decoded %0A splits the input the decoding rules
    // read; the raw rules see one line. What IIS's engine does here is not confirmed on a live server.
    {
      name: 'a decoded newline between the words',
      url: '/autodiscover/autodiscover.json?@evil.com/%0Apowershell/',
      expected: ['blocked', 'blocked', 'passed', 'passed'],
    },
    {
      name: 'benign autodiscover',
      url: '/autodiscover/autodiscover.json?Email=user%40contoso.com&Protocol=ActiveSync&RedirectCount=1',
      expected: ['passed', 'passed', 'passed', 'passed'],
    },
    {
      name: 'benign remote PowerShell',
      url: '/powershell/?serializationLevel=Full;ExchClientVer=15.2.1118.7',
      expected: ['passed', 'passed', 'passed', 'passed'],
    },
    { name: 'benign OWA', url: '/owa/', expected: ['passed', 'passed', 'passed', 'passed'] },
  ])('$name', ({ url, expected }) => {
    const results = [variants.v1, variants.v2, variants.v3, variants.v4].map(
      (variant) => evaluateInbound([variant], get(url)).verdict,
    );
    expect(results.map(outcome)).toEqual(expected);
    for (const verdict of results) {
      if (verdict.kind !== 'passed') expect(verdict).toMatchObject({ rule: 'PowerShell - inbound' });
    }
    // The same rule with a space after "UrlDecode:" decides exactly as v3 does.
    expect(outcome(evaluateInbound([v3WithSpace], get(url)).verdict)).toBe(expected[2]);
  });

  it('a case-sensitive copy of v2 (ignoreCase="false") is bypassed by case folding', () => {
    const caseSensitive = proxyNotShell(
      '{REQUEST_URI}',
      '.*autodiscover\\.json.*Powershell.*',
      '<add ignoreCase="false"',
    );
    expect(
      evaluateInbound([caseSensitive], get('/autodiscover/autodiscover.json?@evil.com/powershell/')).verdict
        .kind,
    ).toBe('passed');
    expect(
      evaluateInbound([caseSensitive], get('/autodiscover/autodiscover.json?@evil.com/Powershell/')).verdict
        .kind,
    ).toBe('aborted');
  });

  it('a rule on <match url> alone sees only the path, never the query string where the exploit puts "powershell"', () => {
    const pathOnly = rule(
      'EEMS EM1 - Autodiscover Rule',
      `<match url=".*autodiscover\\.json.*Powershell.*"/>${abort}`,
      'stopProcessing="true"',
    );
    expect(
      evaluateInbound([pathOnly], get('/autodiscover/autodiscover.json?@evil.com/powershell/')).verdict.kind,
    ).toBe('passed');
    expect(evaluateInbound([pathOnly], get('/autodiscover/autodiscover.json/powershell')).verdict.kind).toBe(
      'aborted',
    );
  });

  it('the space after "UrlDecode:" is kept: the decoded input starts with a space, so only an anchored pattern differs', () => {
    const evaluation = evaluateInbound(
      [v3WithSpace],
      get('/autodiscover/autodiscover.json?@evil.com/powershell/'),
    );
    expect(evaluation.trace[0]!.why).toContain(
      '{UrlDecode: {REQUEST_URI}} " /autodiscover/autodiscover.json?@evil.com/powershell/" matches',
    );
    const anchored = (input: string): SiteRule => proxyNotShell(input, '^/autodiscover/.*powershell');
    expect(
      evaluateInbound([anchored('{UrlDecode:{REQUEST_URI}}')], get('/autodiscover/x?powershell')).verdict
        .kind,
    ).toBe('aborted');
    expect(
      evaluateInbound([anchored('{UrlDecode: {REQUEST_URI}}')], get('/autodiscover/x?powershell')).verdict
        .kind,
    ).toBe('passed');
  });

  it('names the rule and the input it read in the trace', () => {
    const evaluation = evaluateInbound(
      [variants.v4],
      get('/autodiscover/autodiscover.json?@evil.com/%50owershell/'),
    );
    expect(evaluation.verdict).toEqual({ kind: 'aborted', rule: 'PowerShell - inbound' });
    expect(evaluation.trace).toEqual([
      {
        rule: 'PowerShell - inbound',
        matched: true,
        why:
          'url "autodiscover/autodiscover.json" matches ".*"; condition 1 {UrlDecode:{REQUEST_URI}} "/autodiscover/autodiscover.json?@evil.com/Powershell/" ' +
          'matches "(?=.*autodiscover)(?=.*powershell)" → AbortRequest',
      },
    ]);
    expect(isBlocked(evaluation.verdict)).toBe(true);
  });
});

describe('rule features', () => {
  const blockIf = (name: string, match: string, conditions = '', attributes = ''): SiteRule =>
    rule(name, `${match}${conditions}${abort}`, attributes);

  it.each<{ name: string; rules: SiteRule[]; request: RewriteRequest; expected: RewriteVerdict }>([
    {
      name: '<match url> sees the path without its leading slash',
      rules: [blockIf('r', '<match url="^autodiscover/x$"/>')],
      request: get('/autodiscover/x'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '<match url> does not see the query string',
      rules: [blockIf('r', '<match url="powershell"/>')],
      request: get('/owa/?x=powershell'),
      expected: { kind: 'passed', url: '/owa/?x=powershell' },
    },
    {
      name: '<match url> sees the path percent-decoded',
      rules: [blockIf('r', '<match url="^owa/auth/x\\.js$"/>')],
      request: get('/owa/auth/%78%2Ejs'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '<match url> sees %2F as a slash',
      rules: [blockIf('r', '<match url="^ecp/a/b$"/>')],
      request: get('/ecp/a%2Fb'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '<match url> sees dot segments resolved',
      rules: [blockIf('r', '<match url="^ecp/x$"/>')],
      request: get('/owa/../ecp/./x'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'ignoreCase defaults to true',
      rules: [blockIf('r', '<match url="^ECP/"/>')],
      request: get('/ecp/x'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'ignoreCase="false" is case-sensitive',
      rules: [blockIf('r', '<match url="^ECP/" ignoreCase="false"/>')],
      request: get('/ecp/x'),
      expected: { kind: 'passed', url: '/ecp/x' },
    },
    {
      name: 'match negate',
      rules: [blockIf('r', '<match url="^(owa|ecp)/" negate="true"/>')],
      request: get('/mapi/nspi'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'match negate, matching url passes',
      rules: [blockIf('r', '<match url="^(owa|ecp)/" negate="true"/>')],
      request: get('/owa/'),
      expected: { kind: 'passed', url: '/owa/' },
    },
    {
      name: 'condition negate',
      rules: [
        blockIf(
          'r',
          '<match url="^ecp/"/>',
          '<conditions><add input="{REMOTE_ADDR}" pattern="^10\\." negate="true"/></conditions>',
        ),
      ],
      request: get('/ecp/', { serverVariables: { REMOTE_ADDR: '203.0.113.9' } }),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'condition negate, internal address passes',
      rules: [
        blockIf(
          'r',
          '<match url="^ecp/"/>',
          '<conditions><add input="{REMOTE_ADDR}" pattern="^10\\." negate="true"/></conditions>',
        ),
      ],
      request: get('/ecp/', { serverVariables: { REMOTE_ADDR: '10.1.2.3' } }),
      expected: { kind: 'passed', url: '/ecp/' },
    },
    {
      name: 'MatchAll needs every condition',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{QUERY_STRING}" pattern="a=1"/><add input="{QUERY_STRING}" pattern="b=2"/></conditions>',
        ),
      ],
      request: get('/x?a=1'),
      expected: { kind: 'passed', url: '/x?a=1' },
    },
    {
      name: 'MatchAny needs one condition',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions logicalGrouping="MatchAny"><add input="{QUERY_STRING}" pattern="a=1"/><add input="{QUERY_STRING}" pattern="b=2"/></conditions>',
        ),
      ],
      request: get('/x?b=2'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'MatchAny with no condition true',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions logicalGrouping="MatchAny"><add input="{QUERY_STRING}" pattern="a=1"/><add input="{QUERY_STRING}" pattern="b=2"/></conditions>',
        ),
      ],
      request: get('/x?c=3'),
      expected: { kind: 'passed', url: '/x?c=3' },
    },
    {
      name: 'Wildcard: * matches any run, whole input',
      rules: [blockIf('r', '<match url="owa/*.aspx"/>', '', 'patternSyntax="Wildcard"')],
      request: get('/owa/auth/logon.aspx'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'Wildcard: no partial match',
      rules: [blockIf('r', '<match url="owa/*.aspx"/>', '', 'patternSyntax="Wildcard"')],
      request: get('/owa/auth/logon.aspx.bak'),
      expected: { kind: 'passed', url: '/owa/auth/logon.aspx.bak' },
    },
    {
      name: 'Wildcard: ? is one character',
      rules: [blockIf('r', '<match url="ecp/?.js"/>', '', 'patternSyntax="Wildcard"')],
      request: get('/ecp/ab.js'),
      expected: { kind: 'passed', url: '/ecp/ab.js' },
    },
    {
      name: 'Wildcard: dots are literal',
      rules: [blockIf('r', '<match url="ecp/a.js"/>', '', 'patternSyntax="Wildcard"')],
      request: get('/ecp/abjs'),
      expected: { kind: 'passed', url: '/ecp/abjs' },
    },
    {
      name: 'Wildcard applies to conditions too',
      rules: [
        blockIf(
          'r',
          '<match url="*"/>',
          '<conditions><add input="{QUERY_STRING}" pattern="*powershell*"/></conditions>',
          'patternSyntax="Wildcard"',
        ),
      ],
      request: get('/a?x=PowerShell'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'ExactMatch: equal, ignoring case',
      rules: [
        blockIf('r', '<match url="autodiscover/autodiscover.json"/>', '', 'patternSyntax="ExactMatch"'),
      ],
      request: get('/AutoDiscover/autodiscover.json?x'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'ExactMatch: no substring match',
      rules: [blockIf('r', '<match url="autodiscover.json"/>', '', 'patternSyntax="ExactMatch"')],
      request: get('/autodiscover/autodiscover.json'),
      expected: { kind: 'passed', url: '/autodiscover/autodiscover.json' },
    },
    {
      name: 'CustomResponse 403 with substatus and reason',
      rules: [
        rule(
          'deny',
          '<match url="^ecp/"/><action type="CustomResponse" statusCode="403" subStatusCode="6" statusReason="Forbidden" statusDescription="Denied"/>',
        ),
      ],
      request: get('/ecp/default.aspx'),
      expected: {
        kind: 'customResponse',
        rule: 'deny',
        statusCode: 403,
        subStatusCode: 6,
        reason: 'Forbidden',
      },
    },
    {
      name: 'a rewrite is seen by later rules',
      rules: [
        rule('move', '<match url="^old/(.*)"/><action type="Rewrite" url="new/{R:1}"/>'),
        blockIf('block new', '<match url="^new/secret$"/>'),
      ],
      request: get('/old/secret'),
      expected: { kind: 'aborted', rule: 'block new' },
    },
    {
      name: 'stopProcessing after a rewrite: later rules not evaluated',
      rules: [
        rule(
          'move',
          '<match url="^old/(.*)"/><action type="Rewrite" url="new/{R:1}"/>',
          'stopProcessing="true"',
        ),
        blockIf('block new', '<match url="^new/secret$"/>'),
      ],
      request: get('/old/secret?q=1'),
      expected: { kind: 'passed', url: '/new/secret?q=1' },
    },
    {
      name: 'Rewrite appendQueryString="false" drops the query',
      rules: [
        rule(
          'move',
          '<match url="^old/(.*)"/><action type="Rewrite" url="/new/{R:1}?x=1" appendQueryString="false"/>',
        ),
      ],
      request: get('/old/a?q=1'),
      expected: { kind: 'passed', url: '/new/a?x=1' },
    },
    {
      name: 'Rewrite appends the query with & when the target has one',
      rules: [rule('move', '<match url="^old/(.*)"/><action type="Rewrite" url="/new/{R:1}?x=1"/>')],
      request: get('/old/a?q=1'),
      expected: { kind: 'passed', url: '/new/a?x=1&q=1' },
    },
    {
      name: 'stopProcessing="false" on a None rule: later rules run',
      rules: [
        rule('note', '<match url=".*"/><action type="None"/>', 'stopProcessing="false"'),
        blockIf('block', '<match url="^ecp/"/>'),
      ],
      request: get('/ecp/'),
      expected: { kind: 'aborted', rule: 'block' },
    },
    {
      name: 'stopProcessing="true" on a None rule: later rules do not run',
      rules: [
        rule('allow', '<match url=".*"/><action type="None"/>', 'stopProcessing="true"'),
        blockIf('block', '<match url="^ecp/"/>'),
      ],
      request: get('/ecp/'),
      expected: { kind: 'passed', url: '/ecp/' },
    },
    {
      name: 'stopProcessing of a rule that did not match does not stop',
      rules: [
        rule('allow owa', '<match url="^owa/"/><action type="None"/>', 'stopProcessing="true"'),
        blockIf('block', '<match url="^ecp/"/>'),
      ],
      request: get('/ecp/'),
      expected: { kind: 'aborted', rule: 'block' },
    },
    {
      name: 'rule order: the first rule that ends the request wins',
      rules: [
        blockIf('first', '<match url=".*"/>'),
        rule('second', '<match url=".*"/><action type="CustomResponse" statusCode="403"/>'),
      ],
      request: get('/x'),
      expected: { kind: 'aborted', rule: 'first' },
    },
    {
      name: 'a disabled rule is skipped',
      rules: [blockIf('off', '<match url=".*"/>', '', 'enabled="false"')],
      request: get('/x'),
      expected: { kind: 'passed', url: '/x' },
    },
    {
      name: 'Redirect defaults to 301 and appends the query',
      rules: [rule('go', '<match url="^old$"/><action type="Redirect" url="https://mail.contoso.com/new"/>')],
      request: get('/old?a=1'),
      expected: { kind: 'redirected', rule: 'go', url: 'https://mail.contoso.com/new?a=1', statusCode: 301 },
    },
    {
      name: 'Redirect Found → 302',
      rules: [
        rule(
          'go',
          '<match url=".*"/><action type="Redirect" url="/x" redirectType="Found" appendQueryString="false"/>',
        ),
      ],
      request: get('/old?a=1'),
      expected: { kind: 'redirected', rule: 'go', url: '/x', statusCode: 302 },
    },
    {
      name: 'Redirect SeeOther → 303',
      rules: [rule('go', '<match url=".*"/><action type="Redirect" url="/x" redirectType="SeeOther"/>')],
      request: get('/old'),
      expected: { kind: 'redirected', rule: 'go', url: '/x', statusCode: 303 },
    },
    {
      name: 'Redirect Temporary → 307',
      rules: [rule('go', '<match url=".*"/><action type="Redirect" url="/x" redirectType="Temporary"/>')],
      request: get('/old'),
      expected: { kind: 'redirected', rule: 'go', url: '/x', statusCode: 307 },
    },
    {
      name: 'back-references {R:n} and {C:n} in the action url',
      rules: [
        rule(
          'go',
          '<match url="^(.+)"/><conditions><add input="{HTTP_HOST}" pattern="^([^.]+)\\.contoso\\.com$"/></conditions><action type="Redirect" url="https://contoso.com/{C:1}/{R:1}" appendQueryString="false"/>',
        ),
      ],
      request: get('/a/b', { headers: { Host: 'mail.contoso.com' } }),
      expected: { kind: 'redirected', rule: 'go', url: 'https://contoso.com/mail/a/b', statusCode: 301 },
    },
    {
      name: 'Wildcard * captures back-references',
      rules: [
        rule(
          'go',
          '<match url="*/*.html"/><action type="Redirect" url="/{R:2}/{R:1}"/>',
          'patternSyntax="Wildcard"',
        ),
      ],
      request: get('/contoso/test.html'),
      expected: { kind: 'redirected', rule: 'go', url: '/test/contoso', statusCode: 301 },
    },
    {
      name: 'trackAllCaptures numbers the captures of every condition',
      rules: [
        rule(
          'go',
          '<match url=".*"/><conditions trackAllCaptures="true"><add input="{HTTP_HOST}" pattern="^([^.]+)\\."/><add input="{QUERY_STRING}" pattern="id=(\\d+)"/></conditions><action type="Redirect" url="/{C:1}/{C:2}" appendQueryString="false"/>',
        ),
      ],
      request: get('/x?id=42', { headers: { host: 'mail.contoso.com' } }),
      expected: { kind: 'redirected', rule: 'go', url: '/mail/42', statusCode: 301 },
    },
    {
      name: 'without trackAllCaptures {C:n} is the last matched condition',
      rules: [
        rule(
          'go',
          '<match url=".*"/><conditions><add input="{HTTP_HOST}" pattern="^([^.]+)\\."/><add input="{QUERY_STRING}" pattern="id=(\\d+)"/></conditions><action type="Redirect" url="/{C:1}" appendQueryString="false"/>',
        ),
      ],
      request: get('/x?id=42', { headers: { host: 'mail.contoso.com' } }),
      expected: { kind: 'redirected', rule: 'go', url: '/42', statusCode: 301 },
    },
    {
      name: 'a condition input can use {R:n}',
      rules: [
        blockIf(
          'r',
          '<match url="^owa/(\\w+)"/>',
          '<conditions><add input="{R:1}" pattern="^auth$"/></conditions>',
        ),
      ],
      request: get('/owa/auth/logon.aspx'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{HTTP_COOKIE} from a mixed-case Cookie header',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{HTTP_COOKIE}" pattern="X-BEResource=.*~"/></conditions>',
        ),
      ],
      request: get('/owa/', { headers: { COOKIE: 'X-BEResource=a]@dc:444/x?~1942' } }),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{HTTP_<HEADER>}: dashes become underscores',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{HTTP_X_FORWARDED_FOR}" pattern="^203\\."/></conditions>',
        ),
      ],
      request: get('/owa/', { headers: { 'x-forwarded-for': '203.0.113.1' } }),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'a missing header reads as empty',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{HTTP_X_MISSING}" pattern="^$"/></conditions>',
        ),
      ],
      request: get('/owa/'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{REQUEST_METHOD}',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{REQUEST_METHOD}" pattern="^POST$" ignoreCase="false"/></conditions>',
        ),
      ],
      request: { method: 'post', url: '/ews/exchange.asmx' },
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{HTTPS} defaults to off',
      rules: [
        blockIf('r', '<match url=".*"/>', '<conditions><add input="{HTTPS}" pattern="^off$"/></conditions>'),
      ],
      request: get('/owa/'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{HTTPS} from serverVariables',
      rules: [
        blockIf('r', '<match url=".*"/>', '<conditions><add input="{HTTPS}" pattern="^off$"/></conditions>'),
      ],
      request: get('/owa/', { serverVariables: { https: 'on' } }),
      expected: { kind: 'passed', url: '/owa/' },
    },
    {
      name: '{SERVER_NAME} from the Host header',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{SERVER_NAME}" pattern="^mail\\.contoso\\.com$"/></conditions>',
        ),
      ],
      request: get('/owa/', { headers: { host: 'mail.contoso.com:443' } }),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: '{URL} is decoded, {QUERY_STRING} is raw',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{URL}|{QUERY_STRING}" pattern="^/a b\\|x=%20$"/></conditions>',
        ),
      ],
      request: get('/a%20b?x=%20'),
      expected: { kind: 'aborted', rule: 'r' },
    },
    {
      name: 'ToLower in an action url',
      rules: [rule('go', '<match url="(.*)"/><action type="Redirect" url="/{ToLower:{R:1}}"/>')],
      request: get('/OWA/Auth'),
      expected: { kind: 'redirected', rule: 'go', url: '/owa/auth', statusCode: 301 },
    },
    {
      name: 'UrlEncode in an action url keeps delimiters',
      rules: [
        rule(
          'go',
          '<match url="(.*)"/><action type="Redirect" url="/{UrlEncode:{R:1}.aspx?p=[résumé]}" appendQueryString="false"/>',
        ),
      ],
      request: get('/a%20b'),
      expected: {
        kind: 'redirected',
        rule: 'go',
        url: '/a%20b.aspx?p=%5Br%C3%A9sum%C3%A9%5D',
        statusCode: 301,
      },
    },
    {
      name: 'an unmatched "}" is literal text',
      rules: [
        rule('go', '<match url=".*"/><action type="Redirect" url="/x}{R:0}" appendQueryString="false"/>'),
      ],
      request: get('/y'),
      expected: { kind: 'redirected', rule: 'go', url: '/x}y', statusCode: 301 },
    },
    {
      name: 'IsFile against the files the request says exist',
      rules: [
        blockIf(
          'r',
          '<match url=".*"/>',
          '<conditions><add input="{REQUEST_FILENAME}" matchType="IsFile" negate="true"/></conditions>',
        ),
      ],
      request: get('/owa/x.js', { files: ['/owa/x.js'] }),
      expected: { kind: 'passed', url: '/owa/x.js' },
    },
    {
      name: 'IsDirectory defaults to the requested path',
      rules: [blockIf('r', '<match url=".*"/>', '<conditions><add matchType="IsDirectory"/></conditions>')],
      request: get('/owa/', { directories: ['/owa/'] }),
      expected: { kind: 'aborted', rule: 'r' },
    },
  ])('$name', ({ rules, request, expected }) => {
    expect(evaluateInbound(rules, request).verdict).toEqual(expected);
  });

  it('lists the rules that rewrote the url, in order', () => {
    const rules = [
      rule('a', '<match url="^x$"/><action type="Rewrite" url="y"/>'),
      rule('b', '<match url="^y$"/><action type="Rewrite" url="z"/>'),
      rule('c', '<match url="^q$"/><action type="Rewrite" url="r"/>'),
    ];
    const evaluation = evaluateInbound(rules, get('/x'));
    expect(evaluation.verdict).toEqual({ kind: 'passed', url: '/z' });
    expect(evaluation.rewrittenBy).toEqual(['a', 'b']);
    expect(evaluation.trace.map((step) => [step.rule, step.matched])).toEqual([
      ['a', true],
      ['b', true],
      ['c', false],
    ]);
  });

  it.each<{ name: string; verdict: RewriteVerdict; blocked: boolean }>([
    { name: 'aborted', verdict: { kind: 'aborted', rule: 'r' }, blocked: true },
    {
      name: 'custom 403',
      verdict: { kind: 'customResponse', rule: 'r', statusCode: 403, subStatusCode: 0, reason: '' },
      blocked: true,
    },
    {
      name: 'custom 400',
      verdict: { kind: 'customResponse', rule: 'r', statusCode: 400, subStatusCode: 0, reason: '' },
      blocked: true,
    },
    {
      name: 'custom 200',
      verdict: { kind: 'customResponse', rule: 'r', statusCode: 200, subStatusCode: 0, reason: '' },
      blocked: false,
    },
    {
      name: 'redirected',
      verdict: { kind: 'redirected', rule: 'r', url: '/x', statusCode: 302 },
      blocked: false,
    },
    { name: 'passed', verdict: { kind: 'passed', url: '/x' }, blocked: false },
  ])('isBlocked: $name', ({ verdict, blocked }) => {
    expect(isBlocked(verdict)).toBe(blocked);
  });
});

describe('rules the evaluator refuses', () => {
  it.each<{ name: string; xml: string; message: RegExp }>([
    { name: 'not XML', xml: '<rule name="bad"><match url=".*">', message: /not well-formed|unterminated/ },
    { name: 'a DOCTYPE', xml: '<!DOCTYPE rule [<!ENTITY x "y">]><rule name="bad"/>', message: /DOCTYPE/ },
    {
      name: 'another root element',
      xml: '<rules><rule name="bad"/></rules>',
      message: /root element is <rules>/,
    },
    { name: 'no <match>', xml: `<rule name="bad">${abort}</rule>`, message: /has no <match>/ },
    { name: 'no <action>', xml: '<rule name="bad"><match url=".*"/></rule>', message: /has no <action>/ },
    {
      name: 'an unknown attribute',
      xml: `<rule name="bad" stopProcesing="true"><match url=".*"/>${abort}</rule>`,
      message: /unknown attribute stopProcesing/,
    },
    {
      name: 'an unknown element',
      xml: `<rule name="bad"><match url=".*"/><filter/>${abort}</rule>`,
      message: /unknown element <filter>/,
    },
    {
      name: 'an invalid regular expression',
      xml: `<rule name="bad"><match url="(.*"/>${abort}</rule>`,
      message: /not a valid regular expression/,
    },
    {
      name: 'a .NET-only escape',
      xml: `<rule name="bad"><match url="\\Aowa"/>${abort}</rule>`,
      message: /\\A, which is not an ECMAScript escape/,
    },
    {
      name: 'an inline option',
      xml: `<rule name="bad"><match url="(?i)owa"/>${abort}</rule>`,
      message: /not a valid regular expression/,
    },
    {
      name: 'a bad boolean',
      xml: `<rule name="bad" stopProcessing="yes"><match url=".*"/>${abort}</rule>`,
      message: /stopProcessing="yes"> is not true or false/,
    },
    {
      name: 'an unknown action type',
      xml: '<rule name="bad"><match url=".*"/><action type="Block"/></rule>',
      message: /type="Block"> is not one of/,
    },
    {
      name: 'an unknown patternSyntax',
      xml: `<rule name="bad" patternSyntax="Regular Expressions"><match url=".*"/>${abort}</rule>`,
      message: /patternSyntax/,
    },
    {
      name: 'a rewrite map (not modelled)',
      xml: `<rule name="bad"><match url=".*"/><conditions><add input="{Blocked:{URL}}" pattern="."/></conditions>${abort}</rule>`,
      message: /"Blocked", which is not a rewrite function/,
    },
    {
      name: 'a space before the function colon',
      xml: `<rule name="bad"><match url=".*"/><conditions><add input="{UrlDecode :{URL}}" pattern="."/></conditions>${abort}</rule>`,
      message: /"UrlDecode ", which is not a rewrite function/,
    },
    {
      name: 'an unclosed brace',
      xml: `<rule name="bad"><match url=".*"/><conditions><add input="{URL" pattern="."/></conditions>${abort}</rule>`,
      message: /unclosed "\{"/,
    },
    {
      name: 'a condition without a pattern',
      xml: `<rule name="bad"><match url=".*"/><conditions><add input="{URL}"/></conditions>${abort}</rule>`,
      message: /has no pattern/,
    },
    {
      name: 'CustomResponse without statusCode',
      xml: '<rule name="bad"><match url=".*"/><action type="CustomResponse"/></rule>',
      message: /no statusCode/,
    },
    {
      name: 'an oversized rule',
      xml: `<rule name="bad"><match url="${'a'.repeat(70_000)}"/>${abort}</rule>`,
      message: /the limit is 65536/,
    },
  ])('$name', ({ xml, message }) => {
    const attempt = (): unknown => evaluateInbound([{ name: 'bad', xml }], get('/x'));
    expect(attempt).toThrow(RewriteRuleError);
    expect(attempt).toThrow(message);
    try {
      attempt();
    } catch (error) {
      expect(error).toBeInstanceOf(EmfleetError);
      expect(error).toMatchObject({ code: 'InvalidRewriteRule', context: { rule: 'bad' } });
      expect((error as Error).message).toMatch(/^rule "bad": /);
    }
  });

  it('refuses two rules of the same name, as IIS does', () => {
    const twice = [
      rule('same', `<match url=".*"/>${abort}`),
      rule('same', '<match url="x"/><action type="None"/>'),
    ];
    expect(() => evaluateInbound(twice, get('/x'))).toThrow(
      /rule "same": two rules on the site have this name/,
    );
  });

  it('refuses a request url that is not a path as sent', () => {
    expect(() => evaluateInbound([], get('autodiscover'))).toThrow(TypeError);
    expect(() => evaluateInbound([], get('/a b'))).toThrow(TypeError);
    expect(() => evaluateInbound([], { method: 'GET /', url: '/' })).toThrow(TypeError);
  });

  it('reports a cached invalid rule again on every evaluation', () => {
    const bad = { name: 'bad', xml: '<rule name="bad"><match url="("/><action type="None"/></rule>' };
    expect(() => evaluateInbound([bad], get('/a'))).toThrow(RewriteRuleError);
    expect(() => evaluateInbound([bad], get('/b'))).toThrow(RewriteRuleError);
  });
});

describe('outbound rules', () => {
  const removeServer: SiteRule = rule(
    'Remove Server header',
    '<match serverVariable="RESPONSE_Server" pattern=".+"/><action type="Rewrite" value=""/>',
  );
  const response = {
    statusCode: 200,
    headers: { Server: 'Microsoft-IIS/10.0', 'X-Powered-By': 'ASP.NET', 'Content-Type': 'text/html' },
  };

  it('blanks the Server header', () => {
    const result = evaluateOutbound([removeServer], get('/owa/'), response);
    expect(result).toEqual({
      headers: { ...response.headers, Server: '' },
      matched: ['Remove Server header'],
      statusCode: 200,
    });
  });

  it('does not match a header that is absent', () => {
    const result = evaluateOutbound([removeServer], get('/owa/'), {
      statusCode: 200,
      headers: { 'content-type': 'text/html' },
    });
    expect(result).toEqual({ headers: { 'content-type': 'text/html' }, matched: [], statusCode: 200 });
  });

  it('maps RESPONSE_X_Powered_By to X-Powered-By and rewrites with back-references', () => {
    const rewrite = rule(
      'Version',
      '<match serverVariable="RESPONSE_X_Powered_By" pattern="^(ASP)\\.NET$"/><action type="Rewrite" value="{R:1}"/>',
    );
    expect(evaluateOutbound([rewrite], get('/'), response).headers['X-Powered-By']).toBe('ASP');
  });

  it.each<{ name: string; contentType: string; matched: string[] }>([
    { name: 'holds', contentType: 'text/html; charset=utf-8', matched: ['html only'] },
    { name: 'does not hold', contentType: 'application/json', matched: [] },
  ])('a precondition that $name', ({ contentType, matched }) => {
    const preCondition: SiteRule = {
      name: 'IsHtml',
      xml: '<preCondition name="IsHtml"><add input="{RESPONSE_CONTENT_TYPE}" pattern="^text/html"/></preCondition>',
    };
    const htmlOnly = rule(
      'html only',
      '<match serverVariable="RESPONSE_Server" pattern=".+"/><action type="Rewrite" value=""/>',
      'preCondition="IsHtml"',
    );
    expect(
      evaluateOutbound([preCondition, htmlOnly], get('/'), {
        statusCode: 200,
        headers: { Server: 'IIS', 'Content-Type': contentType },
      }).matched,
    ).toEqual(matched);
  });

  it('conditions can read the response status', () => {
    const onErrors = rule(
      'errors',
      '<match serverVariable="RESPONSE_Server" pattern=".+"/><conditions><add input="{RESPONSE_STATUS}" pattern="^5"/></conditions><action type="Rewrite" value="x"/>',
    );
    expect(
      evaluateOutbound([onErrors], get('/'), { statusCode: 503, headers: { Server: 'IIS' } }).headers,
    ).toEqual({ Server: 'x' });
    expect(
      evaluateOutbound([onErrors], get('/'), { statusCode: 200, headers: { Server: 'IIS' } }).headers,
    ).toEqual({ Server: 'IIS' });
  });

  it('stopProcessing ends the outbound rules', () => {
    const first = rule(
      'first',
      '<match serverVariable="RESPONSE_Server" pattern=".+"/><action type="Rewrite" value="a"/>',
      'stopProcessing="true"',
    );
    const second = rule(
      'second',
      '<match serverVariable="RESPONSE_Server" pattern=".+"/><action type="Rewrite" value="b"/>',
    );
    expect(
      evaluateOutbound([first, second], get('/'), { statusCode: 200, headers: { Server: 'IIS' } }),
    ).toMatchObject({ headers: { Server: 'a' }, matched: ['first'] });
  });

  it.each<{ name: string; rules: SiteRule[]; message: RegExp }>([
    {
      name: 'a body rewrite (filterByTags)',
      rules: [rule('body', '<match filterByTags="A" pattern="x"/><action type="Rewrite" value="y"/>')],
      message: /rewriting the response body is not modelled/,
    },
    {
      name: 'a missing precondition',
      rules: [
        rule(
          'r',
          '<match serverVariable="RESPONSE_Server" pattern=".+"/><action type="Rewrite" value=""/>',
          'preCondition="Nope"',
        ),
      ],
      message: /preCondition "Nope" is not defined/,
    },
  ])('refuses $name', ({ rules, message }) => {
    expect(() => evaluateOutbound(rules, get('/'), response)).toThrow(message);
  });
});

describe('effectiveRules and cancellations: what each application of a site has in force', () => {
  const rule = (name: string): SiteRule => ({
    name,
    xml: `<rule name="${name}"><match url="^${name}"/><action type="AbortRequest"/></rule>`,
  });
  const config: SiteRewriteConfig = {
    inheritedRules: [rule('server')],
    rules: [rule('EEMS EM1'), rule('site')],
    applications: {
      '/owa': {},
      '/mapi': { clear: true, rules: [rule('mapi')] },
      '/ecp': { remove: ['eems em1'] },
      '/owa/calendar': { rules: [rule('calendar')] },
    },
  };

  it.each([
    { name: 'the site root', path: '/', rules: ['server', 'EEMS EM1', 'site'] },
    {
      name: 'an application without rewrite settings',
      path: '/owa/auth/logon.aspx',
      rules: ['server', 'EEMS EM1', 'site'],
    },
    {
      name: 'the longest matching application, case-insensitive',
      path: '/OWA/Calendar/x',
      rules: ['server', 'EEMS EM1', 'site', 'calendar'],
    },
    { name: 'a <clear/>: only its own rules', path: '/mapi/nspi', rules: ['mapi'] },
    { name: 'a <remove> by name, case-insensitive', path: '/ecp/default.aspx', rules: ['server', 'site'] },
    {
      name: 'a path that only starts like an application',
      path: '/ecpx',
      rules: ['server', 'EEMS EM1', 'site'],
    },
  ])('$name', ({ path, rules }) => {
    expect(effectiveRules(config, path).map((found) => found.name)).toEqual(rules);
  });

  it('names every application that cancels a rule of the site, and why', () => {
    expect(cancellations(config, 'EEMS EM1')).toEqual([
      '/mapi: its web.config clears the inherited rules (<clear/>)',
      '/ecp: its web.config removes the rule (<remove name="EEMS EM1"/>)',
    ]);
    expect(cancellations({ rules: [rule('a')] }, 'a')).toEqual([]);
  });
});
