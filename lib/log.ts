/** Structured JSON logs: one object per line with an event name and the context fields. */
export interface Logger {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(
  write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
): Logger {
  const emit =
    (level: string) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }));
  return { info: emit('info'), warn: emit('warn'), error: emit('error') };
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** Query parameters that carry a secret: a function key (`code`), a SAS signature, a token. */
const secretName =
  /^(code|sig|signature|key|.*[-_]key|token|.*[-_]token|access_token|client_secret|password|sb-hc-token|authorization|cookie|x-ms-client-principal.*)$/i;
const masked = '***';

/**
 * A URL fit for a log line: the value of every query parameter that can carry a secret (the
 * function key in `code=`, a SAS `sig=`, a token) replaced by `***`. Text that is not a URL is
 * masked the same way wherever it looks like `name=value`.
 *
 * @example redactUrl('https://app/api/status?code=abc&top=5') === 'https://app/api/status?code=***&top=5'
 */
export function redactUrl(url: string): string {
  return url.replace(/([?&;]|^)([^=&?#;]+)=([^&#;]*)/g, (whole, separator: string, name: string) =>
    secretName.test(decodeURIComponentSafe(name)) ? `${separator}${name}=${masked}` : whole,
  );
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
