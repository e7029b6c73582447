import { describe, expect, it } from 'vitest';
import { buildMismatch, factsUpdate, lastSeenResolutionInMs } from '../../lib/fleet/agent-facts.js';

const at = new Date('2026-12-07T12:00:00.000Z');
const recently = new Date(at.getTime() - lastSeenResolutionInMs + 1000);
const longAgo = new Date(at.getTime() - lastSeenResolutionInMs);
const row = { build: '15.2.1118.7', agentVersion: '0.1.0', lastSeen: recently };

describe('factsUpdate', () => {
  it.each([
    {
      name: 'nothing new, seen recently: no write',
      row,
      facts: { build: '15.2.1118.7', agentVersion: '0.1.0' },
      expected: undefined,
    },
    {
      name: 'nothing new, seen long ago: lastSeen only',
      row: { ...row, lastSeen: longAgo },
      facts: { build: '15.2.1118.7', agentVersion: '0.1.0' },
      expected: { fields: { lastSeen: at } },
    },
    {
      name: 'never seen: lastSeen',
      row: { build: '15.2.1118.7', agentVersion: '', lastSeen: undefined },
      facts: {},
      expected: { fields: { lastSeen: at } },
    },
    {
      name: 'a new build (a Cumulative Update): build and lastSeen, BuildChanged',
      row,
      facts: { build: '15.2.1118.20', agentVersion: '0.1.0' },
      expected: {
        fields: { build: '15.2.1118.20', lastSeen: at },
        buildChanged: { from: '15.2.1118.7', to: '15.2.1118.20' },
      },
    },
    {
      name: 'a new agent version',
      row,
      facts: { build: '15.2.1118.7', agentVersion: '0.2.0' },
      expected: { fields: { agentVersion: '0.2.0', lastSeen: at } },
    },
    {
      name: "an agent that could not detect its build ('') never blanks a known one",
      row,
      facts: { build: '', agentVersion: '0.1.0' },
      expected: undefined,
    },
    {
      name: 'an invalid reported build is ignored',
      row,
      facts: { build: 'fifteen', agentVersion: '0.1.0' },
      expected: undefined,
    },
    {
      name: 'an agent that predates the facts (operation reply without them)',
      row,
      facts: {},
      expected: undefined,
    },
  ])('$name', ({ row: current, facts, expected }) => {
    expect(factsUpdate(current, facts, at)).toEqual(expected);
  });
});

describe('buildMismatch', () => {
  it.each([
    {
      name: 'registered and reported agree',
      row: { build: '15.2.1544.4', registeredBuild: '15.2.1544.4', agentVersion: '0.1.0' },
      expected: undefined,
    },
    {
      name: 'the agent reports another build',
      row: { build: '15.2.1748.10', registeredBuild: '15.2.1544.4', agentVersion: '0.1.0' },
      expected: { registered: '15.2.1544.4', reported: '15.2.1748.10' },
    },
    {
      name: 'the agent never answered: nothing reported yet',
      row: { build: '15.2.1748.10', registeredBuild: '15.2.1544.4', agentVersion: '' },
      expected: undefined,
    },
    {
      name: 'a row older than registeredBuild',
      row: { build: '15.2.1748.10', registeredBuild: '', agentVersion: '0.1.0' },
      expected: undefined,
    },
  ])('$name', ({ row: current, expected }) => {
    expect(buildMismatch(current)).toEqual(expected);
  });
});
