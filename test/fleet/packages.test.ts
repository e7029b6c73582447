import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  latestPackage,
  PackageStoreError,
  readPackage,
  storePackage,
  type NewPackage,
} from '../../lib/fleet/packages.js';
import { maxStoredPackageBytes, packageChunkBytes } from '../../lib/fleet/schemas.js';
import { allEntities, freshTables, rawTable } from '../helpers/fleet.js';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

function newPackage(bytes: Uint8Array, extra: Partial<NewPackage> = {}): NewPackage {
  return { feed: 'microsoft', mitigationIds: ['EM1', 'PING1'], bytes, ...extra };
}

/** A plain Uint8Array (not a Buffer), as `new Uint8Array(await response.arrayBuffer())` gives. */
function plainBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes.set(randomBytes(length));
  return bytes;
}

describe('storePackage / latestPackage / readPackage', () => {
  it('round-trips a small package byte for byte, with its metadata', async () => {
    const { tables } = freshTables();
    const bytes = Buffer.from('<EOCS version="1.0.4"><Config id="PING1"/></EOCS>\n', 'utf8');
    const signingTime = new Date('2026-11-01T10:00:00.000Z');
    const acceptedAt = new Date('2026-11-02T10:00:00.000Z');
    expect(await latestPackage(tables, 'microsoft')).toBeUndefined();

    const stored = await storePackage(tables, newPackage(bytes, { signingTime, signedSequence: 7 }), {
      now: acceptedAt,
    });
    expect(stored).toEqual({ sequence: 1, created: true });

    const latest = await latestPackage(tables, 'microsoft');
    expect(latest).toEqual({
      feed: 'microsoft',
      sequence: 1,
      sha256: sha256(bytes),
      signingTime,
      signedSequence: 7,
      mitigationIds: ['EM1', 'PING1'],
      acceptedAt,
      bytes: expect.anything(),
    });
    expect(Buffer.compare(Buffer.from(latest!.bytes), bytes)).toBe(0);
    expect(Buffer.compare(Buffer.from((await readPackage(tables, 'microsoft', 1))!.bytes), bytes)).toBe(0);
    expect(await readPackage(tables, 'microsoft', 2)).toBeUndefined();
    expect(await latestPackage(tables, 'contoso-custom')).toBeUndefined();
  });

  // NewPackage.bytes is a Uint8Array; a Buffer and a plain Uint8Array (what `new Uint8Array(await
  // response.arrayBuffer())` gives) must store alike, also when the array is a view into a larger buffer.
  it.each([
    { kind: 'Buffer, 900 KiB', make: () => randomBytes(900 * 1024) },
    { kind: 'plain Uint8Array, 900 KiB', make: () => plainBytes(900 * 1024) },
    { kind: 'plain Uint8Array, 100 KiB', make: () => plainBytes(100 * 1024) },
    { kind: 'plain Uint8Array view, 1 KiB', make: () => plainBytes(4096).subarray(1024, 2048) },
  ])('round-trips a package ($kind) chunked across properties, byte for byte', async ({ make }) => {
    const { tables, prefix } = freshTables();
    const bytes = make();
    const expected = Buffer.from(bytes); // a copy of exactly the view's bytes
    await storePackage(tables, newPackage(bytes));

    const row = await rawTable(prefix, 'Packages').getEntity<Record<string, unknown>>(
      'microsoft',
      '0000000001',
    );
    const chunks = Object.keys(row)
      .filter((name) => /^xml\d{2}$/.test(name))
      .sort();
    expect(chunks).toHaveLength(Math.ceil(bytes.byteLength / packageChunkBytes));
    for (const name of chunks)
      expect((row[name] as Uint8Array).byteLength).toBeLessThanOrEqual(packageChunkBytes);

    const latest = await latestPackage(tables, 'microsoft');
    expect(latest?.sha256).toBe(sha256(expected));
    expect(latest?.bytes.byteLength).toBe(expected.byteLength);
    expect(Buffer.compare(Buffer.from(latest!.bytes), expected)).toBe(0);
  });

  it('round-trips a package of exactly the largest size', async () => {
    const { tables } = freshTables();
    const bytes = randomBytes(maxStoredPackageBytes);
    expect(await storePackage(tables, newPackage(bytes))).toEqual({ sequence: 1, created: true });
    expect(Buffer.compare(Buffer.from((await latestPackage(tables, 'microsoft'))!.bytes), bytes)).toBe(0);
  });

  it('storing the latest bytes again is a no-op; a different package gets the next sequence', async () => {
    const { tables, prefix } = freshTables();
    const first = Buffer.from('<EOCS version="1.0.4"><Config id="EM1"/></EOCS>');
    const second = Buffer.from('<EOCS version="1.0.4"><Config id="EM1"/><Config id="EM2"/></EOCS>');
    expect(await storePackage(tables, newPackage(first))).toEqual({ sequence: 1, created: true });
    const rowsAfterFirst = await allEntities(rawTable(prefix, 'Packages'));

    expect(await storePackage(tables, newPackage(Buffer.from(first)))).toEqual({
      sequence: 1,
      created: false,
    });
    expect(await allEntities(rawTable(prefix, 'Packages'))).toEqual(rowsAfterFirst);

    expect(await storePackage(tables, newPackage(second, { mitigationIds: ['EM1', 'EM2'] }))).toEqual({
      sequence: 2,
      created: true,
    });
    const latest = await latestPackage(tables, 'microsoft');
    expect(latest?.sequence).toBe(2);
    expect(latest?.mitigationIds).toEqual(['EM1', 'EM2']);
    expect(Buffer.compare(Buffer.from(latest!.bytes), second)).toBe(0);
    // The earlier package stays readable.
    expect(Buffer.compare(Buffer.from((await readPackage(tables, 'microsoft', 1))!.bytes), first)).toBe(0);
    // Feeds are independent.
    expect(await storePackage(tables, newPackage(second, { feed: 'contoso-custom' }))).toEqual({
      sequence: 1,
      created: true,
    });
  });

  it('refuses a package over maxStoredPackageBytes (and an empty one) and writes nothing', async () => {
    const { tables, prefix } = freshTables();
    await expect(
      storePackage(tables, newPackage(randomBytes(maxStoredPackageBytes + 1))),
    ).rejects.toBeInstanceOf(PackageStoreError);
    await expect(storePackage(tables, newPackage(new Uint8Array(0)))).rejects.toBeInstanceOf(
      PackageStoreError,
    );
    expect(await latestPackage(tables, 'microsoft')).toBeUndefined();
    expect(await allEntities(rawTable(prefix, 'Packages'))).toEqual([]);
  });

  it('detects a corrupted chunk on read', async () => {
    const { tables, prefix } = freshTables();
    const bytes = randomBytes(100 * 1024);
    await storePackage(tables, newPackage(bytes));
    const corrupted = Buffer.from(bytes.subarray(0, packageChunkBytes));
    corrupted[1234] = corrupted[1234]! ^ 0xff;
    await rawTable(prefix, 'Packages').updateEntity(
      { partitionKey: 'microsoft', rowKey: '0000000001', xml00: corrupted },
      'Merge',
    );

    await expect(latestPackage(tables, 'microsoft')).rejects.toThrow(PackageStoreError);
    await expect(readPackage(tables, 'microsoft', 1)).rejects.toThrow(/SHA-256/);
  });

  it('two concurrent stores of different packages both land, as sequences 1 and 2', async () => {
    const { tables } = freshTables();
    const a = Buffer.from('<EOCS version="1.0.4"><Config id="A"/></EOCS>');
    const b = Buffer.from('<EOCS version="1.0.4"><Config id="B"/></EOCS>');
    const results = await Promise.all([
      storePackage(tables, newPackage(a, { mitigationIds: ['A'] })),
      storePackage(tables, newPackage(b, { mitigationIds: ['B'] })),
    ]);
    expect(results.map((result) => result.sequence).sort()).toEqual([1, 2]);
    expect(results.every((result) => result.created)).toBe(true);

    const one = await readPackage(tables, 'microsoft', 1);
    const two = await readPackage(tables, 'microsoft', 2);
    expect([one?.sha256, two?.sha256].sort()).toEqual([sha256(a), sha256(b)].sort());
    const latest = await latestPackage(tables, 'microsoft');
    expect(latest?.sequence).toBe(2);
    expect([sha256(a), sha256(b)]).toContain(latest?.sha256);
  });
});
