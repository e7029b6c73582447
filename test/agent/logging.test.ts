import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import {
  agentLogger,
  eventIds,
  eventLogEntry,
  eventLogProcess,
  noEventLog,
  rotatingFile,
  windowsEventLog,
  type EventLogEntry,
} from '../../lib/agent/logging.js';
import {
  powerShellScriptFiles,
  scriptPath,
  windowsPowerShellPath,
} from '../../lib/agent/appliers/powershell.js';

describe('eventLogEntry', () => {
  it.each([
    {
      event: 'AgentStarted',
      level: 'info',
      fields: { server: 'ex01.contoso.com', build: '15.2.1544.4' },
      expected: {
        id: 1000,
        type: 'Information',
        message: 'AgentStarted\r\nserver: ex01.contoso.com\r\nbuild: 15.2.1544.4',
      },
    },
    {
      event: 'RelayListenerListening',
      level: 'info',
      fields: { hybridConnection: 'ex01.contoso.com' },
      expected: {
        id: 1002,
        type: 'Information',
        message: 'RelayListenerListening\r\nhybridConnection: ex01.contoso.com',
      },
    },
    {
      event: 'RelayListenerRejected',
      level: 'error',
      fields: { status: 401 },
      expected: { id: 1004, type: 'Error', message: 'RelayListenerRejected\r\nstatus: 401' },
    },
    {
      event: 'MitigationOutcome',
      level: 'info',
      fields: { mitigationId: 'EM1', outcome: 'Applied' },
      expected: {
        id: 1100,
        type: 'Information',
        message: 'MitigationApplied\r\nmitigationId: EM1\r\noutcome: Applied',
      },
    },
    {
      event: 'MitigationOutcome',
      level: 'info',
      fields: { mitigationId: 'EM2', outcome: 'RolledBack' },
      expected: {
        id: 1103,
        type: 'Warning',
        message: 'MitigationRolledBack\r\nmitigationId: EM2\r\noutcome: RolledBack',
      },
    },
    {
      event: 'MitigationOutcome',
      level: 'info',
      fields: { mitigationId: 'EM2', outcome: 'Failed' },
      expected: {
        id: 1106,
        type: 'Error',
        message: 'MitigationFailed\r\nmitigationId: EM2\r\noutcome: Failed',
      },
    },
    {
      event: 'MitigationAdopted',
      level: 'info',
      fields: { mitigationId: 'EM1' },
      expected: { id: 1101, type: 'Information', message: 'MitigationAdopted\r\nmitigationId: EM1' },
    },
    {
      event: 'PackageRejected',
      level: 'warn',
      fields: { reason: 'BadSignature' },
      expected: { id: 1200, type: 'Warning', message: 'PackageRejected\r\nreason: BadSignature' },
    },
    {
      event: 'MitigationOutcome',
      level: 'info',
      fields: { mitigationId: 'EM1', outcome: 'AlreadyApplied' },
      expected: undefined,
    },
    { event: 'StatusCheckFailed', level: 'warn', fields: {}, expected: undefined },
  ] as const)('$event $fields.outcome', ({ event, level, fields, expected }) => {
    expect(eventLogEntry(level, event, fields)).toEqual(expected);
  });

  it('ids are stable and unique', () => {
    expect(new Set(Object.values(eventIds)).size).toBe(Object.keys(eventIds).length);
    expect(eventIds).toMatchObject({
      AgentStarted: 1000,
      RelayListenerListening: 1002,
      MitigationApplied: 1100,
      MitigationRolledBack: 1103,
      PackageRejected: 1200,
      ExchangeBuildChanged: 1300,
    });
  });
});

describe('rotatingFile', () => {
  it('caps each file at maxBytes and keeps `keep` files, the newest lines in agent.log', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'emfleet-logs-'));
    const file = rotatingFile(directory, { maxBytes: 100, keep: 3 });
    for (let index = 0; index < 20; index++)
      file.write(`line ${String(index).padStart(2, '0')} ${'x'.repeat(30)}`);
    expect((await readdir(directory)).sort()).toEqual(['agent.log', 'agent.log.1', 'agent.log.2']);
    for (const name of ['agent.log', 'agent.log.1', 'agent.log.2'])
      expect((await readFile(join(directory, name))).length).toBeLessThanOrEqual(100);
    expect((await readFile(join(directory, 'agent.log'), 'utf8')).trim().split('\n').at(-1)).toMatch(
      /^line 19 /,
    );
    expect(await readFile(join(directory, 'agent.log.2'), 'utf8')).toMatch(/^line 14 /);
  });

  it('continues an existing file after a restart, counting its size', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'emfleet-logs-'));
    await writeFile(join(directory, 'agent.log'), 'x'.repeat(90) + '\n');
    rotatingFile(directory, { maxBytes: 100, keep: 2 }).write('y'.repeat(20));
    expect(await readFile(join(directory, 'agent.log'), 'utf8')).toBe('y'.repeat(20) + '\n');
    expect(await readFile(join(directory, 'agent.log.1'), 'utf8')).toBe('x'.repeat(90) + '\n');
  });
});

describe('agentLogger', () => {
  it('writes every event to the file as a JSON line and the important ones to the event log', () => {
    const lines: string[] = [];
    const written: EventLogEntry[] = [];
    const logger = agentLogger({
      file: { write: (line) => lines.push(line) },
      eventLog: { write: (entry) => written.push(entry), close: () => {} },
      now: () => new Date('2026-12-07T10:00:00.000Z'),
    });
    logger.info('AgentStarted', { server: 'ex01.contoso.com' });
    logger.info('StatusSweep', { x: 1 });
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      { time: '2026-12-07T10:00:00.000Z', level: 'info', event: 'AgentStarted', server: 'ex01.contoso.com' },
      { time: '2026-12-07T10:00:00.000Z', level: 'info', event: 'StatusSweep', x: 1 },
    ]);
    expect(written).toEqual([
      { id: 1000, type: 'Information', message: 'AgentStarted\r\nserver: ex01.contoso.com' },
    ]);
  });

  it('on Linux the event log is a sink that does nothing, with the same interface', () => {
    expect(() => {
      noEventLog.write({ id: 1000, type: 'Information', message: 'x' });
      noEventLog.close();
    }).not.toThrow();
  });
});

describe('windowsEventLog', () => {
  it('runs the shipped event-log.write.ps1 by full path with -File', () => {
    expect(eventLogProcess()).toEqual({
      executable: windowsPowerShellPath(),
      args: ['-NoLogo', '-NoProfile', '-NonInteractive', '-File', scriptPath('event-log.write')],
    });
    expect(eventLogProcess().args.join(' ')).not.toMatch(/EncodedCommand|ExecutionPolicy|Bypass/);
    expect(powerShellScriptFiles()).toContain(scriptPath('event-log.write'));
    expect(existsSync(scriptPath('event-log.write'))).toBe(true);
  });

  it.each([
    {
      name: 'a line the script could not write (its JSON error)',
      script: `process.stderr.write('{"error":"The source emfleet-agent is not registered on this computer."}\\n')`,
      message: 'event log: The source emfleet-agent is not registered on this computer.',
    },
    {
      name: 'Constrained Language mode (exit 3)',
      script: 'process.exit(3)',
      message: expect.stringMatching(
        /^cannot write to the event log \(ConstrainedLanguage\): PowerShell runs the script in Constrained Language mode/,
      ),
    },
    {
      name: 'a 32-bit PowerShell (exit 4)',
      script: 'process.exit(4)',
      message: expect.stringMatching(/^cannot write to the event log \(Not64Bit\): /),
    },
  ])('reports $name', async ({ script, message }) => {
    const errors: string[] = [];
    // Node stands in for powershell.exe.
    const sink = windowsEventLog({
      executable: process.execPath,
      args: ['-e', script],
      onError: (text) => errors.push(text),
    });
    sink.write({ id: 1000, type: 'Information', message: 'AgentStarted' });
    await vi.waitFor(() => expect(errors).toEqual([message]), { timeout: 10_000 });
    sink.close();
  });

  it('feeds one long-lived process a JSON line per event, non-ASCII escaped', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'emfleet-eventlog-'));
    const out = join(directory, 'events.jsonl');
    // Node stands in for powershell.exe: it appends what it reads.
    const sink = windowsEventLog({
      executable: process.execPath,
      args: ['-e', `process.stdin.pipe(require('fs').createWriteStream(${JSON.stringify(out)}))`],
    });
    sink.write({ id: 1100, type: 'Information', message: 'MitigationApplied\r\nrule: Zürich' });
    sink.write({ id: 1106, type: 'Error', message: 'MitigationFailed' });
    sink.close();
    await vi.waitFor(
      async () =>
        expect((await readFile(out, 'utf8').catch(() => '')).split('\n').filter(Boolean)).toHaveLength(2),
      { timeout: 10_000 },
    );
    const text = await readFile(out, 'utf8');
    expect(text).not.toMatch(/[^\x00-\x7f]/);
    expect(
      text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line)),
    ).toEqual([
      { id: 1100, type: 'Information', message: 'MitigationApplied\r\nrule: Zürich' },
      { id: 1106, type: 'Error', message: 'MitigationFailed' },
    ]);
  });
});
