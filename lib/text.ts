/** Plain text tables for humans (the CLI and `npm start`); --json is for scripts. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** `text`, cut to `length` characters with an ellipsis: details and notes that must fit a column or a row. */
export function clip(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

/** `/ecp/healthcheck.htm` → `ecp`: how details and halt reasons name an endpoint. */
export function endpointName(endpoint: string): string {
  return endpoint.split('/').find((part) => part !== '') ?? endpoint;
}
