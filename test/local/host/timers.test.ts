import type { Timer } from '@azure/functions';
import { describe, expect, it, vi } from 'vitest';
import { waitFor } from '../../helpers/wait.js';
import { start, stopHosts, timerFunction, useLocalHosts, yearly } from './fixture.js';

/** Timer triggers on their NCRONTAB schedule (lib/ncrontab.ts, tested in test/ncrontab.test.ts). */

useLocalHosts();

describe('timer triggers', () => {
  it('fires a %SETTING% schedule of every second in UTC, with the Timer object', async () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'Date'],
      now: new Date('2025-06-01T10:00:00.250Z'),
    });
    try {
      const timers: Timer[] = [];
      await start([timerFunction('tick', '%TICK_SCHEDULE%', (timer) => void timers.push(timer))], {
        settings: { TICK_SCHEDULE: '*/1 * * * * *' },
      });
      await vi.advanceTimersByTimeAsync(2_500);
      // Exactly the two occurrences in 2.5 s of the pinned clock, on the second.
      expect(timers.map((timer) => timer.scheduleStatus)).toEqual([
        {
          last: '2025-06-01T10:00:01.000Z',
          next: '2025-06-01T10:00:02.000Z',
          lastUpdated: '2025-06-01T10:00:01.000Z',
        },
        {
          last: '2025-06-01T10:00:01.000Z',
          next: '2025-06-01T10:00:03.000Z',
          lastUpdated: '2025-06-01T10:00:02.000Z',
        },
      ]);
      expect(timers[0]).toMatchObject({ isPastDue: false, schedule: { adjustForDST: false } });
      await stopHosts();
    } finally {
      vi.useRealTimers();
    }
  });

  it('honours runOnStartup and runs a timer at once with runTimer, which rejects with the handler error', async () => {
    const calls: string[] = [];
    let manual: Timer | undefined;
    const { host, logger } = await start(
      [
        timerFunction('startup', yearly, () => void calls.push('startup'), true),
        timerFunction('manual', yearly, (timer) => {
          calls.push('manual');
          manual = timer;
        }),
        timerFunction('broken', yearly, () => {
          throw new Error('feed down');
        }),
      ],
      { now: () => new Date('2025-06-01T10:00:00Z') },
    );
    await waitFor('the runOnStartup invocation', () => calls.includes('startup'));
    await host.runTimer('manual');
    expect(calls).toEqual(['startup', 'manual']);
    expect(manual?.scheduleStatus).toEqual({
      last: '2025-06-01T10:00:00.000Z',
      next: '2026-01-01T00:00:00.000Z',
      lastUpdated: '2025-06-01T10:00:00.000Z',
    });
    await expect(host.runTimer('broken')).rejects.toThrow('feed down');
    expect(logger.named('InvocationFailed')[0]?.fields).toMatchObject({
      functionName: 'broken',
      trigger: 'timer',
      error: 'feed down',
    });
    await expect(host.runTimer('nothing')).rejects.toThrow('no timer function named nothing');
  });

  it('refuses a bad schedule or an unset setting, naming the function and the expression', async () => {
    await expect(start([timerFunction('badCron', '0 0 * * *', () => undefined)])).rejects.toThrow(
      /function badCron: schedule "0 0 \* \* \*".*expected 6 fields/,
    );
    await expect(start([timerFunction('badStep', '*/0 * * * * *', () => undefined)])).rejects.toThrow(
      /function badStep: schedule "\*\/0 \* \* \* \* \*"/,
    );
    await expect(start([timerFunction('noSetting', '%MISSING_SCHEDULE%', () => undefined)])).rejects.toThrow(
      'function noSetting: schedule "%MISSING_SCHEDULE%" names app setting MISSING_SCHEDULE, which is not set',
    );
  });
});
