import { describe, expect, it } from 'vitest';
import { ConcurrencyConflictError } from '../../lib/fleet/optimistic.js';
import {
  readResult,
  readResults,
  recordAttempt,
  upsertResults,
  type ResultRecord,
} from '../../lib/fleet/results.js';
import {
  createRollout,
  mutateWave,
  readPlanPage,
  readRollout,
  readRolloutState,
  readStateAndWave,
  readWave,
  RolloutNotFoundError,
  updateRolloutState,
  writePlanRows,
  type NewRollout,
  type PlanRow,
} from '../../lib/fleet/rollouts.js';
import { reason, renderReason } from '../../lib/model/reasons.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';

const rollout: NewRollout = {
  id: 'r-20261110-0001',
  feed: 'microsoft',
  packageSequence: 3,
  operation: 'apply',
  waves: [
    { name: 'canary', servers: 2 },
    { name: 'early', servers: 10 },
    { name: 'broad', servers: 88 },
  ],
};

describe('rollouts', () => {
  it('createRollout writes the state row and one row per wave; readRollout reads them back', async () => {
    const { tables } = freshTables();
    const now = new Date('2026-11-10T12:00:00.000Z');
    await createRollout(tables, rollout, { now });
    const read = await readRollout(tables, rollout.id);
    expect(read.state).toMatchObject({
      partitionKey: rollout.id,
      rowKey: 'state',
      feed: 'microsoft',
      packageSequence: 3,
      operation: 'apply',
      state: 'Planned',
      reasonCode: '',
      reasonDetail: '',
      waveCount: 3,
      currentWave: 0,
      createdAt: now,
      updatedAt: now,
    });
    expect(
      read.waves.map(({ rowKey, name, servers, succeeded, failed, skipped }) => ({
        rowKey,
        name,
        servers,
        succeeded,
        failed,
        skipped,
      })),
    ).toEqual([
      { rowKey: 'wave-00', name: 'canary', servers: 2, succeeded: 0, failed: 0, skipped: 0 },
      { rowKey: 'wave-01', name: 'early', servers: 10, succeeded: 0, failed: 0, skipped: 0 },
      { rowKey: 'wave-02', name: 'broad', servers: 88, succeeded: 0, failed: 0, skipped: 0 },
    ]);

    // Another rollout's rows are not mixed in; an unknown one is an error; a rollout id is created once.
    await createRollout(tables, { ...rollout, id: 'r-other', waves: [{ name: 'all', servers: 5 }] });
    expect((await readRollout(tables, rollout.id)).waves).toHaveLength(3);
    await expect(readRollout(tables, 'r-missing')).rejects.toBeInstanceOf(RolloutNotFoundError);
    await expect(createRollout(tables, rollout)).rejects.toThrow();
    await expect(createRollout(tables, { ...rollout, id: 'r-empty', waves: [] })).rejects.toBeInstanceOf(
      RangeError,
    );
  });

  it('updateRolloutState: concurrent callers both apply, in order, without losing a write', async () => {
    const { tables } = freshTables();
    await createRollout(tables, rollout);
    const seen: string[] = [];
    const [first, second] = await Promise.all([
      updateRolloutState(tables, rollout.id, (current) => {
        seen.push(`a:${current.reasonDetail}`);
        return {
          state: 'Running',
          reasonDetail: `${current.reasonDetail}[a]`,
          currentWave: current.currentWave + 1,
        };
      }),
      updateRolloutState(tables, rollout.id, (current) => {
        seen.push(`b:${current.reasonDetail}`);
        return { reasonDetail: `${current.reasonDetail}[b]`, currentWave: current.currentWave + 1 };
      }),
    ]);
    const { state } = await readRollout(tables, rollout.id);
    expect(state.currentWave).toBe(2);
    expect(state.state).toBe('Running');
    expect(['[a][b]', '[b][a]']).toContain(state.reasonDetail);
    // Each caller got the row it wrote; the later one built on the earlier one.
    const [earlier, later] = state.reasonDetail === '[a][b]' ? [first, second] : [second, first];
    expect(earlier.currentWave).toBe(1);
    expect(later).toMatchObject({ currentWave: 2, reasonDetail: state.reasonDetail, state: 'Running' });
    expect(seen.length).toBeGreaterThanOrEqual(2);

    // Returning undefined leaves the row as it is.
    const unchanged = await updateRolloutState(tables, rollout.id, () => undefined);
    expect(unchanged).toMatchObject({ currentWave: 2, reasonDetail: state.reasonDetail });
    await expect(updateRolloutState(tables, 'r-missing', () => ({ state: 'Paused' }))).rejects.toBeInstanceOf(
      RolloutNotFoundError,
    );
  });

  it('reads a state row an earlier release wrote, its reason as one text, as a Legacy reason; the next write stores code and detail', async () => {
    const { tables, prefix } = freshTables();
    await createRollout(tables, rollout);
    // What the release before reason codes wrote: `reason` only.
    const client = await tables.client('Rollouts');
    const {
      etag: _etag,
      timestamp: _timestamp,
      reasonCode: _code,
      reasonDetail: _detail,
      ...row
    } = await client.getEntity<Record<string, unknown>>(rollout.id, 'state');
    await client.updateEntity(
      {
        ...row,
        partitionKey: rollout.id,
        rowKey: 'state',
        state: 'Halted',
        reason: 'WaveHalted: wave 1 had 2 failures, over its budget of 0 (ex01)',
      },
      'Replace',
    );
    const stored = await allEntities(rawTable(prefix, 'Rollouts'));
    expect(stored.find((row) => row['rowKey'] === 'state')).not.toHaveProperty('reasonCode');
    const { state } = await readRollout(tables, rollout.id);
    expect(state).toMatchObject({
      state: 'Halted',
      reasonCode: 'Legacy',
      reasonDetail: 'WaveHalted: wave 1 had 2 failures, over its budget of 0 (ex01)',
    });
    expect(state).not.toHaveProperty('reason');
    expect(renderReason(state)).toBe('WaveHalted: wave 1 had 2 failures, over its budget of 0 (ex01)');

    await updateRolloutState(tables, rollout.id, () => ({
      state: 'Aborted',
      ...reason('AbortedByAdmin', { actor: 'alice', after: renderReason(state) }),
    }));
    const after = (await allEntities(rawTable(prefix, 'Rollouts'))).find((row) => row['rowKey'] === 'state');
    expect(after).toMatchObject({
      reasonCode: 'AbortedByAdmin',
      reasonDetail: 'by alice after WaveHalted: wave 1 had 2 failures, over its budget of 0 (ex01)',
    });
    expect(after).not.toHaveProperty('reason');
  });

  it("writePlanRows puts each page of 100 servers in a partition of its own, beside the rollout's state and wave rows", async () => {
    const { tables, prefix } = freshTables();
    await createRollout(tables, rollout);
    const rows: PlanRow[] = [
      ...Array.from({ length: 2 }, (_, index) => ({
        wave: 0,
        index,
        server: `ex${index}.contoso.com`,
        hybridConnection: `hc-${index}`,
        apply: ['EM1'],
        remove: [],
      })),
      ...Array.from({ length: 250 }, (_, index) => ({
        wave: 2,
        index,
        server: `ex${100 + index}.contoso.com`,
        hybridConnection: `hc-${100 + index}`,
        apply: ['EM1'],
        remove: [],
      })),
    ];
    const client = rawTable(prefix, 'Rollouts');
    await writePlanRows(tables, rollout.id, rows);
    const stored = await allEntities(client);
    const byPartition = new Map<string, string[]>();
    for (const row of stored)
      byPartition.set(String(row['partitionKey']), [
        ...(byPartition.get(String(row['partitionKey'])) ?? []),
        String(row['rowKey']),
      ]);
    expect([...byPartition.keys()].sort()).toEqual([
      rollout.id,
      `${rollout.id}|plan-00-0000`,
      `${rollout.id}|plan-02-0000`,
      `${rollout.id}|plan-02-0001`,
      `${rollout.id}|plan-02-0002`,
    ]);
    expect(byPartition.get(rollout.id)?.sort()).toEqual(['state', 'wave-00', 'wave-01', 'wave-02']);
    expect(byPartition.get(`${rollout.id}|plan-02-0001`)).toHaveLength(100);
    expect(byPartition.get(`${rollout.id}|plan-02-0001`)?.[0]).toBe('plan-02-000100');
    expect(byPartition.get(`${rollout.id}|plan-02-0002`)).toHaveLength(50);
    expect(stored.find((row) => row['rowKey'] === 'plan-02-000249')).toMatchObject({
      partitionKey: `${rollout.id}|plan-02-0002`,
      server: 'ex349.contoso.com',
      hybridConnection: 'hc-349',
    });
  });
});

describe('results', () => {
  const at = new Date('2026-11-10T12:30:00.000Z');
  const record = (
    server: string,
    operationId: string,
    outcome: 'Applied' | 'Failed' | 'AlreadyApplied',
    detail = '',
  ): ResultRecord => ({
    server,
    operationId,
    rolloutId: rollout.id,
    operation: 'apply',
    status: 'Completed',
    outcomes: { EM1: { outcome, detail } },
    at,
  });

  it('upserts 250 results for 3 servers; a re-upsert of the same (server, operation id) replaces the row', async () => {
    const { tables, prefix } = freshTables();
    const servers = ['ex01', 'ex02', 'EX03'];
    const results = Array.from({ length: 250 }, (_, index) =>
      record(servers[index % 3]!, `op-${String(index).padStart(4, '0')}`, 'Applied'),
    );
    // ex01: 84 rows, ex02: 83, ex03: 83 → one transaction each.
    expect(await upsertResults(tables, results)).toBe(3);
    const stored = await allEntities(rawTable(prefix, 'Results'));
    expect(stored).toHaveLength(250);
    expect(new Set(stored.map((row) => row['partitionKey']))).toEqual(new Set(['ex01', 'ex02', 'ex03']));

    // A redelivered message for op-0000 (ex01) and op-0002 (ex03, named in another case) with a new outcome.
    await upsertResults(tables, [
      record('ex01', 'op-0000', 'Failed', 'timeout'),
      record('Ex03', 'op-0002', 'AlreadyApplied'),
    ]);
    expect(await allEntities(rawTable(prefix, 'Results'))).toHaveLength(250);
    const ex01 = await readResults(tables, 'ex01');
    expect(ex01.problems).toEqual([]);
    expect(ex01.rows).toHaveLength(84);
    expect(ex01.rows.find((row) => row.rowKey === 'op-0000')?.outcomes).toEqual({
      EM1: { outcome: 'Failed', detail: 'timeout' },
    });
    expect(ex01.rows.find((row) => row.rowKey === 'op-0003')?.outcomes).toEqual({
      EM1: { outcome: 'Applied', detail: '' },
    });
    const ex03 = await readResults(tables, 'EX03');
    expect(ex03.rows).toHaveLength(83);
    expect(ex03.rows.find((row) => row.rowKey === 'op-0002')?.outcomes).toEqual({
      EM1: { outcome: 'AlreadyApplied', detail: '' },
    });
  });

  it("readResults returns only that server's rows, with every field", async () => {
    const { tables } = freshTables();
    const expiresAt = new Date('2026-12-10T12:30:00.000Z');
    await upsertResults(tables, [
      { ...record('ex01', 'op-1', 'Applied'), expiresAt },
      record('ex02', 'op-2', 'Applied'),
      record('ex010', 'op-3', 'Applied'),
    ]);
    const { rows, problems } = await readResults(tables, 'ex01');
    expect(problems).toEqual([]);
    expect(rows).toEqual([
      {
        partitionKey: 'ex01',
        rowKey: 'op-1',
        rolloutId: rollout.id,
        operation: 'apply',
        status: 'Completed',
        outcomes: { EM1: { outcome: 'Applied', detail: '' } },
        at,
        expiresAt,
      },
    ]);
    expect((await readResults(tables, 'ex99')).rows).toEqual([]);
  });

  it('reports and skips an invalid Results row', async () => {
    const { tables, prefix } = freshTables();
    await upsertResults(tables, [record('ex01', 'op-1', 'Applied'), record('ex01', 'op-3', 'Applied')]);
    const planted = rawTable(prefix, 'Results');
    await planted.createEntity({
      partitionKey: 'ex01',
      rowKey: 'op-2',
      operation: 'apply',
      status: 'Completed',
      outcomes: '{"EM1":{"outcome":"Exploded"}}',
      at,
    });
    await planted.createEntity({
      partitionKey: 'ex01',
      rowKey: 'op-4',
      operation: 'apply',
      status: 'Completed',
      outcomes: 'not json',
      at,
    });

    const { rows, problems } = await readResults(tables, 'ex01');
    expect(rows.map((row) => row.rowKey)).toEqual(['op-1', 'op-3']);
    expect(
      problems.map(({ table, partitionKey, rowKey, field }) => ({ table, partitionKey, rowKey, field })),
    ).toEqual([
      { table: 'Results', partitionKey: 'ex01', rowKey: 'op-2', field: 'outcomes.EM1.outcome' },
      { table: 'Results', partitionKey: 'ex01', rowKey: 'op-4', field: 'outcomes' },
    ]);
  });
});

describe('what the rollout steps read and write', () => {
  it('readStateAndWave reads the state row and one wave row in one query; readWave and readRolloutState one each', async () => {
    const { tables } = freshTables();
    await createRollout(tables, rollout);
    const { state, wave } = await readStateAndWave(tables, rollout.id, 1);
    expect(state?.state).toBe('Planned');
    expect(wave?.row).toMatchObject({ rowKey: 'wave-01', name: 'early', servers: 10 });
    expect((await readWave(tables, rollout.id, 2))?.row.name).toBe('broad');
    expect(await readWave(tables, rollout.id, 7)).toBeUndefined();
    expect(await readRolloutState(tables, 'no-such-rollout')).toBeUndefined();
  });

  it('mutateWave writes the row decided, and decides again from a fresh read when another writer got there first', async () => {
    const { tables, prefix } = freshTables();
    await createRollout(tables, rollout);
    const firstRead = await readStateAndWave(tables, rollout.id, 0);
    // Another instance counts a server between this read and the write.
    await mutateWave(tables, rollout.id, 0, async ({ wave }) => ({
      write: { ...wave!.row, succeeded: wave!.row.succeeded + 1 },
      answer: undefined,
    }));
    const decided: number[] = [];
    const answer = await mutateWave(
      tables,
      rollout.id,
      0,
      async ({ wave }) => {
        decided.push(wave!.row.succeeded);
        return { write: { ...wave!.row, failed: wave!.row.failed + 1 }, answer: 'counted' };
      },
      { firstRead },
    );
    expect(answer).toBe('counted');
    expect(decided).toEqual([0, 1]);
    const stored = (await allEntities(rawTable(prefix, 'Rollouts'))).find(
      (row) => row['rowKey'] === 'wave-00',
    );
    expect(stored).toMatchObject({ succeeded: 1, failed: 1 });
  });

  it('mutateWave gives up with a typed conflict naming the row when every write loses', async () => {
    const { tables } = freshTables();
    await createRollout(tables, rollout);
    const always = await mutateWave(
      tables,
      rollout.id,
      0,
      async ({ wave }) => {
        // Someone else writes the row every time this writer has read it.
        await mutateWave(tables, rollout.id, 0, async ({ wave }) => ({ write: { ...wave!.row }, answer: 0 }));
        return { write: { ...wave!.row, failed: 2 }, answer: 0 };
      },
      { maxAttempts: 2 },
    ).catch((caught: unknown) => caught);
    expect(always).toBeInstanceOf(ConcurrencyConflictError);
    expect((always as ConcurrencyConflictError).context).toMatchObject({
      table: 'Rollouts',
      partitionKey: rollout.id,
      rowKey: 'wave-00',
      attempts: 2,
    });
  });

  it('readPlanPage reads one page of plan rows by index', async () => {
    const { tables } = freshTables();
    const rows: PlanRow[] = Array.from({ length: 3 }, (_, index) => ({
      wave: 0,
      index: 99 + index,
      server: `ex${index}.contoso.com`,
      hybridConnection: `ex${index}`,
      apply: ['EM1'],
      remove: [],
    }));
    await writePlanRows(tables, rollout.id, rows);
    expect([...(await readPlanPage(tables, rollout.id, 0, 0)).keys()]).toEqual([99]);
    const second = await readPlanPage(tables, rollout.id, 0, 100);
    expect([...second.keys()]).toEqual([100, 101]);
    expect(second.get(101)).toMatchObject({ server: 'ex2.contoso.com', apply: ['EM1'] });
  });

  it('recordAttempt keeps a failed attempt InProgress, and never replaces a Completed result', async () => {
    const { tables } = freshTables();
    const attempt = {
      server: 'ex01',
      operationId: 'op-1',
      rolloutId: rollout.id,
      operation: 'apply' as const,
      outcomes: { EM1: { outcome: 'Unreachable' as const, detail: 'hub: agent down' } },
      at: new Date('2026-12-07T12:00:00Z'),
    };
    await recordAttempt(tables, attempt);
    expect(await readResult(tables, 'ex01', 'op-1')).toEqual({
      status: 'InProgress',
      outcomes: attempt.outcomes,
    });
    const completed = { EM1: { outcome: 'Applied' as const, detail: '' } };
    await upsertResults(tables, [{ ...attempt, status: 'Completed', outcomes: completed }]);
    await recordAttempt(tables, attempt);
    expect(await readResult(tables, 'ex01', 'op-1')).toEqual({ status: 'Completed', outcomes: completed });
    expect(await readResult(tables, 'ex01', 'op-2')).toBeUndefined();
  });
});
