import { describe, it, expect } from 'vitest';
import type { EocsPackage, MitigationAction } from '../../lib/package/model.js';
import { parseEocs } from '../../lib/package/parse.js';
import { PackageRejectedError, type RejectionReason } from '../../lib/package/reasons.js';
import { parseXml } from '../../lib/package/xml.js';
import { catalogueXml, ping1Xml } from '../helpers/packages.js';

function parse(xml: string): EocsPackage {
  return parseEocs(parseXml(xml));
}

/** Runs `action`, which must reject; returns the rejection. */
function rejection(action: () => unknown): PackageRejectedError {
  try {
    action();
  } catch (error) {
    if (error instanceof PackageRejectedError) return error;
    throw new Error(`expected a PackageRejectedError, got ${String(error)}`, { cause: error });
  }
  throw new Error('expected a PackageRejectedError, but the package was accepted');
}

/** One Config around `inner` (Applicability and ActionList), in an otherwise valid document. */
function oneConfig(inner: string, { id = 'EM9', rootAttributes = '' } = {}): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4"${rootAttributes}>
  <Config id="${id}" desc="test">${inner}</Config>
</EOCS>`;
}

function oneAction(action: string): string {
  return oneConfig(`<ActionList>${action}</ActionList>`);
}

/** String replace that fails loudly when the text to replace is not there (so a case cannot silently test nothing). */
function edit(text: string, from: string, to: string): string {
  if (!text.includes(from)) throw new Error(`test data: "${from}" not found`);
  return text.replace(from, to);
}

function onlyAction(model: EocsPackage): MitigationAction {
  expect(model.mitigations).toHaveLength(1);
  expect(model.mitigations[0]!.actions).toHaveLength(1);
  return model.mitigations[0]!.actions[0]!;
}

describe('parseEocs: the public PING1 sample', () => {
  it('gives the exact model', () => {
    const model = parse(ping1Xml);
    expect(model).toEqual({
      version: '1.0.4',
      mitigations: [
        {
          id: 'PING1',
          description: 'Ping mitigation to validate the EM service is working.',
          applicability: [],
          actions: [{ kind: 'DoNothing', scope: 'Server', description: 'Does nothing', value: 'DoNothing' }],
        },
      ],
      unknown: [],
    });
    // Not stamped: the keys are absent, not undefined.
    expect('signingTime' in model).toBe(false);
    expect('sequence' in model).toBe(false);
  });

  it('reads the sequence; a signingTime attribute is not the signing time (the time stamp is): listed as unknown', () => {
    const model = parse(
      edit(
        ping1Xml,
        '<EOCS version="1.0.4">',
        '<EOCS version="1.0.4" signingTime="2026-11-02T12:00:00Z" sequence="12">',
      ),
    );
    expect('signingTime' in model).toBe(false);
    expect(model.sequence).toBe(12);
    expect(model.unknown).toEqual(['EOCS@signingTime']);
  });
});

describe('parseEocs: the catalogue', () => {
  it('has one mitigation of every action kind with its ranges', () => {
    const model = parse(catalogueXml);
    expect(model.version).toBe('1.0.4');
    expect(model.unknown).toEqual([]);
    expect(model.mitigations.map((mitigation) => mitigation.id)).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect(model.mitigations.map((mitigation) => mitigation.actions.map((action) => action.kind))).toEqual([
      ['DoNothing'],
      ['IisUrlRewrite'],
      ['DisableAppPool'],
      ['DisableService'],
    ]);
    const [ping1, em1, em2, em3] = model.mitigations;
    expect(ping1).toEqual({
      id: 'PING1',
      description: 'Ping',
      applicability: [],
      actions: [{ kind: 'DoNothing', scope: 'Server', description: 'Does nothing', value: 'DoNothing' }],
    });
    expect(em1).toEqual({
      id: 'EM1',
      description: 'Block autodiscover SSRF',
      applicability: [
        { min: [15, 1, 0, 0], max: [15, 1, 2507, 15] },
        { min: [15, 2, 0, 0], max: [15, 2, 1118, 19] },
      ],
      actions: [
        {
          kind: 'IisUrlRewrite',
          scope: 'Server',
          description: 'URL rewrite',
          site: 'Default Web Site',
          ruleName: 'EEMS EM1 - Autodiscover Rule',
          ruleXml:
            '<rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true"><match url=".*autodiscover\\.json.*"/><conditions logicalGrouping="MatchAny"><add input="{UrlDecode:{REQUEST_URI}}" pattern=".*autodiscover\\.json.*Powershell.*"/></conditions><action type="AbortRequest"/></rule>',
          probes: [
            {
              method: 'GET',
              path: '/autodiscover/autodiscover.json?@evil.com/owa/&Email=autodiscover/autodiscover.json%3F@evil.com&Protocol=XYZ&FooProtocol=Powershell',
              headers: [],
              expect: 'blocked',
            },
            {
              method: 'GET',
              path: '/autodiscover/autodiscover.json?@evil.com/%50owershell',
              headers: [],
              expect: 'blocked',
            },
            {
              method: 'GET',
              path: '/autodiscover/autodiscover.json?Email=user%40contoso.com&Protocol=ActiveSync',
              headers: [],
              expect: 'passed',
            },
            {
              method: 'GET',
              path: '/owa/',
              headers: [{ name: 'User-Agent', value: 'emfleet-probe' }],
              cookie: 'X-OWA-CANARY=probe',
              expect: 'passed',
            },
          ],
        },
      ],
    });
    expect(em2).toEqual({
      id: 'EM2',
      description: 'Disable OWA app pool',
      applicability: [{ min: [15, 2, 0, 0], max: [15, 2, 1544, 4] }],
      actions: [
        {
          kind: 'DisableAppPool',
          scope: 'Server',
          description: 'Stop OWA',
          appPool: 'MSExchangeOWAAppPool',
          expectedDown: ['/owa/healthcheck.htm'],
        },
      ],
    });
    expect(em3).toEqual({
      id: 'EM3',
      description: 'Disable UM service',
      applicability: [],
      actions: [{ kind: 'DisableService', scope: 'Server', description: 'Stop UM', service: 'MSExchangeUM' }],
    });
  });

  it('defaults the IIS site to "Default Web Site" when the Value has no site attribute', () => {
    const model = parse(edit(catalogueXml, '<Value site="Default Web Site">', '<Value>'));
    const action = model.mitigations.find((mitigation) => mitigation.id === 'EM1')!.actions[0]!;
    expect(action.kind).toBe('IisUrlRewrite');
    expect(action).toMatchObject({ site: 'Default Web Site', ruleName: 'EEMS EM1 - Autodiscover Rule' });
  });

  it('keeps an explicit IIS site', () => {
    const model = parse(
      edit(catalogueXml, '<Value site="Default Web Site">', '<Value site="Exchange Back End">'),
    );
    const action = model.mitigations.find((mitigation) => mitigation.id === 'EM1')!.actions[0]!;
    expect(action).toMatchObject({ kind: 'IisUrlRewrite', site: 'Exchange Back End' });
  });

  it('trims whitespace around app-pool and service names', () => {
    const model = parse(
      edit(
        edit(
          catalogueXml,
          '<Value>MSExchangeOWAAppPool</Value>',
          '<Value>\n  MSExchangeOWAAppPool\n</Value>',
        ),
        '<Value>MSExchangeUM</Value>',
        '<Value> MSExchangeUM </Value>',
      ),
    );
    expect(model.mitigations[2]!.actions[0]).toMatchObject({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
    });
    expect(model.mitigations[3]!.actions[0]).toMatchObject({
      kind: 'DisableService',
      service: 'MSExchangeUM',
    });
  });
});

describe('parseEocs: unknown content is kept and reported, never a crash', () => {
  it('an unknown action type becomes Unsupported and stays in the list', () => {
    const model = parse(
      oneConfig(
        '<ActionList>' +
          '<Action type="RunScript" scope="Server" desc="Run a script"><Value>Invoke-Evil.ps1</Value></Action>' +
          '<Action type="DisableService" scope="Server" desc="Stop UM"><Value>MSExchangeUM</Value></Action>' +
          '</ActionList>',
      ),
    );
    expect(model.mitigations[0]!.actions).toEqual([
      {
        kind: 'Unsupported',
        type: 'RunScript',
        scope: 'Server',
        description: 'Run a script',
        why: 'unknown action type "RunScript"',
      },
      { kind: 'DisableService', scope: 'Server', description: 'Stop UM', service: 'MSExchangeUM' },
    ]);
  });

  it('an action without a type is Unsupported', () => {
    const action = onlyAction(parse(oneAction('<Action scope="Server" desc="x"><Value>x</Value></Action>')));
    expect(action).toMatchObject({ kind: 'Unsupported', type: '' });
  });

  it('an action type is case-sensitive', () => {
    const action = onlyAction(
      parse(
        oneAction(
          '<Action type="disableservice" scope="Server" desc="x"><Value>MSExchangeUM</Value></Action>',
        ),
      ),
    );
    expect(action).toMatchObject({ kind: 'Unsupported', type: 'disableservice' });
  });

  it('an unknown action type needs no well-formed Value (it is never applied)', () => {
    const action = onlyAction(
      parse(
        oneAction(
          '<Action type="FutureThing" scope="Server" desc="x"><Setting a="1"/><Setting a="2"/></Action>',
        ),
      ),
    );
    expect(action).toMatchObject({ kind: 'Unsupported', type: 'FutureThing' });
  });

  it('a known action type with an unknown attribute becomes Unsupported', () => {
    const action = onlyAction(
      parse(
        oneAction(
          '<Action type="DisableService" scope="Server" desc="Stop UM" onlyIf="Mailbox"><Value>MSExchangeUM</Value></Action>',
        ),
      ),
    );
    expect(action).toEqual({
      kind: 'Unsupported',
      type: 'DisableService',
      scope: 'Server',
      description: 'Stop UM',
      why: 'unknown attributes onlyIf',
    });
  });

  it('an IisUrlRewrite Value with an unknown attribute becomes Unsupported', () => {
    const action = onlyAction(
      parse(
        oneAction(
          '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value site="Default Web Site" section="system.webServer/rewrite/outboundRules"><rule name="R"/></Value></Action>',
        ),
      ),
    );
    expect(action).toMatchObject({ kind: 'Unsupported', type: 'IisUrlRewrite' });
    expect(action.kind === 'Unsupported' && action.why).toContain('section');
  });

  it('lists unknown attributes and elements by path', () => {
    const model = parse(`<EOCS version="1.0.4" channel="beta">
      <Config id="EM9" desc="d" severity="high">
        <Applicability><Range min="15.2.0.0" max="15.2.1544.4" arch="x64"/><Note>about builds</Note></Applicability>
        <ActionList><Comment>why</Comment><Action type="DoNothing" scope="Server" desc="x"><Value>v</Value></Action></ActionList>
        <Owner>secops</Owner>
      </Config>
      <Metadata/>
    </EOCS>`);
    expect(model.unknown).toEqual([
      'EOCS@channel',
      'Config[id=EM9]@severity',
      'Config[id=EM9]/Applicability/Range[1]@arch',
      'Config[id=EM9]/Applicability/Note',
      'Config[id=EM9]/ActionList/Comment[1]',
      'Config[id=EM9]/Owner',
      'EOCS/Metadata',
    ]);
    // The known parts are still read.
    expect(model.mitigations[0]!.applicability).toEqual([{ min: [15, 2, 0, 0], max: [15, 2, 1544, 4] }]);
    expect(onlyAction(model)).toMatchObject({ kind: 'DoNothing', value: 'v' });
  });

  it('a Signature in another namespace is not the signature: it is unknown content', () => {
    const model = parse(edit(ping1Xml, '</EOCS>', '<Signature/></EOCS>'));
    expect(model.unknown).toEqual(['EOCS/Signature']);
  });

  it('a Config in a namespace is not a Config: it is unknown content', () => {
    const model = parse(
      edit(ping1Xml, '</EOCS>', '<x:Config xmlns:x="urn:evil" id="EVIL"><ActionList/></x:Config></EOCS>'),
    );
    expect(model.mitigations.map((mitigation) => mitigation.id)).toEqual(['PING1']);
    expect(model.unknown).toEqual(['EOCS/x:Config']);
  });

  // docs/package-format.md, "Unknown content": "Unknown elements and attributes elsewhere are listed in the
  // model's `unknown`". An element or attribute next to a known action's Value can change what the action
  // means (a condition, a target), so it must never disappear silently while the action is applied.
  it.each([
    {
      name: 'an element beside the Value of a known action',
      action:
        '<Action type="DisableService" scope="Server" desc="x"><Value>MSExchangeUM</Value><Condition role="Edge"/></Action>',
      mentions: 'Condition',
    },
    {
      name: 'an attribute on the Value of DisableService',
      action:
        '<Action type="DisableService" scope="Server" desc="x"><Value computer="EX01">MSExchangeUM</Value></Action>',
      mentions: 'computer',
    },
    {
      name: 'an attribute on the Value of DisableAppPool',
      action:
        '<Action type="DisableAppPool" scope="Server" desc="x"><Value recycleOnly="true">MSExchangeOWAAppPool</Value></Action>',
      mentions: 'recycleOnly',
    },
    {
      name: 'an element inside the Value of DoNothing',
      action: '<Action type="DoNothing" scope="Server" desc="x"><Value>Do<Extra/>Nothing</Value></Action>',
      mentions: 'Extra',
    },
  ])('reports $name (unless the action becomes Unsupported)', ({ action, mentions }) => {
    const model = parse(oneAction(action));
    const parsed = onlyAction(model);
    const reported = parsed.kind === 'Unsupported' || model.unknown.some((path) => path.includes(mentions));
    expect(reported, `unknown: ${JSON.stringify(model.unknown)}, action: ${JSON.stringify(parsed)}`).toBe(
      true,
    );
  });

  it.each([
    {
      name: 'an attribute on Applicability',
      inner:
        '<Applicability source="msrc"><Range min="15.2.0.0" max="15.2.1.0"/></Applicability><ActionList/>',
      mentions: 'source',
    },
    { name: 'an attribute on ActionList', inner: '<ActionList mode="any"/>', mentions: 'mode' },
  ])('reports $name', ({ inner, mentions }) => {
    const model = parse(oneConfig(inner));
    expect(
      model.unknown.some((path) => path.includes(mentions)),
      `unknown: ${JSON.stringify(model.unknown)}`,
    ).toBe(true);
  });
});

describe('parseEocs: Malformed, with the path in the detail', () => {
  const duplicate = edit(catalogueXml, '<Config id="EM3"', '<Config id="PING1"');

  it.each<{ name: string; xml: string; detail: readonly string[]; reason?: RejectionReason }>([
    { name: 'duplicate mitigation id', xml: duplicate, detail: ['PING1', 'more than once'] },
    {
      name: 'id with a space',
      xml: oneConfig('<ActionList/>', { id: 'EM 1' }),
      detail: ['Config@id', '"EM 1"'],
    },
    {
      name: 'id with a path separator',
      xml: oneConfig('<ActionList/>', { id: '../EM1' }),
      detail: ['Config@id', '"../EM1"'],
    },
    { name: 'empty id', xml: oneConfig('<ActionList/>', { id: '' }), detail: ['Config@id', '""'] },
    {
      name: 'id longer than 64',
      xml: oneConfig('<ActionList/>', { id: `EM${'1'.repeat(63)}` }),
      detail: ['Config@id'],
    },
    { name: 'missing id', xml: edit(ping1Xml, 'id="PING1" ', ''), detail: ['Config@id'] },
    {
      name: 'bad build in min',
      xml: edit(catalogueXml, 'min="15.2.0.0" max="15.2.1544.4"', 'min="15.2.CU14" max="15.2.1544.4"'),
      detail: ['Config[id=EM2]/Applicability/Range[1]@min', '15.2.CU14'],
    },
    {
      name: 'bad build in the max of a second range',
      xml: edit(catalogueXml, 'max="15.2.1118.19"', 'max="latest"'),
      detail: ['Config[id=EM1]/Applicability/Range[2]@max', 'latest'],
    },
    {
      name: 'missing max',
      xml: edit(catalogueXml, ' max="15.2.1544.4"', ''),
      detail: ['Config[id=EM2]/Applicability/Range[1]@max'],
    },
    {
      name: 'min above max',
      xml: edit(catalogueXml, 'min="15.2.0.0" max="15.2.1544.4"', 'min="15.2.1544.5" max="15.2.1544.4"'),
      detail: ['Config[id=EM2]/Applicability/Range[1]', '15.2.1544.5', '15.2.1544.4'],
    },
    {
      name: 'min above max only numerically (10000 > 2507)',
      xml: edit(catalogueXml, 'min="15.1.0.0" max="15.1.2507.15"', 'min="15.1.10000.0" max="15.1.2507.15"'),
      detail: ['Config[id=EM1]/Applicability/Range[1]', 'above'],
    },
    {
      name: 'Applicability without a Range',
      xml: oneConfig('<Applicability/><ActionList/>'),
      detail: ['Config[id=EM9]/Applicability'],
    },
    {
      name: 'two Applicability elements',
      xml: oneConfig(
        '<Applicability><Range min="15.2.0.0" max="15.2.1.0"/></Applicability><Applicability><Range min="15.1.0.0" max="15.1.1.0"/></Applicability><ActionList/>',
      ),
      detail: ['Config[id=EM9]', 'Applicability'],
    },
    { name: 'no ActionList', xml: oneConfig(''), detail: ['Config[id=EM9]', 'ActionList', 'found 0'] },
    {
      name: 'two ActionLists',
      xml: oneConfig('<ActionList/><ActionList/>'),
      detail: ['Config[id=EM9]', 'ActionList', 'found 2'],
    },
    {
      name: 'empty app-pool name',
      xml: edit(catalogueXml, '<Value>MSExchangeOWAAppPool</Value>', '<Value></Value>'),
      detail: ['Config[id=EM2]/ActionList/Action[1]/Value', 'app pool'],
    },
    {
      name: 'blank app-pool name',
      xml: edit(catalogueXml, '<Value>MSExchangeOWAAppPool</Value>', '<Value>   </Value>'),
      detail: ['Config[id=EM2]/ActionList/Action[1]/Value', 'app pool'],
    },
    {
      name: 'app-pool name with a quote',
      xml: edit(catalogueXml, '<Value>MSExchangeOWAAppPool</Value>', '<Value>MSExchange"OWAAppPool</Value>'),
      detail: ['Config[id=EM2]/ActionList/Action[1]/Value'],
    },
    {
      name: 'service name with a control character',
      xml: edit(catalogueXml, '<Value>MSExchangeUM</Value>', '<Value>MSExchange&#x7F;UM</Value>'),
      detail: ['Config[id=EM3]/ActionList/Action[1]/Value', 'service'],
    },
    {
      name: 'service name with markup inside',
      xml: edit(catalogueXml, '<Value>MSExchangeUM</Value>', '<Value>MSExchange<b/>UM</Value>'),
      detail: ['Config[id=EM3]/ActionList/Action[1]/Value', 'service'],
    },
    {
      name: 'service name longer than 256',
      xml: edit(catalogueXml, '<Value>MSExchangeUM</Value>', `<Value>${'S'.repeat(257)}</Value>`),
      detail: ['Config[id=EM3]/ActionList/Action[1]/Value'],
    },
    {
      name: 'known action without a Value',
      xml: edit(catalogueXml, '<Value>MSExchangeUM</Value>', ''),
      detail: ['Config[id=EM3]/ActionList/Action[1]', 'Value', 'found 0'],
    },
    {
      name: 'known action with two Values',
      xml: edit(
        catalogueXml,
        '<Value>MSExchangeUM</Value>',
        '<Value>MSExchangeUM</Value><Value>W3SVC</Value>',
      ),
      detail: ['Config[id=EM3]/ActionList/Action[1]', 'Value', 'found 2'],
    },
    {
      name: 'IisUrlRewrite Value without a rule',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value site="Default Web Site"></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value', '<rule>'],
    },
    {
      name: 'IisUrlRewrite Value with two rules',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value><rule name="A"/><rule name="B"/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value', '<rule>'],
    },
    {
      name: 'IisUrlRewrite Value with another element than rule',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value><outboundRule name="A"/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value', '<rule>'],
    },
    {
      name: 'IisUrlRewrite Value with a rule and another element',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value><rule name="A"/><extra/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value', '<rule>'],
    },
    {
      name: 'IisUrlRewrite rule in a namespace',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value><r:rule xmlns:r="urn:x" name="A"/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value', '<rule>'],
    },
    {
      name: 'IisUrlRewrite rule without a name',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value><rule stopProcessing="true"/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value/rule', 'name'],
    },
    {
      name: 'IisUrlRewrite empty site',
      xml: oneAction(
        '<Action type="IisUrlRewrite" scope="Server" desc="x"><Value site=" "><rule name="A"/></Value></Action>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Value@site'],
    },
    {
      name: 'negative sequence',
      xml: oneConfig('<ActionList/>', { rootAttributes: ' sequence="-1"' }),
      detail: ['EOCS@sequence', '-1'],
    },
    {
      name: 'fractional sequence',
      xml: oneConfig('<ActionList/>', { rootAttributes: ' sequence="1.5"' }),
      detail: ['EOCS@sequence'],
    },
    {
      name: 'sequence in hex',
      xml: oneConfig('<ActionList/>', { rootAttributes: ' sequence="0x10"' }),
      detail: ['EOCS@sequence'],
    },
    {
      name: 'empty sequence',
      xml: oneConfig('<ActionList/>', { rootAttributes: ' sequence=""' }),
      detail: ['EOCS@sequence'],
    },
    {
      name: 'sequence beyond a safe integer',
      xml: oneConfig('<ActionList/>', { rootAttributes: ' sequence="12345678901234567890"' }),
      detail: ['EOCS@sequence'],
    },
    { name: 'root that is not EOCS', xml: '<Package version="1.0.4"/>', detail: ['EOCS', 'Package'] },
    { name: 'EOCS root in a namespace', xml: '<EOCS xmlns="urn:x" version="1.0.4"/>', detail: ['EOCS'] },
  ])('$name', ({ xml, detail, reason = 'Malformed' }) => {
    const error = rejection(() => parse(xml));
    expect(error.reason).toBe(reason);
    for (const part of detail) expect(error.detail).toContain(part);
    expect(error.message).toBe(`${reason}: ${error.detail}`);
  });
});

describe('parseEocs: <Probe> and <ExpectedDown>', () => {
  const rewriteWith = (
    children: string,
    type = 'IisUrlRewrite',
    value = '<Value><rule name="R"><match url="x"/><action type="AbortRequest"/></rule></Value>',
  ): string => oneAction(`<Action type="${type}" scope="Server" desc="x">${value}${children}</Action>`);

  it('reads probes with their defaults, headers and cookie, in order', () => {
    const action = onlyAction(
      parse(
        rewriteWith(
          '<Probe path="/ecp/x.js?a=1&amp;b=%2F" expect="blocked"/>' +
            '<Probe method="POST" path="/owa/" expect="passed" cookie="a=b; c=d"><Header name="X-Test" value="1"/><Header name="User-Agent" value="probe&#9;v1"/></Probe>',
        ),
      ),
    );
    expect(action).toMatchObject({
      kind: 'IisUrlRewrite',
      probes: [
        { method: 'GET', path: '/ecp/x.js?a=1&b=%2F', headers: [], expect: 'blocked' },
        {
          method: 'POST',
          path: '/owa/',
          headers: [
            { name: 'X-Test', value: '1' },
            { name: 'User-Agent', value: 'probe\tv1' },
          ],
          cookie: 'a=b; c=d',
          expect: 'passed',
        },
      ],
    });
    expect(action).not.toHaveProperty('expectedDown');
  });

  it('a rewrite without probes has no probes property (the agent falls back to its built-in set)', () => {
    expect(onlyAction(parse(rewriteWith('')))).not.toHaveProperty('probes');
  });

  it.each([
    [
      'DisableAppPool',
      '<Value>MSExchangeOWAAppPool</Value>',
      { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool' },
    ],
    ['DisableService', '<Value>MSExchangeUM</Value>', { kind: 'DisableService', service: 'MSExchangeUM' }],
    ['IisUrlRewrite', '<Value><rule name="R"/></Value>', { kind: 'IisUrlRewrite', ruleName: 'R' }],
  ])('%s declares endpoints it takes down', (type, value, shape) => {
    const action = onlyAction(
      parse(
        rewriteWith(
          '<ExpectedDown endpoint="/owa/healthcheck.htm"/><ExpectedDown endpoint="/ecp/healthcheck.htm"/>',
          type,
          value,
        ),
      ),
    );
    expect(action).toMatchObject({
      ...shape,
      expectedDown: ['/owa/healthcheck.htm', '/ecp/healthcheck.htm'],
    });
  });

  it('probes and expected-down endpoints are known elements, not unknown content', () => {
    const model = parse(
      rewriteWith('<Probe path="/a" expect="passed"/><ExpectedDown endpoint="/owa/healthcheck.htm"/>'),
    );
    expect(model.unknown).toEqual([]);
  });

  it.each([
    {
      name: 'a probe on a DisableAppPool action',
      xml: rewriteWith(
        '<Probe path="/owa/" expect="passed"/>',
        'DisableAppPool',
        '<Value>MSExchangeOWAAppPool</Value>',
      ),
      detail: ['Config[id=EM9]/ActionList/Action[1]/Probe[1]', 'only for IisUrlRewrite', 'DisableAppPool'],
    },
    {
      name: 'a probe without a path',
      xml: rewriteWith('<Probe expect="blocked"/>'),
      detail: ['Action[1]/Probe[1]', 'no path'],
    },
    {
      name: 'a probe without expect',
      xml: rewriteWith('<Probe path="/a"/>'),
      detail: ['Probe[1]@expect', 'blocked or passed'],
    },
    {
      name: 'a probe expecting something else',
      xml: rewriteWith('<Probe path="/a" expect="Blocked"/>'),
      detail: ['Probe[1]@expect', '"Blocked"'],
    },
    {
      name: 'a relative path',
      xml: rewriteWith('<Probe path="owa/" expect="passed"/>'),
      detail: ['Probe[1]@path', '"owa/"'],
    },
    {
      name: 'a path naming another host',
      xml: rewriteWith('<Probe path="//evil.example/owa/" expect="passed"/>'),
      detail: ['Probe[1]@path'],
    },
    {
      name: 'an absolute URL',
      xml: rewriteWith('<Probe path="https://evil.example/" expect="passed"/>'),
      detail: ['Probe[1]@path'],
    },
    {
      name: 'a path with a space',
      xml: rewriteWith('<Probe path="/owa/ x" expect="passed"/>'),
      detail: ['Probe[1]@path'],
    },
    {
      name: 'a path with a line break',
      xml: rewriteWith('<Probe path="/owa/&#10;Host: evil" expect="passed"/>'),
      detail: ['Probe[1]@path'],
    },
    {
      name: 'a path too long',
      xml: rewriteWith(`<Probe path="/${'a'.repeat(2048)}" expect="passed"/>`),
      detail: ['Probe[1]@path', '2048'],
    },
    {
      name: 'a lower-case method',
      xml: rewriteWith('<Probe method="get" path="/a" expect="passed"/>'),
      detail: ['Probe[1]@method', '"get"'],
    },
    {
      name: 'a method with a space',
      xml: rewriteWith('<Probe method="GET /x" path="/a" expect="passed"/>'),
      detail: ['Probe[1]@method'],
    },
    {
      name: 'an unknown attribute on a probe',
      xml: rewriteWith('<Probe path="/a" expect="passed" host="evil"/>'),
      detail: ['Probe[1]', 'unknown attributes host'],
    },
    {
      name: 'a cookie with a line break',
      xml: rewriteWith('<Probe path="/a" expect="passed" cookie="a=b&#13;&#10;X-Evil: 1"/>'),
      detail: ['Probe[1]@cookie'],
    },
    {
      name: 'a header with a bad name',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Header name="X Bad" value="1"/></Probe>'),
      detail: ['Probe[1]/Header[1]@name', '"X Bad"'],
    },
    {
      name: 'a header value with a line break',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Header name="X" value="1&#10;Y: 2"/></Probe>'),
      detail: ['Probe[1]/Header[1]@value'],
    },
    {
      name: 'a Cookie header',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Header name="Cookie" value="a=b"/></Probe>'),
      detail: ['Probe[1]/Header[1]@name', 'cookie attribute'],
    },
    {
      name: 'a Content-Length header',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Header name="Content-Length" value="5"/></Probe>'),
      detail: ['Probe[1]/Header[1]@name', 'may not be set'],
    },
    {
      name: 'another element in a probe',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Body>x</Body></Probe>'),
      detail: ['Probe[1]', '<Body>'],
    },
    {
      name: 'text in a probe',
      xml: rewriteWith('<Probe path="/a" expect="passed">GET /</Probe>'),
      detail: ['Probe[1]', 'not text'],
    },
    {
      name: 'a header with content',
      xml: rewriteWith('<Probe path="/a" expect="passed"><Header name="X" value="1">2</Header></Probe>'),
      detail: ['Probe[1]/Header[1]', 'empty'],
    },
    {
      name: 'too many probes',
      xml: rewriteWith('<Probe path="/a" expect="passed"/>'.repeat(21)),
      detail: ['Action[1]', '21 <Probe>', 'at most 20'],
    },
    {
      name: 'too many headers',
      xml: rewriteWith(
        `<Probe path="/a" expect="passed">${'<Header name="X" value="1"/>'.repeat(21)}</Probe>`,
      ),
      detail: ['Probe[1]', '21 headers'],
    },
    {
      name: 'the second probe is wrong',
      xml: rewriteWith('<Probe path="/a" expect="passed"/><Probe path="/b" expect="maybe"/>'),
      detail: ['Probe[2]@expect'],
    },
    {
      name: 'an expected-down endpoint that is not a path',
      xml: rewriteWith('<ExpectedDown endpoint="owa"/>'),
      detail: ['Action[1]/ExpectedDown[1]@endpoint', '"owa"'],
    },
    {
      name: 'an expected-down endpoint with a query',
      xml: rewriteWith('<ExpectedDown endpoint="/owa/healthcheck.htm?x"/>'),
      detail: ['ExpectedDown[1]@endpoint'],
    },
    {
      name: 'an expected-down endpoint missing',
      xml: rewriteWith('<ExpectedDown/>'),
      detail: ['ExpectedDown[1]@endpoint'],
    },
    {
      name: 'an unknown attribute on ExpectedDown',
      xml: rewriteWith('<ExpectedDown endpoint="/owa/healthcheck.htm" for="PT1H"/>'),
      detail: ['ExpectedDown[1]', 'unknown attributes for'],
    },
    {
      name: 'content in ExpectedDown',
      xml: rewriteWith('<ExpectedDown endpoint="/owa/healthcheck.htm">owa</ExpectedDown>'),
      detail: ['ExpectedDown[1]', 'empty'],
    },
  ])('Malformed: $name', ({ xml, detail }) => {
    const error = rejection(() => parse(xml));
    expect(error.reason).toBe('Malformed');
    for (const part of detail) expect(error.detail).toContain(part);
  });

  it('a probe in a namespace is not a probe: the action becomes Unsupported', () => {
    const action = onlyAction(parse(rewriteWith('<p:Probe xmlns:p="urn:x" path="/a" expect="passed"/>')));
    expect(action).toMatchObject({ kind: 'Unsupported', type: 'IisUrlRewrite' });
  });
});

describe('parseXml: strict parsing before the model', () => {
  it.each([
    { name: 'not XML at all', text: 'DoNothing' },
    { name: 'empty', text: '' },
    { name: 'unclosed element', text: '<EOCS version="1.0.4"><Config id="A">' },
    { name: 'mismatched end tag', text: '<EOCS><Config></EOCS></Config>' },
    { name: 'two roots', text: '<EOCS/><EOCS/>' },
    { name: 'entity reference without a semicolon', text: '<EOCS desc="a &amp b"/>' },
    { name: 'undefined entity', text: '<EOCS desc="&evil;"/>' },
    { name: 'duplicate attribute', text: '<EOCS version="1" version="2"/>' },
    { name: 'DOCTYPE', text: '<!DOCTYPE EOCS><EOCS/>' },
    { name: 'unterminated comment', text: '<EOCS/><!-- ' },
  ])('$name → Malformed', ({ text }) => {
    expect(rejection(() => parseXml(text)).reason).toBe('Malformed');
  });

  // docs/package-format.md: "well-formed XML (any parser warning rejects) → Malformed". These are not
  // well-formed XML 1.0 (libxml2, and so xmlsec1, refuses each), but xmldom accepts them without a warning.
  it.each([
    { name: 'bare ampersand in an attribute', text: '<EOCS version="1.0.4" desc="a & b"/>' },
    { name: 'bare ampersand in text', text: '<EOCS version="1.0.4">a & b</EOCS>' },
    { name: 'character reference to NUL', text: '<EOCS version="1.0.4" desc="a&#0;b"/>' },
    { name: 'raw control character U+0001', text: '<EOCS version="1.0.4" desc="a\u0001b"/>' },
    {
      name: 'bare ampersand after a comment that holds one',
      text: '<EOCS version="1.0.4"><!-- a & b -->c & d</EOCS>',
    },
    {
      name: 'bare ampersand after a CDATA section that holds one',
      text: '<EOCS version="1.0.4"><![CDATA[a & b]]><a x="&amp;"/>c & d</EOCS>',
    },
    {
      name: 'bare ampersand far after the last reference',
      text: `<EOCS version="1.0.4" desc="&amp;">${'<a x="1">t</a>'.repeat(2000)}<a x="a & b"/></EOCS>`,
    },
  ])('$name → Malformed', ({ text }) => {
    expect(rejection(() => parseXml(text)).reason).toBe('Malformed');
  });

  it('ampersands in comments, CDATA and processing instructions are not references; those in text and attributes are checked wherever they are', () => {
    const text = `<EOCS version="1.0.4"><!-- a & b --><?pi a & b?><![CDATA[a & b]]>${'<a x="1">t</a>'.repeat(2000)}<a x="&lt;&#x41;">&gt;&#65;</a></EOCS>`;
    const document = parseXml(text);
    expect(document.getElementsByTagName('a')).toHaveLength(2001);
    expect(document.getElementsByTagName('a').item(2000)!.getAttribute('x')).toBe('<A');
    const offset = text.lastIndexOf('</a>');
    expect(rejection(() => parseXml(`${text.slice(0, offset)}&${text.slice(offset)}`)).detail).toContain(
      `bare "&" at offset ${offset}`,
    );
  });
});
