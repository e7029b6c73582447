import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Applier, ApplicableAction, ApplyReport, PriorState } from '../../lib/agent/applier.js';
import {
  SimulatedApplier,
  defaultSimulatedServer,
  type SimulatedFaults,
  type SimulatedServer,
} from '../../lib/agent/appliers/simulated.js';
import type { DetectedBuild } from '../../lib/agent/build-detect.js';
import { Journal } from '../../lib/agent/journal.js';
import { Prober } from '../../lib/agent/probes.js';
import { AgentService, type AgentResponse } from '../../lib/agent/service.js';
import { owaPoolTakesDownEcp, type Couplings } from '../../lib/agent/appliers/simulated-front-end.js';
import { verifyPackage } from '../../lib/package/verify.js';
import {
  errorReply,
  operationReply,
  pingReply,
  statusReply,
  type OperationReply,
  type StatusReply,
} from '../../lib/relay/protocol.js';
import type { MitigationOutcome } from '../../lib/model/outcomes.js';
import { simulatedExchange } from '../helpers/agents.js';
import { recordingLogger } from '../helpers/logs.js';
import { catalogueXml, createTestPki, type TestPki } from '../helpers/packages.js';
import { waitFor } from '../helpers/wait.js';

// ---- fixtures -----------------------------------------------------------------------------------

const site = 'Default Web Site';
const em1RuleName = 'EEMS EM1 - Autodiscover Rule';
const identity = { server: 'ex01.contoso.com', agentVersion: '0.1.0-test' } as const;

/** Extra mitigations for failure cases: a pool this server lacks, and one mitigation with two changes. */
const faultyXml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="EM9" desc="Disable a pool this server does not have">
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop"><Value>NoSuchAppPool</Value></Action></ActionList>
  </Config>
  <Config id="EM10" desc="Two changes">
    <ActionList>
      <Action type="DisableService" scope="Server" desc="Stop UM"><Value>MSExchangeUM</Value></Action>
      <Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value><ExpectedDown endpoint="/owa/healthcheck.htm"/></Action>
    </ActionList>
  </Config>
  <Config id="EM2" desc="Disable OWA app pool">
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value><ExpectedDown endpoint="/owa/healthcheck.htm"/></Action></ActionList>
  </Config>
  <Config id="EM3" desc="Disable UM service">
    <ActionList><Action type="DisableService" scope="Server" desc="Stop UM"><Value>MSExchangeUM</Value></Action></ActionList>
  </Config>
</EOCS>
`;

/** Mitigations for the probes: an undeclared takedown, rules that miss, harm, answer with a status, or carry no probes. */
const probeXml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="EM20" desc="Disable the ECP pool without saying so">
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop ECP"><Value>MSExchangeECPAppPool</Value></Action></ActionList>
  </Config>
  <Config id="M1" desc="The first CVE-2022-41040 rule: the URL path only">
    <ActionList><Action type="IisUrlRewrite" scope="Server" desc="rewrite"><Value><rule name="M1 path only" stopProcessing="true"><match url=".*autodiscover\\.json.*Powershell.*"/><action type="AbortRequest"/></rule></Value></Action></ActionList>
  </Config>
  <Config id="EM22" desc="Blocks OWA's start page by mistake">
    <ActionList><Action type="IisUrlRewrite" scope="Server" desc="rewrite"><Value><rule name="EM22" stopProcessing="true"><match url="^(owa/|ecp/evil)$"/><action type="AbortRequest"/></rule></Value>
      <Probe path="/ecp/evil" expect="blocked"/><Probe path="/owa/" expect="passed"/></Action></ActionList>
  </Config>
  <Config id="EM23" desc="Answers 403">
    <ActionList><Action type="IisUrlRewrite" scope="Server" desc="rewrite"><Value><rule name="EM23" stopProcessing="true"><match url="^ecp/evil"/><action type="CustomResponse" statusCode="403" statusReason="Forbidden" statusDescription="no"/></rule></Value>
      <Probe path="/ecp/evil?x=1" expect="blocked"/><Probe method="POST" path="/ecp/fine" expect="passed"><Header name="X-Probe" value="1"/></Probe></Action></ActionList>
  </Config>
  <Config id="EM24" desc="A rule nobody wrote probes for">
    <ActionList><Action type="IisUrlRewrite" scope="Server" desc="rewrite"><Value><rule name="EM24"><match url="^nothing/"/><action type="AbortRequest"/></rule></Value></Action></ActionList>
  </Config>
</EOCS>
`;

let pki: TestPki;
let otherPki: TestPki;
let signedCatalogue: string;
let signedFaulty: string;
let signedProbes: string;
/** EM1's rule exactly as the verifier hands it to the agent. */
let em1RuleXml: string;

const directories: string[] = [];

beforeAll(async () => {
  [pki, otherPki] = await Promise.all([
    createTestPki('emfleet Agent Test'),
    createTestPki('emfleet Impostor'),
  ]);
  signedCatalogue = pki.sign(catalogueXml);
  signedFaulty = pki.sign(faultyXml);
  signedProbes = pki.sign(probeXml);
  const verified = verifyPackage(Buffer.from(signedCatalogue), { trust: pki.trust });
  if (!verified.ok) throw new Error(`test data: the signed catalogue does not verify: ${verified.detail}`);
  const action = verified.package.mitigations.find((mitigation) => mitigation.id === 'EM1')?.actions[0];
  if (action?.kind !== 'IisUrlRewrite') throw new Error('test data: EM1 is not a rewrite');
  em1RuleXml = action.ruleXml;
});

afterAll(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

// ---- harness ------------------------------------------------------------------------------------

interface AgentOptions {
  readonly build?: string;
  readonly faults?: SimulatedFaults;
  readonly replyWithinMs?: number;
  /** Changes to the default server before the agent starts. */
  readonly initial?: (state: SimulatedServer) => void;
  readonly wrap?: (applier: Applier) => Applier;
  /** What else goes down with a stopped pool or service on this server (a broken server). */
  readonly couplings?: Couplings;
  /** Probe somewhere else than the server's simulated front end (e.g. a front end that hangs). */
  readonly probeBaseUrl?: string;
  readonly probeTimeoutInMs?: number;
  readonly allowKeepOnDegraded?: boolean;
  /** The server's Exchange build as detection reads it, changed by the test (a Cumulative Update). */
  readonly detect?: () => Promise<DetectedBuild>;
}

/** Every reply carries the agent's clock. */
const anyTime = expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

interface Agent {
  readonly stateFile: string;
  readonly journalFile: string;
  readonly applier: SimulatedApplier;
  readonly journal: Journal;
  readonly service: AgentService;
  readonly logger: ReturnType<typeof recordingLogger>;
}

let servers = 0;

async function startAgent(options: AgentOptions = {}): Promise<Agent> {
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-agent-'));
  directories.push(directory);
  const stateFile = join(directory, 'server.json');
  const journalFile = join(directory, 'journal.json');
  const applier = new SimulatedApplier(stateFile, options.faults ?? {});
  await applier.read();
  if (options.initial) {
    const state = defaultSimulatedServer();
    options.initial(state);
    await writeFile(stateFile, JSON.stringify(state, null, 2));
  }
  const journal = await Journal.open(journalFile);
  const logger = recordingLogger();
  const frontEnd = (await simulatedExchange()).add({
    name: `ex${++servers}`,
    stateFile,
    server: identity.server,
    ...(options.couplings ? { couplings: options.couplings } : {}),
  });
  const prober = new Prober({
    baseUrl: options.probeBaseUrl ?? frontEnd,
    ownNames: [identity.server],
    timeoutInMs: options.probeTimeoutInMs ?? 5000,
  });
  const service = new AgentService({
    identity: { ...identity, build: options.build ?? '15.2.1118.7' },
    trust: [pki.trust],
    applier: options.wrap ? options.wrap(applier) : applier,
    journal,
    logger,
    prober,
    ...(options.replyWithinMs === undefined ? {} : { replyWithinMs: options.replyWithinMs }),
    ...(options.allowKeepOnDegraded === undefined
      ? {}
      : { allowKeepOnDegraded: options.allowKeepOnDegraded }),
    ...(options.detect ? { detectBuild: options.detect } : {}),
  });
  return { stateFile, journalFile, applier, journal, service, logger };
}

function send(agent: Agent, method: string, path: string, body?: unknown): Promise<AgentResponse> {
  const bytes =
    body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  return agent.service.handle({ method, path, body: bytes });
}

const base64 = (xml: string): string => Buffer.from(xml, 'utf8').toString('base64');

function apply(
  agent: Agent,
  operationId: string,
  mitigationIds: string[],
  xml: string = signedCatalogue,
  extra: { onDegraded?: string } = {},
): Promise<AgentResponse> {
  return send(agent, 'POST', '/apply', { operationId, packageBase64: base64(xml), mitigationIds, ...extra });
}

function remove(agent: Agent, operationId: string, mitigationIds: string[]): Promise<AgentResponse> {
  return send(agent, 'POST', '/remove', { operationId, mitigationIds });
}

/** The reply, checked against the protocol schema with nothing extra and nothing defaulted. */
function operation(response: AgentResponse): OperationReply {
  const json: unknown = JSON.parse(response.body);
  const parsed = operationReply.safeParse(json);
  expect(parsed.success, `not an operationReply: ${response.body}`).toBe(true);
  expect(json).toEqual(parsed.data);
  return parsed.data!;
}

/** A completed (200) operation's outcomes. */
function completed(response: AgentResponse): Record<string, MitigationOutcome> {
  expect(response.status, response.body).toBe(200);
  const reply = operation(response);
  expect(reply.status).toBe('Completed');
  return reply.outcomes;
}

function outcome(outcomes: Record<string, MitigationOutcome>, id: string): MitigationOutcome {
  const found = outcomes[id];
  expect(found, `no outcome for ${id} in ${JSON.stringify(outcomes)}`).toBeDefined();
  return found!;
}

async function status(agent: Agent, path = '/status'): Promise<StatusReply> {
  const response = await send(agent, 'GET', path);
  expect(response.status).toBe(200);
  const json: unknown = JSON.parse(response.body);
  const parsed = statusReply.safeParse(json);
  expect(parsed.success, `not a statusReply: ${response.body}`).toBe(true);
  return parsed.data!;
}

function badRequest(response: AgentResponse, detail: RegExp): void {
  expect(response.status, response.body).toBe(400);
  const json: unknown = JSON.parse(response.body);
  expect(errorReply.safeParse(json).success).toBe(true);
  expect(json).toMatchObject({ error: 'BadRequest' });
  expect((json as { detail: string }).detail).toMatch(detail);
}

async function model(agent: Agent): Promise<SimulatedServer> {
  return JSON.parse(await readFile(agent.stateFile, 'utf8')) as SimulatedServer;
}

/** MSExchangeHM and MSExchangeHMRecovery as a fresh server has them, journaled before the first pool or service mitigation holds them. */
const healthManagerPrior: PriorState = {
  kind: 'HealthManager',
  services: [
    { service: 'MSExchangeHM', status: 'Running', startType: 'Automatic' },
    { service: 'MSExchangeHMRecovery', status: 'Running', startType: 'Automatic' },
  ],
};

function holdingHealthManager(state: SimulatedServer): void {
  state.services.MSExchangeHM = { status: 'Stopped', startType: 'Disabled' };
  state.services.MSExchangeHMRecovery = { status: 'Stopped', startType: 'Disabled' };
}

function defaultWith(change: (state: SimulatedServer) => void): SimulatedServer {
  const state = defaultSimulatedServer();
  change(state);
  return state;
}

/** An Applier that delegates to the simulated one and records when each call runs. */
class RecordingApplier implements Applier {
  readonly kind = 'recording';
  readonly calls: Array<{
    readonly call: string;
    readonly target: string;
    readonly start: number;
    readonly end: number;
  }> = [];
  maxConcurrent = 0;
  readonly #inner: Applier;
  #active = 0;
  #step = 0;

  constructor(inner: Applier) {
    this.#inner = inner;
  }

  capture(action: ApplicableAction): Promise<PriorState> {
    return this.#record('capture', target(action), () => this.#inner.capture(action));
  }

  isApplied(action: ApplicableAction): Promise<boolean> {
    return this.#record('isApplied', target(action), () => this.#inner.isApplied(action));
  }

  serviceStatus(service: string): Promise<string> {
    return this.#inner.serviceStatus(service);
  }

  ruleInPlace(action: Extract<ApplicableAction, { kind: 'IisUrlRewrite' }>): Promise<string | undefined> {
    return this.#record('ruleInPlace', target(action), () => this.#inner.ruleInPlace(action));
  }

  apply(action: ApplicableAction): Promise<ApplyReport> {
    return this.#record('apply', target(action), () => this.#inner.apply(action));
  }

  restore(prior: PriorState): Promise<void> {
    return this.#record('restore', target(prior), () => this.#inner.restore(prior));
  }

  captureHealthManager(): Promise<Extract<PriorState, { kind: 'HealthManager' }>> {
    return this.#record('captureHealthManager', 'MSExchangeHM', () => this.#inner.captureHealthManager());
  }

  holdHealthManager(): Promise<void> {
    return this.#record('holdHealthManager', 'MSExchangeHM', () => this.#inner.holdHealthManager());
  }

  exchangeSetupRunning(): Promise<string | undefined> {
    return this.#inner.exchangeSetupRunning();
  }

  async #record<T>(call: string, name: string, run: () => Promise<T>): Promise<T> {
    this.#active++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.#active);
    // Steps of one counter, not clock readings: the order of starts and ends is what the tests check.
    const start = ++this.#step;
    try {
      return await run();
    } finally {
      this.#active--;
      this.calls.push({ call, target: name, start, end: ++this.#step });
    }
  }
}

function target(action: ApplicableAction | PriorState): string {
  switch (action.kind) {
    case 'DoNothing':
      return 'nothing';
    case 'IisUrlRewrite':
      return action.ruleName;
    case 'DisableAppPool':
      return action.appPool;
    case 'DisableService':
      return action.service;
    case 'HealthManager':
      return 'MSExchangeHM';
  }
}

// ---- apply --------------------------------------------------------------------------------------

describe('AgentService apply', () => {
  it('applies the signed catalogue to a 15.2.1118.7 server: exactly the rule, the pool and the service change', async () => {
    const agent = await startAgent({ build: '15.2.1118.7' });
    const response = await apply(agent, 'rollout-1:ex01', ['EM1', 'EM2', 'EM3', 'PING1']);
    expect(response.status).toBe(200);
    const reply = operation(response);
    expect(reply.operationId).toBe('rollout-1:ex01');
    expect(reply.status).toBe('Completed');
    expect(Object.keys(reply.outcomes).sort()).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
    expect(outcome(reply.outcomes, 'EM1')).toEqual({
      outcome: 'Applied',
      detail: `URL Rewrite rule "${em1RuleName}" added to ${site}; health: 9/9 endpoints healthy; rule "${em1RuleName}" checked with package probes: 2/2 must-block blocked, 2/2 must-pass passed`,
    });
    expect(outcome(reply.outcomes, 'EM2')).toEqual({
      outcome: 'Applied',
      detail:
        'app pool MSExchangeOWAAppPool stopped, auto-start off; health: 8/9 endpoints healthy, owa down as declared',
    });
    expect(outcome(reply.outcomes, 'EM3')).toEqual({
      outcome: 'Applied',
      detail: 'service MSExchangeUM stopped and disabled; health: 8/9 endpoints healthy',
    });

    expect(await model(agent)).toEqual(
      defaultWith((state) => {
        state.sites[site]!.rules.push({ name: em1RuleName, xml: em1RuleXml });
        state.appPools.MSExchangeOWAAppPool = { state: 'Stopped', autoStart: false };
        state.services.MSExchangeUM = { status: 'Stopped', startType: 'Disabled' };
        // Held stopped and disabled while a pool or service mitigation is active, as Microsoft does.
        holdingHealthManager(state);
      }),
    );
    expect(em1RuleXml).toContain(
      '<add input="{UrlDecode:{REQUEST_URI}}" pattern=".*autodiscover\\.json.*Powershell.*"/>',
    );

    for (const id of ['EM1', 'EM2', 'EM3']) {
      expect(agent.journal.get(id)).toMatchObject({
        mitigationId: id,
        operationId: 'rollout-1:ex01',
        state: 'applied',
      });
    }
    expect(agent.journal.get('EM1')?.priors).toEqual([
      { kind: 'IisUrlRewrite', site, ruleName: em1RuleName, previousRuleXml: null },
    ]);
    expect(agent.journal.get('EM2')?.priors).toEqual([
      healthManagerPrior,
      { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true },
    ]);
    // EM3 shares the Health Manager's prior with EM2: both journal what was there before emfleet.
    expect(agent.journal.get('EM3')?.priors).toEqual([
      healthManagerPrior,
      { kind: 'DisableService', service: 'MSExchangeUM', status: 'Running', startType: 'Automatic' },
    ]);
    // the journal is on disk
    expect(
      (await Journal.open(agent.journalFile))
        .entries()
        .map((entry) => entry.mitigationId)
        .sort(),
    ).toEqual(expect.arrayContaining(['EM1', 'EM2', 'EM3']));
    expect(
      agent.logger.events
        .filter((line) => line.event === 'MitigationOutcome')
        .map((line) => line.fields.mitigationId),
    ).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
  });

  it('PING1 (DoNothing) is reported Applied, as Exchange EM reports it', async () => {
    const agent = await startAgent();
    const before = await readFile(agent.stateFile);
    const outcomes = completed(await apply(agent, 'ping-1', ['PING1']));
    expect(outcome(outcomes, 'PING1').outcome, JSON.stringify(outcomes)).toBe('Applied');
    expect(await readFile(agent.stateFile)).toEqual(before);
  });

  describe('refuses a package it cannot verify itself, and changes nothing', () => {
    const cases: Array<[string, () => string, RegExp]> = [
      [
        'tampered (a Value edited after signing)',
        () => tamper(signedCatalogue),
        /^package rejected by the agent: BadSignature: /,
      ],
      [
        'signed by another PKI',
        () => otherPki.sign(catalogueXml),
        /^package rejected by the agent: UntrustedChain: /,
      ],
      ['unsigned', () => catalogueXml, /^package rejected by the agent: BadSignature: /],
      ['not XML at all', () => 'PK\u0003\u0004 this is a zip', /^package rejected by the agent: Malformed: /],
    ];
    for (const [what, xml, detail] of cases) {
      it(what, async () => {
        const agent = await startAgent();
        const before = await readFile(agent.stateFile);
        const outcomes = completed(await apply(agent, 'op-rejected', ['EM1', 'EM2', 'EM3', 'PING1'], xml()));
        expect(Object.keys(outcomes).sort()).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
        for (const id of ['EM1', 'EM2', 'EM3', 'PING1']) {
          expect(outcome(outcomes, id).outcome).toBe('Failed');
          expect(outcome(outcomes, id).detail).toMatch(detail);
        }
        expect(await readFile(agent.stateFile)).toEqual(before);
        expect(agent.journal.entries()).toEqual([]);
        await expect(readFile(agent.journalFile)).rejects.toThrow(/ENOENT/);
        expect(agent.logger.events).toContainEqual(
          expect.objectContaining({ level: 'warn', event: 'PackageRejected' }),
        );
      });
    }
  });

  it('refuses a mitigation not applicable to its own build, whatever the sender wants', async () => {
    const agent = await startAgent({ build: '15.2.1544.4' });
    const outcomes = completed(await apply(agent, 'op-fixed', ['EM1', 'EM2']));
    expect(outcome(outcomes, 'EM1')).toEqual({
      outcome: 'NotApplicable',
      detail: 'build 15.2.1544.4 includes the fix of EM1',
    });
    expect(outcome(outcomes, 'EM2').outcome).toBe('Applied'); // 15.2.1544.4 is EM2's inclusive max
    expect((await model(agent)).sites[site]!.rules).toEqual([]);
    expect(agent.journal.get('EM1')).toBeUndefined();

    // the sender cannot tell the agent which build it is
    badRequest(
      await send(agent, 'POST', '/apply', {
        operationId: 'op-build',
        packageBase64: base64(signedCatalogue),
        mitigationIds: ['EM1'],
        build: '15.2.1118.7',
      }),
      /build/,
    );
    expect((await model(agent)).sites[site]!.rules).toEqual([]);

    const exchange2016 = await startAgent({ build: '15.1.2507.6' });
    const before = await readFile(exchange2016.stateFile);
    const onOtherLine = completed(await apply(exchange2016, 'op-2016', ['EM2']));
    expect(outcome(onOtherLine, 'EM2')).toEqual({
      outcome: 'NotApplicable',
      detail: 'build 15.1.2507.6 is outside the ranges of EM2',
    });
    expect(await readFile(exchange2016.stateFile)).toEqual(before);
  });

  it('an id not in the signed package is Failed; the others are still applied', async () => {
    const agent = await startAgent();
    const outcomes = completed(await apply(agent, 'op-unknown', ['EM99', 'EM2']));
    expect(outcome(outcomes, 'EM99').outcome).toBe('Failed');
    expect(outcome(outcomes, 'EM99').detail).toMatch(
      /^EM99 is not in the signed package \(sha256 [0-9a-f]{64}\)$/,
    );
    expect(outcome(outcomes, 'EM2').outcome).toBe('Applied');
    expect(agent.journal.get('EM99')).toBeUndefined();
  });

  it('is idempotent: the same operationId returns the same reply without running again', async () => {
    const agent = await startAgent();
    const original = await readFile(agent.stateFile);
    const first = await apply(agent, 'op-same', ['EM2']);
    expect(outcome(completed(first), 'EM2').outcome).toBe('Applied');
    const journalBefore = await readFile(agent.journalFile);
    // someone puts the pool back by hand; a re-run would stop it again
    await writeFile(agent.stateFile, original);

    const second = await apply(agent, 'op-same', ['EM2']);
    expect({ ...operation(second), time: undefined }).toEqual({ ...operation(first), time: undefined });
    expect(await readFile(agent.stateFile)).toEqual(original);
    expect(await readFile(agent.journalFile)).toEqual(journalBefore);
  });

  it('a new operationId applying EM2 again is AlreadyApplied and leaves the journal unchanged', async () => {
    const agent = await startAgent();
    expect(outcome(completed(await apply(agent, 'op-first', ['EM2'])), 'EM2').outcome).toBe('Applied');
    const journalBefore = await readFile(agent.journalFile);
    const stateBefore = await readFile(agent.stateFile);

    const again = completed(await apply(agent, 'op-second', ['EM2']));
    expect(outcome(again, 'EM2')).toEqual({
      outcome: 'AlreadyApplied',
      detail: 'applied by operation op-first',
    });
    expect(await readFile(agent.journalFile)).toEqual(journalBefore);
    expect(await readFile(agent.stateFile)).toEqual(stateBefore);
    expect(agent.journal.get('EM2')?.operationId).toBe('op-first');
  });

  it('finds an existing rule by content under another name: adopts it (AlreadyApplied, journaled as found), and removal removes it', async () => {
    const theirs = em1RuleXml
      .replace(`name="${em1RuleName}"`, 'name="Contoso: block autodiscover PowerShell"')
      .replace(/></g, '>\n  <');
    expect(theirs).not.toContain(em1RuleName);
    const agent = await startAgent({
      initial: (state) => {
        state.sites[site]!.rules.push({ name: 'Contoso: block autodiscover PowerShell', xml: theirs });
      },
    });
    const before = await readFile(agent.stateFile);
    const outcomes = completed(await apply(agent, 'op-existing', ['EM1']));
    expect(outcome(outcomes, 'EM1')).toEqual({
      outcome: 'AlreadyApplied',
      detail: expect.stringMatching(/not applied by emfleet\) and adopted/),
    });
    expect(await readFile(agent.stateFile)).toEqual(before);
    expect(agent.journal.get('EM1')).toMatchObject({
      state: 'applied',
      adopted: true,
      priors: [
        {
          kind: 'IisUrlRewrite',
          site,
          ruleName: 'Contoso: block autodiscover PowerShell',
          previousRuleXml: null,
        },
      ],
    });
    // Reported as applied, so the status sweep and reconcile leave it alone.
    expect(agent.service.status().applied).toEqual(['EM1']);
    expect((await agent.service.verifiedStatus()).applied).toEqual(['EM1']);
    expect(outcome(completed(await apply(agent, 'op-again', ['EM1'])), 'EM1')).toEqual({
      outcome: 'AlreadyApplied',
      detail: 'applied by operation op-existing',
    });

    expect(outcome(completed(await remove(agent, 'op-remove-existing', ['EM1'])), 'EM1').outcome).toBe(
      'Removed',
    );
    expect((await model(agent)).sites[site]!.rules).toEqual([]);
    expect(agent.journal.entries()).toEqual([]);
  });

  it.each([
    {
      name: 'an app pool EM stopped',
      initial: (state: SimulatedServer) =>
        void (state.appPools['MSExchangeOWAAppPool'] = { state: 'Stopped', autoStart: false }),
      id: 'EM2',
      restored: (state: SimulatedServer) => state.appPools['MSExchangeOWAAppPool'],
      absent: { state: 'Started', autoStart: true },
    },
    {
      name: 'a service an admin disabled',
      initial: (state: SimulatedServer) =>
        void (state.services['MSExchangeUM'] = { status: 'Stopped', startType: 'Disabled' }),
      id: 'EM3',
      restored: (state: SimulatedServer) => state.services['MSExchangeUM'],
      absent: { status: 'Running', startType: 'Automatic' },
    },
  ])(
    'adopts $name; removal puts it back as if the change had never been made',
    async ({ initial, id, restored, absent }) => {
      const agent = await startAgent({ initial });
      expect(outcome(completed(await apply(agent, `op-adopt-${id}`, [id])), id).outcome).toBe(
        'AlreadyApplied',
      );
      expect(agent.journal.get(id)).toMatchObject({ state: 'applied', adopted: true });
      expect(outcome(completed(await remove(agent, `op-remove-${id}`, [id])), id).outcome).toBe('Removed');
      expect(restored(await model(agent))).toEqual(absent);
    },
  );
});

// ---- failures -----------------------------------------------------------------------------------

describe('AgentService failures', () => {
  it('a change that fails and cannot be undone is Failed, and the journal keeps the prior state for the next start', async () => {
    const agent = await startAgent({
      faults: { failOn: ['MSExchangeOWAAppPool'], failRestoreOn: ['MSExchangeOWAAppPool'] },
    });
    const result = outcome(completed(await apply(agent, 'op-fail-twice', ['EM2'])), 'EM2');
    expect(result.outcome).toBe('Failed');
    expect(result.detail).toMatch(/restoring the prior state failed too .*the journal keeps it/);
    expect(agent.journal.get('EM2')).toMatchObject({
      state: 'removing',
      priors: [
        healthManagerPrior,
        { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true },
      ],
    });
  });

  it('a change that fails is Failed with the prior state restored; other ids in the request still run', async () => {
    const agent = await startAgent({ faults: { failOn: ['MSExchangeOWAAppPool'] } });
    const before = await readFile(agent.stateFile);
    const alone = completed(await apply(agent, 'op-fail', ['EM2']));
    expect(outcome(alone, 'EM2').outcome).toBe('Failed');
    expect(outcome(alone, 'EM2').detail).toMatch(
      /^simulated failure changing MSExchangeOWAAppPool; prior state restored$/,
    );
    expect(await readFile(agent.stateFile)).toEqual(before);
    expect(agent.journal.entries()).toEqual([]);

    const mixed = completed(await apply(agent, 'op-fail-mixed', ['EM2', 'EM3', 'EM1']));
    expect(outcome(mixed, 'EM2').outcome).toBe('Failed');
    expect(outcome(mixed, 'EM3').outcome).toBe('Applied');
    expect(outcome(mixed, 'EM1').outcome).toBe('Applied');
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
    expect(
      agent.journal
        .entries()
        .map((entry) => entry.mitigationId)
        .sort(),
    ).toEqual(['EM1', 'EM3']);
  });

  it('a failure midway through a mitigation of several changes undoes the ones already made', async () => {
    const agent = await startAgent({ faults: { failOn: ['MSExchangeOWAAppPool'] } });
    const before = await model(agent);
    const outcomes = completed(await apply(agent, 'op-midway', ['EM10'], signedFaulty));
    expect(outcome(outcomes, 'EM10').outcome).toBe('Failed');
    expect(outcome(outcomes, 'EM10').detail).toMatch(/prior state restored/);
    expect(await model(agent)).toEqual(before); // MSExchangeUM was stopped, then started again
    expect(agent.journal.entries()).toEqual([]);
  });

  it('a target missing on this server fails that mitigation only; the ids before and after it keep their true outcomes', async () => {
    const agent = await startAgent();
    const outcomes = completed(await apply(agent, 'op-missing', ['EM3', 'EM9', 'EM2'], signedFaulty));
    expect(outcome(outcomes, 'EM9').outcome).toBe('Failed');
    expect(outcome(outcomes, 'EM9').detail).toMatch(/NoSuchAppPool/);
    // EM3 was changed and journaled before EM9: its outcome must say so
    expect((await model(agent)).services.MSExchangeUM).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect(agent.journal.get('EM3')?.state).toBe('applied');
    expect(outcome(outcomes, 'EM3').outcome, JSON.stringify(outcomes)).toBe('Applied');
    expect(outcome(outcomes, 'EM2').outcome, JSON.stringify(outcomes)).toBe('Applied');
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
  });
});

// ---- probes -------------------------------------------------------------------------------------

describe('AgentService proves each change with probes', () => {
  it('a change that takes an undeclared endpoint down is RolledBack: named, the model byte-identical to before, the journal empty', async () => {
    const agent = await startAgent({ couplings: owaPoolTakesDownEcp });
    const before = await readFile(agent.stateFile);
    const outcomes = completed(await apply(agent, 'op-broken', ['EM2', 'EM3']));
    const em2 = outcome(outcomes, 'EM2');
    expect(em2).toMatchObject({ outcome: 'RolledBack', endpoints: ['/ecp/healthcheck.htm'] });
    expect(em2.detail).toBe(
      'app pool MSExchangeOWAAppPool stopped, auto-start off; degraded: ecp: 503 after apply (was 200); rolled back to the prior state (policy onDegraded=rollback); every endpoint healthy as before',
    );
    expect(agent.journal.get('EM2')).toBeUndefined();
    // EM3 ran after the rollback and changed only the UM service
    expect(outcome(outcomes, 'EM3').outcome).toBe('Applied');
    completed(await remove(agent, 'op-broken-undo', ['EM3']));
    expect(await readFile(agent.stateFile)).toEqual(before);
    expect(agent.journal.entries()).toEqual([]);
    expect((await status(agent)).applied).toEqual([]);
  });

  it('the server alone: RolledBack leaves exactly the state before (one mitigation, nothing else)', async () => {
    const agent = await startAgent({ couplings: owaPoolTakesDownEcp });
    const before = await readFile(agent.stateFile);
    expect(outcome(completed(await apply(agent, 'op-broken-alone', ['EM2'])), 'EM2').outcome).toBe(
      'RolledBack',
    );
    expect(await readFile(agent.stateFile)).toEqual(before);
    await expect(Journal.open(agent.journalFile).then((journal) => journal.entries())).resolves.toEqual([]);
  });

  it('onDegraded=keep is not honoured unless the agent allows it (allowKeepOnDegraded): the change is rolled back', async () => {
    const agent = await startAgent({ couplings: owaPoolTakesDownEcp });
    const before = await readFile(agent.stateFile);
    const em2 = outcome(
      completed(await apply(agent, 'op-keep-refused', ['EM2'], signedCatalogue, { onDegraded: 'keep' })),
      'EM2',
    );
    expect(em2).toMatchObject({
      outcome: 'RolledBack',
      detail: expect.stringContaining('rolled back to the prior state (policy onDegraded=rollback)'),
    });
    expect(await readFile(agent.stateFile)).toEqual(before);
    expect(agent.logger.events.find((line) => line.event === 'OnDegradedOverridden')).toMatchObject({
      level: 'warn',
      fields: { requested: 'keep', used: 'rollback' },
    });
  });

  it('onDegraded=keep: Degraded, naming the endpoint, and the change stays applied', async () => {
    const agent = await startAgent({ couplings: owaPoolTakesDownEcp, allowKeepOnDegraded: true });
    const em2 = outcome(
      completed(await apply(agent, 'op-keep', ['EM2'], signedCatalogue, { onDegraded: 'keep' })),
      'EM2',
    );
    expect(em2).toEqual({
      outcome: 'Degraded',
      detail:
        'app pool MSExchangeOWAAppPool stopped, auto-start off; degraded: ecp: 503 after apply (was 200); kept (policy onDegraded=keep)',
      endpoints: ['/ecp/healthcheck.htm'],
    });
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
    expect(agent.journal.get('EM2')?.state).toBe('applied');
    expect((await status(agent)).applied).toEqual(['EM2']);
  });

  it('an endpoint the action declares is not counted; the same kind of change undeclared is', async () => {
    const agent = await startAgent();
    expect(outcome(completed(await apply(agent, 'op-declared', ['EM2'])), 'EM2')).toMatchObject({
      outcome: 'Applied',
      detail: expect.stringContaining('owa down as declared'),
    });
    const undeclared = outcome(
      completed(await apply(agent, 'op-undeclared', ['EM20'], signedProbes)),
      'EM20',
    );
    expect(undeclared).toMatchObject({ outcome: 'RolledBack', endpoints: ['/ecp/healthcheck.htm'] });
    expect(undeclared.detail).toContain('ecp: 503 after apply (was 200)');
    // OWA was already down (EM2) and is not blamed on EM20
    expect(undeclared.detail).not.toContain('owa');
    expect((await model(agent)).appPools.MSExchangeECPAppPool).toEqual({ state: 'Started', autoStart: true });
  });

  it('a rule that lets the attack through is Ineffective, not Applied (built-in probes for M1), and stays in place', async () => {
    const agent = await startAgent();
    const m1 = outcome(completed(await apply(agent, 'op-m1', ['M1'], signedProbes)), 'M1');
    expect(m1.outcome).toBe('Ineffective');
    expect(m1.detail).toMatch(
      /^URL Rewrite rule "M1 path only" added to Default Web Site; ineffective: must-block GET \/autodiscover\/autodiscover\.json\?@evil\.com\/owa\/&Email=.* passed \(200\); must-block GET \/autodiscover\/autodiscover\.json\?@evil\.com\/%50owershell passed \(200\); the rule stays/,
    );
    expect(m1).not.toHaveProperty('endpoints');
    expect((await model(agent)).sites[site]!.rules.map((rule) => rule.name)).toEqual(['M1 path only']);
    expect(agent.journal.get('M1')?.state).toBe('applied');
  });

  it('a rule appended after a catch-all rewrite never sees the request: Ineffective', async () => {
    const agent = await startAgent({
      initial: (state) => {
        state.sites[site]!.rules.push({
          name: 'Contoso front door',
          xml: '<rule name="Contoso front door"><match url=".*"/><action type="Rewrite" url="/owa/"/></rule>',
        });
      },
    });
    const em1 = outcome(completed(await apply(agent, 'op-shadowed', ['EM1'])), 'EM1');
    expect(em1.outcome).toBe('Ineffective');
    expect(em1.detail).toContain(
      'ineffective: must-block GET /autodiscover/autodiscover.json?@evil.com/owa/',
    );
  });

  it('a rule that blocks a must-pass request Degrades the server and is RolledBack, the model as before', async () => {
    const agent = await startAgent();
    const before = await readFile(agent.stateFile);
    const em22 = outcome(completed(await apply(agent, 'op-harm', ['EM22'], signedProbes)), 'EM22');
    expect(em22.outcome).toBe('RolledBack');
    expect(em22.detail).toContain(
      'degraded: must-pass GET /owa/ was blocked (aborted (connection reset without an answer))',
    );
    expect(em22).not.toHaveProperty('endpoints');
    expect(await readFile(agent.stateFile)).toEqual(before);
  });

  it('a CustomResponse rule blocks with its own status; must-pass requests keep their method and headers', async () => {
    const agent = await startAgent();
    const em23 = outcome(completed(await apply(agent, 'op-403', ['EM23'], signedProbes)), 'EM23');
    expect(em23).toEqual({
      outcome: 'Applied',
      detail:
        'URL Rewrite rule "EM23" added to Default Web Site; health: 9/9 endpoints healthy; rule "EM23" checked with package probes: 1/1 must-block blocked, 1/1 must-pass passed',
    });
  });

  it('a rule with probes neither in the package nor built in is Applied, saying it is not proven', async () => {
    const agent = await startAgent();
    const em24 = outcome(completed(await apply(agent, 'op-unproven', ['EM24'], signedProbes)), 'EM24');
    expect(em24).toEqual({
      outcome: 'Applied',
      detail:
        'URL Rewrite rule "EM24" added to Default Web Site; health: 9/9 endpoints healthy; rule "EM24" not proven: no probes in the package and none built in for EM24',
    });
  });

  it('a removal that puts back something that takes an endpoint down is Degraded, naming it', async () => {
    const blocker = `<rule name="${em1RuleName}"><match url="^ecp/"/><action type="AbortRequest"/></rule>`;
    const agent = await startAgent({
      initial: (state) => {
        state.sites[site]!.rules.push({ name: em1RuleName, xml: blocker });
      },
    });
    // ECP was down before (the old rule of the same name); EM1 replaces the rule, so ECP comes up
    expect(outcome(completed(await apply(agent, 'op-replace', ['EM1', 'EM3'])), 'EM1').outcome).toBe(
      'Applied',
    );
    const removed = completed(await remove(agent, 'op-put-back', ['EM1', 'EM3']));
    expect(outcome(removed, 'EM1')).toEqual({
      outcome: 'Degraded',
      detail:
        'prior state restored; degraded: ecp: aborted (connection reset without an answer) after removal (was 200)',
      endpoints: ['/ecp/healthcheck.htm'],
    });
    expect(outcome(removed, 'EM3')).toEqual({ outcome: 'Removed', detail: 'prior state restored' });
    expect((await model(agent)).sites[site]!.rules).toEqual([{ name: em1RuleName, xml: blocker }]);
    expect(agent.journal.entries()).toEqual([]);
  });

  it('a rollback that fails is Failed, and the journal keeps the prior state for the next start', async () => {
    const agent = await startAgent({
      couplings: owaPoolTakesDownEcp,
      faults: { failRestoreOn: ['MSExchangeOWAAppPool'] },
    });
    const em2 = outcome(completed(await apply(agent, 'op-stuck', ['EM2'])), 'EM2');
    expect(em2.outcome).toBe('Failed');
    expect(em2.detail).toMatch(
      /degraded: ecp: 503 after apply \(was 200\); rolling back failed \(simulated failure restoring MSExchangeOWAAppPool\); the journal keeps the prior state/,
    );
    expect(agent.journal.get('EM2')).toMatchObject({
      state: 'removing',
      priors: [
        healthManagerPrior,
        { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true },
      ],
    });
  });

  describe('a front end that never answers', () => {
    let hung: http.Server;
    let hungUrl: string;
    beforeAll(async () => {
      hung = http.createServer(() => undefined);
      hung.listen(0, '127.0.0.1');
      await once(hung, 'listening');
      hungUrl = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      hung.closeAllConnections();
      await new Promise((resolve) => hung.close(resolve));
    });

    it('every probe times out cleanly: the operation completes, nothing is blamed on the change, a rule not shown blocking is Ineffective', async () => {
      const agent = await startAgent({ probeBaseUrl: hungUrl, probeTimeoutInMs: 200 });
      // The front end never answers: the timeouts in the details, not a stopwatch, show each probe was cut off.
      const outcomes = completed(await apply(agent, 'op-hung', ['EM1', 'EM2']));
      expect(outcome(outcomes, 'EM2')).toEqual({
        outcome: 'Applied',
        detail: 'app pool MSExchangeOWAAppPool stopped, auto-start off; health: 0/9 endpoints healthy',
      });
      const em1 = outcome(outcomes, 'EM1');
      expect(em1.outcome).toBe('Ineffective');
      expect(em1.detail).toContain(
        'must-block GET /autodiscover/autodiscover.json?@evil.com/%50owershell got no answer (timeout after 200 ms)',
      );
    });
  });

  it('onDegraded is rollback or keep, nothing else', async () => {
    const agent = await startAgent();
    badRequest(
      await apply(agent, 'op-bad-policy', ['EM2'], signedCatalogue, { onDegraded: 'ignore' }),
      /^onDegraded: /,
    );
    expect(agent.journal.entries()).toEqual([]);
  });
});

// ---- remove -------------------------------------------------------------------------------------

describe('AgentService remove', () => {
  const legacyRule = `<rule name="${em1RuleName}"><match url="^legacy/"/><action type="Redirect" url="/owa"/></rule>`;

  it('restores the prior state exactly (pool stopped but auto-starting, service Manual, a rule of the same name)', async () => {
    const agent = await startAgent({
      initial: (state) => {
        state.appPools.MSExchangeOWAAppPool = { state: 'Stopped', autoStart: true };
        state.services.MSExchangeUM = { status: 'Stopped', startType: 'Manual' };
        state.sites[site]!.rules.push({ name: em1RuleName, xml: legacyRule });
      },
    });
    const original = await model(agent);
    const applied = completed(await apply(agent, 'op-apply', ['EM1', 'EM2', 'EM3']));
    for (const id of ['EM1', 'EM2', 'EM3']) expect(outcome(applied, id).outcome).toBe('Applied');
    const changed = await model(agent);
    expect(changed.sites[site]!.rules).toEqual([{ name: em1RuleName, xml: em1RuleXml }]);
    expect(changed.appPools.MSExchangeOWAAppPool).toEqual({ state: 'Stopped', autoStart: false });
    expect(changed.services.MSExchangeUM).toEqual({ status: 'Stopped', startType: 'Disabled' });

    const removed = completed(await remove(agent, 'op-remove', ['EM1', 'EM2', 'EM3']));
    for (const id of ['EM1', 'EM2', 'EM3'])
      expect(outcome(removed, id)).toEqual({ outcome: 'Removed', detail: 'prior state restored' });
    expect(await model(agent)).toEqual(original);
    expect(agent.journal.entries()).toEqual([]);
    expect((await Journal.open(agent.journalFile)).entries()).toEqual([]);
    expect((await status(agent)).applied).toEqual([]);
  });

  it('restores a replaced rule in its original position (IIS evaluates rules in order)', async () => {
    const agent = await startAgent({
      initial: (state) => {
        state.sites[site]!.rules.push(
          {
            name: 'Contoso first',
            xml: '<rule name="Contoso first"><match url="^first/"/><action type="AbortRequest"/></rule>',
          },
          { name: em1RuleName, xml: legacyRule },
          {
            name: 'Contoso last',
            xml: '<rule name="Contoso last"><match url="^last/(.*)"/><action type="Rewrite" url="/owa/{R:1}"/></rule>',
          },
        );
      },
    });
    const original = await model(agent);
    expect(outcome(completed(await apply(agent, 'op-apply', ['EM1'])), 'EM1').outcome).toBe('Applied');
    expect(outcome(completed(await remove(agent, 'op-remove', ['EM1'])), 'EM1').outcome).toBe('Removed');
    expect((await model(agent)).sites[site]!.rules.map((rule) => rule.name)).toEqual(
      original.sites[site]!.rules.map((rule) => rule.name),
    );
    expect(await model(agent)).toEqual(original);
  });

  it('removing something never applied is Skipped and changes nothing', async () => {
    const agent = await startAgent();
    const before = await readFile(agent.stateFile);
    const outcomes = completed(await remove(agent, 'op-never', ['EM2', 'EM1']));
    expect(outcome(outcomes, 'EM2')).toEqual({
      outcome: 'Skipped',
      detail: 'EM2 was not applied by this agent; nothing to restore',
    });
    expect(outcome(outcomes, 'EM1').outcome).toBe('Skipped');
    expect(await readFile(agent.stateFile)).toEqual(before);
    await expect(readFile(agent.journalFile)).rejects.toThrow(/ENOENT/);
  });
});

// ---- concurrency and long work ------------------------------------------------------------------

describe('AgentService scheduling', () => {
  it('serialises concurrent requests: no two applier calls overlap', async () => {
    let recorder: RecordingApplier | undefined;
    const agent = await startAgent({
      faults: { delayInMs: 200 },
      wrap: (applier) => (recorder = new RecordingApplier(applier)),
    });
    const [first, second, third] = await Promise.all([
      apply(agent, 'op-em2', ['EM2']),
      apply(agent, 'op-em3', ['EM3']),
      remove(agent, 'op-remove-em2', ['EM2']),
    ]);
    expect(outcome(completed(first), 'EM2').outcome).toBe('Applied');
    expect(outcome(completed(second), 'EM3').outcome).toBe('Applied');
    expect(outcome(completed(third), 'EM2').outcome).toBe('Removed');

    const calls = [...recorder!.calls].sort((a, b) => a.start - b.start);
    const changes = calls.filter((call) => call.call === 'apply' || call.call === 'restore');
    expect(changes.map((call) => `${call.call} ${call.target}`)).toEqual([
      'apply MSExchangeOWAAppPool',
      'apply MSExchangeUM',
      'restore MSExchangeOWAAppPool',
    ]);
    for (let index = 1; index < calls.length; index++) {
      expect(
        calls[index]!.start,
        `${calls[index]!.call} ${calls[index]!.target} started before ${calls[index - 1]!.call} ${calls[index - 1]!.target} ended`,
      ).toBeGreaterThanOrEqual(calls[index - 1]!.end);
    }
    expect(recorder!.maxConcurrent).toBe(1);
    const final = await model(agent);
    expect(final.appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
    expect(final.services.MSExchangeUM).toEqual({ status: 'Stopped', startType: 'Disabled' });
  });

  it('long work replies 202 InProgress, then /status shows it Completed, and the same POST then gets 200', async () => {
    const agent = await startAgent({ replyWithinMs: 100, faults: { delayInMs: 400 } });
    const request = {
      operationId: 'op-long',
      packageBase64: base64(signedCatalogue),
      mitigationIds: ['EM2'],
    };
    // The change takes 400 ms: a 202 InProgress is the reply at replyWithinMs, before the work ended.
    const first = await send(agent, 'POST', '/apply', request);
    expect(first.status).toBe(202);
    expect(operation(first)).toEqual({
      operationId: 'op-long',
      status: 'InProgress',
      outcomes: {},
      build: '15.2.1118.7',
      agentVersion: identity.agentVersion,
      time: anyTime,
    });
    expect((await status(agent)).operations).toContainEqual({
      operationId: 'op-long',
      status: 'InProgress',
      outcomes: {},
    });

    // a retry while it runs joins the same operation
    const retry = await send(agent, 'POST', '/apply', request);
    expect(retry.status).toBe(202);

    const done = await waitFor('op-long to show Completed in /status', async () =>
      (await status(agent)).operations.find(
        (reply) => reply.operationId === 'op-long' && reply.status === 'Completed',
      ),
    );
    expect(done.outcomes).toEqual({
      EM2: {
        outcome: 'Applied',
        detail:
          'app pool MSExchangeOWAAppPool stopped, auto-start off; health: 8/9 endpoints healthy, owa down as declared',
      },
    });
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
    expect((await status(agent)).operations.filter((reply) => reply.operationId === 'op-long')).toHaveLength(
      1,
    );

    const again = await send(agent, 'POST', '/apply', request);
    expect(again.status).toBe(200);
    expect(operation(again)).toEqual({
      ...done,
      build: '15.2.1118.7',
      agentVersion: identity.agentVersion,
      time: anyTime,
    });
  });
});

// ---- status, ping, bad requests -----------------------------------------------------------------

describe('AgentService status and ping', () => {
  it('status reports identity, the applied journal ids and the operations', async () => {
    const agent = await startAgent();
    const empty = await status(agent);
    expect(empty).toEqual({
      server: identity.server,
      build: '15.2.1118.7',
      agentVersion: identity.agentVersion,
      time: anyTime,
      applied: [],
      blocked: [],
      drifted: [],
      journal: { entries: 0, pending: 0 },
      operations: [],
    });

    completed(await apply(agent, 'op-status', ['EM3', 'EM1', 'EM2']));
    const after = await status(agent);
    expect(after.applied).toEqual(['EM1', 'EM2', 'EM3']);
    expect(after.journal).toEqual({ entries: 3, pending: 0 });
    expect(after.operations).toEqual([
      expect.objectContaining({ operationId: 'op-status', status: 'Completed' }),
    ]);

    completed(await remove(agent, 'op-status-remove', ['EM2']));
    expect((await status(agent)).applied).toEqual(['EM1', 'EM3']);
  });

  it('status?verify=true re-checks each applied mitigation on the server and reports what was undone by hand as drifted', async () => {
    const agent = await startAgent();
    completed(await apply(agent, 'op-verify', ['EM1', 'EM2', 'EM3']));
    expect(await status(agent, '/status?verify=true')).toMatchObject({
      applied: ['EM1', 'EM2', 'EM3'],
      drifted: [],
    });

    // An admin deletes the rewrite rule in IIS Manager and starts the OWA pool again.
    const state = JSON.parse(await readFile(agent.stateFile, 'utf8')) as SimulatedServer;
    state.sites[site]!.rules = [];
    state.appPools['MSExchangeOWAAppPool'] = { state: 'Started', autoStart: true };
    await writeFile(agent.stateFile, JSON.stringify(state));

    expect(await status(agent, '/status?verify=true')).toMatchObject({
      applied: ['EM3'],
      drifted: ['EM1', 'EM2'],
    });
    expect(agent.logger.named('MitigationDrifted').map((event) => event.fields)).toEqual([
      { mitigationIds: ['EM1', 'EM2'] },
    ]);
    // Without verify, status stays the cheap journal view (the cloud polls it for operation results).
    expect(await status(agent)).toMatchObject({ applied: ['EM1', 'EM2', 'EM3'], drifted: [] });
  });

  it('ping echoes the nonce with server, build and agent version', async () => {
    const agent = await startAgent({ build: '15.2.1544.4' });
    const response = await send(agent, 'POST', '/ping', { nonce: 'n-8f3a' });
    expect(response.status).toBe(200);
    const json: unknown = JSON.parse(response.body);
    expect(pingReply.safeParse(json).success).toBe(true);
    expect(json).toEqual({
      server: identity.server,
      build: '15.2.1544.4',
      agentVersion: identity.agentVersion,
      time: anyTime,
      nonce: 'n-8f3a',
    });

    const bare = await send(agent, 'POST', '/ping');
    expect(bare.status).toBe(200);
    expect(JSON.parse(bare.body)).toEqual({
      server: identity.server,
      build: '15.2.1544.4',
      agentVersion: identity.agentVersion,
      time: anyTime,
    });
  });

  it('reads its build again on every status request and judges applies on it: a Cumulative Update past the fix makes EM1 NotApplicable', async () => {
    let setup: DetectedBuild = { build: '15.2.1118.7', source: 'ExSetup.exe' };
    const agent = await startAgent({ detect: async () => setup });
    expect((await status(agent)).build).toBe('15.2.1118.7');

    setup = { build: '15.2.1118.20', source: 'ExSetup.exe' };
    expect((await status(agent)).build).toBe('15.2.1118.20');
    expect(agent.logger.named('ExchangeBuildChanged')).toMatchObject([
      { fields: { from: '15.2.1118.7', to: '15.2.1118.20', source: 'ExSetup.exe' } },
    ]);
    const reply = completed(await apply(agent, 'op-after-cu', ['EM1']));
    expect(outcome(reply, 'EM1')).toEqual({
      outcome: 'NotApplicable',
      detail: 'build 15.2.1118.20 includes the fix of EM1',
    });

    // A read that fails (PowerShell timed out) keeps the last known build.
    setup = { build: undefined, problem: 'powershell.exe did not finish within 30000 ms' };
    expect((await status(agent)).build).toBe('15.2.1118.20');
    expect(agent.logger.named('BuildNotDetected')).toMatchObject([
      { fields: { problem: /did not finish/, keeping: '15.2.1118.20' } },
    ]);
    badRequest(await send(agent, 'POST', '/ping', { nonce: 'x'.repeat(129) }), /^nonce: /);
  });
});

describe('AgentService bad requests', () => {
  it('bad JSON and bad fields are 400 BadRequest naming the field; nothing runs', async () => {
    const agent = await startAgent();
    const before = await readFile(agent.stateFile);
    const valid = { operationId: 'op-ok', packageBase64: base64(signedCatalogue), mitigationIds: ['EM2'] };

    badRequest(
      await send(agent, 'POST', '/apply', Buffer.from('{"operationId": "op-1",')),
      /^body is not JSON$/,
    );
    badRequest(await send(agent, 'POST', '/apply', Buffer.alloc(0)), /^body is not JSON$/);
    badRequest(await send(agent, 'POST', '/apply', { ...valid, mitigationIds: 'EM2' }), /^mitigationIds: /);
    badRequest(
      await send(agent, 'POST', '/apply', { packageBase64: valid.packageBase64, mitigationIds: ['EM2'] }),
      /^operationId: /,
    );
    badRequest(await send(agent, 'POST', '/apply', { ...valid, packageBase64: '' }), /^packageBase64: /);
    badRequest(await send(agent, 'POST', '/apply', { ...valid, mitigationIds: [] }), /^mitigationIds: /);
    badRequest(await send(agent, 'POST', '/remove', { operationId: 'op-r' }), /^mitigationIds: /);
    badRequest(await send(agent, 'POST', '/apply', [valid]), /^body: /);

    expect(await readFile(agent.stateFile)).toEqual(before);
    expect((await status(agent)).operations).toEqual([]);
  });

  it('hostile bodies are 400: extra keys, a huge id list, path-like operation ids and mitigation ids', async () => {
    const agent = await startAgent();
    const before = await readFile(agent.stateFile);
    const valid = { operationId: 'op-ok', packageBase64: base64(signedCatalogue), mitigationIds: ['EM2'] };

    badRequest(await send(agent, 'POST', '/apply', { ...valid, force: true }), /force/);
    badRequest(
      await send(agent, 'POST', '/remove', { operationId: 'op-r', mitigationIds: ['EM2'], priors: [] }),
      /priors/,
    );
    badRequest(await send(agent, 'POST', '/ping', { nonce: 'n', exec: 'whoami' }), /exec/);
    badRequest(
      await send(agent, 'POST', '/apply', {
        ...valid,
        mitigationIds: Array.from({ length: 101 }, (_, index) => `EM${index}`),
      }),
      /^mitigationIds: /,
    );
    badRequest(
      await send(agent, 'POST', '/apply', {
        ...valid,
        mitigationIds: Array.from({ length: 100_000 }, () => 'EM2'),
      }),
      /^mitigationIds: /,
    );
    badRequest(
      await send(agent, 'POST', '/remove', {
        operationId: 'op-r',
        mitigationIds: Array.from({ length: 100_000 }, () => 'EM2'),
      }),
      /^mitigationIds: /,
    );
    for (const operationId of ['../x', '', '-x', 'a/b', 'x'.repeat(129), 'op\u0000id']) {
      badRequest(await send(agent, 'POST', '/apply', { ...valid, operationId }), /^operationId: /);
    }
    badRequest(
      await send(agent, 'POST', '/apply', { ...valid, operationId: { $ne: null } }),
      /^operationId: /,
    );
    badRequest(
      await send(agent, 'POST', '/apply', { ...valid, mitigationIds: ['../EM2'] }),
      /^mitigationIds\.0: /,
    );
    badRequest(
      await send(agent, 'POST', '/remove', { operationId: 'op-r', mitigationIds: ['EM2', 'EM2\n'] }),
      /^mitigationIds\.1: /,
    );
    badRequest(
      await send(agent, 'POST', '/apply', { ...valid, packageBase64: 'A'.repeat(2 * 1024 * 1024 + 1) }),
      /^packageBase64: /,
    );
    badRequest(
      await send(
        agent,
        'POST',
        '/apply',
        JSON.parse(
          '{"operationId":"op-proto","packageBase64":"x","mitigationIds":["EM2"],"__proto__":{"admin":true}}',
        ) as unknown,
      ),
      /__proto__/,
    );

    expect(await readFile(agent.stateFile)).toEqual(before);
    expect(agent.journal.entries()).toEqual([]);
    expect((await status(agent)).operations).toEqual([]);
  });

  it('unknown path is 404; wrong method is 405', async () => {
    const agent = await startAgent();
    const unknown = await send(agent, 'POST', '/format-c');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: 'NotFound' });
    expect(errorReply.safeParse(JSON.parse(unknown.body)).success).toBe(true);
    expect((await send(agent, 'GET', '/')).status).toBe(404);

    for (const [method, path] of [
      ['GET', '/apply'],
      ['GET', '/remove'],
      ['DELETE', '/status'],
      ['POST', '/status'],
      ['GET', '/ping'],
      ['PUT', '/apply'],
    ] as const) {
      const response = await send(agent, method, path);
      expect(response.status, `${method} ${path}`).toBe(405);
      expect(JSON.parse(response.body)).toEqual({
        error: 'MethodNotAllowed',
        detail: `${method} is not allowed on ${path}`,
      });
    }
    expect(agent.journal.entries()).toEqual([]);
  });
});

/** Edits a Value inside the signed document: OWA's pool becomes the mailbox store service. */
function tamper(signed: string): string {
  const edited = signed.replace('<Value>MSExchangeUM</Value>', '<Value>MSExchangeIS</Value>');
  if (edited === signed) throw new Error('test data: nothing to tamper with');
  return edited;
}

// ---- faithful to Microsoft's scripts (issue 21) and the agent's own safety (issue 19) -----------

/** An applier whose applies can be made to fail from the test, after the fact. */
class SwitchableApplier extends RecordingApplier {
  failApply = false;

  override apply(action: ApplicableAction): Promise<ApplyReport> {
    if (this.failApply && action.kind !== 'DoNothing')
      return Promise.reject(new Error(`IIS refused ${target(action)}`));
    return super.apply(action);
  }
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

const mitigationXml = (
  id: string,
  action: string,
  root = '',
): string => `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4"${root}>
  <Config id="${id}" desc="test">
    <ActionList>${action}</ActionList>
  </Config>
</EOCS>
`;
const disableService = (name: string): string =>
  `<Action type="DisableService" scope="Server" desc="Stop ${name}"><Value>${name}</Value></Action>`;
const disableOwaPool =
  '<Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value><ExpectedDown endpoint="/owa/healthcheck.htm"/></Action>';

describe('AgentService: the Health Manager', () => {
  it('is held stopped and disabled while any pool or service mitigation is active, and restored after the last one goes', async () => {
    const agent = await startAgent();
    const before = await model(agent);
    completed(await apply(agent, 'hm-1', ['EM2', 'EM3']));
    expect((await model(agent)).services.MSExchangeHM).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect((await model(agent)).services.MSExchangeHMRecovery).toEqual({
      status: 'Stopped',
      startType: 'Disabled',
    });

    expect(outcome(completed(await remove(agent, 'hm-2', ['EM2'])), 'EM2').outcome).toBe('Removed');
    // EM3 still needs it held: removing EM2 alone must not start it (before: never held at all).
    expect((await model(agent)).services.MSExchangeHM).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });

    expect(outcome(completed(await remove(agent, 'hm-3', ['EM3'])), 'EM3').outcome).toBe('Removed');
    expect(await model(agent)).toEqual(before);
    expect(agent.journal.entries()).toEqual([]);
  });

  it('trouble holding it is a warning in the reply, not the mitigation failing', async () => {
    const agent = await startAgent({ faults: { failOn: ['MSExchangeHM'] } });
    const em2 = outcome(completed(await apply(agent, 'hm-warn', ['EM2'])), 'EM2');
    expect(em2.outcome).toBe('Applied');
    expect(em2.detail).toMatch(
      /warning: the Health Manager could not be held stopped \(simulated failure stopping MSExchangeHM\)/,
    );
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
  });

  it('trouble restoring it is a warning; the removal is done and the agent retries the Health Manager', async () => {
    const agent = await startAgent({ faults: { failRestoreOn: ['MSExchangeHM'] } });
    completed(await apply(agent, 'hm-r1', ['EM2']));
    const removed = outcome(completed(await remove(agent, 'hm-r2', ['EM2'])), 'EM2');
    expect(removed.outcome).toBe('Removed');
    expect(removed.detail).toMatch(/warning: the Health Manager was not restored .*the agent retries/);
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
    expect((await status(agent)).applied).toEqual([]);
    expect(agent.journal.get('EM2')).toMatchObject({ state: 'removing', priors: [healthManagerPrior] });
  });
});

describe('AgentService: shared targets and changed mitigations', () => {
  it('two mitigations stopping one pool: the pool comes back only when the last one is removed', async () => {
    const agent = await startAgent();
    const signed = pki.sign(mitigationXml('EM40', disableOwaPool + disableService('MSExchangeUM')));
    completed(await apply(agent, 'share-1', ['EM2']));
    expect(outcome(completed(await apply(agent, 'share-2', ['EM40'], signed)), 'EM40').outcome).toBe(
      'Applied',
    );
    expect(agent.journal.get('EM40')?.priors).toContainEqual({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
      state: 'Started',
      autoStart: true,
    });

    completed(await remove(agent, 'share-3', ['EM2']));
    // Before: EM2's removal started the pool EM40 still needs.
    expect((await model(agent)).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
    completed(await remove(agent, 'share-4', ['EM40']));
    expect(await model(agent)).toEqual(defaultSimulatedServer());
  });

  it('a mitigation whose change another one already made is journaled with it, not left "not applied by emfleet"', async () => {
    const agent = await startAgent();
    const signed = pki.sign(mitigationXml('EM41', disableOwaPool));
    completed(await apply(agent, 'same-1', ['EM2']));
    expect(outcome(completed(await apply(agent, 'same-2', ['EM41'], signed)), 'EM41')).toMatchObject({
      outcome: 'AlreadyApplied',
      detail: expect.stringContaining('EM2 made the same change'),
    });
    completed(await remove(agent, 'same-3', ['EM2']));
    expect((await model(agent)).appPools.MSExchangeOWAAppPool?.state).toBe('Stopped');
    completed(await remove(agent, 'same-4', ['EM41']));
    expect(await model(agent)).toEqual(defaultSimulatedServer());
  });

  it('applied again with other actions: the old change is restored first, removal restores exactly what the new one changed', async () => {
    const agent = await startAgent();
    const v1 = pki.sign(mitigationXml('EM50', disableService('MSExchangeUM')));
    const v2 = pki.sign(mitigationXml('EM50', disableService('MSExchangeTransport')));
    completed(await apply(agent, 'v1', ['EM50'], v1));
    expect((await model(agent)).services.MSExchangeUM?.status).toBe('Stopped');
    expect(outcome(completed(await apply(agent, 'v2', ['EM50'], v2)), 'EM50').outcome).toBe('Applied');
    const during = await model(agent);
    expect(during.services.MSExchangeUM).toEqual({ status: 'Running', startType: 'Automatic' });
    expect(during.services.MSExchangeTransport).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect(agent.journal.get('EM50')?.priors).toEqual([
      healthManagerPrior,
      { kind: 'DisableService', service: 'MSExchangeTransport', status: 'Running', startType: 'Automatic' },
    ]);

    expect(outcome(completed(await remove(agent, 'v-remove', ['EM50'])), 'EM50').outcome).toBe('Removed');
    // Before: the journal kept v1's priors, so Transport stayed disabled after "Removed".
    expect(await model(agent)).toEqual(defaultSimulatedServer());
    expect(agent.journal.entries()).toEqual([]);
  });

  it('applied again with only its wording changed: nothing is undone', async () => {
    const agent = await startAgent();
    completed(
      await apply(agent, 'word-1', ['EM51'], pki.sign(mitigationXml('EM51', disableService('MSExchangeUM')))),
    );
    const reworded = pki.sign(
      mitigationXml(
        'EM51',
        disableService('MSExchangeUM').replace(
          'desc="Stop MSExchangeUM"',
          'desc="Disable Unified Messaging"',
        ),
      ),
    );
    expect(outcome(completed(await apply(agent, 'word-2', ['EM51'], reworded)), 'EM51').outcome).toBe(
      'AlreadyApplied',
    );
    expect(agent.journal.get('EM51')?.priors[1]).toMatchObject({
      service: 'MSExchangeUM',
      status: 'Running',
    });
  });

  it('a failed reapply after drift restores the prior state and is not recorded as applied', async () => {
    let switchable: SwitchableApplier | undefined;
    const agent = await startAgent({ wrap: (applier) => (switchable = new SwitchableApplier(applier)) });
    completed(await apply(agent, 'drift-1', ['EM3']));
    // Someone starts UM by hand: drift.
    await writeFile(
      agent.stateFile,
      JSON.stringify(
        defaultWith((state) => holdingHealthManager(state)),
        null,
        2,
      ),
    );
    expect((await status(agent, '/status?verify=true')).drifted).toEqual(['EM3']);
    switchable!.failApply = true;
    const reapplied = outcome(completed(await apply(agent, 'drift-2', ['EM3'])), 'EM3');
    expect(reapplied.outcome).toBe('Failed');
    expect(reapplied.detail).toMatch(/prior state restored; EM3 is no longer applied/);
    // Before: the old entry was put back as applied, so status went on reporting EM3 applied.
    expect((await status(agent)).applied).toEqual([]);
    expect(agent.journal.get('EM3')).toBeUndefined();
    expect(await model(agent)).toEqual(defaultSimulatedServer());
  });
});

describe('AgentService: the server as IIS and the service manager have it', () => {
  it('a rule an application cancels (<clear/> in its web.config) is not reported applied, with the reason', async () => {
    const agent = await startAgent({
      initial: (state) => (state.sites[site]!.applications = { '/mapi': { clear: true }, '/owa': {} }),
    });
    const em1 = outcome(completed(await apply(agent, 'clear-1', ['EM1'])), 'EM1');
    expect(em1.outcome).toBe('Ineffective');
    expect(em1.detail).toContain(
      'rule not in force at /mapi: its web.config clears the inherited rules (<clear/>)',
    );
    expect((await status(agent, '/status?verify=true')).drifted).toEqual(['EM1']);
  });

  it('a rule of the same name is replaced where it stands, and removal puts the old one back at its position', async () => {
    const old = {
      name: em1RuleName,
      xml: `<rule name="${em1RuleName}"><match url="^old"/><action type="AbortRequest"/></rule>`,
    };
    const first = {
      name: 'first',
      xml: '<rule name="first"><match url="^first"/><action type="AbortRequest"/></rule>',
    };
    const last = {
      name: 'last',
      xml: '<rule name="last"><match url="^last"/><action type="AbortRequest"/></rule>',
    };
    const agent = await startAgent({ initial: (state) => (state.sites[site]!.rules = [first, old, last]) });
    completed(await apply(agent, 'pos-1', ['EM1']));
    expect((await model(agent)).sites[site]!.rules.map((rule) => rule.name)).toEqual([
      'first',
      em1RuleName,
      'last',
    ]);
    expect(agent.journal.get('EM1')?.priors).toEqual([
      {
        kind: 'IisUrlRewrite',
        site,
        ruleName: em1RuleName,
        previousRuleXml: old.xml,
        previousRulePosition: 1,
      },
    ]);
    completed(await remove(agent, 'pos-2', ['EM1']));
    expect((await model(agent)).sites[site]!.rules).toEqual([first, old, last]);
  });

  it('running dependents of a stopped service are stopped with it and started again on removal', async () => {
    const agent = await startAgent({
      initial: (state) =>
        (state.services.MSExchangeUMCR = {
          status: 'Running',
          startType: 'Automatic',
          dependsOn: ['MSExchangeUM'],
        }),
    });
    completed(await apply(agent, 'dep-1', ['EM3']));
    expect((await model(agent)).services.MSExchangeUMCR?.status).toBe('Stopped');
    expect(agent.journal.get('EM3')?.priors[1]).toMatchObject({
      kind: 'DisableService',
      service: 'MSExchangeUM',
      runningDependents: ['MSExchangeUMCR'],
    });
    completed(await remove(agent, 'dep-2', ['EM3']));
    expect((await model(agent)).services.MSExchangeUMCR).toEqual({
      status: 'Running',
      startType: 'Automatic',
      dependsOn: ['MSExchangeUM'],
    });
  });

  it('while Exchange setup runs, applies and removals wait (Skipped) and drift is not reported', async () => {
    const agent = await startAgent();
    completed(await apply(agent, 'setup-0', ['EM3']));
    const running = await model(agent);
    running.setupRunning = 'ExSetup.exe is running (process 4242)';
    running.services.MSExchangeUM = { status: 'Running', startType: 'Manual' };
    await writeFile(agent.stateFile, JSON.stringify(running, null, 2));
    const applied = completed(await apply(agent, 'setup-1', ['EM2', 'EM3']));
    expect(outcome(applied, 'EM2')).toEqual({
      outcome: 'Skipped',
      detail: expect.stringContaining('Exchange setup is running (ExSetup.exe is running (process 4242))'),
    });
    expect(outcome(applied, 'EM3').outcome).toBe('Skipped');
    expect(outcome(completed(await remove(agent, 'setup-2', ['EM3'])), 'EM3').outcome).toBe('Skipped');
    expect((await status(agent, '/status?verify=true')).drifted).toEqual([]);
    // The log says why with the catalogue's code, the evidence in the detail.
    expect(agent.logger.named('StatusCheckPaused')[0]?.fields).toEqual({
      reasonCode: 'ExchangeSetupRunning',
      reasonDetail: expect.stringContaining('ExSetup.exe is running (process 4242)') as unknown,
    });
    expect(await model(agent)).toEqual(running);
  });
});

describe('AgentService: freshness of packages', () => {
  it('refuses a package older than the last one it accepted from the feed (Rollback), and accepts the same one again', async () => {
    const agent = await startAgent();
    const at = (minutesAgo: number): Date =>
      new Date(Math.floor(Date.now() / 60_000) * 60_000 - minutesAgo * 60_000);
    const newer = pki.sign(catalogueXml, { signingTime: at(10) });
    const older = pki.sign(catalogueXml, { signingTime: at(20) });
    const verified = verifyPackage(Buffer.from(newer), { trust: pki.trust });
    const feed = verified.ok ? verified.signer.subject : 'unverified';
    expect(outcome(completed(await apply(agent, 'fresh-1', ['EM3'], newer)), 'EM3').outcome).toBe('Applied');
    // Before: the agent accepted any verified package, so a replay of an old one passed.
    const replay = outcome(completed(await apply(agent, 'fresh-2', ['PING1'], older)), 'PING1');
    expect(replay).toEqual({
      outcome: 'Failed',
      detail: `package rejected by the agent: Rollback: this agent already accepted a newer package from ${feed} (signed ${at(10).toISOString()}, sha256 ${sha256(newer)}); this one is signed ${at(20).toISOString()}`,
    });
    expect(outcome(completed(await apply(agent, 'fresh-3', ['PING1'], newer)), 'PING1').outcome).toBe(
      'Applied',
    );
    // Kept on disk, so a restart does not forget it.
    expect((await Journal.open(agent.journalFile)).lastAccepted(feed)).toMatchObject({
      sha256: sha256(newer),
      signingTime: at(10).toISOString(),
    });
  });
});
