import { vi } from 'vitest';

/**
 * How long a test waits for something before it fails: generous, since the suite must pass on a
 * machine whose cores are busy with other work (npm run test:stress); a condition that is met
 * returns at the next check, so this costs nothing when things go well.
 */
export const patienceMs = 60_000;

/**
 * Polls until `probe` gives a truthy value, and returns it; fails
 * naming what it waited for. The one way tests wait: no fixed sleeps.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? patienceMs;
  try {
    return await vi.waitFor(
      async () => {
        const value = await probe();
        if (!value) throw new Error(`still waiting for ${what}`);
        return value;
      },
      { timeout: timeoutMs, interval: options.intervalMs ?? 20 },
    );
  } catch (error) {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: error });
  }
}
