import { describe, expect, it } from 'vitest';
import { maxNoteLength } from '../../lib/rollout/outcomes.js';
import { poisonedResult } from '../../lib/rollout/poisoned.js';

const plan = { apply: ['EM1'], remove: ['EM2'] };
const direct =
  'the agent did not answer through the relay; the host gave up after maxDequeueCount deliveries';
const hub = { site: 'berlin', hybridConnection: 'hub-berlin', relayPath: 'ex01' };
const hubSaid = { EM1: { outcome: 'Unreachable' as const, detail: 'ex01: connect ECONNREFUSED' } };

describe('poisonedResult', () => {
  it.each([
    {
      name: 'direct, nothing stored: every mitigation Unreachable, recorded, no note',
      stored: undefined,
      hub: undefined,
      expected: {
        outcomes: {
          EM1: { outcome: 'Unreachable', detail: direct },
          EM2: { outcome: 'Unreachable', detail: direct },
        },
        record: true,
        hubAnswered: false,
      },
    },
    {
      name: 'a Completed result is there already (another delivery got through): kept, still counted failed',
      stored: {
        status: 'Completed' as const,
        outcomes: { EM1: { outcome: 'Applied' as const, detail: '' } },
      },
      hub: undefined,
      expected: {
        outcomes: {
          EM1: { outcome: 'Unreachable', detail: direct },
          EM2: { outcome: 'Unreachable', detail: direct },
        },
        record: false,
        hubAnswered: false,
      },
    },
    {
      name: 'behind a hub that did not answer: the site is named',
      stored: undefined,
      hub,
      expected: {
        outcomes: {
          EM1: {
            outcome: 'Unreachable',
            detail:
              "site berlin's relay hub on hub-berlin did not answer for ex01; the host gave up after maxDequeueCount deliveries",
          },
          EM2: {
            outcome: 'Unreachable',
            detail:
              "site berlin's relay hub on hub-berlin did not answer for ex01; the host gave up after maxDequeueCount deliveries",
          },
        },
        record: true,
        note: "Unreachable: site berlin's relay hub on hub-berlin down",
        hubAnswered: false,
      },
    },
    {
      name: 'behind a hub that answered for the agent: its words are the outcomes',
      stored: { status: 'InProgress' as const, outcomes: hubSaid },
      hub,
      expected: {
        outcomes: hubSaid,
        record: true,
        note: "Unreachable behind site berlin's relay hub on hub-berlin",
        hubAnswered: true,
      },
    },
    {
      name: 'a server without a site behind a hub',
      stored: { status: 'InProgress' as const, outcomes: {} },
      hub: { ...hub, site: '' },
      expected: expect.objectContaining({
        note: "Unreachable: site (none)'s relay hub on hub-berlin down",
        hubAnswered: false,
      }),
    },
    {
      name: "a stored attempt's outcomes are used for a direct server too (only a hub's answer is stored so)",
      stored: { status: 'InProgress' as const, outcomes: hubSaid },
      hub: undefined,
      expected: expect.objectContaining({ outcomes: hubSaid, record: true, hubAnswered: true }),
    },
  ])('$name', ({ stored, hub, expected }) => {
    expect(poisonedResult(plan, stored, hub)).toEqual(expected);
  });

  it('clips a long site name in the note', () => {
    const result = poisonedResult(plan, undefined, { ...hub, site: 'x'.repeat(300) });
    expect(result.note).toHaveLength(maxNoteLength);
  });
});
