import type { Logger } from '../../lib/log.js';

/** A logger that keeps every entry, for tests that check what was logged. */
export interface LoggedEvent {
  readonly level: 'info' | 'warn' | 'error';
  readonly event: string;
  readonly fields: Record<string, unknown>;
}

export function recordingLogger(): Logger & {
  readonly events: LoggedEvent[];
  named(event: string): LoggedEvent[];
} {
  const events: LoggedEvent[] = [];
  const record =
    (level: LoggedEvent['level']) =>
    (event: string, fields: Record<string, unknown> = {}) => {
      events.push({ level, event, fields });
    };
  return {
    events,
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    named: (event) => events.filter((entry) => entry.event === event),
  };
}
