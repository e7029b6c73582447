import type { LogLevel } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import { forwardLog, hostRuntime, parseJsonOrText, track } from '../../../lib/local/host/runtime.js';
import { systemNow, systemTimers } from '../../../lib/clock.js';
import { recordingLogger, type LoggedEvent } from '../../helpers/logs.js';

describe('forwardLog', () => {
  const fields = { functionName: 'pollOcs', invocationId: 'i1' };

  it.each<{ name: string; level: LogLevel; args: unknown[]; logged: LoggedEvent[] }>([
    {
      name: "an invocationLogger entry is lifted: its event, the host's fields, its own fields",
      level: 'information',
      args: ['{"event":"PackageAccepted","feed":"microsoft","sequence":7}'],
      logged: [
        { level: 'info', event: 'PackageAccepted', fields: { ...fields, feed: 'microsoft', sequence: 7 } },
      ],
    },
    {
      name: 'plain text becomes FunctionLog, formatted as console.log would',
      level: 'warning',
      args: ['%d servers left', 3],
      logged: [{ level: 'warn', event: 'FunctionLog', fields: { ...fields, message: '3 servers left' } }],
    },
    {
      name: 'JSON without an event stays text',
      level: 'error',
      args: ['{"feed":"microsoft"}'],
      logged: [
        { level: 'error', event: 'FunctionLog', fields: { ...fields, message: '{"feed":"microsoft"}' } },
      ],
    },
    {
      name: 'critical is an error',
      level: 'critical',
      args: ['down'],
      logged: [{ level: 'error', event: 'FunctionLog', fields: { ...fields, message: 'down' } }],
    },
    { name: "debug sits below host.json's Information default", level: 'debug', args: ['x'], logged: [] },
    { name: 'trace too', level: 'trace', args: ['x'], logged: [] },
  ])('$name', ({ level, args, logged }) => {
    const logger = recordingLogger();
    forwardLog(logger, level, fields, args);
    expect(logger.events).toEqual(logged);
  });
});

describe('parseJsonOrText', () => {
  it.each([
    { text: '{"serverName":"ex01"}', value: { serverName: 'ex01' } },
    { text: '42', value: 42 },
    { text: '"quoted"', value: 'quoted' },
    { text: 'not json', value: 'not json' },
    { text: '', value: '' },
  ])('$text', ({ text, value }) => {
    expect(parseJsonOrText(text)).toEqual(value);
  });
});

describe('track', () => {
  it('counts work as started and running until it settles, rejected or not', async () => {
    const runtime = hostRuntime(recordingLogger(), systemNow, systemTimers);
    let fail!: (error: Error) => void;
    let finish!: () => void;
    const failing = track(runtime, new Promise<void>((_resolve, reject) => (fail = reject)));
    const finishing = track(runtime, new Promise<void>((resolve) => (finish = resolve)));
    expect({ started: runtime.started, running: runtime.running.size }).toEqual({ started: 2, running: 2 });
    fail(new Error('boom'));
    await expect(failing).rejects.toThrow('boom');
    finish();
    await finishing;
    expect({ started: runtime.started, running: runtime.running.size }).toEqual({ started: 2, running: 0 });
  });
});
