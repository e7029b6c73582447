import type { z } from 'zod';
import { evaluateApplicability, parseBuild, type ExchangeBuild } from '../model/build.js';
import type { Mitigation } from '../package/model.js';
import type { TrustPolicy } from '../package/trust.js';
import { verifyPackageWithAny } from '../package/verify.js';
import type { Logger } from '../log.js';
import {
  agentPaths,
  applyRequest,
  pingRequest,
  removeRequest,
  type ApplyRequest,
  type OperationReply,
  type PingReply,
  type RemoveRequest,
  errorReplyBody,
  type StatusReply,
} from '../relay/protocol.js';
import { clip, endpointName } from '../text.js';
import type { MitigationOutcome } from '../model/outcomes.js';
import { defaultOnDegraded, type OnDegraded } from '../model/policy.js';
import { describeMark, isRollback } from '../package/freshness.js';
import { absentPriors, adoptedDetail } from './adoption.js';
import type { Applier, ApplicableAction, PriorState } from './applier.js';
import {
  customResponseStatus,
  describeChange,
  downAsDeclared,
  judgeEffectiveness,
  newlyUnhealthy,
  probesFor,
  type HealthChange,
} from './checks.js';
import { priorTarget, type Journal, type JournalEntry } from './journal.js';
import { ruleFingerprint } from './rules.js';
import type { DetectedBuild } from './build-detect.js';
import type { EndpointHealth, Prober } from './probes.js';
import { reason, renderReason, type Reason, type ReasonCode } from '../model/reasons.js';

export interface AgentRequest {
  readonly method: string;
  readonly path: string;
  readonly body: Buffer;
}

export interface AgentResponse {
  readonly status: number;
  readonly body: string;
}

export interface AgentIdentity {
  readonly server: string;
  /** The Exchange build as last detected ('' while none could be): what applicability is judged on. */
  readonly build: string;
  readonly agentVersion: string;
}

export interface AgentServiceOptions {
  readonly identity: AgentIdentity;
  /** One policy per feed the agent serves: each anchor is bound to its own signer subject and EKU. */
  readonly trust: readonly TrustPolicy[];
  readonly applier: Applier;
  readonly journal: Journal;
  readonly logger: Logger;
  /** Probes this server's own front end before and after every change (health) and after a rewrite (effectiveness). */
  readonly prober: Prober;
  /** Answer within this, well under the relay's 60 s; longer work replies 202 and shows in /status. */
  readonly replyWithinMs?: number;
  readonly now?: () => Date;
  /** `onDegraded: keep` in a request is honoured only when this agent's own config allows it (default: rolled back anyway). */
  readonly allowKeepOnDegraded?: boolean;
  /** Reads the server's Exchange build again (lib/agent/build-detect.ts): on every status request and before an apply. */
  readonly detectBuild?: () => Promise<DetectedBuild>;
}

const rememberedOperations = 1000;

/**
 * The agent's side of the protocol. Every package is verified here again with the agent's own
 * anchors; only mitigations in the signed package and applicable to this server's own build are
 * applied. Changes run one at a time.
 */
export class AgentService {
  readonly #options: AgentServiceOptions;
  #identity: AgentIdentity;
  #build: ExchangeBuild | undefined;
  #detecting: Promise<void> | undefined;
  readonly #operations = new Map<string, { reply: OperationReply; done: Promise<OperationReply> }>();
  #tail: Promise<unknown> = Promise.resolve();

  constructor(options: AgentServiceOptions) {
    this.#options = options;
    this.#identity = options.identity;
    this.#build = parseBuild(options.identity.build);
  }

  /** What every reply carries, so the cloud keeps the Servers row in step (build, agent version, time). */
  facts(): { build: string; agentVersion: string; time: string } {
    return {
      build: this.#identity.build,
      agentVersion: this.#identity.agentVersion,
      time: (this.#options.now?.() ?? new Date()).toISOString(),
    };
  }

  /**
   * Reads the build again; concurrent callers share one read. A read that fails keeps the last
   * build known: a PowerShell timeout is no Cumulative Update.
   */
  async refreshBuild(): Promise<void> {
    const detect = this.#options.detectBuild;
    if (!detect) return;
    this.#detecting ??= detect()
      .then((detected) => {
        if (detected.build === undefined) {
          this.#options.logger.warn('BuildNotDetected', {
            server: this.#identity.server,
            problem: detected.problem,
            keeping: this.#identity.build,
          });
          return;
        }
        if (detected.build === this.#identity.build) return;
        this.#options.logger.warn('ExchangeBuildChanged', {
          server: this.#identity.server,
          from: this.#identity.build,
          to: detected.build,
          source: detected.source,
        });
        this.#identity = { ...this.#identity, build: detected.build };
        this.#build = parseBuild(detected.build);
      })
      .finally(() => {
        this.#detecting = undefined;
      });
    await this.#detecting;
  }

  async handle(request: AgentRequest): Promise<AgentResponse> {
    const route = `/${request.path.split('?')[0]!.split('/').filter(Boolean).pop() ?? ''}`;
    const method = request.method.toUpperCase();
    switch (route) {
      case agentPaths.ping:
        return method === 'POST' ? this.#ping(request) : notAllowed(method, route);
      case agentPaths.status:
        if (method !== 'GET') return notAllowed(method, route);
        await this.refreshBuild();
        return json(
          200,
          new URLSearchParams(request.path.split('?')[1] ?? '').get('verify') === 'true'
            ? await this.verifiedStatus()
            : this.status(),
        );
      case agentPaths.apply:
        return method === 'POST'
          ? this.#startOperation(request, applyRequest, (body) => this.#apply(body))
          : notAllowed(method, route);
      case agentPaths.remove:
        return method === 'POST'
          ? this.#startOperation(request, removeRequest, (body) => this.#remove(body))
          : notAllowed(method, route);
      default:
        return refuse(404, 'NotFound', `no such agent path ${request.path}`);
    }
  }

  status(): StatusReply {
    const entries = this.#options.journal.entries();
    return {
      ...this.#identity,
      time: this.facts().time,
      applied: entries
        .filter((entry) => entry.state === 'applied')
        .map((entry) => entry.mitigationId)
        .sort(),
      blocked: [],
      drifted: [],
      journal: {
        entries: entries.length,
        pending: entries.filter((entry) => entry.state !== 'applied').length,
      },
      operations: [...this.#operations.values()].map((operation) => operation.reply),
    };
  }

  /**
   * Status with each applied mitigation re-checked on the server, so a rule deleted or a pool
   * started by hand is reported as drifted and reconcile applies it again. Not serialised with
   * changes: it only reads, and a change in flight is in the journal as pending, not applied.
   */
  async verifiedStatus(): Promise<StatusReply> {
    const base = this.status();
    // Setup stops and disables Exchange services itself: that is not drift, and re-applying now would break it.
    const setup = await this.#setupRunning();
    if (setup) {
      this.#options.logger.info('StatusCheckPaused', { ...setup });
      return base;
    }
    const drifted: string[] = [];
    for (const entry of this.#options.journal
      .entries()
      .filter((candidate) => candidate.state === 'applied')) {
      const inPlace = await allApplied(this.#options.applier, entry.actions).catch((error: unknown) => {
        // A check that cannot run says nothing about the server: keep reporting what the journal says.
        this.#options.logger.warn('StatusCheckFailed', {
          mitigationId: entry.mitigationId,
          error: errorText(error),
        });
        return true;
      });
      if (!inPlace) drifted.push(entry.mitigationId);
    }
    if (drifted.length > 0) this.#options.logger.warn('MitigationDrifted', { mitigationIds: drifted });
    return { ...base, applied: base.applied.filter((id) => !drifted.includes(id)), drifted: drifted.sort() };
  }

  #ping(request: AgentRequest): AgentResponse {
    const parsed = parseBody(request.body, pingRequest, true);
    if (!parsed.ok) return parsed.response;
    const reply: PingReply = {
      ...this.#identity,
      time: this.facts().time,
      ...(parsed.value.nonce === undefined ? {} : { nonce: parsed.value.nonce }),
    };
    return json(200, reply);
  }

  async #startOperation<T extends { operationId: string }>(
    request: AgentRequest,
    schema: z.ZodType<T>,
    work: (body: T) => Promise<Record<string, MitigationOutcome>>,
  ): Promise<AgentResponse> {
    const parsed = parseBody(request.body, schema, false);
    if (!parsed.ok) return parsed.response;
    const { operationId } = parsed.value;
    let operation = this.#operations.get(operationId);
    if (!operation) {
      const reply: OperationReply = { operationId, status: 'InProgress', outcomes: {} };
      const done = this.#serially(async () => {
        const outcomes = await work(parsed.value).catch((error: unknown) => {
          this.#options.logger.error('OperationFailed', {
            operationId,
            error: error instanceof Error ? error.message : String(error),
          });
          return Object.fromEntries(
            idsOf(parsed.value).map((id) => [
              id,
              {
                outcome: 'Failed' as const,
                detail: `agent error: ${error instanceof Error ? error.message : String(error)}`,
              },
            ]),
          );
        });
        const finished: OperationReply = { operationId, status: 'Completed', outcomes };
        this.#operations.set(operationId, { reply: finished, done: Promise.resolve(finished) });
        return finished;
      });
      operation = { reply, done };
      this.#operations.set(operationId, operation);
      this.#forgetOldOperations();
    }
    const timeout = new Promise<undefined>((resolve) =>
      setTimeout(() => resolve(undefined), this.#options.replyWithinMs ?? 20_000).unref(),
    );
    const finished = await Promise.race([operation.done, timeout]);
    return finished
      ? json(200, { ...finished, ...this.facts() })
      : json(202, { ...operation.reply, ...this.facts() });
  }

  /**
   * Retries what the journal holds unfinished (a crash, a restore that failed): at start and on a
   * schedule while serving, one at a time with changes, never while Exchange setup runs.
   */
  async repair(): Promise<{ repaired: string[]; failed: string[] }> {
    return this.#serially(async () => {
      const pending = this.#options.journal.entries().filter((entry) => entry.state !== 'applied');
      if (pending.length === 0) return { repaired: [], failed: [] };
      const setup = await this.#setupRunning();
      if (setup) {
        this.#options.logger.warn('JournalRepairPaused', {
          ...setup,
          mitigationIds: pending.map((entry) => entry.mitigationId),
        });
        return { repaired: [], failed: pending.map((entry) => entry.mitigationId) };
      }
      return this.#options.journal.repair(this.#options.applier, this.#options.logger);
    });
  }

  /** Why changes must wait (Exchange setup is running), or undefined. A check that fails does not stop the agent. */
  async #setupRunning(): Promise<Reason<'ExchangeSetupRunning'> | undefined> {
    try {
      const evidence = await this.#options.applier.exchangeSetupRunning();
      return evidence === undefined ? undefined : reason('ExchangeSetupRunning', { evidence });
    } catch (error) {
      this.#options.logger.warn('SetupCheckFailed', { error: errorText(error) });
      return undefined;
    }
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work, work);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #forgetOldOperations(): void {
    for (const [id] of this.#operations) {
      if (this.#operations.size <= rememberedOperations) break;
      this.#operations.delete(id);
    }
  }

  async #apply(request: ApplyRequest): Promise<Record<string, MitigationOutcome>> {
    const { logger, trust } = this.#options;
    const failAll = (detail: string): Record<string, MitigationOutcome> =>
      Object.fromEntries(request.mitigationIds.map((id) => [id, { outcome: 'Failed' as const, detail }]));
    const verified = verifyPackageWithAny(
      Buffer.from(request.packageBase64, 'base64'),
      trust,
      this.#options.now ? { now: this.#options.now() } : {},
    );
    if (!verified.ok) {
      const rejection = { reasonCode: verified.reason, reasonDetail: verified.detail };
      logger.warn('PackageRejected', {
        operationId: request.operationId,
        ...rejection,
        sha256: verified.sha256,
      });
      return failAll(`package rejected by the agent: ${renderReason(rejection)}`);
    }
    await this.refreshBuild();
    if (!this.#build)
      return failAll(
        this.#identity.build === ''
          ? 'this agent could not detect its Exchange build (see its BuildNotDetected log); set "build" in agent.json to override'
          : `this agent's build "${this.#identity.build}" is not an Exchange build; fix its configuration`,
      );
    const stale = await this.#acceptFresh(verified.signer.subject, verified.sha256, verified.package);
    if (stale) {
      const rejection = { reasonCode: 'Rollback', reasonDetail: stale };
      logger.warn('PackageRejected', {
        operationId: request.operationId,
        ...rejection,
        sha256: verified.sha256,
      });
      return failAll(`package rejected by the agent: ${renderReason(rejection)}`);
    }
    const setup = await this.#setupRunning();
    if (setup)
      return Object.fromEntries(
        request.mitigationIds.map((id) => [id, { outcome: 'Skipped' as const, detail: setup.reasonDetail }]),
      );
    // The agent's own config decides whether a degraded change may stay; a request alone cannot.
    const onDegraded =
      request.onDegraded === 'keep' && !this.#options.allowKeepOnDegraded
        ? 'rollback'
        : (request.onDegraded ?? defaultOnDegraded);
    if (onDegraded !== (request.onDegraded ?? defaultOnDegraded))
      logger.warn('OnDegradedOverridden', {
        operationId: request.operationId,
        requested: request.onDegraded,
        used: onDegraded,
        why: 'allowKeepOnDegraded is false in agent.json',
      });
    const outcomes: Record<string, MitigationOutcome> = {};
    const health = new HealthTracker(this.#options.prober);
    for (const id of request.mitigationIds) {
      const mitigation = verified.package.mitigations.find((candidate) => candidate.id === id);
      outcomes[id] = mitigation
        ? await this.#applyOne(mitigation, request.operationId, onDegraded, health)
        : { outcome: 'Failed', detail: `${id} is not in the signed package (sha256 ${verified.sha256})` };
      logger.info('MitigationOutcome', {
        operationId: request.operationId,
        mitigationId: id,
        operation: 'apply',
        ...outcomes[id],
      });
    }
    return outcomes;
  }

  /**
   * The agent's own freshness check (DESIGN §4): per feed (the signer), the last accepted package's
   * signing time and sequence; an older package is refused, so a holder of the relay's Send right
   * cannot replay an old package to withdraw or undo newer mitigations. Returns why it is refused.
   */
  async #acceptFresh(
    feed: string,
    sha256: string,
    candidate: { readonly signingTime?: Date; readonly sequence?: number },
  ): Promise<string | undefined> {
    const journal = this.#options.journal;
    const last = journal.lastAccepted(feed);
    if (last?.sha256 === sha256) return undefined;
    const lastMark = {
      ...(last?.signingTime ? { signingTime: new Date(last.signingTime) } : {}),
      ...(last?.sequence === undefined ? {} : { sequence: last.sequence }),
    };
    if (last && isRollback(candidate, lastMark)) {
      return `this agent already accepted a newer package from ${feed} (${describeMark(lastMark)}, sha256 ${last.sha256}); this one is ${describeMark(candidate)}`;
    }
    await journal.accept(feed, {
      sha256,
      ...(candidate.signingTime ? { signingTime: candidate.signingTime.toISOString() } : {}),
      ...(candidate.sequence === undefined ? {} : { sequence: candidate.sequence }),
      at: (this.#options.now?.() ?? new Date()).toISOString(),
    });
    return undefined;
  }

  async #applyOne(
    mitigation: Mitigation,
    operationId: string,
    onDegraded: OnDegraded,
    health: HealthTracker,
  ): Promise<MitigationOutcome> {
    const applicability = evaluateApplicability(mitigation.applicability, this.#build!);
    if (applicability !== 'Applies') {
      return {
        outcome: 'NotApplicable',
        detail: `build ${this.#identity.build} ${applicability === 'Fixed' ? 'includes the fix' : 'is outside the ranges'} of ${mitigation.id}`,
      };
    }
    const unsupported = mitigation.actions.find((action) => action.kind === 'Unsupported');
    if (unsupported) return { outcome: 'Unsupported', detail: unsupported.why };
    try {
      return await this.#change(
        mitigation.id,
        mitigation.actions as ApplicableAction[],
        operationId,
        onDegraded,
        health,
      );
    } catch (error) {
      return { outcome: 'Failed', detail: errorText(error) };
    }
  }

  /**
   * Journal first, then change, then prove it (DESIGN §8): the health endpoints are probed before
   * and after, and a rewrite rule must block its must-block requests and pass its must-pass ones.
   * A change that takes an endpoint down (one it does not declare) or blocks a must-pass request
   * is Degraded, and by default undone from the journal (RolledBack). A rule that blocks nothing it
   * must is Ineffective and stays: it harms nothing, and the result says it does not protect.
   * A mitigation this agent applied before keeps its original prior state, so reapplying after
   * drift and removing later still restore what was there before emfleet.
   */
  async #change(
    mitigationId: string,
    actions: ApplicableAction[],
    operationId: string,
    onDegraded: OnDegraded,
    health: HealthTracker,
  ): Promise<MitigationOutcome> {
    const { applier, journal } = this.#options;
    let existing = journal.get(mitigationId);
    const same = existing?.state === 'applied' && sameActions(existing.actions, actions);
    const inPlace = await allApplied(applier, actions);
    if (inPlace && same)
      return { outcome: 'AlreadyApplied', detail: `applied by operation ${existing!.operationId}` };
    const changes = actions.some((action) => action.kind !== 'DoNothing');
    if (inPlace && !existing && changes) {
      const shared = await this.#sharedPriors(mitigationId, actions);
      if (shared) {
        await journal.put({
          mitigationId,
          operationId,
          state: 'applied',
          actions,
          priors: shared.priors,
          at: new Date().toISOString(),
        });
        return {
          outcome: 'AlreadyApplied',
          detail: `already in place: ${shared.holders.join(', ')} made the same change; it is put back only when no mitigation needs it`,
        };
      }
      return this.#adopt(mitigationId, actions, operationId);
    }
    const warnings: string[] = [];
    const before = changes ? await health.current() : [];
    // Applied before with other actions (or a removal left unfinished): the old change is undone
    // from the journal first, so that removal later restores what was there before the new one.
    let carried: readonly PriorState[] = [];
    if (existing && !same) {
      warnings.push(...(await journal.undo(existing, applier)));
      carried = journal.get(mitigationId)?.priors ?? [];
      existing = undefined;
    }
    const priors = existing ? existing.priors : await this.#capture(mitigationId, actions, carried, warnings);
    const applying: JournalEntry = {
      mitigationId,
      operationId,
      state: 'applying',
      actions,
      priors,
      at: new Date().toISOString(),
    };
    await journal.put(applying);
    const notInForce: string[] = [];
    try {
      if (priors.some((prior) => prior.kind === 'HealthManager'))
        warnings.push(...(await holdHealthManager(applier)));
      for (const action of actions) notInForce.push(...(await applier.apply(action)).notInForce);
    } catch (error) {
      try {
        warnings.push(...(await journal.undo(applying, applier)));
      } catch (restoreError) {
        return {
          outcome: 'Failed',
          detail: outcomeDetail(
            `${errorText(error)}; restoring the prior state failed too (${errorText(restoreError)}); the journal keeps it and the agent retries`,
            ...warnings,
          ),
        };
      }
      // After drift, the prior state is what was there before emfleet: the mitigation is no longer applied.
      return {
        outcome: 'Failed',
        detail: outcomeDetail(
          `${errorText(error)}; prior state restored${existing ? `; ${mitigationId} is no longer applied (it had drifted and could not be applied again)` : ''}`,
          ...warnings,
        ),
      };
    }
    const applied: JournalEntry = {
      mitigationId,
      operationId,
      state: 'applied',
      actions,
      priors,
      at: new Date().toISOString(),
    };
    await journal.put(applied);
    const done = [actions.map(describeAction).join('; '), ...warnings].join('; ');
    if (!changes) return { outcome: 'Applied', detail: done };

    const proof = await this.#prove(mitigationId, actions, before, health);
    const degraded = [...proof.wentDown.map((change) => describeChange(change, 'apply')), ...proof.harmed];
    const endpoints = proof.wentDown.map((change) => change.endpoint);
    // A rule an application's web.config clears or removes is not in force there (HealthChecker flags the same).
    const missed = [...notInForce.map((where) => `rule not in force at ${where}`), ...proof.missed];
    if (degraded.length === 0) {
      return missed.length > 0
        ? {
            outcome: 'Ineffective',
            detail: outcomeDetail(
              done,
              `ineffective: ${missed.join('; ')}`,
              'the rule stays (it harms nothing); it does not protect against these requests',
            ),
          }
        : { outcome: 'Applied', detail: outcomeDetail(done, ...proof.notes) };
    }
    const found = [
      `degraded: ${degraded.join('; ')}`,
      ...(missed.length > 0 ? [`also ineffective: ${missed.join('; ')}`] : []),
    ];
    if (onDegraded === 'keep') {
      return {
        outcome: 'Degraded',
        detail: outcomeDetail(done, ...found, 'kept (policy onDegraded=keep)'),
        ...(endpoints.length > 0 ? { endpoints } : {}),
      };
    }
    const rollbackWarnings: string[] = [];
    try {
      rollbackWarnings.push(...(await journal.undo(applied, applier)));
    } catch (error) {
      return {
        outcome: 'Failed',
        detail: outcomeDetail(
          done,
          ...found,
          `rolling back failed (${errorText(error)}); the journal keeps the prior state and the agent retries`,
        ),
        ...(endpoints.length > 0 ? { endpoints } : {}),
      };
    }
    const afterRollback = await health.refresh();
    const stillDown = newlyUnhealthy(before, afterRollback);
    const recovery =
      stillDown.length === 0
        ? 'every endpoint healthy as before'
        : `still down: ${stillDown.map((change) => describeChange(change, 'rollback')).join('; ')}`;
    return {
      outcome: 'RolledBack',
      detail: outcomeDetail(
        done,
        ...found,
        `rolled back to the prior state (policy onDegraded=rollback); ${recovery}`,
        ...rollbackWarnings,
      ),
      ...(endpoints.length > 0 ? { endpoints } : {}),
    };
  }

  /**
   * The prior state of everything the actions touch. A target another journal entry holds (a pool
   * two mitigations stop; the Health Manager every pool or service mitigation holds) takes that
   * entry's prior: it is what was there before emfleet, and the last holder to go restores it.
   */
  async #capture(
    mitigationId: string,
    actions: readonly ApplicableAction[],
    carried: readonly PriorState[],
    warnings: string[],
  ): Promise<PriorState[]> {
    const { applier, journal } = this.#options;
    const known = (prior: PriorState): PriorState =>
      carried.find((candidate) => priorTarget(candidate) === priorTarget(prior)) ??
      journal.heldElsewhere(prior, mitigationId) ??
      prior;
    const priors: PriorState[] = [];
    if (actions.some(holdsHealthManager)) {
      try {
        priors.push(known(await applier.captureHealthManager()));
      } catch (error) {
        warnings.push(
          `warning: the Health Manager could not be read (${errorText(error)}), so it is not held stopped; Managed Availability may start again what this mitigation stops`,
        );
      }
    }
    for (const action of actions) priors.push(known(await applier.capture(action)));
    return priors;
  }

  /** When every change of the actions is one other mitigations of this agent made: their priors and names. */
  async #sharedPriors(
    mitigationId: string,
    actions: readonly ApplicableAction[],
  ): Promise<{ priors: PriorState[]; holders: string[] } | undefined> {
    const { applier, journal } = this.#options;
    const priors: PriorState[] = [];
    const holders = new Set<string>();
    const changing = actions.filter((action) => action.kind !== 'DoNothing');
    if (changing.some(holdsHealthManager)) {
      const healthManager = journal.heldElsewhere({ kind: 'HealthManager', services: [] }, mitigationId);
      if (healthManager) priors.push(healthManager);
    }
    for (const action of changing) {
      const fresh = await applier.capture(action);
      const holder = journal
        .entries()
        .find(
          (entry) =>
            entry.mitigationId !== mitigationId &&
            entry.state === 'applied' &&
            entry.priors.some((prior) => priorTarget(prior) === priorTarget(fresh)),
        );
      if (!holder) return undefined;
      holders.add(holder.mitigationId);
      priors.push(journal.heldElsewhere(fresh, mitigationId)!);
    }
    return { priors, holders: [...holders].sort() };
  }

  /** A change found in place is journaled as found and reported as applied (lib/agent/adoption.ts). */
  async #adopt(
    mitigationId: string,
    actions: ApplicableAction[],
    operationId: string,
  ): Promise<MitigationOutcome> {
    const priors = await absentPriors(this.#options.applier, actions);
    await this.#options.journal.put({
      mitigationId,
      operationId,
      state: 'applied',
      actions,
      priors,
      adopted: true,
      at: new Date().toISOString(),
    });
    this.#options.logger.info('MitigationAdopted', {
      operationId,
      mitigationId,
      actions: actions.map(describeAction),
    });
    return { outcome: 'AlreadyApplied', detail: adoptedDetail };
  }

  /** After a change: the health probes, and each rewrite rule's probes. */
  async #prove(
    mitigationId: string,
    actions: readonly ApplicableAction[],
    before: readonly EndpointHealth[],
    health: HealthTracker,
  ): Promise<{ wentDown: HealthChange[]; harmed: string[]; missed: string[]; notes: string[] }> {
    const expectedDown = actions.flatMap((action) => action.expectedDown ?? []);
    const after = await health.refresh();
    const wentDown = newlyUnhealthy(before, after, expectedDown);
    const declared = downAsDeclared(before, after, expectedDown).map(endpointName);
    const notes = [
      `health: ${after.filter((endpoint) => endpoint.healthy).length}/${after.length} endpoints healthy${declared.length > 0 ? `, ${declared.join(', ')} down as declared` : ''}`,
    ];
    const harmed: string[] = [];
    const missed: string[] = [];
    for (const action of actions) {
      if (action.kind !== 'IisUrlRewrite') continue;
      const { probes, source } = probesFor(mitigationId, action.probes);
      if (probes.length === 0) {
        notes.push(
          `rule "${action.ruleName}" not proven: no probes in the package and none built in for ${mitigationId}`,
        );
        continue;
      }
      const judged = judgeEffectiveness(
        probes,
        await this.#options.prober.sendAll(probes),
        customResponseStatus(action.ruleXml),
      );
      harmed.push(...judged.harmed);
      missed.push(...judged.missed);
      notes.push(
        `rule "${action.ruleName}" checked with ${source} probes: ${judged.blocked}/${judged.mustBlock} must-block blocked, ${judged.passed}/${judged.mustPass} must-pass passed`,
        ...judged.unproven.map((what) => `unproven: ${what}`),
      );
    }
    return { wentDown, harmed, missed, notes };
  }

  async #remove(request: RemoveRequest): Promise<Record<string, MitigationOutcome>> {
    const { applier, journal, logger } = this.#options;
    const setup = await this.#setupRunning();
    if (setup)
      return Object.fromEntries(
        request.mitigationIds.map((id) => [id, { outcome: 'Skipped' as const, detail: setup.reasonDetail }]),
      );
    const outcomes: Record<string, MitigationOutcome> = {};
    const health = new HealthTracker(this.#options.prober);
    for (const id of request.mitigationIds) {
      const entry = journal.get(id);
      if (!entry) {
        outcomes[id] = {
          outcome: 'Skipped',
          detail: `${id} was not applied by this agent; nothing to restore`,
        };
      } else {
        try {
          const changes = entry.actions.some((action) => action.kind !== 'DoNothing');
          const before = changes ? await health.current() : [];
          const warnings = await journal.undo(entry, applier);
          // A removal puts back what was there before emfleet; if that takes something down, say so (there is nothing to roll back to).
          const wentDown = changes ? newlyUnhealthy(before, await health.refresh()) : [];
          outcomes[id] =
            wentDown.length === 0
              ? { outcome: 'Removed', detail: outcomeDetail('prior state restored', ...warnings) }
              : {
                  outcome: 'Degraded',
                  detail: outcomeDetail(
                    `prior state restored; degraded: ${wentDown.map((change) => describeChange(change, 'removal')).join('; ')}`,
                    ...warnings,
                  ),
                  endpoints: wentDown.map((change) => change.endpoint),
                };
        } catch (error) {
          outcomes[id] = {
            outcome: 'Failed',
            detail: `${errorText(error)}; the journal keeps the prior state and the agent retries the removal`,
          };
        }
      }
      logger.info('MitigationOutcome', {
        operationId: request.operationId,
        mitigationId: id,
        operation: 'remove',
        ...outcomes[id],
      });
    }
    return outcomes;
  }
}

/**
 * The health of the endpoints as last probed within one operation: the "after" of one change is
 * the "before" of the next, so a server is probed once per change, not twice.
 */
class HealthTracker {
  readonly #prober: Prober;
  #last: EndpointHealth[] | undefined;

  constructor(prober: Prober) {
    this.#prober = prober;
  }

  async current(): Promise<EndpointHealth[]> {
    return this.#last ?? this.refresh();
  }

  async refresh(): Promise<EndpointHealth[]> {
    this.#last = await this.#prober.health();
    return this.#last;
  }
}

/** The protocol carries at most 2,000 characters of detail. */
function outcomeDetail(...parts: string[]): string {
  return clip(parts.join('; '), 2000);
}

/** Pool and service mitigations hold the Health Manager, which would start again what they stop. */
function holdsHealthManager(action: ApplicableAction): boolean {
  return action.kind === 'DisableAppPool' || action.kind === 'DisableService';
}

/** Holds the Health Manager stopped and disabled; trouble is a warning, never the mitigation's failure. */
async function holdHealthManager(applier: Applier): Promise<string[]> {
  try {
    await applier.holdHealthManager();
    return [];
  } catch (error) {
    return [
      `warning: the Health Manager could not be held stopped (${errorText(error)}); Managed Availability may start again what this mitigation stops`,
    ];
  }
}

/**
 * Whether two action lists change the same things the same way. Descriptions, probes and declared
 * endpoints may differ (a newer package reworded): that is no reason to undo and redo a change.
 */
function sameActions(a: readonly ApplicableAction[], b: readonly ApplicableAction[]): boolean {
  return canonicalJson(a.map(effectOf)) === canonicalJson(b.map(effectOf));
}

function effectOf(action: ApplicableAction): Record<string, unknown> {
  switch (action.kind) {
    case 'DoNothing':
      return { kind: action.kind };
    case 'IisUrlRewrite':
      return {
        kind: action.kind,
        site: action.site,
        ruleName: action.ruleName,
        rule: ruleFingerprint(action.ruleXml),
      };
    case 'DisableAppPool':
      return { kind: action.kind, appPool: action.appPool.toLowerCase() };
    case 'DisableService':
      return { kind: action.kind, service: action.service.toLowerCase() };
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function allApplied(applier: Applier, actions: readonly ApplicableAction[]): Promise<boolean> {
  for (const action of actions) if (!(await applier.isApplied(action))) return false;
  return true;
}

function describeAction(action: ApplicableAction): string {
  switch (action.kind) {
    case 'DoNothing':
      return 'nothing to do';
    case 'IisUrlRewrite':
      return `URL Rewrite rule "${action.ruleName}" added to ${action.site}`;
    case 'DisableAppPool':
      return `app pool ${action.appPool} stopped, auto-start off`;
    case 'DisableService':
      return `service ${action.service} stopped and disabled`;
  }
}

function idsOf(body: { operationId: string }): string[] {
  return 'mitigationIds' in body ? (body as { mitigationIds: string[] }).mitigationIds : [];
}

function parseBody<T>(
  body: Buffer,
  schema: z.ZodType<T>,
  emptyAllowed: boolean,
): { ok: true; value: T } | { ok: false; response: AgentResponse } {
  let payload: unknown;
  try {
    payload = body.length === 0 && emptyAllowed ? {} : JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, response: refuse(400, 'BadRequest', 'body is not JSON') };
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return {
      ok: false,
      response: refuse(400, 'BadRequest', `${issue.path.join('.') || 'body'}: ${issue.message}`),
    };
  }
  return { ok: true, value: parsed.data };
}

function notAllowed(method: string, route: string): AgentResponse {
  return refuse(405, 'MethodNotAllowed', `${method} is not allowed on ${route}`);
}

function refuse(status: number, code: ReasonCode, detail: string): AgentResponse {
  return { status, body: errorReplyBody(code, detail) };
}

function json(status: number, body: unknown): AgentResponse {
  return { status, body: JSON.stringify(body) };
}
