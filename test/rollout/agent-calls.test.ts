import { describe, expect, it } from 'vitest';
import { agentRequests, agentSaid, withFailures } from '../../lib/rollout/agent-calls.js';

describe('agentRequests', () => {
  it.each([
    {
      name: 'apply only, rollback on degraded (the default is not sent)',
      plan: { apply: ['EM1', 'EM2'], remove: [], onDegraded: 'rollback' as const },
      expected: { apply: { operationId: 'op.apply', mitigationIds: ['EM1', 'EM2'] } },
    },
    {
      name: 'apply with keep on degraded',
      plan: { apply: ['EM1'], remove: [], onDegraded: 'keep' as const },
      expected: { apply: { operationId: 'op.apply', mitigationIds: ['EM1'], onDegraded: 'keep' } },
    },
    {
      name: 'remove only',
      plan: { apply: [], remove: ['EM3'], onDegraded: 'rollback' as const },
      expected: { remove: { operationId: 'op.remove', mitigationIds: ['EM3'] } },
    },
    {
      name: 'both, each under its own operation id',
      plan: { apply: ['EM1'], remove: ['EM3'], onDegraded: 'rollback' as const },
      expected: {
        apply: { operationId: 'op.apply', mitigationIds: ['EM1'] },
        remove: { operationId: 'op.remove', mitigationIds: ['EM3'] },
      },
    },
    {
      name: 'nothing to change: nothing asked',
      plan: { apply: [], remove: [], onDegraded: 'rollback' as const },
      expected: {},
    },
  ])('$name', ({ plan, expected }) => {
    expect(agentRequests(plan, 'op')).toEqual(expected);
  });
});

describe('agentSaid', () => {
  it.each([
    {
      name: 'the first reply that tells',
      reply: { build: '15.2.1544.4', agentVersion: '1.2.0' },
      before: undefined,
      expected: { build: '15.2.1544.4', agentVersion: '1.2.0' },
    },
    { name: 'an old agent tells nothing', reply: {}, before: undefined, expected: undefined },
    {
      name: 'a later reply without facts keeps what the first told',
      reply: {},
      before: { build: '15.2.1544.4' },
      expected: { build: '15.2.1544.4' },
    },
    {
      name: 'the later reply wins',
      reply: { build: '15.2.1748.10' },
      before: { build: '15.2.1544.4' },
      expected: { build: '15.2.1748.10', agentVersion: undefined },
    },
  ])('$name', ({ reply, before, expected }) => {
    expect(agentSaid(reply, before)).toEqual(expected);
  });
});

describe('withFailures', () => {
  it.each([
    {
      name: 'nothing answered: everything Failed with the detail',
      outcomes: {},
      expected: { EM1: { outcome: 'Failed', detail: 'boom' }, EM3: { outcome: 'Failed', detail: 'boom' } },
    },
    {
      name: 'the apply answered, the removal failed: the apply outcome stays',
      outcomes: { EM1: { outcome: 'Applied' as const, detail: '' } },
      expected: { EM1: { outcome: 'Applied', detail: '' }, EM3: { outcome: 'Failed', detail: 'boom' } },
    },
  ])('$name', ({ outcomes, expected }) => {
    expect(withFailures({ apply: ['EM1'], remove: ['EM3'] }, outcomes, 'boom')).toEqual(expected);
  });
});
