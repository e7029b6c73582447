import { describe, expect, it } from 'vitest';
import { owaPoolTakesDownEcp } from '../../lib/agent/appliers/simulated-front-end.js';
import { useWorld } from '../helpers/e2e.js';
import { renderReason } from '../../lib/model/reasons.js';

/**
 * The health gate end to end (issue 11), as `npm start --break 2` shows it: on the first two canary
 * servers, stopping the OWA pool (EM2, which declares only OWA down) also takes ECP down. Their
 * agents see it in their probes, roll EM2 back from the journal, and the canary's gate halts the
 * rollout, naming the servers and the endpoint; no server of a later wave is touched.
 */
const world = useWorld();

describe('a change that degrades servers', () => {
  it('--break 2: both canaries RolledBack, exactly as they were, the rollout Halted at the canary naming them and ECP, no later wave touched', async () => {
    const d = await world.deploy(
      [
        { name: 'ex11', ring: 'canary', couplings: owaPoolTakesDownEcp },
        { name: 'ex12', ring: 'canary', couplings: owaPoolTakesDownEcp },
        { name: 'ex13', ring: 'broad' },
        { name: 'ex14', ring: 'broad' },
      ],
      {
        waves: [
          { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 2, maxErrors: 0, bake: 'PT1S' },
          { name: 'early', select: { percent: 50 }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
          { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
        ],
      },
    );
    const before = await Promise.all(['ex11', 'ex12'].map((name) => d.agents.get(name)!.readState()));
    await d.host.runTimer('pollOcs');
    await d.settled('microsoft-000001-apply');
    await d.host.idle();

    const { state, waves } = await d.rollout('microsoft-000001-apply');
    expect(state.state).toBe('Halted');
    // the two canaries run at once: either may be named first
    expect(renderReason(state)).toMatch(
      /^WaveHalted: wave 1 had 2 failures, over its budget of 0 \((ex11|ex12)\.contoso\.com \[EM2 RolledBack: ecp\], (ex11|ex12)\.contoso\.com \[EM2 RolledBack: ecp\]\)$/,
    );
    expect(state.reasonDetail).toContain('ex11.contoso.com [EM2 RolledBack: ecp]');
    expect(state.reasonDetail).toContain('ex12.contoso.com [EM2 RolledBack: ecp]');
    expect(await d.waveCounts('microsoft-000001-apply')).toEqual([
      ['canary', 2, 0, 2, 0],
      ['early', 1, 0, 0, 0],
      ['broad', 1, 0, 0, 0],
    ]);
    expect(waves.slice(1).map((wave) => wave.dispatched)).toEqual([0, 0]);

    for (const [index, name] of ['ex11', 'ex12'].entries()) {
      expect(await d.outcomes(name)).toEqual([
        { PING1: 'Applied', EM1: 'Applied', EM2: 'RolledBack', EM3: 'Applied' },
      ]);
      const [result] = await d.results(name);
      expect(result!.outcomes.EM2).toMatchObject({
        endpoints: ['/ecp/healthcheck.htm'],
        detail: expect.stringContaining('ecp: 503 after apply (was 200); rolled back to the prior state'),
      });
      // EM2 is undone exactly: the pool is as it was before the rollout, and the journal does not hold EM2
      const after = await d.agents.get(name)!.readState();
      expect(after.appPools).toEqual(before[index]!.appPools);
      expect(d.agents.get(name)!.running!.service.status().applied).toEqual(['EM1', 'EM3', 'PING1']);
    }
    for (const name of ['ex13', 'ex14']) {
      expect(await d.outcomes(name)).toEqual([]);
      expect(d.agents.get(name)!.running!.service.status().operations).toEqual([]);
    }

    const shown = (await d.api('GET', '/api/rollouts/microsoft-000001-apply')).body as {
      problems: { server: string; mitigation: string; outcome: string; endpoints?: string[] }[];
    };
    expect(
      shown.problems
        .map((problem) => [problem.server, problem.mitigation, problem.outcome, problem.endpoints])
        .sort(),
    ).toEqual([
      ['ex11.contoso.com', 'EM2', 'RolledBack', ['/ecp/healthcheck.htm']],
      ['ex12.contoso.com', 'EM2', 'RolledBack', ['/ecp/healthcheck.htm']],
    ]);
    expect(d.logger.named('RolloutHalted')).toHaveLength(1);
  });

  it('a healthy fleet with the same package: EM2 takes OWA down as it declares, nothing is rolled back, the rollout completes', async () => {
    const d = await world.deploy([
      { name: 'ex15', ring: 'canary' },
      { name: 'ex16', ring: 'broad' },
    ]);
    await d.host.runTimer('pollOcs');
    await d.settled('microsoft-000001-apply');
    expect((await d.rollout('microsoft-000001-apply')).state.state).toBe('Completed');
    const [result] = await d.results('ex15');
    expect(result!.outcomes.EM2).toMatchObject({
      outcome: 'Applied',
      detail: expect.stringContaining('owa down as declared'),
    });
    expect(result!.outcomes.EM1).toMatchObject({
      outcome: 'Applied',
      detail: expect.stringContaining(
        'checked with package probes: 2/2 must-block blocked, 2/2 must-pass passed',
      ),
    });
    expect(d.agents.get('ex15')!.running!.service.status().applied).toEqual(['EM1', 'EM2', 'EM3', 'PING1']);
  });
});
