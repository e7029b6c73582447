import type { z } from 'zod';
import type { AppConfig } from '../config/index.js';
import { readCurrentFeeds } from '../dashboard/feeds.js';
import { readPolicy } from '../fleet/policy.js';
import { readResults } from '../fleet/results.js';
import { listRollouts } from '../fleet/rollouts.js';
import { describeRowProblem, validateRow } from '../fleet/rows.js';
import { EmfleetError } from '../errors.js';
import { serverRow, type ResultRow, type RolloutStateRow } from '../fleet/schemas.js';
import type { Outcome } from '../model/outcomes.js';
import { isActive, type RolloutOperation } from '../model/rollout.js';
import { ServerNotFoundError } from '../fleet/servers.js';
import type { FleetTables } from '../fleet/storage.js';
import { getEntityOrUndefined } from '../fleet/optimistic.js';
import type { Logger } from '../log.js';
import type { Mitigation } from '../package/model.js';
import { decide, leftAlone, type PolicyDecisionKind } from '../policy/decide.js';
import { effectiveOnDegraded, effectiveScope, type EffectiveOnDegraded } from '../policy/effective.js';
import type { ScopeRows } from '../model/policy.js';
import { activeHolds, type Hold } from '../rollout/holds.js';
import { notStartedLabel, stoppedRolloutOf } from '../rollout/unreached.js';
import { currentContent } from '../fleet/status.js';

/*
 * `emfleet servers show NAME` and `GET /api/servers/{name}`: EM's Get-Mitigations.ps1 for one
 * server, answered from the cloud. A handful of point and partition reads whatever the fleet's size.
 */

/** Who put an applied mitigation in place: an emfleet rollout, or it was found in place and adopted. */
export type AppliedBy = 'emfleet' | 'adopted';

/** What the next reconcile would do to a mitigation on the server: an operation of a rollout, or nothing. */
export type ReconcileAction = RolloutOperation | 'none';

export interface ServerMitigationView {
  readonly feed: string;
  readonly mitigation: string;
  /** Policy's decision now, with its reason (`Blocked (org)`, `NotApplicable (fixed)`…) and the words behind it. */
  readonly decision: PolicyDecisionKind | 'Unknown';
  readonly reason: string;
  readonly detail: string;
  /** The latest completed result for it on this server. */
  readonly lastOutcome: {
    readonly outcome: Outcome;
    readonly detail: string;
    readonly at: string;
    readonly rolloutId: string | null;
  } | null;
  /** Without a result: `Pending`, or `Not started (rollout X halted)` when the rollout that would do it stopped. */
  readonly pending: string | null;
  readonly applied: boolean;
  readonly appliedBy: AppliedBy | null;
  /** What the next reconcile would do, and why. */
  readonly reconcile: { readonly action: ReconcileAction; readonly why: string };
}

export interface ServerView {
  readonly server: {
    readonly name: string;
    readonly fqdn: string;
    readonly site: string;
    readonly ring: string;
    readonly relayHybridConnection: string;
    readonly relayPath: string;
    readonly registeredBuild: string;
    /** As the agent last reported them; null where it has not. */
    readonly reportedBuild: string | null;
    readonly agentVersion: string | null;
    readonly lastSeen: string | null;
    readonly reportedApplied: readonly string[];
    readonly reportedBlocked: readonly string[];
  };
  readonly policy: { readonly leftAlone: string | null; readonly onDegraded: EffectiveOnDegraded };
  readonly mitigations: readonly ServerMitigationView[];
  /** Applied on the server, but in no feed's current package: reconcile removes them (withdrawn). */
  readonly withdrawn: readonly {
    readonly mitigation: string;
    readonly reconcile: { readonly action: ReconcileAction; readonly why: string };
  }[];
}

/** A current package as the view needs it; `mitigations` undefined when it no longer verifies. */
export interface ViewFeed {
  readonly name: string;
  readonly sequence: number;
  readonly mitigationIds: readonly string[];
  readonly mitigations: readonly Mitigation[] | undefined;
  readonly frozen?: boolean;
}

export interface ServerViewInput {
  readonly server: z.infer<typeof serverRow>;
  readonly orgPolicy: ScopeRows | undefined;
  readonly serverPolicy: ScopeRows | undefined;
  readonly feeds: readonly ViewFeed[];
  readonly results: readonly ResultRow[];
  readonly rollouts: readonly RolloutStateRow[];
  /** The holds in force (lib/rollout/holds.ts activeHolds). */
  readonly holds: readonly Hold[];
}

/** The decision table (pure): per mitigation of every current package, what policy says, what happened, what reconcile would do. */
export function serverView(input: ServerViewInput): ServerView {
  const { server } = input;
  const org = effectiveScope(input.orgPolicy);
  const scope = effectiveScope(input.serverPolicy);
  const facts = { name: server.rowKey, build: server.build, reportedApplied: server.reportedApplied };
  const alone = leftAlone(org, scope, server.rowKey);
  const history = appliedHistory(input.results);
  const mitigations: ServerMitigationView[] = [];
  const seen = new Set<string>();
  for (const feed of input.feeds) {
    const busy = input.rollouts.find((rollout) => rollout.feed === feed.name && isActive(rollout.state));
    const stopped = stoppedRolloutOf(input.rollouts, feed.name);
    for (const id of feed.mitigationIds) {
      if (seen.has(id)) continue;
      seen.add(id);
      const model = feed.mitigations?.find((mitigation) => mitigation.id === id);
      const held = input.holds.find((hold) => hold.feed === feed.name && hold.mitigation === id);
      const decision = model
        ? decide(org, scope, facts, model)
        : {
            decision: 'Unknown' as const,
            reason: 'Unknown',
            detail: 'the current package no longer verifies, so policy cannot decide',
          };
      const applied = server.reportedApplied.includes(id);
      const last = history.last.get(id);
      const work = decision.decision === 'Remove' || (decision.decision === 'Apply' && !applied);
      const pending = last || !work ? null : stopped ? notStartedLabel(stopped) : 'Pending';
      mitigations.push({
        feed: feed.name,
        mitigation: id,
        ...decision,
        lastOutcome: last ?? null,
        pending,
        applied,
        appliedBy: applied ? (history.appliedBy.get(id) ?? 'adopted') : null,
        reconcile: reconcileAction({
          work,
          decision: decision.decision,
          frozen: feed.frozen === true,
          busy: busy?.partitionKey,
          held: held ? `${held.rolloutId} (${held.state})` : undefined,
        }),
      });
    }
  }
  const verifiable = input.feeds.every((feed) => feed.mitigations !== undefined);
  const withdrawn = server.reportedApplied
    .filter((id) => !seen.has(id))
    .map((id) => ({
      mitigation: id,
      reconcile: alone
        ? { action: 'none' as const, why: `${alone.reason}: emfleet leaves this server alone` }
        : verifiable
          ? { action: 'remove' as const, why: `${id} is in no feed's current package (withdrawn)` }
          : {
              action: 'none' as const,
              why: "a feed's current package no longer verifies: nothing is removed until it does",
            },
    }));
  return {
    server: {
      name: server.rowKey,
      fqdn: server.fqdn,
      site: server.site,
      ring: server.ring,
      relayHybridConnection: server.relayHybridConnection || server.rowKey,
      relayPath: server.relayPath,
      registeredBuild: server.registeredBuild || server.build,
      // The row's build is the agent's report once an agent has answered (lib/fleet/agent-facts.ts).
      reportedBuild: server.agentVersion ? server.build : null,
      agentVersion: server.agentVersion || null,
      lastSeen: server.lastSeen?.toISOString() ?? null,
      reportedApplied: server.reportedApplied,
      reportedBlocked: server.reportedBlocked,
    },
    policy: {
      leftAlone: alone ? `${alone.reason}: ${alone.detail}` : null,
      onDegraded: effectiveOnDegraded(org, scope),
    },
    mitigations,
    withdrawn,
  };
}

/** Reconcile's choice for one mitigation, first match wins (mirrors lib/rollout/reconcile.ts and DESIGN §4, §7). */
export function reconcileAction(facts: {
  work: boolean;
  decision: PolicyDecisionKind | 'Unknown';
  frozen: boolean;
  busy: string | undefined;
  held: string | undefined;
}): { action: ReconcileAction; why: string } {
  if (facts.decision === 'Unknown')
    return { action: 'none', why: 'the package no longer verifies: nothing is applied or removed' };
  if (facts.frozen) return { action: 'none', why: 'the feed is frozen: nothing is applied or removed' };
  if (!facts.work)
    return {
      action: 'none',
      why: facts.decision === 'Skip' ? 'policy says skip' : 'in place as policy wants',
    };
  if (facts.busy)
    return { action: 'none', why: `rollout ${facts.busy} is under way; reconcile waits for it` };
  if (facts.held && facts.decision === 'Apply')
    return { action: 'none', why: `held by rollout ${facts.held}: retry it to continue` };
  return facts.decision === 'Apply'
    ? { action: 'apply', why: 'applicable and not reported applied' }
    : { action: 'remove', why: 'reported applied, and policy says remove' };
}

/**
 * From the result history, oldest first: each mitigation's latest outcome, and whether emfleet
 * applied it (an Applied since the last removal) or found it in place (AlreadyApplied, or no result).
 */
export function appliedHistory(results: readonly ResultRow[]): {
  last: Map<string, NonNullable<ServerMitigationView['lastOutcome']>>;
  appliedBy: Map<string, AppliedBy>;
} {
  const last = new Map<string, NonNullable<ServerMitigationView['lastOutcome']>>();
  const appliedBy = new Map<string, AppliedBy>();
  for (const result of [...results].sort((a, b) => a.at.getTime() - b.at.getTime())) {
    if (result.status !== 'Completed') continue;
    for (const [id, { outcome, detail }] of Object.entries(result.outcomes)) {
      last.set(id, { outcome, detail, at: result.at.toISOString(), rolloutId: result.rolloutId || null });
      if (outcome === 'Applied') appliedBy.set(id, 'emfleet');
      else if (outcome === 'AlreadyApplied' && !appliedBy.has(id)) appliedBy.set(id, 'adopted');
      else if (outcome === 'Removed' || outcome === 'RolledBack') appliedBy.delete(id);
    }
  }
  return { last, appliedBy };
}

export async function readServerView(
  deps: { tables: FleetTables; config: AppConfig; logger: Logger },
  name: string,
): Promise<ServerView> {
  const { tables, config, logger } = deps;
  const org = config.org;
  const entity = await getEntityOrUndefined(await tables.client('Servers'), org, name);
  if (!entity) throw new ServerNotFoundError(org, name);
  const checked = validateRow('Servers', serverRow, entity);
  if (!checked.ok)
    throw new EmfleetError('InvalidRow', describeRowProblem(checked.problem), {
      context: { org, server: name },
    });
  const [feeds, policy, results, rollouts] = await Promise.all([
    readCurrentFeeds(deps),
    readPolicy(tables, org, { logger, servers: { first: name, last: name } }),
    readResults(tables, name, { logger }),
    listRollouts(tables, { logger }),
  ]);
  return serverView({
    server: checked.row,
    orgPolicy: policy.org,
    serverPolicy: policy.servers.get(name),
    feeds: feeds.flatMap((feed) =>
      feed.stored
        ? [
            {
              name: feed.name,
              sequence: feed.stored.sequence,
              mitigationIds: feed.stored.mitigationIds,
              mitigations: feed.verified?.ok ? feed.verified.package.mitigations : undefined,
            },
          ]
        : [],
    ),
    results: results.rows,
    rollouts,
    holds: activeHolds(
      rollouts,
      currentContent(
        feeds.map((feed) => feed.name),
        new Map(feeds.map((feed) => [feed.name, feed.stored])),
      ),
    ),
  });
}
