import { describe, expect, it } from 'vitest';
import { reconcileIntervalMs, summarizeStatus, type StatusInput } from '../../lib/admin/status.js';
import type { FeedView } from '../../lib/dashboard/types.js';
import type { RolloutStateRow } from '../../lib/fleet/schemas.js';

const now = new Date(Date.UTC(2026, 10, 1, 12, 0));
const minutesAgo = (minutes: number): Date => new Date(now.getTime() - minutes * 60_000);
const feed = (name: string, sequence: number | null, ids: string[] = []): FeedView => ({
  name,
  url: `https://${name}.example/feed`,
  problem: null,
  lastPollAt: null,
  lastPollResult: null,
  lastSuccessAt: null,
  lastErrorAt: null,
  lastError: null,
  lastRejected: null,
  frozen: null,
  package:
    sequence === null
      ? null
      : {
          sequence,
          sha256: 'a'.repeat(64),
          signingTime: null,
          acceptedAt: null,
          mitigationIds: ids,
          signer: null,
          verifyProblem: null,
        },
});
const rollout = (
  id: string,
  feedName: string,
  state: RolloutStateRow['state'],
  sequence: number,
): RolloutStateRow => ({
  partitionKey: id,
  rowKey: 'state',
  feed: feedName,
  packageSequence: sequence,
  operation: 'apply',
  state,
  reasonCode: state === 'Halted' ? 'WaveHalted' : '',
  reasonDetail: state === 'Halted' ? '3 failures' : '',
  waveCount: 2,
  currentWave: 0,
  profile: 'default',
  createdAt: now,
  updatedAt: now,
  attempt: 0,
  halts: 0,
  applies: { EM1: 'a'.repeat(64) },
});
const input = (changes: Partial<StatusInput>): StatusInput => ({
  org: 'contoso',
  now,
  feeds: [feed('microsoft', 2, ['EM1', 'EM2'])],
  rollouts: [],
  holds: [],
  rolloutsInFlight: [],
  servers: [],
  invalidServerRows: 0,
  latestOutcomes: new Map(),
  reconcileIntervalMs: 3_600_000,
  ...changes,
});

describe('summarizeStatus', () => {
  it('counts each server × current mitigation by its latest outcome, NoResult where there is none', () => {
    const status = summarizeStatus(
      input({
        servers: [
          {
            name: 'ex01',
            ring: 'canary',
            build: '15.2.1118.7',
            registeredBuild: '',
            agentVersion: '',
            lastSeen: minutesAgo(5),
          },
          {
            name: 'ex02',
            ring: '',
            build: '15.2.1118.7',
            registeredBuild: '',
            agentVersion: '',
            lastSeen: minutesAgo(5),
          },
        ],
        latestOutcomes: new Map([
          [
            'ex01',
            new Map([
              ['EM1', 'Applied'],
              ['EM2', 'Failed'],
              ['OLD', 'Removed'],
            ] as const),
          ],
        ]),
      }),
    );
    expect(status.servers.byOutcome).toEqual({ Applied: 1, Failed: 1, NoResult: 2 });
    expect(status.servers.byRing).toEqual({ canary: 1, '(none)': 1 });
  });

  it.each([
    { name: 'seen within two reconciles', lastSeen: minutesAgo(119), silent: false },
    { name: 'seen exactly two reconciles ago', lastSeen: minutesAgo(120), silent: false },
    { name: 'not seen for more than two reconciles', lastSeen: minutesAgo(121), silent: true },
    { name: 'never seen', lastSeen: undefined, silent: true },
  ])('an agent $name is silent: $silent', ({ lastSeen, silent }) => {
    const status = summarizeStatus(
      input({
        servers: [
          {
            name: 'ex01',
            ring: '',
            build: '15.2.1118.7',
            registeredBuild: '',
            agentVersion: '',
            ...(lastSeen ? { lastSeen } : {}),
          },
        ],
      }),
    );
    expect(status.servers.silentAfterMs).toBe(7_200_000);
    expect(status.servers.silentAgentCount).toBe(silent ? 1 : 0);
    expect(status.servers.silentAgents).toEqual(
      silent ? [{ server: 'ex01', lastSeen: lastSeen?.toISOString() ?? null }] : [],
    );
  });

  it('lists servers whose reported build differs from the registered one; no report is no mismatch', () => {
    const status = summarizeStatus(
      input({
        servers: [
          // The row's build is what the agent reports; registeredBuild is kept only while they differ.
          {
            name: 'ex01',
            ring: '',
            build: '15.2.1258.12',
            registeredBuild: '15.2.1118.7',
            agentVersion: '0.1.0',
            lastSeen: now,
          },
          {
            name: 'ex02',
            ring: '',
            build: '15.2.1118.7',
            registeredBuild: '',
            agentVersion: '0.1.0',
            lastSeen: now,
          },
          {
            name: 'ex03',
            ring: '',
            build: '15.2.1118.7',
            registeredBuild: '15.2.1118.7',
            agentVersion: '',
            lastSeen: now,
          },
        ],
      }),
    );
    expect(status.servers.buildMismatches).toEqual([
      { server: 'ex01', registered: '15.2.1118.7', reported: '15.2.1258.12' },
    ]);
    expect(status.servers.buildMismatchCount).toBe(1);
  });

  it('names at most 100 servers in a list and counts them all', () => {
    const servers = Array.from({ length: 250 }, (_, index) => ({
      name: `ex${index}`,
      ring: '',
      build: '15.2.1118.7',
      registeredBuild: '',
      agentVersion: '',
    }));
    const status = summarizeStatus(input({ servers }));
    expect(status.servers.silentAgents).toHaveLength(100);
    expect(status.servers.silentAgentCount).toBe(250);
  });

  it('shows a feed frozen where its record says so, and the halted or aborted rollouts of its current package as holds', () => {
    const status = summarizeStatus(
      input({
        feeds: [
          {
            ...feed('microsoft', 2, ['EM1']),
            frozen: {
              reasonCode: 'UntrustedChain',
              reasonDetail: 'the anchor changed',
              since: minutesAgo(10).toISOString(),
            },
          },
          feed('contoso', null),
        ],
        rollouts: [
          rollout('microsoft-000002-apply', 'microsoft', 'Halted', 2),
          rollout('microsoft-000001-apply', 'microsoft', 'Aborted', 1),
          rollout('contoso-000001-apply', 'contoso', 'Halted', 1),
        ],
        holds: [
          {
            feed: 'microsoft',
            mitigation: 'EM1',
            rolloutId: 'microsoft-000002-apply',
            state: 'Halted',
            packageSequence: 2,
          },
        ],
      }),
    );
    expect(status.feeds[0]).toMatchObject({
      frozen: {
        reasonCode: 'UntrustedChain',
        reasonDetail: 'the anchor changed',
        since: minutesAgo(10).toISOString(),
      },
      held: [
        {
          feed: 'microsoft',
          mitigation: 'EM1',
          rolloutId: 'microsoft-000002-apply',
          state: 'Halted',
          packageSequence: 2,
        },
      ],
    });
    expect(status.feeds[1]).toMatchObject({ frozen: null, held: [] });
    expect(status.rollouts.byState).toMatchObject({ Halted: 2, Aborted: 1, Running: 0 });
  });
});

describe('reconcileIntervalMs', () => {
  it.each([
    { schedule: '0 30 * * * *', ms: 3_600_000 },
    { schedule: '0 */15 * * * *', ms: 900_000 },
    { schedule: '0 30 2 * * *', ms: 86_400_000 },
  ])('$schedule → $ms', ({ schedule, ms }) => {
    expect(reconcileIntervalMs(schedule, now)).toBe(ms);
  });
});
