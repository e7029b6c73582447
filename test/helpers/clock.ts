import { systemTimers, type TimerHandle, type Timers } from '../../lib/clock.js';

/** The system's timers, recording every delay they are asked for: a part's waits, as data to assert on. */
export function recordingTimers(): Timers & { readonly delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    setTimeout: (callback, delayMs) => {
      delays.push(delayMs);
      return systemTimers.setTimeout(callback, delayMs);
    },
    clearTimeout: systemTimers.clearTimeout,
  };
}

/** Timers that never fire by themselves: the test fires what is pending, when it chooses. */
export function manualTimers(): Timers & { readonly pending: { delayMs: number; fire(): void }[] } {
  const pending: { delayMs: number; fire(): void; handle: TimerHandle }[] = [];
  return {
    pending,
    setTimeout: (callback, delayMs) => {
      // A real handle that does nothing, so a caller may clear or unref it as usual.
      const handle = systemTimers.setTimeout(() => undefined, 0);
      systemTimers.clearTimeout(handle);
      const entry = {
        delayMs,
        handle,
        fire: () => {
          pending.splice(pending.indexOf(entry), 1);
          callback();
        },
      };
      pending.push(entry);
      return handle;
    },
    clearTimeout: (handle) => {
      const index = pending.findIndex((entry) => entry.handle === handle);
      if (index >= 0) pending.splice(index, 1);
    },
  };
}
