import { feedSources } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import type { AppConfig } from '../config/index.js';
import { changePolicy, type PolicyTarget } from '../fleet/policy.js';
import type { QueueSender } from '../fleet/queues.js';
import type { OnDegraded, PolicyLayer } from '../model/policy.js';
import type { FleetTables } from '../fleet/storage.js';
import { nextOccurrence } from '../ncrontab.js';
import type { Logger } from '../log.js';
import type { Notify } from '../notify.js';
import { fixUpNow, type PolicyEffect } from '../rollout/fixup.js';

/** One edit of a scope's Tables-edited policy row, as `policy set|block|unblock` and `POST /api/policy/...` make it. */
export type PolicyEdit =
  | { readonly kind: 'set'; readonly enabled?: boolean; readonly onDegraded?: OnDegraded }
  | { readonly kind: 'block' | 'unblock'; readonly ids: readonly string[] };

export interface PolicyEditDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly notify?: Notify;
}

export interface PolicyEditResult {
  readonly changed: boolean;
  /** In words: "blocked EM1", "mitigations disabled". */
  readonly what: string;
  readonly after: PolicyLayer;
  readonly effect: PolicyEffect;
}

/**
 * Writes the edit (audited, ETag-checked), then either starts the fix-up for what it touched
 * (`now`) or says when the next reconcile will pick it up. The target must exist (the caller checks).
 */
export async function editPolicy(
  deps: PolicyEditDeps,
  target: PolicyTarget,
  edit: PolicyEdit,
  options: { actor: string; now: boolean; clock?: () => Date },
): Promise<PolicyEditResult> {
  const clock = options.clock ?? (() => new Date());
  const change = await changePolicy(
    deps.tables,
    target,
    (table, declared) => nextLayer(table, declared, edit),
    { actor: options.actor, action: `policy.${edit.kind}`, now: clock() },
  );
  const effect: PolicyEffect = options.now
    ? {
        takesEffect: 'now',
        fixUps: await fixUpNow(fixUpDeps(deps, clock), feedsOf(feedSources(deps.config)).feeds, {
          ...(target.scope === 'server' ? { servers: [target.name] } : {}),
          ...(edit.kind === 'set' ? {} : { mitigationIds: edit.ids }),
        }),
      }
    : {
        takesEffect: 'nextReconcile',
        at: nextOccurrence(deps.config.reconcileSchedule, clock()).toISOString(),
      };
  return { changed: change.changed, what: describeEdit(edit), after: change.after, effect };
}

function fixUpDeps(deps: PolicyEditDeps, clock: () => Date): Parameters<typeof fixUpNow>[0] {
  return {
    tables: deps.tables,
    queues: deps.queues,
    org: deps.config.org,
    waves: deps.config.waves,
    emergencyWaves: deps.config.emergencyWaves,
    logger: deps.logger,
    ...(deps.notify ? { notify: deps.notify } : {}),
    now: clock,
  };
}

/** The Tables-edited layer after the edit (pure); a block list starts from the declared one when the table has none. */
export function nextLayer(
  table: PolicyLayer,
  declared: PolicyLayer | undefined,
  edit: PolicyEdit,
): PolicyLayer {
  if (edit.kind === 'set') {
    return {
      ...table,
      ...(edit.enabled === undefined ? {} : { mitigationsEnabled: edit.enabled }),
      ...(edit.onDegraded === undefined ? {} : { onDegraded: edit.onDegraded }),
    };
  }
  const blocked = new Set(table.blockedMitigations ?? declared?.blockedMitigations ?? []);
  for (const id of edit.ids) {
    if (edit.kind === 'block') blocked.add(id);
    else blocked.delete(id);
  }
  return { ...table, blockedMitigations: [...blocked].sort() };
}

export function describeEdit(edit: PolicyEdit): string {
  if (edit.kind !== 'set') return `${edit.kind === 'block' ? 'blocked' : 'unblocked'} ${edit.ids.join(', ')}`;
  return [
    ...(edit.enabled === undefined ? [] : [`mitigations ${edit.enabled ? 'enabled' : 'disabled'}`]),
    ...(edit.onDegraded === undefined ? [] : [`on degraded: ${edit.onDegraded}`]),
  ].join(', ');
}
