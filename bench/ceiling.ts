import { loadConfig } from '../lib/config/index.js';
import { relayTargetOf } from '../lib/config/sources.js';
import { mapWithConcurrency } from '../lib/concurrency.js';
import { agentClientFor } from '../lib/relay/settings.js';
import { serveCommands, type Command } from './ipc.js';

/**
 * The ceiling of a fan-out: the same apply requests the rollout makes, sent straight from one
 * process with the same concurrency and the app's own relay client, no queues and no tables.
 */
export interface CeilingRun extends Command {
  readonly kind: 'run';
  readonly hybridConnections: readonly string[];
  readonly packageBase64: string;
  readonly mitigationIds: readonly string[];
  readonly concurrency: number;
}

export interface CeilingResult {
  readonly ms: number;
  /** Server × mitigation outcomes, by outcome. */
  readonly outcomes: Record<string, number>;
}

serveCommands(async (command: Command) => {
  if (command.kind === 'stop') return {};
  if (command.kind !== 'run') throw new Error(`unknown command ${command.kind}`);
  const run = command as CeilingRun;
  const agents = await agentClientFor(relayTargetOf(loadConfig(process.env)));
  const outcomes: Record<string, number> = {};
  const started = Date.now();
  await mapWithConcurrency(run.hybridConnections, run.concurrency, async (hybridConnection) => {
    // One id per agent; an address behind a hub carries a slash, which ids do not.
    const operationId = `ceiling.${hybridConnection.replaceAll('/', ':')}`;
    let reply = await agents.apply(hybridConnection, {
      operationId,
      packageBase64: run.packageBase64,
      mitigationIds: [...run.mitigationIds],
    });
    // As applyToServer does: an agent still at work (202) is asked for the operation until it is done.
    while (reply.status !== 'Completed') {
      await new Promise((resolve) => setTimeout(resolve, 200));
      reply =
        (await agents.status(hybridConnection)).operations.find(
          (operation) => operation.operationId === operationId,
        ) ?? reply;
    }
    for (const result of Object.values(reply.outcomes))
      outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
  });
  return { ms: Date.now() - started, outcomes } satisfies CeilingResult;
});
