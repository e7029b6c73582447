import { vi } from 'vitest';

/**
 * Polls until `probe` gives a truthy value, and returns it; fails
 * naming what it waited for. The one way tests wait: no fixed sleeps. The bound is generous (the
 * suite must pass with both cores busy); a condition that is met returns at the next check.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
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
