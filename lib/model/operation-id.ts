import { createHash } from 'node:crypto';

/**
 * The operation id of one server's part of a rollout wave: its Results row key, and what the agent
 * is asked under. Apart from names.ts because it hashes (node:crypto), and names.ts is also read
 * where only zod is at hand.
 */
export function operationIdOf(rolloutId: string, wave: number, server: string, attempt = 0): string {
  // Operation ids must stay within the agent protocol's 128 characters whatever the rollout id.
  // A retry is a new operation: the agent must not answer it from its memory of the failed one.
  const id = `${rolloutId}.w${wave}${attempt > 0 ? `.r${attempt}` : ''}.${server}`;
  return id.length <= 120 ? id : `op.${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;
}
