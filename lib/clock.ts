/**
 * Time as production code takes it: through the options bag, so tests pin the clock and count the
 * waits instead of sleeping. The convention everywhere:
 * - a long-lived part (local host, agent, listener, steps) takes `now?: () => Date`, and where it
 *   schedules work `timers?: Timers`;
 * - a one-shot call (store a package, write a policy row, verify) takes `now?: Date`, the instant
 *   it acts at.
 * Both default to the system clock; tests pass a pinned `now`, vitest's fake timers, or a `Timers`
 * that records the delays it is asked for.
 */
export type Now = () => Date;

export type TimerHandle = ReturnType<typeof setTimeout>;

export interface Timers {
  setTimeout(callback: () => void, delayMs: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemNow: Now = () => new Date();

/** Looks the globals up at each call, so vitest's fake timers replace them too. */
export const systemTimers: Timers = {
  setTimeout: (callback, delayMs) => setTimeout(callback, delayMs),
  clearTimeout: (handle) => clearTimeout(handle),
};
