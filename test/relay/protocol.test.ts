import { describe, expect, it } from 'vitest';
import { applyRequest, mitigationOutcome, operationReply } from '../../lib/relay/protocol.js';

const valid = {
  operationId: 'r1.w0.ex01.contoso.com.apply',
  packageBase64: 'PEVPQ1MvPg==',
  mitigationIds: ['EM2'],
};

describe('applyRequest.onDegraded', () => {
  it('is optional: absent means the agent rolls back (agents that predate it accept the request)', () => {
    expect(applyRequest.parse(valid)).toEqual(valid);
  });

  it.each(['rollback', 'keep'])('accepts %s', (onDegraded) => {
    expect(applyRequest.parse({ ...valid, onDegraded })).toEqual({ ...valid, onDegraded });
  });

  it.each(['Rollback', 'ignore', '', 1, null])('refuses %j, naming the field', (onDegraded) => {
    const parsed = applyRequest.safeParse({ ...valid, onDegraded });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['onDegraded']);
  });
});

describe('mitigationOutcome.endpoints', () => {
  it('carries the endpoints a Degraded or RolledBack change took down, and is absent otherwise', () => {
    const rolledBack = {
      outcome: 'RolledBack',
      detail: 'ecp: 503 after apply (was 200)',
      endpoints: ['/ecp/healthcheck.htm'],
    };
    expect(mitigationOutcome.parse(rolledBack)).toEqual(rolledBack);
    expect(mitigationOutcome.parse({ outcome: 'Applied', detail: 'x' })).toEqual({
      outcome: 'Applied',
      detail: 'x',
    });
    expect(
      operationReply.parse({ operationId: 'op', status: 'Completed', outcomes: { EM2: rolledBack } }).outcomes
        .EM2,
    ).toEqual(rolledBack);
  });

  it('refuses an endpoint list that is not strings or too long', () => {
    expect(mitigationOutcome.safeParse({ outcome: 'Degraded', endpoints: [1] }).success).toBe(false);
    expect(
      mitigationOutcome.safeParse({
        outcome: 'Degraded',
        endpoints: Array.from({ length: 51 }, () => '/owa/healthcheck.htm'),
      }).success,
    ).toBe(false);
  });
});
