import { createHash } from 'node:crypto';
import { EmfleetError } from '../errors.js';
import { odata } from '@azure/data-tables';
import { getEntityOrUndefined } from './optimistic.js';
import { describeRowProblem, isStatus, readRows, validateRow } from './rows.js';
import {
  maxStoredPackageBytes,
  packageChunkBytes,
  packageChunkProperties,
  packagePointerRow,
  packageRow,
} from './schemas.js';
import type { FleetTables } from './storage.js';

/** An accepted package exactly as signed, with what the poller needs to compare it. */
export interface StoredPackage {
  readonly feed: string;
  /** Order of acceptance in this feed (1, 2, ...). */
  readonly sequence: number;
  readonly sha256: string;
  readonly signingTime?: Date;
  /** The package's own EOCS@sequence, for organization feeds. */
  readonly signedSequence?: number;
  readonly mitigationIds: readonly string[];
  /** By mitigation id, the SHA-256 of its content (lib/rollout/holds.ts); absent on rows stored before holds existed. */
  readonly content?: Readonly<Record<string, string>>;
  readonly acceptedAt: Date;
  readonly bytes: Uint8Array;
}

export type NewPackage = Omit<StoredPackage, 'sequence' | 'acceptedAt' | 'sha256'>;

export class PackageStoreError extends EmfleetError {
  override readonly name = 'PackageStoreError';

  constructor(message: string, context: Record<string, unknown>) {
    super('PackageStore', message, { context });
  }
}

const pointerRowKey = 'latest';
const sequenceKey = (sequence: number): string => String(sequence).padStart(10, '0');

/**
 * Stores the exact signed bytes, split across binary properties (64 KiB each) of one row, and
 * moves the feed's `latest` pointer in the same transaction (conditional on its ETag), so a
 * package is never half-stored. Storing the bytes that are already latest is a no-op.
 */
export async function storePackage(
  tables: FleetTables,
  input: NewPackage,
  options: { now?: Date } = {},
): Promise<{ sequence: number; created: boolean }> {
  if (input.bytes.byteLength === 0 || input.bytes.byteLength > maxStoredPackageBytes) {
    throw new PackageStoreError(
      `package of ${input.bytes.byteLength} bytes cannot be stored (1 to ${maxStoredPackageBytes} bytes)`,
      { feed: input.feed },
    );
  }
  const client = await tables.client('Packages');
  const sha256 = createHash('sha256').update(input.bytes).digest('hex');
  for (let attempt = 1; attempt <= 10; attempt++) {
    const pointerEntity = await getEntityOrUndefined(client, input.feed, pointerRowKey);
    const pointer = pointerEntity ? validateRow('Packages', packagePointerRow, pointerEntity) : undefined;
    if (pointer && !pointer.ok)
      throw new PackageStoreError(describeRowProblem(pointer.problem), { feed: input.feed });
    if (pointer?.row.sha256 === sha256) return { sequence: pointer.row.sequence, created: false };
    const sequence = (pointer?.row.sequence ?? 0) + 1;
    const chunks: Record<string, Uint8Array> = {};
    for (let offset = 0, index = 0; offset < input.bytes.byteLength; offset += packageChunkBytes, index++) {
      // A copy, not a view: the Tables SDK encodes a plain Uint8Array's whole underlying buffer.
      chunks[packageChunkProperties[index]!] = Buffer.from(
        input.bytes.subarray(offset, offset + packageChunkBytes),
      );
    }
    const packageEntity = {
      partitionKey: input.feed,
      rowKey: sequenceKey(sequence),
      sha256,
      ...(input.signingTime === undefined ? {} : { signingTime: input.signingTime }),
      ...(input.signedSequence === undefined ? {} : { signedSequence: input.signedSequence }),
      mitigationIds: JSON.stringify(input.mitigationIds),
      ...(input.content === undefined ? {} : { content: JSON.stringify(input.content) }),
      acceptedAt: options.now ?? new Date(),
      xmlBytes: input.bytes.byteLength,
      ...chunks,
    };
    const newPointer = { partitionKey: input.feed, rowKey: pointerRowKey, sequence, sha256 };
    try {
      await client.submitTransaction([
        ['create', packageEntity],
        pointerEntity
          ? ['update', newPointer, 'Replace', { etag: pointerEntity.etag }]
          : ['create', newPointer],
      ]);
      return { sequence, created: true };
    } catch (error) {
      if (!isStatus(error, 409, 412)) throw error;
    }
  }
  throw new PackageStoreError('the feed kept changing while storing a package', { feed: input.feed });
}

export async function readPackage(
  tables: FleetTables,
  feed: string,
  sequence: number,
): Promise<StoredPackage | undefined> {
  const client = await tables.client('Packages');
  const entity = await getEntityOrUndefined(client, feed, sequenceKey(sequence));
  if (!entity) return undefined;
  const checked = validateRow('Packages', packageRow, entity);
  if (!checked.ok) throw new PackageStoreError(describeRowProblem(checked.problem), { feed, sequence });
  const row = checked.row as typeof checked.row & Record<string, Uint8Array | undefined>;
  const parts: Uint8Array[] = [];
  for (const name of packageChunkProperties) {
    const chunk = row[name];
    if (chunk === undefined) break;
    parts.push(chunk);
  }
  const bytes = Buffer.concat(parts);
  if (bytes.byteLength !== row.xmlBytes || createHash('sha256').update(bytes).digest('hex') !== row.sha256) {
    throw new PackageStoreError(
      `Packages row (${feed}, ${sequenceKey(sequence)}): stored bytes do not match their length or SHA-256`,
      { feed, sequence },
    );
  }
  return {
    feed,
    sequence,
    sha256: row.sha256,
    ...(row.signingTime === undefined ? {} : { signingTime: row.signingTime }),
    ...(row.signedSequence === undefined ? {} : { signedSequence: row.signedSequence }),
    mitigationIds: row.mitigationIds,
    ...(row.content === undefined ? {} : { content: row.content }),
    acceptedAt: row.acceptedAt,
    bytes,
  };
}

export async function latestPackage(tables: FleetTables, feed: string): Promise<StoredPackage | undefined> {
  const client = await tables.client('Packages');
  const pointerEntity = await getEntityOrUndefined(client, feed, pointerRowKey);
  if (!pointerEntity) return undefined;
  const pointer = validateRow('Packages', packagePointerRow, pointerEntity);
  if (!pointer.ok) throw new PackageStoreError(describeRowProblem(pointer.problem), { feed });
  return readPackage(tables, feed, pointer.row.sequence);
}

/**
 * Every feed that has an accepted package, whatever the settings say now: a feed that vanished
 * from the settings still has mitigations in place, and reconcile must see it to leave them alone.
 */
export async function listStoredFeeds(tables: FleetTables): Promise<string[]> {
  const client = await tables.client('Packages');
  const { rows } = await readRows(client, 'Packages', packagePointerRow, {
    filter: odata`RowKey eq ${pointerRowKey}`,
  });
  return rows.map((row) => row.partitionKey).sort();
}

/** The accepted packages of a feed with these exact bytes (by SHA-256), oldest first: the feed's replay history. */
export async function acceptedWithSha256(
  tables: FleetTables,
  feed: string,
  sha256: string,
): Promise<{ sequence: number; sha256: string }[]> {
  const client = await tables.client('Packages');
  const found: { sequence: number; sha256: string }[] = [];
  const entities = client.listEntities<{ sha256: string }>({
    queryOptions: {
      filter: odata`PartitionKey eq ${feed} and sha256 eq ${sha256}`,
      select: ['RowKey', 'sha256'],
    },
  });
  for await (const entity of entities) {
    if (/^\d{10}$/.test(entity.rowKey ?? ''))
      found.push({ sequence: Number(entity.rowKey), sha256: entity.sha256 });
  }
  return found.sort((a, b) => a.sequence - b.sequence);
}
