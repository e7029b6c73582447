import { describe, expect, it } from 'vitest';
import { defaultSimulatedServer, type SimulatedServer } from '../../lib/agent/appliers/simulated.js';
import { listRollouts } from '../../lib/fleet/rollouts.js';
import { getServer } from '../../lib/fleet/servers.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { fqdn, useWorld } from '../helpers/e2e.js';

/**
 * Living with the Exchange Emergency Mitigation service: where EM (or an admin) already placed a
 * mitigation, emfleet adopts it once instead of re-applying it every hour. Before adoption the
 * agent answered AlreadyApplied without journaling, its status then did not list the mitigation,
 * and every hourly reconcile found it "missing" and started a DriftFound rollout for it.
 */
const world = useWorld();

const waves = [{ name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' }];
const emRuleXml = /<Value site="Default Web Site">(<rule [\s\S]*?<\/rule>)<\/Value>/
  .exec(catalogueXml)![1]!
  .replaceAll('\\\\', '\\');
const withoutConfig = (xml: string, id: string): string =>
  xml.replace(new RegExp(`\\s*<Config id="${id}"[\\s\\S]*?</Config>`), '');

/** A server where EM applied its EM1 rule itself, under its own EEMS name. */
function withEmRule(): SimulatedServer {
  const state = defaultSimulatedServer();
  state.sites['Default Web Site']!.rules.push({ name: 'EEMS EM1 - Autodiscover Rule', xml: emRuleXml });
  return state;
}

describe('a mitigation EM already placed', () => {
  it('is adopted once: reported applied, and hourly reconciles start no rollout for it', async () => {
    const d = await world.deploy([{ name: 'ex11', ring: 'broad', state: withEmRule() }], { waves });
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    expect((await d.rollout('microsoft-000001-apply')).state.state).toBe('Completed');
    expect(await d.outcomes('ex11')).toEqual([
      { PING1: 'Applied', EM1: 'AlreadyApplied', EM2: 'Applied', EM3: 'Applied' },
    ]);
    expect((await getServer(d.tables, 'contoso', fqdn('ex11'))).reportedApplied).toEqual([
      'EM1',
      'EM2',
      'EM3',
      'PING1',
    ]);

    for (let hour = 0; hour < 3; hour++) {
      await d.host.runTimer('reconcile');
      await d.host.idle();
    }
    expect((await listRollouts(d.tables)).map((rollout) => rollout.partitionKey)).toEqual([
      'microsoft-000001-apply',
    ]);
    expect(d.logger.named('DriftFound')).toEqual([]);
    expect(d.logger.named('ReportedStateChanged')).toEqual([]);
    expect(await d.outcomes('ex11')).toHaveLength(1);
    expect((await getServer(d.tables, 'contoso', fqdn('ex11'))).reportedApplied).toEqual([
      'EM1',
      'EM2',
      'EM3',
      'PING1',
    ]);
    expect(
      (await d.agents.get('ex11')!.readState()).sites['Default Web Site']!.rules.map((rule) => rule.name),
    ).toEqual(['EEMS EM1 - Autodiscover Rule']);
  });

  it('withdrawn: the adopted rule is removed (its prior state is "absent")', async () => {
    const d = await world.deploy([{ name: 'ex12', ring: 'broad', state: withEmRule() }], { waves });
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    world.serve(world.signed(withoutConfig(catalogueXml, 'EM1'), 0));
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    expect((await d.rollout('microsoft-000002-remove')).state.state).toBe('Completed');
    expect((await d.outcomes('ex12')).at(-1)).toEqual({ EM1: 'Removed' });
    expect((await d.agents.get('ex12')!.readState()).sites['Default Web Site']!.rules).toEqual([]);
  });
});
