import { describe, expect, it } from 'vitest';
import type { RolloutStateRow, WaveRow } from '../../lib/fleet/schemas.js';
import { ProgressDisplay, rolloutLines, waveBar } from '../../lib/local/progress.js';
import { stateRowOf, waveRowOf } from '../helpers/rollout-rows.js';

const now = new Date('2026-11-23T10:00:00Z');

function wave(name: string, counts: Partial<WaveRow> = {}): WaveRow {
  return waveRowOf({ partitionKey: 'r1', name, servers: 10, maxConcurrency: 5, ...counts });
}

function state(overrides: Partial<RolloutStateRow> = {}): RolloutStateRow {
  return stateRowOf('Running', { waveCount: 2, createdAt: now, updatedAt: now, ...overrides });
}

describe('waveBar', () => {
  it.each([
    { name: 'nothing done', counts: { servers: 10 }, bar: '[░░░░░░░░░░]' },
    { name: 'half succeeded', counts: { servers: 10, succeeded: 5 }, bar: '[█████░░░░░]' },
    {
      name: 'failures and skips after successes',
      counts: { servers: 10, succeeded: 6, failed: 2, skipped: 1 },
      bar: '[██████✗✗✗░]',
    },
    { name: 'all done', counts: { servers: 3, succeeded: 2, failed: 1 }, bar: '[███████✗✗✗]' },
    { name: 'an empty wave', counts: { servers: 0 }, bar: '[          ]' },
    {
      name: 'counts beyond the size never overflow the bar',
      counts: { servers: 2, succeeded: 5, failed: 5 },
      bar: '[██████████]',
    },
  ])('$name', ({ counts, bar }) => {
    expect(waveBar({ succeeded: 0, failed: 0, skipped: 0, ...counts }, 10)).toBe(bar);
  });
});

describe('rolloutLines', () => {
  it('gives plain lines with counts in words, and the halt reason', () => {
    const lines = rolloutLines(
      {
        state: state({
          state: 'Halted',
          reasonCode: 'WaveHalted',
          reasonDetail: 'canary: 1 failed of 2 allowed 0 (ex001)',
        }),
        waves: [wave('canary', { succeeded: 1, failed: 1, servers: 2 }), wave('broad')],
      },
      { terminal: false, now },
    );
    expect(lines).toEqual([
      {
        key: 'microsoft-000001-apply',
        text: 'rollout microsoft-000001-apply (apply): Halted — WaveHalted: canary: 1 failed of 2 allowed 0 (ex001)',
      },
      { key: 'microsoft-000001-apply#0', text: '  wave 1 canary: 2/2 done, 1 ok, 1 failed' },
      { key: 'microsoft-000001-apply#1', text: '  wave 2 broad: 0/10 done, 0 ok, 0 failed' },
    ]);
  });

  it('gives bars on a terminal, wave names aligned, and the bake countdown while baking', () => {
    const baking = state({ state: 'Baking', updatedAt: new Date(now.getTime() - 4_000) });
    const lines = rolloutLines(
      { state: baking, waves: [wave('canary', { succeeded: 10, bakeInMs: 10_000 }), wave('broad')] },
      { terminal: true, now },
    );
    expect(
      rolloutLines(
        { state: baking, waves: [wave('canary', { bakeInMs: 10_000 })] },
        { terminal: false, now },
      )[0]!.text,
    ).toBe('rollout microsoft-000001-apply (apply): Baking, next gate at 10:00:06 UTC');
    expect(lines.map((line) => line.text)).toEqual([
      'rollout microsoft-000001-apply (apply): Baking, next gate in 6s',
      `  wave 1 canary [${'█'.repeat(24)}] 10/10 done, 10 ok, 0 failed`,
      `  wave 2 broad  [${'░'.repeat(24)}] 0/10 done, 0 ok, 0 failed`,
    ]);
  });
});

describe('ProgressDisplay', () => {
  it('prints each changed line once when output is not a terminal', () => {
    const printed: string[] = [];
    const display = new ProgressDisplay({ line: (text) => printed.push(text) });
    display.show([
      { key: 'a', text: 'a 0' },
      { key: 'b', text: 'b 0' },
    ]);
    display.show([
      { key: 'a', text: 'a 0' },
      { key: 'b', text: 'b 1' },
    ]);
    display.show([
      { key: 'a', text: 'a 0' },
      { key: 'b', text: 'b 1' },
    ]);
    expect(printed).toEqual(['a 0', 'b 0', 'b 1']);
    expect(display.terminal).toBe(false);
  });

  it('redraws the whole block in place on a terminal', () => {
    const written: string[] = [];
    const display = new ProgressDisplay({
      line: () => expect.unreachable('no plain lines on a terminal'),
      terminal: (text) => written.push(text),
    });
    display.show([{ key: 'a', text: 'a 0' }]);
    display.show([
      { key: 'a', text: 'a 1' },
      { key: 'b', text: 'b 0' },
    ]);
    display.show([
      { key: 'a', text: 'a 2' },
      { key: 'b', text: 'b 1' },
    ]);
    expect(written).toEqual([
      '\x1b[2Ka 0\n',
      '\x1b[1A\x1b[2Ka 1\n\x1b[2Kb 0\n',
      '\x1b[2A\x1b[2Ka 2\n\x1b[2Kb 1\n',
    ]);
  });
});
