import { describe, expect, it } from 'vitest';
import { allApplied, type Deployment, useWorld } from '../helpers/e2e.js';

/**
 * A halt holds (issue 18): faulty and unreachable canaries halt the rollout; reconcile, however
 * often it runs, starts nothing that would apply what the halt holds; a retry sends the halted
 * wave again to exactly its failed and unreached servers, halting again while they still fail and
 * completing the rollout once they are fixed; an abort of a halted rollout ends it, holding on.
 */
const world = useWorld();

const rolloutId = 'microsoft-000001-apply';
const waves = [
  { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 3, maxErrors: 0, bake: 'PT0S' },
  { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 0, bake: 'PT0S' },
];

/** How many operations a server's agent carried out. */
const applies = (d: Deployment, name: string): number =>
  new Set(
    d.agents
      .get(name)!
      .logger.named('MitigationOutcome')
      .map((entry) => entry.fields['operationId']),
  ).size;
const rowKeys = async (d: Deployment, name: string): Promise<string[]> =>
  (await d.results(name)).map((row) => row.rowKey);

describe('a halted rollout', () => {
  it('holds through reconciles; retry resends exactly the failed and unreached canaries, halts again while they fail, completes once they are fixed', {
    timeout: 90_000,
  }, async () => {
    const d = await world.deploy(
      [
        { name: 'ex01', ring: 'canary', failOn: ['MSExchangeUM'] },
        { name: 'ex02', ring: 'canary' },
        { name: 'ex03', ring: 'canary' },
        { name: 'ex04', ring: 'broad' },
        { name: 'ex05', ring: 'broad' },
      ],
      { waves },
    );
    // ex02's agent is down: its messages end in the poison queue, Unreachable.
    await d.agents.get('ex02')!.stop();
    await d.host.runTimer('pollOcs');
    await d.settled(rolloutId);
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state).toMatchObject({
      state: 'Halted',
      halts: 1,
      reasonCode: 'WaveHalted',
      reasonDetail: expect.stringMatching(/^wave 1 had 2 failures/),
    });
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 3, 1, 2, 0],
      ['broad', 2, 0, 0, 0],
    ]);

    // Reconcile, twice: the broad servers miss every mitigation, but the halt holds them all.
    for (const _run of [1, 2]) await d.host.runTimer('reconcile');
    await d.host.idle();
    expect(
      ((await d.api('GET', '/api/rollouts')).body as { rollouts: { id: string }[] }).rollouts.map(
        (rollout) => rollout.id,
      ),
    ).toEqual([rolloutId]);
    expect(
      d.logger
        .named('ReconcileHeld')
        .map((entry) => [entry.fields['rolloutId'], entry.fields['mitigationIds'], entry.fields['servers']]),
    ).toEqual([
      [rolloutId, ['EM1', 'EM2', 'EM3', 'PING1'], 4],
      [rolloutId, ['EM1', 'EM2', 'EM3', 'PING1'], 4],
    ]);
    for (const name of ['ex04', 'ex05']) expect(await d.results(name)).toEqual([]);
    expect((await d.api('GET', `/api/rollouts/${rolloutId}`)).body).toMatchObject({
      state: 'Halted',
      holds: ['EM1', 'EM2', 'EM3', 'PING1'],
    });
    expect((await d.api('GET', '/api/status')).body).toMatchObject({
      holds: expect.arrayContaining([
        { feed: 'microsoft', mitigation: 'EM3', rolloutId, state: 'Halted', packageSequence: 1 },
      ]),
    });

    // Retry, sent twice at once: one retry. ex01 and ex02 are sent again, once each; ex03 is not; they still fail.
    const before = { ex01: applies(d, 'ex01'), ex03: applies(d, 'ex03') };
    const retried = await Promise.all([
      d.api('POST', `/api/rollouts/${rolloutId}/retry`),
      d.api('POST', `/api/rollouts/${rolloutId}/retry`),
    ]);
    expect(retried.map((response) => response.status)).toEqual([200, 200]);
    await d.settled(rolloutId, ['Halted', 'Completed', 'Aborted'], 30_000);
    await d.host.idle();
    // The two fail in either order (ex01 at once, ex02 once the host gives up on it).
    const again = (await d.rollout(rolloutId)).state;
    expect(again).toMatchObject({
      state: 'Halted',
      halts: 2,
      attempt: 1,
      reasonCode: 'WaveHalted',
      reasonDetail: expect.stringMatching(
        /^wave 1 \(retry 1\) had 2 failures, over its budget of 0 \((ex01|ex02)\.contoso\.com, (ex01|ex02)\.contoso\.com\)$/,
      ),
    });
    expect(again.reasonDetail).toContain('ex01.contoso.com');
    expect(again.reasonDetail).toContain('ex02.contoso.com');
    // What failed on the retry, read under the retry's operation ids.
    expect(
      (
        (await d.api('GET', `/api/rollouts/${rolloutId}`)).body as {
          problems: { server: string; mitigation: string; outcome: string }[];
        }
      ).problems
        .map((problem) => [problem.server, problem.mitigation, problem.outcome])
        .sort(),
    ).toEqual([
      ['ex01.contoso.com', 'EM3', 'Failed'],
      ['ex02.contoso.com', 'EM1', 'Unreachable'],
      ['ex02.contoso.com', 'EM2', 'Unreachable'],
      ['ex02.contoso.com', 'EM3', 'Unreachable'],
      ['ex02.contoso.com', 'PING1', 'Unreachable'],
    ]);
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 3, 1, 2, 0],
      ['broad', 2, 0, 0, 0],
    ]);
    expect(await rowKeys(d, 'ex01')).toEqual([
      `${rolloutId}.w0.ex01.contoso.com`,
      `${rolloutId}.w0.r1.ex01.contoso.com`,
    ]);
    expect(await rowKeys(d, 'ex02')).toEqual([
      `${rolloutId}.w0.ex02.contoso.com`,
      `${rolloutId}.w0.r1.ex02.contoso.com`,
    ]);
    expect(await rowKeys(d, 'ex03')).toEqual([`${rolloutId}.w0.ex03.contoso.com`]);
    expect({ ex01: applies(d, 'ex01'), ex03: applies(d, 'ex03') }).toEqual({
      ex01: before.ex01 + 1,
      ex03: before.ex03,
    });
    expect(
      d.logger.named('RolloutTransition').filter((entry) => entry.fields['rolloutEvent'] === 'retry'),
    ).toHaveLength(1);

    // The fault is cleared and ex02's agent is back: a retry completes the rollout.
    await d.agents.get('ex01')!.restart({ failOn: [] });
    await d.agents.get('ex02')!.restart();
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/retry`)).toMatchObject({
      status: 200,
      body: { state: 'Running' },
    });
    await d.settled(rolloutId, ['Halted', 'Completed', 'Aborted'], 30_000);
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state).toMatchObject({ state: 'Completed', attempt: 0, halts: 2 });
    expect(await d.waveCounts(rolloutId)).toEqual([
      ['canary', 3, 3, 0, 0],
      ['broad', 2, 2, 0, 0],
    ]);
    // ex01 kept what it applied the first time and now applies EM3; ex02 gets everything on its third try.
    expect((await d.outcomes('ex01')).at(-1)).toEqual({
      PING1: 'AlreadyApplied',
      EM1: 'AlreadyApplied',
      EM2: 'AlreadyApplied',
      EM3: 'Applied',
    });
    expect((await d.outcomes('ex02')).at(-1)).toEqual(allApplied);
    for (const name of ['ex03', 'ex04', 'ex05']) expect(await d.outcomes(name)).toEqual([allApplied]);
    // Nothing holds now, and a retry of the completed rollout is refused.
    expect((await d.api('GET', `/api/rollouts/${rolloutId}`)).body).toMatchObject({ holds: [] });
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/retry`)).toMatchObject({
      status: 409,
      body: { code: 'Refused', detail: expect.stringContaining('only a halted rollout is retried') },
    });
  });

  it('abort: a halted rollout ends Aborted, what is applied stays, and the hold stays', {
    timeout: 60_000,
  }, async () => {
    const d = await world.deploy(
      [
        { name: 'ex11', ring: 'canary', failOn: ['MSExchangeUM'] },
        { name: 'ex12', ring: 'canary' },
        { name: 'ex13', ring: 'broad' },
      ],
      { waves },
    );
    await d.host.runTimer('pollOcs');
    await d.settled(rolloutId);
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state.state).toBe('Halted');

    // On demand, as a dry run: what reconcile would do and what the halt holds, nothing written.
    const dryRun = await d.api('POST', '/api/reconcile?dryRun=true');
    expect(dryRun).toMatchObject({
      status: 200,
      body: {
        dryRun: true,
        feeds: [
          {
            feed: 'microsoft',
            servers: 0,
            changes: [],
            held: [
              { server: 'ex11.contoso.com', holds: [{ mitigation: 'EM3', rolloutId }] },
              { server: 'ex13.contoso.com' },
            ],
          },
        ],
      },
    });
    expect(await d.api('POST', '/api/reconcile?dryRun=maybe')).toMatchObject({
      status: 400,
      body: { code: 'InvalidQuery', detail: 'query dryRun: must be true or false' },
    });
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/abort`)).toMatchObject({
      status: 200,
      body: {
        state: 'Aborted',
        reasonCode: 'AbortedByAdmin',
        reasonDetail: expect.stringMatching(/^by function-key after WaveHalted: wave 1 had 1 failures/),
      },
    });
    await d.host.runTimer('reconcile');
    await d.host.idle();
    expect((await d.rollout(rolloutId)).state.state).toBe('Aborted');
    expect(await d.outcomes('ex12')).toEqual([allApplied]);
    expect(await d.results('ex13')).toEqual([]);
    expect(((await d.api('GET', '/api/rollouts')).body as { rollouts: unknown[] }).rollouts).toHaveLength(1);
    expect((await d.api('GET', `/api/rollouts/${rolloutId}`)).body).toMatchObject({
      state: 'Aborted',
      holds: ['EM1', 'EM2', 'EM3', 'PING1'],
    });
    expect(await d.api('POST', `/api/rollouts/${rolloutId}/retry`)).toMatchObject({ status: 409 });
  });
});
