import { reason, renderReason, type Reason } from '../model/reasons.js';
import type { ResumableState, RolloutProfile, RolloutState } from '../model/rollout.js';

/**
 * What the state machine knows of a rollout; stored in the Rollouts state row. Its reason is a
 * code of lib/model/reasons.ts and its detail (`WaveHalted`, `PausedByAdmin`…; both empty when the
 * state needs none; `Legacy` for a row an earlier release wrote).
 */
export interface RolloutStatus extends Reason<string> {
  readonly state: RolloutState;
  readonly currentWave: number;
  readonly waveCount: number;
  /** The state a paused rollout goes back to. */
  readonly resumeTo?: ResumableState;
  readonly profile: RolloutProfile;
  /** How often the current wave was retried: 0 on its first pass. Operation ids and messages carry it. */
  readonly attempt: number;
  /** How often the rollout halted: a retry after the last halt is recognised by it. */
  readonly halts: number;
}

export interface WaveCounts {
  readonly servers: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly skipped: number;
}

export type RolloutEvent =
  | { readonly kind: 'start' }
  /** Every server of the current wave has a result. */
  | { readonly kind: 'waveFinished'; readonly wave: number }
  /** The bake time is over (or was skipped): judge the wave. */
  | {
      readonly kind: 'gate';
      readonly wave: number;
      readonly counts: WaveCounts;
      readonly maxErrors: number;
      readonly failedServers: readonly string[];
    }
  | { readonly kind: 'pause'; readonly actor: string }
  | { readonly kind: 'resume'; readonly actor: string }
  | { readonly kind: 'abort'; readonly actor: string }
  | { readonly kind: 'expedite'; readonly actor: string }
  /** Send the halted wave again to its failed and unreached servers, then carry on. */
  | { readonly kind: 'retry'; readonly actor: string };

/** The admin's actions, as the CLI, the admin API and the dashboard name them. */
export const rolloutActions = ['pause', 'resume', 'abort', 'expedite', 'retry'] as const;
export type RolloutAction = (typeof rolloutActions)[number];

/** What the caller must do after writing the new state (and only after the write succeeded). */
export type RolloutEffect =
  | { readonly kind: 'startWave'; readonly wave: number }
  | { readonly kind: 'scheduleGate'; readonly wave: number; readonly immediately: boolean }
  | {
      readonly kind: 'notify';
      readonly event: 'RolloutHalted' | 'RolloutCompleted' | 'RolloutAborted' | 'RolloutRetried';
    };

export type TransitionResult =
  | { readonly ok: true; readonly status: RolloutStatus; readonly effects: readonly RolloutEffect[] }
  | { readonly ok: false; readonly refusal: Reason<'Refused'> };

/** No reason: a state that needs none (Running after a start, Completed). */
const noReason = { reasonCode: '', reasonDetail: '' } as const;

const terminal: readonly RolloutState[] = ['Aborted', 'Completed'];
/** States a rollout can be retried out of: a halt waits for a person. */
const retriable: readonly RolloutState[] = ['Halted'];

/**
 * Every state change of a rollout, as one pure function (DESIGN §7):
 * Planned → Running (start) → Baking (wave finished) → Running next wave / Completed / Halted (gate);
 * Paused from Planned, Running or Baking and back; Halted → Running (retry: the halted wave again,
 * for its failed and unreached servers); Aborted from any state that is not final, Halted included.
 * Events that arrive late (a gate for a wave already judged, a finish after an abort) are refused
 * with a reason rather than applied twice: queue messages can be delivered more than once. A
 * retry of a halt already retried changes nothing and is accepted: two retries of one halt are one.
 */
export function transition(status: RolloutStatus, event: RolloutEvent): TransitionResult {
  const refuse = (why: string): TransitionResult => ({
    ok: false,
    refusal: reason('Refused', {
      event: event.kind,
      why,
      state: status.state,
      wave: status.currentWave,
      waveCount: status.waveCount,
    }),
  });
  const to = (changes: Partial<RolloutStatus>, effects: RolloutEffect[] = []): TransitionResult => ({
    ok: true,
    status: { ...status, ...changes },
    effects,
  });
  if (terminal.includes(status.state))
    return refuse(
      event.kind === 'retry'
        ? 'the rollout has ended; only a halted rollout is retried'
        : 'the rollout has ended',
    );
  if (status.state === 'Halted' && event.kind !== 'retry' && event.kind !== 'abort')
    return refuse('a halted rollout waits for retry or abort');

  switch (event.kind) {
    case 'start':
      if (status.state !== 'Planned') return refuse('only a planned rollout starts');
      return to({ state: 'Running', currentWave: 0, ...noReason }, [{ kind: 'startWave', wave: 0 }]);

    case 'waveFinished':
      if (status.state !== 'Running' || event.wave !== status.currentWave)
        return refuse(`wave ${event.wave + 1} is not the running wave`);
      return to({ state: 'Baking' }, [
        { kind: 'scheduleGate', wave: event.wave, immediately: status.profile === 'emergency' },
      ]);

    case 'gate': {
      if (status.state !== 'Baking' || event.wave !== status.currentWave)
        return refuse(`wave ${event.wave + 1} is not baking`);
      if (event.counts.failed > event.maxErrors) {
        return to(
          {
            state: 'Halted',
            halts: status.halts + 1,
            ...reason('WaveHalted', {
              wave: event.wave,
              attempt: status.attempt,
              failed: event.counts.failed,
              maxErrors: event.maxErrors,
              failedServers: event.failedServers,
            }),
          },
          [{ kind: 'notify', event: 'RolloutHalted' }],
        );
      }
      if (event.wave + 1 >= status.waveCount)
        return to({ state: 'Completed', ...noReason }, [{ kind: 'notify', event: 'RolloutCompleted' }]);
      return to({ state: 'Running', currentWave: event.wave + 1, attempt: 0 }, [
        { kind: 'startWave', wave: event.wave + 1 },
      ]);
    }

    case 'pause':
      if (status.state === 'Paused') return refuse('already paused');
      return to({
        state: 'Paused',
        resumeTo: status.state as ResumableState,
        ...reason('PausedByAdmin', { actor: event.actor }),
      });

    case 'resume': {
      if (status.state !== 'Paused' || status.resumeTo === undefined)
        return refuse('only a paused rollout resumes');
      const back = status.resumeTo;
      const { resumeTo: _resumeTo, ...rest } = status;
      // Messages that arrived while paused ended as Skipped; resuming sends the wave (or its gate) again.
      const effects: RolloutEffect[] =
        back === 'Running'
          ? [{ kind: 'startWave', wave: status.currentWave }]
          : back === 'Baking'
            ? [
                {
                  kind: 'scheduleGate',
                  wave: status.currentWave,
                  immediately: status.profile === 'emergency',
                },
              ]
            : [];
      return {
        ok: true,
        status: { ...rest, state: back, ...reason('ResumedByAdmin', { actor: event.actor }) },
        effects,
      };
    }

    case 'abort':
      // What the halt found stays in the reason: an aborted halt still holds its mitigations.
      return to(
        {
          state: 'Aborted',
          ...reason('AbortedByAdmin', {
            actor: event.actor,
            ...(status.state === 'Halted' ? { after: renderReason(status) } : {}),
          }),
        },
        [{ kind: 'notify', event: 'RolloutAborted' }],
      );

    case 'retry':
      if (!retriable.includes(status.state)) {
        // The halt was retried already (a resent request, a second click): nothing more to do.
        if (status.halts > 0) return { ok: true, status, effects: [] };
        return refuse('only a halted rollout is retried');
      }
      return to(
        {
          state: 'Running',
          attempt: status.attempt + 1,
          ...reason('RetriedByAdmin', { actor: event.actor, wave: status.currentWave }),
        },
        [
          { kind: 'startWave', wave: status.currentWave },
          { kind: 'notify', event: 'RolloutRetried' },
        ],
      );

    case 'expedite':
      if (status.profile === 'emergency') return refuse('already on the emergency profile');
      return to(
        { profile: 'emergency', ...reason('ExpeditedByAdmin', { actor: event.actor }) },
        status.state === 'Baking'
          ? [{ kind: 'scheduleGate', wave: status.currentWave, immediately: true }]
          : [],
      );
  }
}
