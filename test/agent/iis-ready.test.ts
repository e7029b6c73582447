import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { iisPollEveryInMs, waitForIis } from '../../lib/agent/iis-ready.js';
import { recordingTimers } from '../helpers/clock.js';

/** A logger that keeps its events, to assert on. */
function recordingLogger() {
  const events: Array<{ level: string; event: string; fields: Record<string, unknown> }> = [];
  const at =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      events.push({ level, event, fields });
  return { events, info: at('info'), warn: at('warn'), error: at('error') };
}

/** Service statuses that change after a number of reads of each service. */
function statusesAfter(readsUntilRunning: Record<string, number>) {
  const reads: Record<string, number> = {};
  return async (service: string): Promise<string> => {
    reads[service] = (reads[service] ?? 0) + 1;
    const until = readsUntilRunning[service];
    if (until === undefined) throw new Error(`no Windows service "${service}"`);
    return reads[service] > until ? 'Running' : 'StartPending';
  };
}

describe('waitForIis (start-up wait for W3SVC and WAS)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function run(readStatus: (service: string) => Promise<string>, boundInMs = 600_000) {
    const logger = recordingLogger();
    const timers = recordingTimers();
    const waiting = waitForIis({ readStatus, logger, server: 'EX01', boundInMs, timers });
    await vi.runAllTimersAsync();
    return { ready: await waiting, delays: timers.delays, events: logger.events };
  }

  it('is ready at once when both services run, without waiting', async () => {
    const { ready, delays, events } = await run(statusesAfter({ W3SVC: 0, WAS: 0 }));
    expect(ready).toBe(true);
    expect(delays).toEqual([]);
    expect(events).toEqual([
      {
        level: 'info',
        event: 'IisReady',
        fields: { server: 'EX01', services: { W3SVC: 'Running', WAS: 'Running' }, waitedInMs: 0 },
      },
    ]);
  });

  it('polls until both run, logging WaitingForIis once then IisReady', async () => {
    const { ready, delays, events } = await run(statusesAfter({ W3SVC: 3, WAS: 1 }));
    expect(ready).toBe(true);
    expect(delays).toEqual([iisPollEveryInMs, iisPollEveryInMs, iisPollEveryInMs]);
    expect(events.map(({ level, event }) => `${level} ${event}`)).toEqual([
      'warn WaitingForIis',
      'info IisReady',
    ]);
    expect(events[0]!.fields).toMatchObject({ services: { W3SVC: 'StartPending', WAS: 'StartPending' } });
    expect(events[1]!.fields).toMatchObject({ waitedInMs: 3 * iisPollEveryInMs });
  });

  it('never ready: carries on after the bound, logging IisNotReady with what it read', async () => {
    const { ready, delays, events } = await run(statusesAfter({ W3SVC: 0 }), 12_000);
    expect(ready).toBe(false);
    expect(delays).toEqual([5_000, 5_000, 2_000]);
    expect(events.map(({ level, event }) => `${level} ${event}`)).toEqual([
      'warn WaitingForIis',
      'error IisNotReady',
    ]);
    expect(events[1]!.fields).toMatchObject({
      server: 'EX01',
      waitedInMs: 12_000,
      services: { W3SVC: 'Running', WAS: 'unreadable: no Windows service "WAS"' },
    });
  });

  it('a bound of 0 does not wait at all', async () => {
    const { ready, delays, events } = await run(statusesAfter({ W3SVC: 5, WAS: 5 }), 0);
    expect(ready).toBe(false);
    expect(delays).toEqual([]);
    expect(events.map(({ event }) => event)).toEqual(['IisNotReady']);
  });
});
