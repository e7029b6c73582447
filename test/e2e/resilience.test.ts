import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readFeedState } from '../../lib/fleet/feeds.js';
import { latestPackage } from '../../lib/fleet/packages.js';
import { queueNames } from '../../lib/fleet/queues.js';
import { listRollouts } from '../../lib/fleet/rollouts.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { startAzurite } from '../../lib/local/azurite.js';
import { allApplied, type Deployment, fqdn, serverBeingWorkedOn, useWorld, waitFor } from '../helpers/e2e.js';

/** What goes wrong around a rollout: a message delivered twice, storage going away, a tampered package. */
const world = useWorld();

const rolloutId = 'microsoft-000001-apply';
const twoWaves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
];

/** Changes an agent carried out, one entry per mitigation applied or removed. */
const changesBy = (d: Deployment, name: string): number =>
  d.agents.get(name)!.logger.named('MitigationOutcome').length;

describe('a rollout when things go wrong', () => {
  it('a message delivered three times: the agent applies once, the result is counted once', async () => {
    const d = await world.deploy(
      [
        { name: 'ex01', ring: 'canary', delayInMs: 200 },
        { name: 'ex02', ring: 'broad' },
      ],
      { waves: twoWaves },
    );
    await d.host.runTimer('pollOcs');
    // The canary's own message is on its way; two more copies of it arrive while it is being applied.
    await Promise.all([
      d.queues.send(queueNames.apply, { rolloutId, wave: 0, index: 0 }),
      d.queues.send(queueNames.apply, { rolloutId, wave: 0, index: 0 }),
    ]);
    await d.settled(rolloutId);
    await d.host.idle();

    expect(
      d.logger.named('ServerResult').filter((entry) => entry.fields['server'] === 'ex01.contoso.com'),
    ).toHaveLength(3);
    expect(changesBy(d, 'ex01')).toBe(4);
    expect(await d.outcomes('ex01')).toEqual([allApplied]);
    expect((await d.rollout(rolloutId)).state.state).toBe('Completed');
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 1, 1, 0, 0],
      ['broad', 1, 1, 0, 0],
    ]);
  });

  it('OCS serving a tampered package: rejected as BadSignature, nothing sent, the last good package stays', async () => {
    const d = await world.deploy([{ name: 'ex03', ring: 'canary' }], { waves: twoWaves });
    await d.host.runTimer('pollOcs');
    await d.host.idle();
    const good = await latestPackage(d.tables, 'microsoft');
    expect(good?.sequence).toBe(1);
    const stateBefore = await d.agents.get('ex03')!.readState();

    // A newer package, signed, then changed in transit: the OWA pool mitigation now names the ECP pool.
    const tampered = world
      .signed(catalogueXml, 0)
      .replace('<Value>MSExchangeOWAAppPool</Value>', '<Value>MSExchangeECPAppPool</Value>');
    expect(tampered).toContain('MSExchangeECPAppPool');
    world.serve(tampered);
    const queueRuns = (): number =>
      d.logger.named('InvocationStarted').filter((entry) => entry.fields['queue'] !== undefined).length;
    const queueRunsBefore = queueRuns();
    await d.host.runTimer('pollOcs');
    await d.host.idle();

    expect(d.logger.named('PackageRejected').map((entry) => entry.fields['reasonCode'])).toEqual([
      'BadSignature',
    ]);
    expect(await readFeedState(d.tables, 'microsoft')).toMatchObject({
      lastRejectedReasonCode: 'BadSignature',
      lastRejectedSha256: createHash('sha256').update(tampered).digest('hex'),
    });
    expect((await listRollouts(d.tables)).map((rollout) => rollout.partitionKey)).toEqual([rolloutId]);
    expect(queueRuns()).toBe(queueRunsBefore);
    const latest = await latestPackage(d.tables, 'microsoft');
    expect({ sequence: latest?.sequence, sha256: latest?.sha256 }).toEqual({
      sequence: 1,
      sha256: good!.sha256,
    });
    expect(changesBy(d, 'ex03')).toBe(4);
    expect(await d.agents.get('ex03')!.readState()).toEqual(stateBefore);
  });

  it('Azurite restarted mid-rollout: the rollout completes, every result there once, counts exact', async () => {
    const location = await mkdtemp(join(tmpdir(), 'emfleet-e2e-azurite-'));
    let azurite = await startAzurite({ location });
    const broad = ['ex22', 'ex23', 'ex24', 'ex25', 'ex26', 'ex27'];
    const d = await world.deploy(
      [{ name: 'ex21', ring: 'canary' }, ...broad.map((name) => ({ name, ring: 'broad', delayInMs: 150 }))],
      { waves: twoWaves, connectionString: azurite.connectionString },
    );
    try {
      await d.host.runTimer('pollOcs');
      const caught = await waitFor(
        'a broad server being worked on after a first broad result',
        async () =>
          ((await d.rollout(rolloutId)).waves[1]?.succeeded ?? 0) > 0 && serverBeingWorkedOn(d, broad),
      );
      await azurite.stop();
      // Its agent answers into the outage: the handler's writes fail until storage is back. The
      // host polls its queues every 200 ms at most, so they fail too while Azurite starts again.
      await waitFor(`${caught}'s agent to finish`, () => serverBeingWorkedOn(d, [caught]) === undefined);
      const restartedAt = new Date();
      azurite = await startAzurite({ location, ports: azurite.ports });
      await d.settled(rolloutId, undefined, 60_000);
      await d.host.idle();
      expect((await d.rollout(rolloutId)).state.state).toBe('Completed');
      expect(await d.waveCounts(rolloutId)).toEqual([
        ['canary', 1, 1, 0, 0],
        ['broad', 6, 6, 0, 0],
      ]);
      for (const name of ['ex21', ...broad]) {
        expect(await d.outcomes(name)).toEqual([allApplied]);
        expect(changesBy(d, name)).toBe(4);
      }
      const [written] = await d.results(caught);
      const stored = await (await d.tables.client('Results')).getEntity(fqdn(caught), written!.rowKey);
      expect(new Date(stored.timestamp!).getTime()).toBeGreaterThanOrEqual(restartedAt.getTime());
    } finally {
      await d.stop();
      await azurite.stop();
      await rm(location, { recursive: true, force: true });
    }
  });
});
