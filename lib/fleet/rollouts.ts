import { EmfleetError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  ConcurrencyConflictError,
  getEntityOrUndefined,
  mutateEntity,
  retryConflicts,
} from './optimistic.js';
import { describeRowProblem, readRows, validateRow } from './rows.js';
import {
  planRow,
  rolloutStateRow,
  waveRow,
  type PlanRowEntity,
  type RolloutStateRow,
  type WaveRow,
} from './schemas.js';
import type { OnDegraded } from '../model/policy.js';
import type { RolloutOperation, RolloutProfile } from '../model/rollout.js';
import type { FleetTables } from './storage.js';
import { odata } from '@azure/data-tables';
import { upsertAction, writeInTransactions } from './batch.js';

export class RolloutNotFoundError extends EmfleetError {
  override readonly name = 'RolloutNotFoundError';

  constructor(rolloutId: string) {
    super('RolloutNotFound', `no rollout "${rolloutId}"`, { context: { rolloutId } });
  }
}

export const waveKey = (index: number): string => `wave-${String(index).padStart(2, '0')}`;

export interface NewRollout {
  readonly id: string;
  readonly feed: string;
  readonly packageSequence: number;
  readonly operation: RolloutOperation;
  readonly waves: readonly {
    readonly name: string;
    readonly servers: number;
    readonly maxConcurrency?: number;
    readonly maxErrors?: number;
    readonly bakeInMs?: number;
  }[];
  readonly profile?: RolloutProfile;
  /** The mitigations it applies, with the SHA-256 of each one's content: what a halt holds. */
  readonly applies?: Readonly<Record<string, string>>;
}

/** The state row and one row per wave, in one transaction (one partition per rollout). */
export async function createRollout(
  tables: FleetTables,
  rollout: NewRollout,
  options: { now?: Date } = {},
): Promise<void> {
  if (rollout.waves.length < 1 || rollout.waves.length > 99)
    throw new RangeError(`a rollout has 1 to 99 waves, got ${rollout.waves.length}`);
  const client = await tables.client('Rollouts');
  const now = options.now ?? new Date();
  await client.submitTransaction([
    [
      'create',
      {
        partitionKey: rollout.id,
        rowKey: 'state',
        feed: rollout.feed,
        packageSequence: rollout.packageSequence,
        operation: rollout.operation,
        state: 'Planned',
        reasonCode: '',
        reasonDetail: '',
        waveCount: rollout.waves.length,
        currentWave: 0,
        profile: rollout.profile ?? 'default',
        attempt: 0,
        halts: 0,
        applies: JSON.stringify(rollout.applies ?? {}),
        createdAt: now,
        updatedAt: now,
      },
    ],
    ...rollout.waves.map(
      (wave, index) =>
        [
          'create',
          {
            partitionKey: rollout.id,
            rowKey: waveKey(index),
            name: wave.name,
            servers: wave.servers,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            maxConcurrency: wave.maxConcurrency ?? 1,
            maxErrors: wave.maxErrors ?? 0,
            bakeInMs: wave.bakeInMs ?? 0,
            dispatched: 0,
            counted: '',
            attempt: 0,
            pass: '',
            failedIndices: '',
            failedServers: '[]',
          },
        ] as ['create', Record<string, unknown> & { partitionKey: string; rowKey: string }],
    ),
  ]);
}

export async function readRollout(
  tables: FleetTables,
  rolloutId: string,
): Promise<{ state: RolloutStateRow; waves: WaveRow[] }> {
  const client = await tables.client('Rollouts');
  const { rows: waves } = await readRows(client, 'Rollouts', waveRow, {
    filter: odata`PartitionKey eq ${rolloutId} and RowKey ge ${'wave-'}`,
  });
  const entity = await getEntityOrUndefined(client, rolloutId, 'state');
  if (!entity) throw new RolloutNotFoundError(rolloutId);
  const state = validateRow('Rollouts', rolloutStateRow, entity);
  if (!state.ok)
    throw new EmfleetError('InvalidRow', describeRowProblem(state.problem), { context: { rolloutId } });
  return { state: state.row, waves };
}

/**
 * Moves a rollout's state with ETag concurrency: `next` sees the current state and returns the
 * changes, or undefined to leave it as it is.
 */
export async function updateRolloutState(
  tables: FleetTables,
  rolloutId: string,
  next: (current: RolloutStateRow) => Partial<Pick<RolloutStateRow, StateChange>> | undefined,
  options: { now?: Date } = {},
): Promise<RolloutStateRow> {
  const client = await tables.client('Rollouts');
  let result: RolloutStateRow | undefined;
  await mutateEntity(client, rolloutId, 'state', (current) => {
    if (!current) throw new RolloutNotFoundError(rolloutId);
    const checked = validateRow('Rollouts', rolloutStateRow, current);
    if (!checked.ok)
      throw new EmfleetError('InvalidRow', describeRowProblem(checked.problem), { context: { rolloutId } });
    const changes = next(checked.row);
    result = checked.row;
    if (changes === undefined) return { kind: 'keep' };
    result = { ...checked.row, ...changes, updatedAt: options.now ?? new Date() };
    return { kind: 'write', entity: rolloutStateEntity(result) };
  });
  return result!;
}

/** What the state machine changes on a state row. */
export type StateChange =
  | 'state'
  | 'reasonCode'
  | 'reasonDetail'
  | 'currentWave'
  | 'profile'
  | 'resumeTo'
  | 'attempt'
  | 'halts';

/** A state row as stored: the held mitigations as JSON text; a field set to undefined (resumeTo after a resume) left out, since Tables has no null. */
export function rolloutStateEntity(
  row: RolloutStateRow,
): Record<string, unknown> & { partitionKey: string; rowKey: string } {
  const {
    etag: _etag,
    timestamp: _timestamp,
    ...rest
  } = row as RolloutStateRow & { etag?: string; timestamp?: string };
  return Object.fromEntries(
    Object.entries({ ...rest, applies: JSON.stringify(row.applies) }).filter(
      ([, value]) => value !== undefined,
    ),
  ) as Record<string, unknown> & { partitionKey: string; rowKey: string };
}

/**
 * Moves the state row and one wave row together (a retry resets the wave as it restarts the
 * rollout): one transaction in the rollout's partition, conditional on both ETags; when either
 * row changed since it was read, both are read again and `next` decides again.
 */
export async function updateRolloutStateAndWave(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
  next: (
    state: RolloutStateRow,
    wave: WaveRow,
  ) => { state: Partial<Pick<RolloutStateRow, StateChange>>; wave: WaveRow } | undefined,
  options: { now?: Date } = {},
): Promise<RolloutStateRow> {
  const client = await tables.client('Rollouts');
  const maxAttempts = 25;
  return retryConflicts(
    async () => {
      const [stateEntity, waveStored] = await Promise.all([
        getEntityOrUndefined(client, rolloutId, 'state'),
        getEntityOrUndefined(client, rolloutId, waveKey(wave)),
      ]);
      if (!stateEntity) throw new RolloutNotFoundError(rolloutId);
      const state = validateRow('Rollouts', rolloutStateRow, stateEntity);
      if (!state.ok)
        throw new EmfleetError('InvalidRow', describeRowProblem(state.problem), { context: { rolloutId } });
      const waveChecked = waveStored ? validateRow('Rollouts', waveRow, waveStored) : undefined;
      if (!waveChecked?.ok)
        throw new EmfleetError(
          'InvalidRow',
          waveChecked
            ? describeRowProblem(waveChecked.problem)
            : `rollout ${rolloutId} has no row for wave ${wave + 1}`,
          { context: { rolloutId, wave } },
        );
      const changes = next(state.row, waveChecked.row);
      if (changes === undefined) return state.row;
      const updated: RolloutStateRow = {
        ...state.row,
        ...changes.state,
        updatedAt: options.now ?? new Date(),
      };
      await client.submitTransaction([
        ['update', rolloutStateEntity(updated), 'Replace', { etag: stateEntity.etag }],
        ['update', waveEntity(changes.wave), 'Replace', { etag: waveStored!.etag }],
      ]);
      return updated;
    },
    {
      maxAttempts,
      exhausted: () => new ConcurrencyConflictError('Rollouts', rolloutId, 'state', maxAttempts, undefined),
    },
  );
}

/** A wave row as stored: lists as JSON text. */
export function waveEntity(
  wave: WaveRow,
): Record<string, unknown> & { partitionKey: string; rowKey: string } {
  const { failureNotes: _failureNotes, ...rest } = wave;
  return {
    ...rest,
    failedServers: JSON.stringify(wave.failedServers),
    ...(wave.failureNotes ? { failureNotes: JSON.stringify(wave.failureNotes) } : {}),
  };
}

/** One server's part of a planned rollout, stored before the rollout becomes visible. */
export interface PlanRow {
  readonly wave: number;
  readonly index: number;
  readonly server: string;
  readonly hybridConnection: string;
  readonly apply: readonly string[];
  readonly remove: readonly string[];
  /** Stored only when it is keep: rollback is what a row without it means. */
  readonly onDegraded?: OnDegraded;
}

export const planRowKey = (wave: number, index: number): string =>
  `plan-${String(wave).padStart(2, '0')}-${String(index).padStart(6, '0')}`;

/** Servers a page of plan rows holds: one partition, one transaction, one query. */
export const planPageSize = 100;

/**
 * Plan rows sit a page to a partition of their own (`<rollout>|plan-WW-PPPP`), beside the rollout's
 * partition of state and wave rows: a page is written in one transaction and read by its partition
 * key, the state and wave rows that every step reads and writes stay in a partition of a few rows,
 * and a 10,000-server plan is spread over 100 partitions instead of loading one (a partition's
 * target in Azure is 2,000 entities a second).
 */
export const planPartitionKey = (rolloutId: string, wave: number, index: number): string =>
  `${rolloutId}|plan-${String(wave).padStart(2, '0')}-${String(Math.floor(index / planPageSize)).padStart(4, '0')}`;

/** Plan rows go in transactions of 100, one per page: 10,000 servers are 100 round trips. */
export async function writePlanRows(
  tables: FleetTables,
  rolloutId: string,
  rows: readonly PlanRow[],
): Promise<void> {
  const client = await tables.client('Rollouts');
  await writeInTransactions(
    client,
    rows.map((row) =>
      upsertAction({
        partitionKey: planPartitionKey(rolloutId, row.wave, row.index),
        rowKey: planRowKey(row.wave, row.index),
        server: row.server,
        hybridConnection: row.hybridConnection,
        apply: JSON.stringify(row.apply),
        remove: JSON.stringify(row.remove),
        ...(row.onDegraded === 'keep' ? { onDegraded: row.onDegraded } : {}),
      }),
    ),
  );
}

/** Every rollout's state row, newest first. */
export async function listRollouts(
  tables: FleetTables,
  options: { logger?: Logger } = {},
): Promise<RolloutStateRow[]> {
  const client = await tables.client('Rollouts');
  const { rows } = await readRows(client, 'Rollouts', rolloutStateRow, {
    filter: odata`RowKey eq ${'state'}`,
    ...options,
  });
  return rows.sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
}

/** The state row; undefined when there is none or it is invalid (a step then has nothing to act on). */
export async function readRolloutState(
  tables: FleetTables,
  rolloutId: string,
): Promise<RolloutStateRow | undefined> {
  const client = await tables.client('Rollouts');
  const entity = await getEntityOrUndefined(client, rolloutId, 'state');
  if (!entity) return undefined;
  const checked = validateRow('Rollouts', rolloutStateRow, entity);
  return checked.ok ? checked.row : undefined;
}

/** A wave row as read, with the ETag a conditional write sends back. */
export interface StoredWave {
  readonly row: WaveRow;
  readonly etag: string;
}

function storedWave(rolloutId: string, wave: number, entity: Record<string, unknown>): StoredWave {
  const checked = validateRow('Rollouts', waveRow, entity);
  if (!checked.ok)
    throw new EmfleetError('InvalidRow', describeRowProblem(checked.problem), {
      context: { rolloutId, wave },
    });
  return { row: checked.row, etag: checked.etag };
}

/** One wave row; undefined when there is none, an InvalidRow error when it is invalid. */
export async function readWave(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
): Promise<StoredWave | undefined> {
  const client = await tables.client('Rollouts');
  const entity = await getEntityOrUndefined(client, rolloutId, waveKey(wave));
  return entity ? storedWave(rolloutId, wave, entity) : undefined;
}

export interface StateAndWave {
  readonly state: RolloutStateRow | undefined;
  readonly wave: StoredWave | undefined;
}

/** The state row and one wave row in one round trip: the range from `state` to that wave's key (plan rows sort before). */
export async function readStateAndWave(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
): Promise<StateAndWave> {
  const client = await tables.client('Rollouts');
  let state: RolloutStateRow | undefined;
  let found: StoredWave | undefined;
  for await (const entity of client.listEntities<Record<string, unknown>>({
    queryOptions: {
      filter: odata`PartitionKey eq ${rolloutId} and RowKey ge ${'state'} and RowKey le ${waveKey(wave)}`,
    },
  })) {
    if (entity.rowKey === 'state') {
      const checked = validateRow('Rollouts', rolloutStateRow, entity);
      state = checked.ok ? checked.row : undefined;
    } else if (entity.rowKey === waveKey(wave)) {
      found = storedWave(rolloutId, wave, entity);
    }
  }
  return { state, wave: found };
}

/**
 * Counts into a wave row: `decide` sees the state and wave rows as read (`firstRead` the first time)
 * and returns the wave row to write (or none) with its answer; the row is written conditional on
 * the ETag read, and when another writer changed it since, both are read again and `decide` asks
 * again. `decide` may act before answering (send messages): it is told nothing was written before.
 */
export async function mutateWave<T>(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
  decide: (read: StateAndWave) => Promise<{ readonly write?: WaveRow | undefined; readonly answer: T }>,
  options: { firstRead?: StateAndWave; maxAttempts?: number } = {},
): Promise<T> {
  const client = await tables.client('Rollouts');
  const maxAttempts = options.maxAttempts ?? 25;
  return retryConflicts(
    async (round) => {
      const read =
        round === 1 && options.firstRead
          ? options.firstRead
          : await readStateAndWave(tables, rolloutId, wave);
      const { write, answer } = await decide(read);
      if (write && read.wave)
        await client.updateEntity(waveEntity(write), 'Replace', { etag: read.wave.etag });
      return answer;
    },
    {
      maxAttempts,
      exhausted: () =>
        new ConcurrencyConflictError('Rollouts', rolloutId, waveKey(wave), maxAttempts, undefined),
    },
  );
}

/**
 * One page of a wave's plan rows (planPageSize servers from `first`, one partition query), by plan
 * index; invalid rows are left out.
 */
export async function readPlanPage(
  tables: FleetTables,
  rolloutId: string,
  wave: number,
  first: number,
): Promise<Map<number, PlanRowEntity>> {
  const client = await tables.client('Rollouts');
  const filter = odata`PartitionKey eq ${planPartitionKey(rolloutId, wave, first)}`;
  const rows = new Map<number, PlanRowEntity>();
  for await (const entity of client.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
    const checked = validateRow('Rollouts', planRow, entity);
    if (checked.ok)
      rows.set(Number(checked.row.rowKey.slice(checked.row.rowKey.lastIndexOf('-') + 1)), checked.row);
  }
  return rows;
}
