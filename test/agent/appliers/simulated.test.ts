import { describe, it, expect, beforeEach, afterAll } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplierError, type ApplicableAction, type PriorState } from '../../../lib/agent/applier.js';
import {
  SimulatedApplier,
  defaultSimulatedServer,
  type SimulatedServer,
} from '../../../lib/agent/appliers/simulated.js';
import { ruleFingerprint } from '../../../lib/agent/rules.js';
import { EmfleetError } from '../../../lib/errors.js';
import { manualTimers } from '../../helpers/clock.js';
import { waitFor } from '../../helpers/wait.js';

// ---- test data ----------------------------------------------------------------------------------

const site = 'Default Web Site';
const ruleName = 'EEMS EM1 - Autodiscover Rule';
const ruleXml = `<rule name="${ruleName}" stopProcessing="true"><match url=".*autodiscover\\.json.*Powershell.*"/><action type="AbortRequest"/></rule>`;

const rewrite = (xml = ruleXml, name = ruleName, onSite = site): ApplicableAction => ({
  kind: 'IisUrlRewrite',
  scope: 'Server',
  description: 'rewrite',
  site: onSite,
  ruleName: name,
  ruleXml: xml,
});
const pool = (appPool = 'MSExchangeOWAAppPool'): ApplicableAction => ({
  kind: 'DisableAppPool',
  scope: 'Server',
  description: 'stop pool',
  appPool,
});
const service = (name = 'MSExchangeUM'): ApplicableAction => ({
  kind: 'DisableService',
  scope: 'Server',
  description: 'stop service',
  service: name,
});
const nothing: ApplicableAction = {
  kind: 'DoNothing',
  scope: 'Server',
  description: 'ping',
  value: 'DoNothing',
};

const directories: string[] = [];
let stateFile: string;

beforeEach(async () => {
  const directory = await mkdtemp(join(tmpdir(), 'emfleet-simulated-'));
  directories.push(directory);
  stateFile = join(directory, 'state', 'server.json');
});

afterAll(async () => {
  await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
});

/** The model as stored, read without the applier. */
async function stored(): Promise<SimulatedServer> {
  return JSON.parse(await readFile(stateFile, 'utf8')) as SimulatedServer;
}

async function seed(mutate: (state: SimulatedServer) => void): Promise<SimulatedServer> {
  const state = defaultSimulatedServer();
  mutate(state);
  await new SimulatedApplier(stateFile).read(); // creates the directory and file
  await writeFile(stateFile, JSON.stringify(state, null, 2));
  return state;
}

async function expectApplierError(
  promise: Promise<unknown>,
  code: string,
  message: RegExp,
  call = 'the call',
): Promise<void> {
  const error: unknown = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected ${call} to fail with an ApplierError`).toBeInstanceOf(ApplierError);
  expect(error).toBeInstanceOf(EmfleetError);
  expect((error as ApplierError).code).toBe(code);
  expect((error as ApplierError).message).toMatch(message);
}

// ---- the model ----------------------------------------------------------------------------------

describe('SimulatedApplier state file', () => {
  it('is created with the default Exchange model on first use', async () => {
    await expect(readFile(stateFile)).rejects.toThrow(/ENOENT/);
    const applier = new SimulatedApplier(stateFile);
    const state = await applier.read();
    expect(state).toEqual(defaultSimulatedServer());
    expect(await stored()).toEqual(defaultSimulatedServer());
    // the parts mitigations touch are there, running
    expect(state.sites[site]).toEqual({ rules: [] });
    expect(state.appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
    expect(state.services.MSExchangeUM).toEqual({ status: 'Running', startType: 'Automatic' });
    expect(state.services.MSExchangeHM).toEqual({ status: 'Running', startType: 'Automatic' });
  });

  it('answers a service status, as the start-up wait for IIS reads it', async () => {
    await seed((state) => {
      state.services.WAS = { status: 'Stopped', startType: 'Automatic' };
    });
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.serviceStatus('W3SVC')).toBe('Running');
    expect(await applier.serviceStatus('WAS')).toBe('Stopped');
    await expectApplierError(
      applier.serviceStatus('NoSuchService'),
      'NotFound',
      /no Windows service "NoSuchService"/,
    );
  });

  it('a capture on first use also creates the file and reads the default', async () => {
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.capture(pool())).toEqual({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
      state: 'Started',
      autoStart: true,
    });
    expect(await stored()).toEqual(defaultSimulatedServer());
  });

  it('a state file that is not JSON is ApplierError StateCorrupt naming the file', async () => {
    await seed(() => undefined);
    await writeFile(stateFile, '{"sites": {');
    await expectApplierError(
      new SimulatedApplier(stateFile).read(),
      'StateCorrupt',
      new RegExp(stateFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
    );
  });

  it('a state file of the wrong shape is ApplierError StateCorrupt naming the file and the field', async () => {
    await seed((state) => {
      (state.appPools as Record<string, unknown>).MSExchangeOWAAppPool = { state: 'Paused', autoStart: true };
    });
    const applier = new SimulatedApplier(stateFile);
    await expectApplierError(
      applier.read(),
      'StateCorrupt',
      /server\.json: appPools\.MSExchangeOWAAppPool\.state/,
    );
    await expectApplierError(applier.apply(pool('MSExchangeECPAppPool')), 'StateCorrupt', /server\.json/);
  });

  it('a hand edit of the file after a read is seen by the next read, even one of the same size', async () => {
    const applier = new SimulatedApplier(stateFile);
    await applier.apply(pool());
    expect(await applier.isApplied(service())).toBe(false);
    // "Running" and "Stopped", "Automatic" and "Disabled ": the file keeps its size, only its contents and time change.
    const text = await readFile(stateFile, 'utf8');
    const edited = text.replace(
      /("MSExchangeUM": \{\s*"status": )"Running"(,\s*"startType": )"Automatic"/,
      '$1"Stopped"$2"Disabled" ',
    );
    expect(edited).not.toBe(text);
    expect(edited.length).toBe(text.length);
    await writeFile(stateFile, edited);
    expect(await applier.isApplied(service())).toBe(true);
    expect((await applier.read()).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Stopped',
      autoStart: false,
    });
  });

  it('a read hands out a copy: changing it changes neither the file nor the next read', async () => {
    const applier = new SimulatedApplier(stateFile);
    const first = await applier.read();
    first.appPools.MSExchangeOWAAppPool = { state: 'Stopped', autoStart: false };
    expect((await applier.read()).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Started',
      autoStart: true,
    });
    expect((await stored()).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
  });

  it('a state file deleted after use is the default server again, and is written again', async () => {
    const applier = new SimulatedApplier(stateFile);
    await applier.apply(pool());
    await rm(join(stateFile, '..'), { recursive: true, force: true });
    expect(await applier.read()).toEqual(defaultSimulatedServer());
    await applier.apply(service());
    expect((await stored()).services.MSExchangeUM).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect((await stored()).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Started', autoStart: true });
  });

  it('writes atomically: no temporary file is left beside the state file', async () => {
    const applier = new SimulatedApplier(stateFile);
    await applier.apply(pool());
    await applier.apply(service());
    await applier.apply(rewrite());
    const files = await readdir(join(stateFile, '..'));
    expect(files).toEqual(['server.json']);
  });
});

// ---- per kind -----------------------------------------------------------------------------------

describe('SimulatedApplier actions', () => {
  it('IisUrlRewrite: capture (no rule), apply adds the rule, found by content, restore removes it', async () => {
    const applier = new SimulatedApplier(stateFile);
    const before = await applier.read();
    const prior = await applier.capture(rewrite());
    expect(prior).toEqual({ kind: 'IisUrlRewrite', site, ruleName, previousRuleXml: null });
    expect(await applier.isApplied(rewrite())).toBe(false);

    await applier.apply(rewrite());
    expect((await stored()).sites[site]!.rules).toEqual([{ name: ruleName, xml: ruleXml }]);
    expect((await stored()).sites['Exchange Back End']!.rules).toEqual([]);
    expect(await applier.isApplied(rewrite())).toBe(true);
    // applying again does not duplicate the rule
    await applier.apply(rewrite());
    expect((await stored()).sites[site]!.rules).toHaveLength(1);

    await applier.restore(prior);
    expect(await stored()).toEqual(before);
    expect(await applier.isApplied(rewrite())).toBe(false);
  });

  it('IisUrlRewrite: a rule of the same name is captured, replaced, and put back by restore', async () => {
    const theirs = `<rule name="${ruleName}"><match url="^owa/evil"/><action type="AbortRequest"/></rule>`;
    const before = await seed((state) => {
      state.sites[site]!.rules.push({ name: ruleName, xml: theirs });
    });
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.isApplied(rewrite())).toBe(false);
    const prior = await applier.capture(rewrite());
    expect(prior).toEqual({
      kind: 'IisUrlRewrite',
      site,
      ruleName,
      previousRuleXml: theirs,
      previousRulePosition: 0,
    });
    await applier.apply(rewrite());
    expect((await stored()).sites[site]!.rules).toEqual([{ name: ruleName, xml: ruleXml }]);
    await applier.restore(prior);
    expect(await stored()).toEqual(before);
  });

  it('IisUrlRewrite: isApplied finds the rule by content under another name and on the named site only', async () => {
    const renamed = `<rule stopProcessing="true" name="Contoso autodiscover block">\n  <match url=".*autodiscover\\.json.*Powershell.*" />\n  <action type="AbortRequest" />\n</rule>`;
    await seed((state) => {
      state.sites['Exchange Back End']!.rules.push({ name: ruleName, xml: ruleXml });
    });
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.isApplied(rewrite()), 'a rule on another site does not count').toBe(false);
    await seed((state) => {
      state.sites[site]!.rules.push({ name: 'Contoso autodiscover block', xml: renamed });
    });
    expect(await applier.isApplied(rewrite())).toBe(true);
  });

  it('DisableAppPool: capture, apply (Stopped, auto-start off), isApplied, restore', async () => {
    const applier = new SimulatedApplier(stateFile);
    const before = await applier.read();
    const prior = await applier.capture(pool());
    expect(prior).toEqual({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
      state: 'Started',
      autoStart: true,
    });
    expect(await applier.isApplied(pool())).toBe(false);
    await applier.apply(pool());
    const after = await stored();
    expect(after.appPools.MSExchangeOWAAppPool).toEqual({ state: 'Stopped', autoStart: false });
    expect({
      ...after,
      appPools: { ...after.appPools, MSExchangeOWAAppPool: before.appPools.MSExchangeOWAAppPool },
    }).toEqual(before);
    expect(await applier.isApplied(pool())).toBe(true);
    await applier.restore(prior);
    expect(await stored()).toEqual(before);
  });

  it('DisableAppPool: a pool stopped but still auto-starting is not applied', async () => {
    await seed((state) => {
      state.appPools.MSExchangeOWAAppPool = { state: 'Stopped', autoStart: true };
    });
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.isApplied(pool())).toBe(false);
    const prior = await applier.capture(pool());
    expect(prior).toEqual({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
      state: 'Stopped',
      autoStart: true,
    });
    await applier.apply(pool());
    await applier.restore(prior);
    expect((await stored()).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Stopped', autoStart: true });
  });

  it('DisableService: capture, apply (Stopped, Disabled), isApplied, restore', async () => {
    await seed((state) => {
      state.services.MSExchangeUM = { status: 'Running', startType: 'AutomaticDelayedStart' };
    });
    const applier = new SimulatedApplier(stateFile);
    const before = await applier.read();
    const prior = await applier.capture(service());
    expect(prior).toEqual({
      kind: 'DisableService',
      service: 'MSExchangeUM',
      status: 'Running',
      startType: 'AutomaticDelayedStart',
    });
    expect(await applier.isApplied(service())).toBe(false);
    await applier.apply(service());
    expect((await stored()).services.MSExchangeUM).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect(await applier.isApplied(service())).toBe(true);
    await applier.restore(prior);
    expect(await stored()).toEqual(before);
  });

  it('DisableService: stopped but Manual is not applied', async () => {
    await seed((state) => {
      state.services.MSExchangeUM = { status: 'Stopped', startType: 'Manual' };
    });
    expect(await new SimulatedApplier(stateFile).isApplied(service())).toBe(false);
  });

  it('DoNothing: always applied, and changes nothing', async () => {
    const applier = new SimulatedApplier(stateFile);
    await applier.read();
    const bytes = await readFile(stateFile);
    expect(await applier.capture(nothing)).toEqual({ kind: 'DoNothing' });
    expect(await applier.isApplied(nothing)).toBe(true);
    await applier.apply(nothing);
    await applier.restore({ kind: 'DoNothing' });
    expect(await readFile(stateFile)).toEqual(bytes);
  });
});

describe('SimulatedApplier unknown targets', () => {
  const unknown: Array<[string, ApplicableAction, PriorState, RegExp]> = [
    [
      'app pool',
      pool('NoSuchAppPool'),
      { kind: 'DisableAppPool', appPool: 'NoSuchAppPool', state: 'Started', autoStart: true },
      /NoSuchAppPool/,
    ],
    [
      'service',
      service('NoSuchService'),
      { kind: 'DisableService', service: 'NoSuchService', status: 'Running', startType: 'Automatic' },
      /NoSuchService/,
    ],
    [
      'site',
      rewrite(ruleXml, ruleName, 'No Such Site'),
      { kind: 'IisUrlRewrite', site: 'No Such Site', ruleName, previousRuleXml: null },
      /No Such Site/,
    ],
  ];

  for (const [what, action, prior, named] of unknown) {
    it(`an unknown ${what} is ApplierError NotFound for capture, isApplied, apply and restore, and nothing is created`, async () => {
      const applier = new SimulatedApplier(stateFile);
      await applier.read();
      const bytes = await readFile(stateFile);
      await expectApplierError(applier.capture(action), 'NotFound', named, 'capture');
      await expectApplierError(applier.isApplied(action), 'NotFound', named, 'isApplied');
      await expectApplierError(applier.apply(action), 'NotFound', named, 'apply');
      await expectApplierError(applier.restore(prior), 'NotFound', named, 'restore');
      expect((await readFile(stateFile)).toString()).toBe(bytes.toString());
    });
  }
});

describe('SimulatedApplier faults', () => {
  it('failOn makes a change to that name fail with InjectedFault and leaves the state alone', async () => {
    const applier = new SimulatedApplier(stateFile, {
      failOn: ['MSExchangeOWAAppPool', ruleName],
      failRestoreOn: ['MSExchangeOWAAppPool'],
    });
    await applier.read();
    const bytes = await readFile(stateFile);
    await expectApplierError(applier.apply(pool()), 'InjectedFault', /MSExchangeOWAAppPool/);
    await expectApplierError(applier.apply(rewrite()), 'InjectedFault', /EEMS EM1/);
    await expectApplierError(
      applier.restore({
        kind: 'DisableAppPool',
        appPool: 'MSExchangeOWAAppPool',
        state: 'Started',
        autoStart: true,
      }),
      'InjectedFault',
      /MSExchangeOWAAppPool/,
    );
    expect(await readFile(stateFile)).toEqual(bytes);
    // other names still work; reads are not faulted
    await applier.apply(service());
    expect(await applier.isApplied(service())).toBe(true);
    expect(await applier.isApplied(pool())).toBe(false);
  });

  it('delayInMs delays every change', async () => {
    const timers = manualTimers();
    const applier = new SimulatedApplier(stateFile, { delayInMs: 150 }, { timers });
    await applier.read();
    let applied = false;
    const applying = applier.apply(pool()).then(() => (applied = true));
    const [delay] = await waitFor('the applier to wait', () =>
      timers.pending.length > 0 ? timers.pending : undefined,
    );
    expect(delay!.delayMs).toBe(150);
    // Nothing changed while it waits.
    expect(applied).toBe(false);
    expect(await applier.isApplied(pool())).toBe(false);
    delay!.fire();
    await applying;
    expect(await applier.isApplied(pool())).toBe(true);
  });
});

// ---- rule fingerprints --------------------------------------------------------------------------

describe("SimulatedApplier as IIS and Microsoft's scripts behave", () => {
  const other = `<rule name="${ruleName}"><match url="^other"/><action type="AbortRequest"/></rule>`;

  it('refuses to put a rule back beside an inherited one of the same name (HTTP 500.19 for the whole site), as apply does', async () => {
    await seed(
      (state) => (state.sites[site]!.inheritedRules = [{ name: ruleName.toUpperCase(), xml: other }]),
    );
    const applier = new SimulatedApplier(stateFile);
    await expectApplierError(
      applier.apply(rewrite()),
      'DuplicateRule',
      /already inherits a rule named/,
      'apply',
    );
    const prior: PriorState = {
      kind: 'IisUrlRewrite',
      site,
      ruleName,
      previousRuleXml: other,
      previousRulePosition: 0,
    };
    await expectApplierError(applier.restore(prior), 'DuplicateRule', /HTTP 500\.19/, 'restore');
    expect((await stored()).sites[site]!.rules).toEqual([]);
  });

  it('says plainly that URL Rewrite is not installed', async () => {
    await seed((state) => (state.urlRewriteInstalled = false));
    await expectApplierError(
      new SimulatedApplier(stateFile).apply(rewrite()),
      'UrlRewriteMissing',
      /URL Rewrite is not installed \(no RewriteModule in globalModules\)/,
    );
  });

  it('a rule cancelled in one application is reported not in force there, and not applied', async () => {
    await seed(
      (state) =>
        (state.sites[site]!.applications = { '/owa': {}, '/mapi': { remove: [ruleName.toLowerCase()] } }),
    );
    const applier = new SimulatedApplier(stateFile);
    expect(await applier.apply(rewrite())).toEqual({
      notInForce: [`/mapi: its web.config removes the rule (<remove name="${ruleName}"/>)`],
    });
    expect(await applier.isApplied(rewrite())).toBe(false);
  });

  it('captures, holds and restores the Health Manager (MSExchangeHM and MSExchangeHMRecovery)', async () => {
    await seed(
      (state) =>
        (state.services.MSExchangeHMRecovery = { status: 'Running', startType: 'AutomaticDelayedStart' }),
    );
    const applier = new SimulatedApplier(stateFile);
    const prior = await applier.captureHealthManager();
    expect(prior).toEqual({
      kind: 'HealthManager',
      services: [
        { service: 'MSExchangeHM', status: 'Running', startType: 'Automatic' },
        { service: 'MSExchangeHMRecovery', status: 'Running', startType: 'AutomaticDelayedStart' },
      ],
    });
    await applier.holdHealthManager();
    expect((await stored()).services.MSExchangeHMRecovery).toEqual({
      status: 'Stopped',
      startType: 'Disabled',
    });
    await applier.restore(prior);
    expect((await stored()).services.MSExchangeHMRecovery).toEqual({
      status: 'Running',
      startType: 'AutomaticDelayedStart',
    });
  });

  it('an AlwaysRunning pool is set OnDemand with auto-start off, and put back AlwaysRunning', async () => {
    await seed(
      (state) =>
        (state.appPools.MSExchangeOWAAppPool = {
          state: 'Started',
          autoStart: true,
          startMode: 'AlwaysRunning',
        }),
    );
    const applier = new SimulatedApplier(stateFile);
    const prior = await applier.capture(pool());
    expect(prior).toEqual({
      kind: 'DisableAppPool',
      appPool: 'MSExchangeOWAAppPool',
      state: 'Started',
      autoStart: true,
      startMode: 'AlwaysRunning',
    });
    await applier.apply(pool());
    expect((await stored()).appPools.MSExchangeOWAAppPool).toEqual({ state: 'Stopped', autoStart: false });
    await applier.restore(prior);
    expect((await stored()).appPools.MSExchangeOWAAppPool).toEqual({
      state: 'Started',
      autoStart: true,
      startMode: 'AlwaysRunning',
    });
  });

  it('reports Exchange setup running', async () => {
    expect(await new SimulatedApplier(stateFile).exchangeSetupRunning()).toBeUndefined();
    await seed((state) => (state.setupRunning = 'ExSetup.exe is running (process 7)'));
    expect(await new SimulatedApplier(stateFile).exchangeSetupRunning()).toBe(
      'ExSetup.exe is running (process 7)',
    );
  });
});

describe('ruleFingerprint', () => {
  const base =
    '<rule name="EM1" stopProcessing="true"><match url=".*autodiscover\\.json.*Powershell.*"/><action type="AbortRequest"/></rule>';

  it('ignores the rule name', () => {
    expect(ruleFingerprint(base.replace('name="EM1"', 'name="Something else"'))).toBe(ruleFingerprint(base));
    expect(ruleFingerprint(base.replace('name="EM1" ', ''))).toBe(ruleFingerprint(base));
  });

  it('ignores attribute order and formatting whitespace', () => {
    const reformatted = `<rule   stopProcessing="true"
        name="EM1">
      <match url=".*autodiscover\\.json.*Powershell.*" />
      <action    type="AbortRequest"></action>
    </rule>`;
    expect(ruleFingerprint(reformatted)).toBe(ruleFingerprint(base));
  });

  it('ignores whitespace around text content', () => {
    const a =
      '<rule name="a"><conditions><add input="{URL}" pattern="x"/></conditions><note>  hello </note></rule>';
    const b =
      '<rule name="b"><conditions>\n  <add pattern="x" input="{URL}"/>\n</conditions><note>hello</note></rule>';
    expect(ruleFingerprint(a)).toBe(ruleFingerprint(b));
  });

  it('does not ignore a changed pattern, action, attribute value or child name attribute', () => {
    const print = ruleFingerprint(base);
    expect(ruleFingerprint(base.replace('Powershell', 'PowerShell'))).not.toBe(print);
    expect(ruleFingerprint(base.replace('.*autodiscover', 'autodiscover'))).not.toBe(print);
    expect(ruleFingerprint(base.replace('AbortRequest', 'None'))).not.toBe(print);
    expect(ruleFingerprint(base.replace('stopProcessing="true"', 'stopProcessing="false"'))).not.toBe(print);
    expect(ruleFingerprint(base.replace('<action type="AbortRequest"/>', ''))).not.toBe(print);
    const withVariable = (name: string): string =>
      `<rule name="r"><serverVariables><set name="${name}" value="1"/></serverVariables></rule>`;
    expect(ruleFingerprint(withVariable('X'))).not.toBe(ruleFingerprint(withVariable('Y')));
  });
});
