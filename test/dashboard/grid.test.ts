import { describe, expect, it } from 'vitest';
import { decisionCell, serverCells, type GridColumn } from '../../lib/dashboard/grid.js';
import type { ResultRow } from '../../lib/fleet/schemas.js';
import type { Mitigation } from '../../lib/package/model.js';
import type { PolicyDecision, PolicyReason } from '../../lib/policy/decide.js';
import { renderReason } from '../../lib/model/reasons.js';

const at = (second: number): Date => new Date(Date.UTC(2026, 10, 1, 12, 0, second));

describe('grid cells', () => {
  const mitigation = (id: string): Mitigation => ({
    id,
    description: id,
    applicability: [],
    actions: [{ kind: 'DoNothing', scope: 'Server', description: '', value: 'DoNothing' }],
  });
  const columns: GridColumn[] = [
    { id: 'EM1', mitigation: mitigation('EM1') },
    { id: 'EM2', mitigation: mitigation('EM2') },
    { id: 'EM3', mitigation: undefined },
  ];
  const result = (changes: Partial<ResultRow>): ResultRow => ({
    partitionKey: 'ex01.contoso.com',
    rowKey: 'op',
    rolloutId: 'r1',
    operation: 'apply',
    status: 'Completed',
    outcomes: {},
    at: at(0),
    ...changes,
  });
  const apply: PolicyDecision = {
    decision: 'Apply',
    reasonCode: 'Applicable',
    reasonDetail: 'applies to build 15.2.1118.7',
  };

  it('takes the latest completed result per mitigation, whatever order the rows come in', () => {
    const cells = serverCells(
      columns,
      [
        result({ rowKey: 'b', at: at(2), outcomes: { EM1: { outcome: 'Removed', detail: 'withdrawn' } } }),
        result({
          rowKey: 'a',
          at: at(1),
          outcomes: { EM1: { outcome: 'Applied', detail: '' }, EM2: { outcome: 'Failed', detail: 'boom' } },
        }),
        result({
          rowKey: 'c',
          at: at(3),
          status: 'InProgress',
          outcomes: { EM2: { outcome: 'Applied', detail: '' } },
        }),
      ],
      () => apply,
    );
    expect(cells).toEqual({
      EM1: {
        outcome: 'Removed',
        reasonCode: null,
        reasonDetail: 'withdrawn',
        source: 'result',
        at: at(2).toISOString(),
        rolloutId: 'r1',
      },
      EM2: {
        outcome: 'Failed',
        reasonCode: null,
        reasonDetail: 'boom',
        source: 'result',
        at: at(1).toISOString(),
        rolloutId: 'r1',
      },
      EM3: expect.objectContaining({ outcome: 'Unknown', reasonCode: 'Undecided', source: 'policy' }),
    });
  });

  it('asks policy only for mitigations without a result', () => {
    const asked: string[] = [];
    serverCells(
      columns,
      [result({ outcomes: { EM1: { outcome: 'Applied', detail: '' } } })],
      (model) => (asked.push(model.id), apply),
    );
    expect(asked).toEqual(['EM2']);
  });

  const skip = (reasonCode: PolicyReason, reasonDetail = 'x'): PolicyDecision => ({
    decision: 'Skip',
    reasonCode,
    reasonDetail,
  });

  it.each<{ decision: PolicyDecision; outcome: string; text: string }>([
    { decision: apply, outcome: 'Pending', text: 'Applicable: applies to build 15.2.1118.7' },
    {
      decision: {
        decision: 'Remove',
        reasonCode: 'BlockedByOrg',
        reasonDetail: 'EM1 is blocked; it is applied, so it is removed',
      },
      outcome: 'Pending',
      text: 'Blocked (org): EM1 is blocked; it is applied, so it is removed',
    },
    {
      decision: skip('DisabledByOrg', 'disabled (bicep)'),
      outcome: 'Disabled',
      text: 'Disabled (org): disabled (bicep)',
    },
    { decision: skip('DisabledByServer'), outcome: 'Disabled', text: 'Disabled (server): x' },
    { decision: skip('BlockedByServer'), outcome: 'Blocked', text: 'Blocked (server): x' },
    { decision: skip('NotApplicable'), outcome: 'NotApplicable', text: 'NotApplicable: x' },
    { decision: skip('NotApplicableFixed'), outcome: 'NotApplicable', text: 'NotApplicable (fixed): x' },
    { decision: skip('PolicyError'), outcome: 'PolicyError', text: 'PolicyError: x' },
    { decision: skip('Unsupported'), outcome: 'Unsupported', text: 'Unsupported: x' },
  ])(
    'a $decision.decision decision ($decision.reasonCode) is $outcome, read as "$text"',
    ({ decision, outcome, text }) => {
      const cell = decisionCell(decision);
      expect(cell).toEqual({
        outcome,
        reasonCode: decision.reasonCode,
        reasonDetail: decision.reasonDetail,
        source: 'policy',
        at: null,
        rolloutId: null,
      });
      expect(renderReason({ reasonCode: cell.reasonCode!, reasonDetail: cell.reasonDetail })).toBe(text);
    },
  );

  it('work a halted or aborted rollout never reached is Not started, naming the rollout; a skip stays a skip', () => {
    const stopped = { id: 'microsoft-000001-apply', state: 'Halted' };
    expect(decisionCell(apply, stopped)).toEqual({
      outcome: 'NotStarted',
      reasonCode: 'Applicable',
      reasonDetail: 'Not started (rollout microsoft-000001-apply halted); applies to build 15.2.1118.7',
      source: 'policy',
      at: null,
      rolloutId: 'microsoft-000001-apply',
    });
    expect(
      decisionCell(
        { decision: 'Remove', reasonCode: 'BlockedByOrg', reasonDetail: 'x' },
        { id: 'r2', state: 'Aborted' },
      ).reasonDetail,
    ).toBe('Not started (rollout r2 aborted); x');
    expect(decisionCell(skip('NotApplicable'), stopped).outcome).toBe('NotApplicable');
  });

  it('a column of a halted feed makes its unreached cells Not started; cells with results keep them', () => {
    const stopped = { id: 'microsoft-000001-apply', state: 'Halted' };
    const cells = serverCells(
      [
        { id: 'EM1', mitigation: mitigation('EM1'), stopped },
        { id: 'EM2', mitigation: mitigation('EM2'), stopped },
      ],
      [result({ outcomes: { EM1: { outcome: 'Failed', detail: 'boom' } } })],
      () => apply,
    );
    expect(cells['EM1']!.outcome).toBe('Failed');
    expect(cells['EM2']!.outcome).toBe('NotStarted');
  });
});
