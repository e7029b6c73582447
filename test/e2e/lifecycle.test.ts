import { describe, expect, it } from 'vitest';
import { defaultSimulatedServer, type SimulatedServer } from '../../lib/agent/appliers/simulated.js';
import { listRollouts } from '../../lib/fleet/rollouts.js';
import { buildMismatch } from '../../lib/fleet/agent-facts.js';
import { getServer } from '../../lib/fleet/servers.js';
import { emfleetVersion } from '../../lib/version.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { allApplied, type Deployment, fqdn, useWorld } from '../helpers/e2e.js';

/**
 * What happens to a mitigation after it is applied: withdrawn by Microsoft, made unnecessary by an
 * update, removed by hand. Each ends with the simulated server's IIS, app pools and services read
 * back from the agent's state file.
 */
const world = useWorld();

const waves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
];
const withoutConfig = (xml: string, id: string): string =>
  xml.replace(new RegExp(`\\s*<Config id="${id}"[\\s\\S]*?</Config>`), '');

/** A server with a rewrite rule of its own and the UM service already stopped by an admin. */
function lived(): SimulatedServer {
  const state = defaultSimulatedServer();
  state.sites['Default Web Site']!.rules.push({
    name: 'Local rule',
    xml: '<rule name="Local rule"><match url="^legacy/"/><action type="Redirect" url="/"/></rule>',
  });
  state.services['MSExchangeUM'] = { status: 'Stopped', startType: 'Manual' };
  return state;
}

async function rolledOut(d: Deployment): Promise<void> {
  await d.host.runTimer('pollOcs');
  await d.host.idle();
  expect((await d.rollout('microsoft-000001-apply')).state.state).toBe('Completed');
}

/** The one rollout reconcile started (its id carries the hour). */
async function reconciled(d: Deployment): Promise<string> {
  await d.host.runTimer('reconcile');
  await d.host.idle();
  const ids = (await listRollouts(d.tables))
    .map((rollout) => rollout.partitionKey)
    .filter((id) => id.includes('-reconcile-'));
  expect(ids).toHaveLength(1);
  return ids[0]!;
}

describe('a mitigation after it was applied', () => {
  it('withdrawn in a newer package: a remove rollout takes it off and puts back exactly what was there', async () => {
    const d = await world.deploy(
      [
        { name: 'ex01', ring: 'canary', state: lived() },
        { name: 'ex02', ring: 'broad' },
      ],
      { waves },
    );
    await rolledOut(d);
    const mitigated = await d.agents.get('ex01')!.readState();
    expect(mitigated.sites['Default Web Site']!.rules.map((rule) => rule.name)).toEqual([
      'Local rule',
      'EEMS EM1 - Autodiscover Rule',
    ]);
    expect(mitigated.services['MSExchangeUM']).toEqual({ status: 'Stopped', startType: 'Disabled' });

    // Microsoft withdraws EM1 and EM3; EM2 stays.
    world.serve(world.signed(withoutConfig(withoutConfig(catalogueXml, 'EM1'), 'EM3'), 0));
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    expect((await listRollouts(d.tables)).map((rollout) => [rollout.partitionKey, rollout.state])).toEqual([
      ['microsoft-000002-remove', 'Completed'],
      ['microsoft-000001-apply', 'Completed'],
    ]);
    expect(await d.waveCounts('microsoft-000002-remove')).toEqual([
      ['canary', 1, 1, 0, 0],
      ['broad', 1, 1, 0, 0],
    ]);
    const owaStopped = { state: 'Stopped', autoStart: false };
    // EM2 (a pool) is still applied, so the Health Manager stays held stopped and disabled.
    const held = { status: 'Stopped', startType: 'Disabled' };
    for (const [name, before] of [
      ['ex01', lived()],
      ['ex02', defaultSimulatedServer()],
    ] as const) {
      expect(await d.outcomes(name)).toEqual([allApplied, { EM1: 'Removed', EM3: 'Removed' }]);
      expect(await d.agents.get(name)!.readState()).toEqual({
        ...before,
        appPools: { ...before.appPools, MSExchangeOWAAppPool: owaStopped },
        services: { ...before.services, MSExchangeHM: held, MSExchangeHMRecovery: held },
      });
      expect((await getServer(d.tables, 'contoso', fqdn(name))).reportedApplied).toEqual(['EM2', 'PING1']);
    }
  });

  it('on a server updated past the fixing build: the agent reports it, nobody types it, and reconcile removes it there and nowhere else', async () => {
    const d = await world.deploy(
      [
        { name: 'ex03', ring: 'canary' },
        { name: 'ex04', ring: 'broad' },
      ],
      { waves },
    );
    await rolledOut(d);
    expect(await getServer(d.tables, 'contoso', fqdn('ex04'))).toMatchObject({
      build: '15.2.1118.7',
      registeredBuild: '15.2.1118.7',
      agentVersion: emfleetVersion,
    });
    // EM1 covers 15.2 up to 15.2.1118.19: ex04 gets a Security Update past it; the agent keeps running.
    await d.agents.get('ex04')!.installUpdate('15.02.1118.020');

    const id = await reconciled(d);
    expect(d.logger.named('BuildChanged')).toMatchObject([
      {
        fields: {
          server: fqdn('ex04'),
          from: '15.2.1118.7',
          to: '15.2.1118.20',
          registeredBuild: '15.2.1118.7',
        },
      },
    ]);
    const row = await getServer(d.tables, 'contoso', fqdn('ex04'));
    expect(row).toMatchObject({ build: '15.2.1118.20', registeredBuild: '15.2.1118.7' });
    expect(buildMismatch(row)).toEqual({ registered: '15.2.1118.7', reported: '15.2.1118.20' });
    expect((await d.rollout(id)).state.state).toBe('Completed');
    expect(await d.waveCounts(id)).toEqual([
      ['canary', 0, 0, 0, 0],
      ['broad', 1, 1, 0, 0],
    ]);
    expect(await d.outcomes('ex04')).toEqual([allApplied, { EM1: 'Removed' }]);
    expect((await d.agents.get('ex04')!.readState()).sites['Default Web Site']!.rules).toEqual([]);
    expect((await getServer(d.tables, 'contoso', fqdn('ex04'))).reportedApplied).toEqual([
      'EM2',
      'EM3',
      'PING1',
    ]);
    expect(await d.outcomes('ex03')).toEqual([allApplied]);
    expect(
      (await d.agents.get('ex03')!.readState()).sites['Default Web Site']!.rules.map((rule) => rule.name),
    ).toEqual(['EEMS EM1 - Autodiscover Rule']);
  });

  // Reconcile's status sweep asks the agent, which re-checks each applied mitigation on the server.
  it('removed by hand on one server: reconcile puts it back there', async () => {
    const d = await world.deploy(
      [
        { name: 'ex05', ring: 'canary' },
        { name: 'ex06', ring: 'broad' },
      ],
      { waves },
    );
    await rolledOut(d);
    const agent = d.agents.get('ex06')!;
    const mitigated = await agent.readState();
    // An admin deletes the rewrite rule in IIS Manager.
    await agent.writeState({
      ...mitigated,
      sites: { ...mitigated.sites, 'Default Web Site': { rules: [] } },
    });

    const id = await reconciled(d);
    expect((await d.rollout(id)).state.state).toBe('Completed');
    expect(await d.waveCounts(id)).toEqual([
      ['canary', 0, 0, 0, 0],
      ['broad', 1, 1, 0, 0],
    ]);
    expect((await d.outcomes('ex06')).at(-1)).toEqual({ EM1: 'Applied' });
    expect(await agent.readState()).toEqual(mitigated);
    expect(await d.outcomes('ex05')).toEqual([allApplied]);
  });
});
