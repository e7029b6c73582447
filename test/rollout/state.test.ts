import { describe, it, expect } from 'vitest';
import {
  transition,
  type RolloutEffect,
  type RolloutEvent,
  type RolloutStatus,
  type TransitionResult,
} from '../../lib/rollout/state.js';
import { renderReason } from '../../lib/model/reasons.js';
import type { RolloutState } from '../../lib/model/rollout.js';

// ---- builders -----------------------------------------------------------------------------------

/** A three-wave rollout on the default profile, at wave `currentWave` (0-based). */
function status(state: RolloutState, changes: Partial<RolloutStatus> = {}): RolloutStatus {
  return Object.freeze({
    state,
    currentWave: 0,
    waveCount: 3,
    profile: 'default',
    reasonCode: '',
    reasonDetail: '',
    attempt: 0,
    halts: state === 'Halted' ? 1 : 0,
    ...changes,
  });
}

const ACTOR = 'alice@contoso.com';
const start: RolloutEvent = { kind: 'start' };
const finished = (wave: number): RolloutEvent => ({ kind: 'waveFinished', wave });
/** A gate for `wave` with `failed` failures out of 10 servers; the failing servers are f01, f02, … */
function gate(wave: number, failed: number, maxErrors: number): RolloutEvent {
  return {
    kind: 'gate',
    wave,
    counts: { servers: 10, succeeded: 10 - failed, failed, skipped: 0 },
    maxErrors,
    failedServers: Array.from(
      { length: failed },
      (_, index) => `f${String(index + 1).padStart(2, '0')}.contoso.com`,
    ),
  };
}
const pause: RolloutEvent = { kind: 'pause', actor: ACTOR };
const resume: RolloutEvent = { kind: 'resume', actor: ACTOR };
const abort: RolloutEvent = { kind: 'abort', actor: ACTOR };
const expedite: RolloutEvent = { kind: 'expedite', actor: ACTOR };
const retry: RolloutEvent = { kind: 'retry', actor: ACTOR };

function accepted(result: TransitionResult): { status: RolloutStatus; effects: readonly RolloutEffect[] } {
  if (!result.ok)
    throw new Error(
      `expected the transition to be accepted, it was refused: ${renderReason(result.refusal)}`,
    );
  return result;
}

// ---- accepted transitions -----------------------------------------------------------------------

interface AcceptedRow {
  readonly name: string;
  readonly from: RolloutStatus;
  readonly event: RolloutEvent;
  /** Fields of the new status (the rest must be as before); undefined: the field is gone. */
  readonly to: { readonly [K in keyof RolloutStatus]?: RolloutStatus[K] | undefined };
  readonly effects: readonly RolloutEffect[];
  /** Substring of the new reason in words (renderReason), when it matters. */
  readonly reason?: string;
}

const acceptedRows: readonly AcceptedRow[] = [
  // start
  {
    name: 'start: Planned → Running wave 1, start wave 0',
    from: status('Planned'),
    event: start,
    to: { state: 'Running', currentWave: 0 },
    effects: [{ kind: 'startWave', wave: 0 }],
  },
  {
    name: 'start on the emergency profile starts wave 0 too',
    from: status('Planned', { profile: 'emergency' }),
    event: start,
    to: { state: 'Running', currentWave: 0 },
    effects: [{ kind: 'startWave', wave: 0 }],
  },
  // waveFinished
  {
    name: 'waveFinished for the running wave → Baking, gate after the bake',
    from: status('Running', { currentWave: 1 }),
    event: finished(1),
    to: { state: 'Baking', currentWave: 1 },
    effects: [{ kind: 'scheduleGate', wave: 1, immediately: false }],
  },
  {
    name: 'waveFinished on the emergency profile → gate immediately',
    from: status('Running', { currentWave: 0, profile: 'emergency' }),
    event: finished(0),
    to: { state: 'Baking' },
    effects: [{ kind: 'scheduleGate', wave: 0, immediately: true }],
  },
  // gate
  {
    name: 'gate with no failures → next wave Running, start it',
    from: status('Baking', { currentWave: 0 }),
    event: gate(0, 0, 0),
    to: { state: 'Running', currentWave: 1 },
    effects: [{ kind: 'startWave', wave: 1 }],
  },
  {
    name: 'gate with failures equal to the budget is within budget',
    from: status('Baking', { currentWave: 1 }),
    event: gate(1, 2, 2),
    to: { state: 'Running', currentWave: 2 },
    effects: [{ kind: 'startWave', wave: 2 }],
  },
  {
    name: 'gate within budget on the last wave → Completed, notify',
    from: status('Baking', { currentWave: 2 }),
    event: gate(2, 1, 1),
    to: { state: 'Completed', currentWave: 2, reasonCode: '', reasonDetail: '' },
    effects: [{ kind: 'notify', event: 'RolloutCompleted' }],
  },
  {
    name: 'gate within budget on a one-wave rollout → Completed',
    from: status('Baking', { currentWave: 0, waveCount: 1 }),
    event: gate(0, 0, 0),
    to: { state: 'Completed' },
    effects: [{ kind: 'notify', event: 'RolloutCompleted' }],
  },
  {
    name: 'gate over budget → Halted, notify',
    from: status('Baking', { currentWave: 0 }),
    event: gate(0, 1, 0),
    to: { state: 'Halted', currentWave: 0, halts: 1 },
    effects: [{ kind: 'notify', event: 'RolloutHalted' }],
    reason: 'WaveHalted',
  },
  {
    name: 'gate over budget counts the halt',
    from: status('Baking', { currentWave: 1, halts: 2, attempt: 2 }),
    event: gate(1, 1, 0),
    to: { state: 'Halted', halts: 3, attempt: 2 },
    effects: [{ kind: 'notify', event: 'RolloutHalted' }],
    reason: 'WaveHalted: wave 2 (retry 2) had 1 failures',
  },
  {
    name: 'gate within budget after a retry → the next wave starts on its first pass',
    from: status('Baking', { currentWave: 0, halts: 1, attempt: 1 }),
    event: gate(0, 0, 0),
    to: { state: 'Running', currentWave: 1, attempt: 0, halts: 1 },
    effects: [{ kind: 'startWave', wave: 1 }],
  },
  {
    name: 'gate over budget on the last wave → Halted, not Completed',
    from: status('Baking', { currentWave: 2 }),
    event: gate(2, 3, 2),
    to: { state: 'Halted', currentWave: 2, halts: 1 },
    effects: [{ kind: 'notify', event: 'RolloutHalted' }],
    reason: 'WaveHalted',
  },
  // pause
  {
    name: 'pause from Planned remembers Planned',
    from: status('Planned'),
    event: pause,
    to: { state: 'Paused', resumeTo: 'Planned' },
    effects: [],
    reason: ACTOR,
  },
  {
    name: 'pause from Running remembers Running and the wave',
    from: status('Running', { currentWave: 1 }),
    event: pause,
    to: { state: 'Paused', resumeTo: 'Running', currentWave: 1 },
    effects: [],
    reason: ACTOR,
  },
  {
    name: 'pause from Baking remembers Baking',
    from: status('Baking', { currentWave: 2 }),
    event: pause,
    to: { state: 'Paused', resumeTo: 'Baking', currentWave: 2 },
    effects: [],
    reason: ACTOR,
  },
  // resume
  {
    name: 'resume to Planned: nothing to send',
    from: status('Paused', { resumeTo: 'Planned' }),
    event: resume,
    to: { state: 'Planned', resumeTo: undefined },
    effects: [],
    reason: ACTOR,
  },
  {
    name: 'resume to Running sends the current wave again',
    from: status('Paused', { resumeTo: 'Running', currentWave: 1 }),
    event: resume,
    to: { state: 'Running', currentWave: 1, resumeTo: undefined },
    effects: [{ kind: 'startWave', wave: 1 }],
    reason: ACTOR,
  },
  {
    name: 'resume to Baking schedules the gate again, after the bake',
    from: status('Paused', { resumeTo: 'Baking', currentWave: 2 }),
    event: resume,
    to: { state: 'Baking', currentWave: 2, resumeTo: undefined },
    effects: [{ kind: 'scheduleGate', wave: 2, immediately: false }],
  },
  {
    name: 'resume to Baking on the emergency profile: gate immediately',
    from: status('Paused', { resumeTo: 'Baking', currentWave: 1, profile: 'emergency' }),
    event: resume,
    to: { state: 'Baking', currentWave: 1, resumeTo: undefined },
    effects: [{ kind: 'scheduleGate', wave: 1, immediately: true }],
  },
  // retry
  {
    name: 'retry of a halted rollout → Running the same wave on its next pass, send it, notify',
    from: status('Halted', {
      currentWave: 1,
      reasonCode: 'WaveHalted',
      reasonDetail: 'wave 2 had 3 failures',
    }),
    event: retry,
    to: { state: 'Running', currentWave: 1, attempt: 1, halts: 1 },
    effects: [
      { kind: 'startWave', wave: 1 },
      { kind: 'notify', event: 'RolloutRetried' },
    ],
    reason: `Retried: by ${ACTOR}: wave 2 sent again to its failed and unreached servers`,
  },
  {
    name: 'retry of a rollout halted again → the pass after',
    from: status('Halted', { currentWave: 0, attempt: 1, halts: 2 }),
    event: retry,
    to: { state: 'Running', attempt: 2, halts: 2 },
    effects: [
      { kind: 'startWave', wave: 0 },
      { kind: 'notify', event: 'RolloutRetried' },
    ],
  },
  {
    name: 'retry of a halted emergency rollout keeps its profile',
    from: status('Halted', { currentWave: 2, profile: 'emergency' }),
    event: retry,
    to: { state: 'Running', currentWave: 2, attempt: 1, profile: 'emergency' },
    effects: [
      { kind: 'startWave', wave: 2 },
      { kind: 'notify', event: 'RolloutRetried' },
    ],
  },
  ...(['Running', 'Baking', 'Paused'] as const).map(
    (state): AcceptedRow => ({
      name: `retry when ${state} after a retry (the same halt retried twice) → accepted, nothing changes, nothing sent`,
      from: status(state, {
        currentWave: 1,
        attempt: 1,
        halts: 1,
        reasonCode: 'RetriedByAdmin',
        reasonDetail: 'by bob: wave 2 sent again to its failed and unreached servers',
        ...(state === 'Paused' ? { resumeTo: 'Running' as const } : {}),
      }),
      event: retry,
      to: {},
      effects: [],
      reason: 'Retried: by bob',
    }),
  ),
  // abort
  {
    name: 'abort of a halted rollout → Aborted, the halt reason kept, notify',
    from: status('Halted', {
      currentWave: 0,
      reasonCode: 'WaveHalted',
      reasonDetail: 'wave 1 had 2 failures, over its budget of 0',
    }),
    event: abort,
    to: { state: 'Aborted', currentWave: 0 },
    effects: [{ kind: 'notify', event: 'RolloutAborted' }],
    reason: `Aborted: by ${ACTOR} after WaveHalted: wave 1 had 2 failures`,
  },
  ...(['Planned', 'Running', 'Baking', 'Paused'] as const).map(
    (state): AcceptedRow => ({
      name: `abort from ${state} → Aborted, notify`,
      from: status(state, {
        currentWave: 1,
        ...(state === 'Paused' ? { resumeTo: 'Running' as const } : {}),
      }),
      event: abort,
      to: { state: 'Aborted', currentWave: 1 },
      effects: [{ kind: 'notify', event: 'RolloutAborted' }],
      reason: ACTOR,
    }),
  ),
  // expedite
  ...(['Planned', 'Running'] as const).map(
    (state): AcceptedRow => ({
      name: `expedite from ${state} → emergency profile, nothing to send`,
      from: status(state, { currentWave: 1 }),
      event: expedite,
      to: { state, profile: 'emergency', currentWave: 1 },
      effects: [],
      reason: ACTOR,
    }),
  ),
  {
    name: 'expedite from Paused → emergency profile, still paused',
    from: status('Paused', { resumeTo: 'Baking', currentWave: 1 }),
    event: expedite,
    to: { state: 'Paused', resumeTo: 'Baking', profile: 'emergency' },
    effects: [],
  },
  {
    name: 'expedite while Baking → emergency profile and an immediate gate',
    from: status('Baking', { currentWave: 1 }),
    event: expedite,
    to: { state: 'Baking', profile: 'emergency', currentWave: 1 },
    effects: [{ kind: 'scheduleGate', wave: 1, immediately: true }],
    reason: ACTOR,
  },
];

// ---- refused transitions ------------------------------------------------------------------------

interface RefusedRow {
  readonly name: string;
  readonly from: RolloutStatus;
  readonly event: RolloutEvent;
}

const allEvents: readonly RolloutEvent[] = [
  start,
  finished(0),
  gate(0, 0, 0),
  pause,
  resume,
  abort,
  expedite,
  retry,
];

const refusedRows: readonly RefusedRow[] = [
  { name: 'start when Running', from: status('Running'), event: start },
  { name: 'start when Baking', from: status('Baking'), event: start },
  { name: 'start when Paused', from: status('Paused', { resumeTo: 'Planned' }), event: start },
  {
    name: 'waveFinished for an earlier wave',
    from: status('Running', { currentWave: 1 }),
    event: finished(0),
  },
  { name: 'waveFinished for a later wave', from: status('Running', { currentWave: 1 }), event: finished(2) },
  {
    name: 'waveFinished delivered twice (already Baking)',
    from: status('Baking', { currentWave: 1 }),
    event: finished(1),
  },
  { name: 'waveFinished before the start', from: status('Planned'), event: finished(0) },
  { name: 'waveFinished while Paused', from: status('Paused', { resumeTo: 'Running' }), event: finished(0) },
  {
    name: 'gate for the running wave (not baking yet)',
    from: status('Running', { currentWave: 1 }),
    event: gate(1, 0, 0),
  },
  {
    name: 'gate for a wave already judged (duplicate delivery)',
    from: status('Baking', { currentWave: 1 }),
    event: gate(0, 0, 0),
  },
  {
    name: 'a duplicate over-budget gate for a wave already judged',
    from: status('Baking', { currentWave: 1 }),
    event: gate(0, 5, 0),
  },
  { name: 'gate for a later wave', from: status('Baking', { currentWave: 1 }), event: gate(2, 0, 0) },
  {
    name: 'gate while Paused in Baking',
    from: status('Paused', { resumeTo: 'Baking' }),
    event: gate(0, 0, 0),
  },
  { name: 'gate before the start', from: status('Planned'), event: gate(0, 0, 0) },
  { name: 'pause when Paused', from: status('Paused', { resumeTo: 'Running' }), event: pause },
  { name: 'resume when Planned', from: status('Planned'), event: resume },
  { name: 'resume when Running', from: status('Running'), event: resume },
  { name: 'resume when Baking', from: status('Baking'), event: resume },
  {
    name: 'expedite on the emergency profile (twice)',
    from: status('Running', { profile: 'emergency' }),
    event: expedite,
  },
  {
    name: 'expedite on the emergency profile while Baking',
    from: status('Baking', { profile: 'emergency' }),
    event: expedite,
  },
  ...(['Planned', 'Running', 'Baking'] as const).map(
    (state): RefusedRow => ({ name: `retry when ${state}, never halted`, from: status(state), event: retry }),
  ),
  { name: 'retry when Paused, never halted', from: status('Paused', { resumeTo: 'Running' }), event: retry },
  ...allEvents
    .filter((event) => event.kind !== 'retry' && event.kind !== 'abort')
    .map(
      (event): RefusedRow => ({
        name: `${event.kind} when Halted (waits for retry or abort)`,
        from: status('Halted'),
        event,
      }),
    ),
  ...(['Aborted', 'Completed'] as const).flatMap((state) =>
    allEvents.map(
      (event): RefusedRow => ({
        name: `${event.kind} when ${state} (final)`,
        from: status(state, { currentWave: 0, halts: 1 }),
        event,
      }),
    ),
  ),
];

describe('transition: accepted', () => {
  it.each(acceptedRows)('$name', (row) => {
    const result = accepted(transition(row.from, row.event));
    const expected: Record<string, unknown> = { ...row.from, ...row.to };
    const actualReason = renderReason(result.status);
    const { reasonCode: _code, reasonDetail: _detail, ...actual } = result.status;
    const { reasonCode: _expectedCode, reasonDetail: _expectedDetail, ...rest } = expected;
    // A field expected undefined (resumeTo after a resume) must be absent or undefined.
    expect(Object.fromEntries(Object.entries(actual).filter(([, value]) => value !== undefined))).toEqual(
      Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined)),
    );
    if (row.to.reasonCode !== undefined) expect(result.status.reasonCode).toBe(row.to.reasonCode);
    if (row.to.reasonDetail !== undefined) expect(result.status.reasonDetail).toBe(row.to.reasonDetail);
    if (row.reason !== undefined) expect(actualReason).toContain(row.reason);
    expect(result.effects).toEqual(row.effects);
  });
});

describe('transition: refused', () => {
  it.each(refusedRows)('$name', (row) => {
    const result = transition(row.from, row.event);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.refusal.reasonCode).toBe('Refused');
      expect(result.refusal.reasonDetail).toContain(`${row.event.kind} refused`);
      expect(result.refusal.reasonDetail).toContain(row.from.state);
    }
  });

  it.each([
    { state: 'Completed' as const, because: 'the rollout has ended; only a halted rollout is retried' },
    { state: 'Aborted' as const, because: 'the rollout has ended; only a halted rollout is retried' },
    { state: 'Running' as const, because: 'only a halted rollout is retried' },
  ])('retry when $state says why: $because', ({ state, because }) => {
    expect(transition(status(state, { halts: 0 }), retry)).toEqual({
      ok: false,
      refusal: {
        reasonCode: 'Refused',
        reasonDetail: `retry refused: ${because} (rollout is ${state}, wave 1 of 3)`,
      },
    });
  });

  it('a halted rollout refuses resume, naming what it waits for', () => {
    expect(transition(status('Halted'), resume)).toEqual({
      ok: false,
      refusal: {
        reasonCode: 'Refused',
        reasonDetail:
          'resume refused: a halted rollout waits for retry or abort (rollout is Halted, wave 1 of 3)',
      },
    });
  });

  it('every state and event is covered by the tables', () => {
    const covered = new Set(
      [...acceptedRows, ...refusedRows].map((row) => `${row.from.state}/${row.event.kind}`),
    );
    const states: readonly RolloutState[] = [
      'Planned',
      'Running',
      'Baking',
      'Paused',
      'Halted',
      'Aborted',
      'Completed',
    ];
    const missing = states
      .flatMap((state) => allEvents.map((event) => `${state}/${event.kind}`))
      .filter((pair) => !covered.has(pair));
    expect(missing).toEqual([]);
  });
});

describe('transition: the halt reason', () => {
  const halted = (failed: number, wave = 1, maxErrors = 0): string =>
    renderReason(
      accepted(transition(status('Baking', { currentWave: wave }), gate(wave, failed, maxErrors))).status,
    );

  it('starts with WaveHalted and gives the wave (1-based), the failures and the budget', () => {
    const reason = halted(3, 1, 2);
    expect(reason.startsWith('WaveHalted')).toBe(true);
    expect(reason).toContain('wave 2');
    expect(reason).toContain('3 failures');
    expect(reason).toContain('budget of 2');
  });

  it('names every failing server when there are at most 10', () => {
    const reason = halted(10);
    for (let index = 1; index <= 10; index++)
      expect(reason).toContain(`f${String(index).padStart(2, '0')}.contoso.com`);
    expect(reason).not.toContain('more');
  });

  it('names the first 10 failing servers and "and N more"', () => {
    const reason = halted(13);
    for (let index = 1; index <= 10; index++)
      expect(reason).toContain(`f${String(index).padStart(2, '0')}.contoso.com`);
    for (const index of [11, 12, 13]) expect(reason).not.toContain(`f${index}.contoso.com`);
    expect(reason).toContain('and 3 more');
  });

  it('11 failing servers: "and 1 more"', () => {
    expect(halted(11)).toContain('and 1 more');
  });

  it('the failure count comes from the counts even when no server is named', () => {
    const event: RolloutEvent = {
      kind: 'gate',
      wave: 0,
      counts: { servers: 4, succeeded: 2, failed: 2, skipped: 0 },
      maxErrors: 1,
      failedServers: [],
    };
    const result = accepted(transition(status('Baking'), event));
    expect(result.status.state).toBe('Halted');
    expect(result.status.reasonCode).toBe('WaveHalted');
    expect(result.status.reasonDetail).toContain('2 failures');
  });
});

describe('transition: walks', () => {
  /** Applies the events in order; every one must be accepted. */
  function walk(
    from: RolloutStatus,
    events: readonly RolloutEvent[],
  ): { status: RolloutStatus; effects: RolloutEffect[]; states: RolloutState[] } {
    let current = from;
    const effects: RolloutEffect[] = [];
    const states: RolloutState[] = [from.state];
    for (const event of events) {
      const result = accepted(transition(current, event));
      current = result.status;
      effects.push(...result.effects);
      states.push(current.state);
    }
    return { status: current, effects, states };
  }

  it('a three-wave rollout from start to Completed', () => {
    const result = walk(status('Planned'), [
      start,
      finished(0),
      gate(0, 0, 1),
      finished(1),
      gate(1, 1, 1),
      finished(2),
      gate(2, 0, 0),
    ]);
    expect(result.states).toEqual([
      'Planned',
      'Running',
      'Baking',
      'Running',
      'Baking',
      'Running',
      'Baking',
      'Completed',
    ]);
    expect(result.effects).toEqual([
      { kind: 'startWave', wave: 0 },
      { kind: 'scheduleGate', wave: 0, immediately: false },
      { kind: 'startWave', wave: 1 },
      { kind: 'scheduleGate', wave: 1, immediately: false },
      { kind: 'startWave', wave: 2 },
      { kind: 'scheduleGate', wave: 2, immediately: false },
      { kind: 'notify', event: 'RolloutCompleted' },
    ]);
    expect(result.status).toMatchObject({
      state: 'Completed',
      currentWave: 2,
      waveCount: 3,
      profile: 'default',
    });
    // Late duplicates of any earlier message are refused once the rollout has ended.
    for (const late of [finished(2), gate(2, 0, 0), gate(1, 0, 0), start])
      expect(transition(result.status, late).ok).toBe(false);
  });

  it('pause while baking, expedite, resume: the gate comes immediately and the rollout goes on', () => {
    const result = walk(status('Planned'), [
      start,
      finished(0),
      pause,
      expedite,
      resume,
      gate(0, 0, 0),
      finished(1),
    ]);
    expect(result.states).toEqual([
      'Planned',
      'Running',
      'Baking',
      'Paused',
      'Paused',
      'Baking',
      'Running',
      'Baking',
    ]);
    expect(result.effects).toEqual([
      { kind: 'startWave', wave: 0 },
      { kind: 'scheduleGate', wave: 0, immediately: false },
      { kind: 'scheduleGate', wave: 0, immediately: true },
      { kind: 'startWave', wave: 1 },
      { kind: 'scheduleGate', wave: 1, immediately: true },
    ]);
    expect(result.status.profile).toBe('emergency');
  });

  it('a halted rollout stays halted: the delayed gate of the same wave is refused', () => {
    const result = walk(status('Planned'), [start, finished(0), gate(0, 2, 1)]);
    expect(result.status.state).toBe('Halted');
    expect(transition(result.status, gate(0, 0, 1)).ok).toBe(false);
    expect(transition(result.status, resume).ok).toBe(false);
  });

  it('halt, retry, halt again with a new reason, retry, then on to Completed', () => {
    const result = walk(status('Planned', { waveCount: 2, halts: 0 }), [
      start,
      finished(0),
      gate(0, 2, 0),
      retry,
      finished(0),
      gate(0, 1, 0),
      retry,
      finished(0),
      gate(0, 0, 0),
      finished(1),
      gate(1, 0, 0),
    ]);
    expect(result.states).toEqual([
      'Planned',
      'Running',
      'Baking',
      'Halted',
      'Running',
      'Baking',
      'Halted',
      'Running',
      'Baking',
      'Running',
      'Baking',
      'Completed',
    ]);
    expect(result.effects.filter((effect) => effect.kind !== 'scheduleGate')).toEqual([
      { kind: 'startWave', wave: 0 },
      { kind: 'notify', event: 'RolloutHalted' },
      { kind: 'startWave', wave: 0 },
      { kind: 'notify', event: 'RolloutRetried' },
      { kind: 'notify', event: 'RolloutHalted' },
      { kind: 'startWave', wave: 0 },
      { kind: 'notify', event: 'RolloutRetried' },
      { kind: 'startWave', wave: 1 },
      { kind: 'notify', event: 'RolloutCompleted' },
    ]);
    expect(result.status).toMatchObject({ halts: 2, attempt: 0, currentWave: 1 });
  });

  it('the second halt has a reason of its own', () => {
    const first = walk(status('Planned', { halts: 0 }), [start, finished(0), gate(0, 2, 0)]).status;
    const second = walk(first, [retry, finished(0), gate(0, 1, 0)]).status;
    expect(renderReason(first)).toMatch(/^WaveHalted: wave 1 had 2 failures/);
    expect(renderReason(second)).toMatch(/^WaveHalted: wave 1 \(retry 1\) had 1 failures/);
  });

  it('a retry of the same halt sent twice is one retry', () => {
    const halted = walk(status('Planned', { halts: 0 }), [start, finished(0), gate(0, 2, 0)]).status;
    const once = accepted(transition(halted, retry));
    const twice = accepted(transition(once.status, retry));
    expect(twice.status).toBe(once.status);
    expect(twice.effects).toEqual([]);
  });

  it('a gate delivered twice moves the rollout on once', () => {
    const once = walk(status('Planned'), [start, finished(0), gate(0, 0, 0)]);
    expect(once.status).toMatchObject({ state: 'Running', currentWave: 1 });
    expect(transition(once.status, gate(0, 0, 0)).ok).toBe(false);
  });
});
