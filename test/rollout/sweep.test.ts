import { describe, expect, it } from 'vitest';
import { getServer, registerServer } from '../../lib/fleet/servers.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { silentLogger } from '../../lib/log.js';
import { reconcileRolloutId } from '../../lib/rollout/reconcile.js';
import { fleetSnapshot } from '../../lib/rollout/start.js';
import { sweepReportedState, type AgentStatusSource } from '../../lib/rollout/sweep.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { recordingLogger } from '../helpers/logs.js';
import { acceptPackage, type Fleet, runQueues, useFleets } from '../helpers/rollouts.js';

const waves: WaveProfile = [
  { name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
];
const env = useFleets();

async function setReported(f: Fleet, server: string, applied: string[]): Promise<void> {
  const client = await f.tables.client('Servers');
  await client.updateEntity(
    { partitionKey: 'contoso', rowKey: server, reportedApplied: JSON.stringify(applied) },
    'Merge',
  );
}

const reported = async (f: Fleet, server: string): Promise<readonly string[]> =>
  (await getServer(f.tables, 'contoso', server)).reportedApplied;

describe('sweepReportedState', () => {
  it('asks every agent, corrects only the rows that differ, and keeps the last known state of a server that does not answer', async () => {
    const f = await env.fleet([
      { name: 'sw01', ring: 'broad' },
      { name: 'sw02', ring: 'broad' },
    ]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    await registerServer(
      f.tables,
      'contoso',
      {
        name: 'sw03.contoso.com',
        build: '15.2.1118.7',
        ring: 'broad',
        relayHybridConnection: 'sw03-no-agent',
      },
      { actor: 'test' },
    );
    const all = ['EM1', 'EM2', 'EM3', 'PING1'];
    expect(await reported(f, 'sw01.contoso.com')).toEqual(all);
    // The stored state is wrong for sw01 (as if a result had been lost); sw03 has no agent at all.
    await setReported(f, 'sw01.contoso.com', ['EM1']);
    await setReported(f, 'sw03.contoso.com', ['EM2']);
    const untouched = (await (await f.tables.client('Servers')).getEntity('contoso', 'sw02.contoso.com'))
      .etag;

    const logger = recordingLogger();
    const { servers } = await fleetSnapshot(f.tables, 'contoso', silentLogger);
    const report = await sweepReportedState(
      { tables: f.tables, org: 'contoso', logger, agents: env.relay.client },
      servers,
    );

    expect(report.changed).toEqual(['sw01.contoso.com']);
    expect(report.unreachable).toEqual(['sw03.contoso.com']);
    expect(report.applied.get('sw02.contoso.com')).toEqual(all);
    expect(await reported(f, 'sw01.contoso.com')).toEqual(all);
    expect(await reported(f, 'sw03.contoso.com')).toEqual(['EM2']);
    expect((await (await f.tables.client('Servers')).getEntity('contoso', 'sw02.contoso.com')).etag).toBe(
      untouched,
    );
    expect(logger.named('ReportedStateChanged').map((event) => event.fields)).toEqual([
      { server: 'sw01.contoso.com', added: ['EM2', 'EM3', 'PING1'], removed: [] },
    ]);
    expect(logger.named('StatusSweepDone')[0]?.fields).toMatchObject({
      servers: 3,
      answered: 2,
      changed: 1,
      unreachable: 1,
      unreachableServers: ['sw03.contoso.com'],
    });
  });

  it('writes the difference it saw, so a result recorded meanwhile by a rollout step survives', async () => {
    const f = await env.fleet([{ name: 'sw04', ring: 'broad' }]);
    await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    await setReported(f, 'sw04.contoso.com', ['EM1', 'EM2', 'PING1']);
    const { servers } = await fleetSnapshot(f.tables, 'contoso', silentLogger);
    // Between the snapshot and the sweep's write, a rollout step records CUSTOM1 as applied.
    const racing: AgentStatusSource = {
      status: async (hybridConnection, options) => {
        await setReported(f, 'sw04.contoso.com', ['CUSTOM1', 'EM1', 'EM2', 'PING1']);
        return env.relay.client.status(hybridConnection, options);
      },
    };
    await sweepReportedState(
      { tables: f.tables, org: 'contoso', logger: silentLogger, agents: racing },
      servers,
    );
    expect(await reported(f, 'sw04.contoso.com')).toEqual(['CUSTOM1', 'EM1', 'EM2', 'EM3', 'PING1']);
  });
});

describe('reconcileRolloutId', () => {
  const now = new Date('2026-11-23T14:05:00Z');
  it.each([
    { name: 'the first of the hour', existing: [], id: 'microsoft-reconcile-2026112314' },
    {
      name: 'an earlier hour does not count',
      existing: ['microsoft-reconcile-2026112313'],
      id: 'microsoft-reconcile-2026112314',
    },
    {
      name: 'a second in the same hour',
      existing: ['microsoft-reconcile-2026112314'],
      id: 'microsoft-reconcile-2026112314-2',
    },
    {
      name: 'a third',
      existing: ['microsoft-reconcile-2026112314', 'microsoft-reconcile-2026112314-2'],
      id: 'microsoft-reconcile-2026112314-3',
    },
    {
      name: 'another feed does not count',
      existing: ['contoso-reconcile-2026112314'],
      id: 'microsoft-reconcile-2026112314',
    },
  ])('$name', ({ existing, id }) => {
    expect(reconcileRolloutId('microsoft', now, existing)).toBe(id);
  });
});
