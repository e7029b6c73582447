import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { appendFileSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import {
  environmentExits,
  errorText,
  readableText,
  scriptArguments,
  windowsPowerShellPath,
} from './appliers/powershell.js';

/*
 * The agent's logs where Exchange admins look (docs/agent.md, "Logs"): every event as a JSON line
 * in a size-capped, rotating file under the state directory, and the important ones in the Windows
 * Application event log under the source `emfleet-agent`, each with a stable event id. On Linux
 * (tests, local runs) the event log is a sink that does nothing, with the same interface.
 */

export type LogLevel = 'info' | 'warn' | 'error';
export type EventLogType = 'Information' | 'Warning' | 'Error';

export const eventLogSource = 'emfleet-agent';

/** Stable ids: documented in docs/agent.md, never renumbered. */
export const eventIds = {
  AgentStarted: 1000,
  AgentStopping: 1001,
  RelayListenerListening: 1002,
  RelayListenerReconnecting: 1003,
  RelayListenerRejected: 1004,
  RelayListenerError: 1005,
  MitigationApplied: 1100,
  MitigationAdopted: 1101,
  MitigationRemoved: 1102,
  MitigationRolledBack: 1103,
  MitigationDegraded: 1104,
  MitigationIneffective: 1105,
  MitigationFailed: 1106,
  PackageRejected: 1200,
  ExchangeBuildChanged: 1300,
  BuildNotDetected: 1301,
  JournalRepaired: 1400,
  OperationFailed: 1500,
} as const;
export type EventLogName = keyof typeof eventIds;

export interface EventLogEntry {
  readonly id: number;
  readonly type: EventLogType;
  readonly message: string;
}

const typeOf: Record<LogLevel, EventLogType> = { info: 'Information', warn: 'Warning', error: 'Error' };

/** A MitigationOutcome log line is one of several events, by what happened. */
const outcomeEvents: Partial<Record<string, { name: EventLogName; type: EventLogType }>> = {
  Applied: { name: 'MitigationApplied', type: 'Information' },
  Removed: { name: 'MitigationRemoved', type: 'Information' },
  RolledBack: { name: 'MitigationRolledBack', type: 'Warning' },
  Degraded: { name: 'MitigationDegraded', type: 'Warning' },
  Ineffective: { name: 'MitigationIneffective', type: 'Warning' },
  Failed: { name: 'MitigationFailed', type: 'Error' },
};

/**
 * Which log lines go to the event log, with which id and type, and the text an admin reads in
 * Event Viewer (pure). Routine lines (status checks, every AlreadyApplied) stay in the file only.
 */
export function eventLogEntry(
  level: LogLevel,
  event: string,
  fields: Record<string, unknown>,
): EventLogEntry | undefined {
  let name: EventLogName;
  let type = typeOf[level];
  if (event === 'MitigationOutcome') {
    const mapped = outcomeEvents[String(fields['outcome'])];
    if (!mapped) return undefined;
    name = mapped.name;
    type = mapped.type;
  } else if (event in eventIds) {
    name = event as EventLogName;
  } else {
    return undefined;
  }
  const details = Object.entries(fields).map(
    ([key, value]) => `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`,
  );
  // The event log caps a message at 31,839 characters; the file has everything.
  return { id: eventIds[name], type, message: [name, ...details].join('\r\n').slice(0, 30_000) };
}

export interface EventLogSink {
  write(entry: EventLogEntry): void;
  close(): void;
}

export const noEventLog: EventLogSink = { write: () => {}, close: () => {} };

/**
 * One long-lived PowerShell running event-log.write.ps1 (like the applier's scripts: by full path,
 * with -File), which writes each line it reads (JSON: id, type, message) with Write-EventLog: values
 * as data, never script text, and no process per event. The source is registered by
 * Install-EmfleetAgent.ps1 (New-EventLog needs Administrators once). A PowerShell that died is
 * started again for the next event; the file log never depends on it.
 */
export function eventLogProcess(): { executable: string; args: string[] } {
  return { executable: windowsPowerShellPath(), args: scriptArguments('event-log.write') };
}

/** The sink writing through eventLogProcess(); executable and args replace it in tests. */
export function windowsEventLog(
  options: { executable?: string; args?: readonly string[]; onError?: (message: string) => void } = {},
): EventLogSink {
  const executable = options.executable ?? eventLogProcess().executable;
  const args = options.args ?? eventLogProcess().args;
  let child: ChildProcessWithoutNullStreams | undefined;
  const start = (): ChildProcessWithoutNullStreams => {
    const started = spawn(executable, [...args], { stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    started.on('error', (error) => options.onError?.(`cannot write to the event log: ${error.message}`));
    started.stderr.on('data', (chunk: Buffer) =>
      options.onError?.(`event log: ${errorText(readableText(chunk))}`),
    );
    started.stdin.on('error', () => undefined);
    started.on('exit', (code) => {
      if (child === started) child = undefined;
      // The script's environment checks (Constrained Language mode, a 32-bit process) say why it stopped.
      const environment = code === null ? undefined : environmentExits[code];
      if (environment)
        options.onError?.(`cannot write to the event log (${environment.code}): ${environment.message}`);
    });
    // The agent's stop must not wait for it.
    started.unref();
    return started;
  };
  return {
    write(entry) {
      child ??= start();
      // ASCII JSON: PowerShell reads standard input in the console's code page.
      child.stdin.write(
        JSON.stringify(entry).replace(
          /[\u007f-\uffff]/g,
          (character) => '\\u' + character.charCodeAt(0).toString(16).padStart(4, '0'),
        ) + '\n',
      );
    },
    close() {
      child?.stdin.end();
      child = undefined;
    },
  };
}

export interface RotatingFileOptions {
  /** The file is rotated before it would pass this size. */
  readonly maxBytes: number;
  /** Files kept: agent.log and agent.log.1 … agent.log.{keep-1}; the oldest is deleted. */
  readonly keep: number;
}

export const defaultLogFiles: RotatingFileOptions = { maxBytes: 10 * 1024 * 1024, keep: 5 };

/**
 * Appends lines to {directory}/agent.log synchronously (a line is on disk before the next step, and
 * the last lines before a crash are kept), rotating at maxBytes.
 */
export function rotatingFile(
  directory: string,
  options: RotatingFileOptions = defaultLogFiles,
): { write(line: string): void; readonly file: string } {
  const file = join(directory, 'agent.log');
  mkdirSync(directory, { recursive: true });
  let size = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  const rotate = (): void => {
    rmSync(`${file}.${options.keep - 1}`, { force: true });
    for (let index = options.keep - 2; index >= 1; index--) {
      if (statSync(`${file}.${index}`, { throwIfNoEntry: false }))
        renameSync(`${file}.${index}`, `${file}.${index + 1}`);
    }
    if (options.keep > 1) renameSync(file, `${file}.1`);
    else rmSync(file, { force: true });
    size = 0;
  };
  return {
    file,
    write(line) {
      const bytes = Buffer.byteLength(line) + 1;
      if (size > 0 && size + bytes > options.maxBytes) rotate();
      appendFileSync(file, line + '\n');
      size += bytes;
    },
  };
}

/**
 * The agent's logger: each event as a JSON line to the file (and to `echo`, e.g. the console when
 * run by hand), the important ones to the event log as well.
 */
export function agentLogger(sinks: {
  file: { write(line: string): void };
  eventLog: EventLogSink;
  echo?: (line: string) => void;
  now?: () => Date;
}): Logger {
  const emit =
    (level: LogLevel) =>
    (event: string, fields: Record<string, unknown> = {}) => {
      const line = JSON.stringify({
        time: (sinks.now?.() ?? new Date()).toISOString(),
        level,
        event,
        ...fields,
      });
      sinks.file.write(line);
      sinks.echo?.(line);
      const entry = eventLogEntry(level, event, fields);
      if (entry) sinks.eventLog.write(entry);
    };
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}
