import type { TableClient } from '@azure/data-tables';
import type { z } from 'zod';
import type { Logger } from '../log.js';
import type { TableName } from './storage.js';

/** A stored row that fails its schema: reported with where it is and what is wrong, then skipped. */
export interface RowProblem {
  readonly table: TableName;
  readonly partitionKey: string;
  readonly rowKey: string;
  readonly field: string;
  readonly message: string;
}

export function describeRowProblem(problem: RowProblem): string {
  return `${problem.table} row (${problem.partitionKey}, ${problem.rowKey}): ${problem.field}: ${problem.message}`;
}

export type Validated<T> =
  | { readonly ok: true; readonly row: T; readonly etag: string }
  | { readonly ok: false; readonly problem: RowProblem };

export function validateRow<S extends z.ZodType>(
  table: TableName,
  schema: S,
  entity: Record<string, unknown>,
): Validated<z.infer<S>> {
  const parsed = schema.safeParse(entity);
  if (parsed.success) return { ok: true, row: parsed.data, etag: String(entity['etag'] ?? '') };
  const issue = parsed.error.issues[0]!;
  return {
    ok: false,
    problem: {
      table,
      partitionKey: String(entity['partitionKey'] ?? ''),
      rowKey: String(entity['rowKey'] ?? ''),
      field: issue.path.join('.') || '(row)',
      message: issue.message,
    },
  };
}

export interface ReadOptions {
  /** Build with `odata` from @azure/data-tables, never by concatenation. */
  readonly filter?: string;
  readonly pageSize?: number;
  readonly logger?: Logger;
}

export interface ReadResult<T> {
  readonly rows: T[];
  readonly etags: Map<T, string>;
  readonly problems: RowProblem[];
}

/** Pages through a query (1,000 rows a round trip), validating each row; bad rows never reach callers. */
export async function readRows<S extends z.ZodType>(
  client: TableClient,
  table: TableName,
  schema: S,
  options: ReadOptions = {},
): Promise<ReadResult<z.infer<S>>> {
  const rows: z.infer<S>[] = [];
  const etags = new Map<z.infer<S>, string>();
  const problems: RowProblem[] = [];
  const pages = client
    .listEntities<Record<string, unknown>>(
      options.filter === undefined ? {} : { queryOptions: { filter: options.filter } },
    )
    .byPage({ maxPageSize: options.pageSize ?? 1000 });
  for await (const page of pages) {
    for (const entity of page) {
      const checked = validateRow(table, schema, entity);
      if (checked.ok) {
        rows.push(checked.row);
        etags.set(checked.row, checked.etag);
      } else {
        problems.push(checked.problem);
        options.logger?.warn('InvalidRow', { ...checked.problem });
      }
    }
  }
  return { rows, etags, problems };
}

export function isStatus(error: unknown, ...statuses: number[]): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    statuses.includes((error as { statusCode?: number }).statusCode ?? -1)
  );
}
