import { writeAudit } from '../../fleet/audit.js';
import type { StepDeps } from './deps.js';

/** Recorded when a queue message fails its schema: it is not retried. */
export async function recordInvalidMessage(
  deps: Pick<StepDeps, 'tables' | 'logger'>,
  queue: string,
  messageId: string | undefined,
  problem: string,
): Promise<void> {
  deps.logger.error('InvalidMessage', { queue, messageId, problem });
  await writeAudit(
    deps.tables,
    [
      {
        actor: 'emfleet',
        action: 'message.invalid',
        target: `queue:${queue}`,
        source: 'queue',
        before: null,
        after: { messageId, problem },
      },
    ],
    undefined,
    { logger: deps.logger },
  );
}
