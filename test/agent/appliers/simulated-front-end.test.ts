import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApplicableAction } from '../../../lib/agent/applier.js';
import { SimulatedApplier } from '../../../lib/agent/appliers/simulated.js';
import { defaultHealthEndpoints, Prober } from '../../../lib/agent/probes.js';
import {
  frontEndProtocols,
  owaPoolTakesDownEcp,
  startSimulatedExchange,
  type SimulatedExchange,
} from '../../../lib/agent/appliers/simulated-front-end.js';
import { parseEocs } from '../../../lib/package/parse.js';
import { parseXml } from '../../../lib/package/xml.js';
import { catalogueXml } from '../../helpers/packages.js';

/** The simulated front end, probed with the agent's own prober over real HTTP. */
let exchange: SimulatedExchange;
let directory: string;
let serial = 0;

beforeAll(async () => {
  exchange = await startSimulatedExchange();
  directory = await mkdtemp(join(tmpdir(), 'emfleet-exchange-'));
});

afterAll(async () => {
  await exchange.stop();
  await rm(directory, { recursive: true, force: true });
});

/** A fresh simulated server behind the front end, its applier, and a prober pointed at it. */
function server(options: { couplings?: typeof owaPoolTakesDownEcp } = {}): {
  applier: SimulatedApplier;
  prober: Prober;
  stateFile: string;
} {
  const name = `ex${++serial}`;
  const stateFile = join(directory, `${name}.json`);
  const baseUrl = exchange.add({ name, stateFile, server: `${name}.contoso.com`, ...options });
  return {
    applier: new SimulatedApplier(stateFile),
    prober: new Prober({ baseUrl, ownNames: [`${name}.contoso.com`], timeoutInMs: 3000 }),
    stateFile,
  };
}

const catalogue = parseEocs(parseXml(catalogueXml));
const em1 = catalogue.mitigations.find((mitigation) => mitigation.id === 'EM1')!.actions[0] as Extract<
  ApplicableAction,
  { kind: 'IisUrlRewrite' }
>;
const pool = (appPool: string): ApplicableAction => ({
  kind: 'DisableAppPool',
  scope: 'Server',
  description: '',
  appPool,
});
const service = (name: string): ApplicableAction => ({
  kind: 'DisableService',
  scope: 'Server',
  description: '',
  service: name,
});
const rule = (ruleName: string, xml: string): ApplicableAction => ({
  kind: 'IisUrlRewrite',
  scope: 'Server',
  description: '',
  site: 'Default Web Site',
  ruleName,
  ruleXml: xml,
});

const unhealthy = async (prober: Prober): Promise<Record<string, string>> =>
  Object.fromEntries(
    (await prober.health())
      .filter((endpoint) => !endpoint.healthy)
      .map((endpoint) => [endpoint.endpoint, endpoint.detail]),
  );

describe('health endpoints follow the app pools and services behind them', () => {
  it('a fresh server (no state file yet) answers 200 on all nine endpoints, and reading it writes nothing', async () => {
    const { prober, stateFile } = server();
    const health = await prober.health();
    expect(health.map((endpoint) => [endpoint.endpoint, endpoint.detail])).toEqual(
      defaultHealthEndpoints.map((endpoint) => [endpoint, '200']),
    );
    await expect(import('node:fs/promises').then((fs) => fs.access(stateFile))).rejects.toThrow();
  });

  it.each(
    frontEndProtocols.map((protocol) => [protocol.appPool, `${protocol.virtualDirectory}/healthcheck.htm`]),
  )('stopping %s takes down %s only', async (appPool, endpoint) => {
    const { applier, prober } = server();
    await applier.apply(pool(appPool));
    const down = await unhealthy(prober);
    expect(Object.keys(down).map((path) => path.toLowerCase())).toEqual([endpoint.toLowerCase()]);
    expect(Object.values(down)).toEqual(['503']);
  });

  it('restoring the pool brings the endpoint back', async () => {
    const { applier, prober } = server();
    const prior = await applier.capture(pool('MSExchangeECPAppPool'));
    await applier.apply(pool('MSExchangeECPAppPool'));
    expect(Object.keys(await unhealthy(prober))).toEqual(['/ecp/healthcheck.htm']);
    await applier.restore(prior);
    expect(await unhealthy(prober)).toEqual({});
  });

  it('MSExchangeUM backs no endpoint: disabling it changes no health page', async () => {
    const { applier, prober } = server();
    await applier.apply(service('MSExchangeUM'));
    expect(await unhealthy(prober)).toEqual({});
  });

  it('W3SVC stopped: every endpoint closes the connection unanswered', async () => {
    const { applier, prober } = server();
    await applier.apply(service('W3SVC'));
    const down = await unhealthy(prober);
    expect(Object.keys(down)).toHaveLength(9);
    expect(new Set(Object.values(down))).toEqual(new Set(['aborted (connection reset without an answer)']));
  });

  it('a broken server: stopping the OWA pool also takes ECP down (the --break knob)', async () => {
    const { applier, prober } = server({ couplings: owaPoolTakesDownEcp });
    expect(await unhealthy(prober)).toEqual({});
    await applier.apply(pool('MSExchangeOWAAppPool'));
    expect(await unhealthy(prober)).toEqual({ '/owa/healthcheck.htm': '503', '/ecp/healthcheck.htm': '503' });
  });
});

describe("the site's URL Rewrite rules run before the protocol answers", () => {
  it("the catalogue's EM1: its must-block probes are aborted, its must-pass probes and every health page pass", async () => {
    const { applier, prober } = server();
    const before = await prober.sendAll(em1.probes!);
    expect(before.every((answer) => answer.kind === 'response' && answer.status === 200)).toBe(true);
    await applier.apply(em1);
    const after = await prober.sendAll(em1.probes!);
    expect(em1.probes!.map((probe, index) => [probe.expect, after[index]!.kind])).toEqual([
      ['blocked', 'aborted'],
      ['blocked', 'aborted'],
      ['passed', 'response'],
      ['passed', 'response'],
    ]);
    expect(await unhealthy(prober)).toEqual({});
  });

  it('a CustomResponse rule answers its status; a Redirect its status and Location', async () => {
    const { applier, prober } = server();
    await applier.apply(
      rule(
        'deny',
        '<rule name="deny" stopProcessing="true"><match url="^ecp/evil"/><action type="CustomResponse" statusCode="403" statusReason="Forbidden" statusDescription="no"/></rule>',
      ),
    );
    await applier.apply(
      rule(
        'move',
        '<rule name="move" stopProcessing="true"><match url="^old$"/><action type="Redirect" url="/owa/" redirectType="Found"/></rule>',
      ),
    );
    expect(await prober.send({ method: 'GET', path: '/ecp/evil' })).toEqual({
      kind: 'response',
      status: 403,
    });
    expect(await prober.send({ method: 'GET', path: '/old' })).toEqual({ kind: 'response', status: 302 });
    expect(await prober.send({ method: 'GET', path: '/ecp/fine' })).toEqual({
      kind: 'response',
      status: 200,
    });
  });

  it('a rule that blocks everything takes every health page down', async () => {
    const { applier, prober } = server();
    await applier.apply(
      rule('all', '<rule name="all"><match url=".*"/><action type="AbortRequest"/></rule>'),
    );
    expect(Object.keys(await unhealthy(prober))).toHaveLength(9);
  });

  it('a rule IIS would refuse makes every request 500 (URL Rewrite Module Error)', async () => {
    const { applier, prober } = server();
    await applier.apply(
      rule(
        'bad',
        '<rule name="bad"><match url=".*"/><conditions><add input="{NoSuchFunction:{URL}}" pattern="x"/></conditions><action type="AbortRequest"/></rule>',
      ),
    );
    expect(new Set(Object.values(await unhealthy(prober)))).toEqual(new Set(['500']));
  });

  it('a stopped pool answers 503 before any rule runs', async () => {
    const { applier, prober } = server();
    await applier.apply(em1);
    await applier.apply(pool('MSExchangeAutodiscoverAppPool'));
    expect(await prober.send({ method: 'GET', path: em1.probes![0]!.path })).toEqual({
      kind: 'response',
      status: 503,
    });
  });
});

it('a server it does not serve is 404', async () => {
  const prober = new Prober({
    baseUrl: `${exchange.url}/nobody`,
    ownNames: ['nobody'],
    endpoints: ['/owa/healthcheck.htm'],
  });
  expect(await prober.health()).toEqual([
    { endpoint: '/owa/healthcheck.htm', healthy: false, detail: '404' },
  ]);
});

describe('rules in force per application', () => {
  it('a rule of the site does not run in an application whose web.config clears the inherited rules', async () => {
    const { applier, prober, stateFile } = server();
    const state = await applier.read();
    state.sites['Default Web Site']!.applications = { '/mapi': { clear: true } };
    await import('node:fs/promises').then((fs) => fs.writeFile(stateFile, JSON.stringify(state)));
    await applier.apply(
      rule(
        'block health',
        '<rule name="block health"><match url="healthcheck\\.htm"/><action type="AbortRequest"/></rule>',
      ),
    );
    const down = await unhealthy(prober);
    // Before: the site's rules ran everywhere, so /mapi was blocked too.
    expect(Object.keys(down)).not.toContain('/mapi/healthcheck.htm');
    expect(Object.keys(down)).toHaveLength(defaultHealthEndpoints.length - 1);
  });
});
