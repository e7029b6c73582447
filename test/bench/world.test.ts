import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { defaultHostMemoryMb, heapOptionsFor } from '../../bench/world.js';

describe("the bench host's heap", () => {
  it('is sized for the instance memory infra/main.bicep deploys by default', async () => {
    const bicep = await readFile(new URL('../../infra/main.bicep', import.meta.url), 'utf8');
    const declared = /^param instanceMemoryMB int = (\d+)$/m.exec(bicep);
    expect(declared, 'infra/main.bicep declares instanceMemoryMB with a default').not.toBeNull();
    expect(defaultHostMemoryMb).toBe(Number(declared![1]));
  });

  it("gives V8 a quarter of that memory for its old generation, and nothing for this machine's defaults", () => {
    expect(heapOptionsFor(2048)).toEqual(['--max-old-space-size=512']);
    expect(heapOptionsFor(4096)).toEqual(['--max-old-space-size=1024']);
    expect(heapOptionsFor(undefined)).toEqual([]);
  });
});
