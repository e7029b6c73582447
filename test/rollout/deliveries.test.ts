import { describe, expect, it } from 'vitest';
import {
  attemptOf,
  decideApply,
  decideStartWave,
  isSuperseded,
  resultSource,
} from '../../lib/rollout/deliveries.js';
import { stateRowOf } from '../helpers/rollout-rows.js';

const rolloutId = 'microsoft-000001-apply';

describe('decideStartWave', () => {
  it.each([
    {
      name: 'the running wave starts',
      state: stateRowOf('Running'),
      wave: 0,
      expected: { kind: 'start', attempt: 0 },
    },
    {
      name: 'a retried wave starts on its attempt',
      state: stateRowOf('Running', { attempt: 2 }),
      wave: 0,
      expected: { kind: 'start', attempt: 2 },
    },
    { name: 'no such rollout', state: undefined, wave: 0, expected: { kind: 'ignored' } },
    {
      name: 'a late message for a wave already done',
      state: stateRowOf('Running', { currentWave: 1 }),
      wave: 0,
      expected: { kind: 'ignored' },
    },
    {
      name: 'a stray message for a later wave',
      state: stateRowOf('Running'),
      wave: 1,
      expected: { kind: 'ignored' },
    },
    { name: 'paused', state: stateRowOf('Paused'), wave: 0, expected: { kind: 'ignored' } },
    { name: 'halted', state: stateRowOf('Halted'), wave: 0, expected: { kind: 'ignored' } },
    {
      name: 'a duplicate after the wave finished (baking)',
      state: stateRowOf('Baking'),
      wave: 0,
      expected: { kind: 'ignored' },
    },
  ])('$name', ({ state, wave, expected }) => {
    expect(decideStartWave(state, { rolloutId, wave })).toEqual(expected);
  });
});

describe('decideApply', () => {
  it.each([
    {
      name: 'no such rollout',
      state: undefined,
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: {
        kind: 'ignored',
        reason: { reasonCode: 'RolloutNotFound', reasonDetail: `no rollout "${rolloutId}"` },
      },
    },
    {
      name: 'no such plan row',
      state: stateRowOf('Running'),
      plan: false,
      message: { rolloutId, wave: 0, index: 7 },
      first: true,
      expected: {
        kind: 'ignored',
        reason: { reasonCode: 'NotPlanned', reasonDetail: 'wave 1 has no server at plan index 7' },
      },
    },
    {
      name: 'a first-pass message after the wave was retried',
      state: stateRowOf('Running', { attempt: 1 }),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: {
        kind: 'superseded',
        reason: { reasonCode: 'Superseded', reasonDetail: 'wave 1 is on retry 1' },
      },
    },
    {
      name: 'a message of a retry newer than the state row read (superseded the other way)',
      state: stateRowOf('Running'),
      plan: true,
      message: { rolloutId, wave: 0, index: 0, attempt: 1 },
      first: true,
      expected: {
        kind: 'superseded',
        reason: { reasonCode: 'Superseded', reasonDetail: 'wave 1 is on retry 0' },
      },
    },
    {
      name: 'paused: held',
      state: stateRowOf('Paused', { resumeTo: 'Running' }),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: { kind: 'held' },
    },
    {
      name: 'a first delivery of a running wave asks the agent without reading a result',
      state: stateRowOf('Running'),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: { kind: 'proceed', running: true, readStored: false },
    },
    {
      name: 'a redelivery (retried message) reads the stored result first',
      state: stateRowOf('Running'),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: false,
      expected: { kind: 'proceed', running: true, readStored: true },
    },
    {
      name: 'aborted: not running, a stored result is kept',
      state: stateRowOf('Aborted'),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: { kind: 'proceed', running: false, readStored: true },
    },
    {
      name: 'a message of an earlier wave while a later one runs',
      state: stateRowOf('Running', { currentWave: 1, attempt: 1 }),
      plan: true,
      message: { rolloutId, wave: 0, index: 0 },
      first: true,
      expected: { kind: 'proceed', running: false, readStored: true },
    },
    {
      name: 'a retry message of the retried wave runs',
      state: stateRowOf('Running', { attempt: 2 }),
      plan: true,
      message: { rolloutId, wave: 0, index: 3, attempt: 2 },
      first: true,
      expected: { kind: 'proceed', running: true, readStored: false },
    },
  ])('$name', ({ state, plan, message, first, expected }) => {
    expect(decideApply(state, plan, message, first)).toEqual(expected);
  });
});

describe('resultSource, attemptOf, isSuperseded', () => {
  it.each([
    { name: 'a stored result is used, running or not', stored: true, running: true, expected: 'stored' },
    {
      name: 'a stored result of a stopped rollout is used',
      stored: true,
      running: false,
      expected: 'stored',
    },
    { name: 'running without a result: ask the agent', stored: false, running: true, expected: 'agent' },
    { name: 'stopped without a result: skipped', stored: false, running: false, expected: 'skip' },
  ])('$name', ({ stored, running, expected }) => {
    expect(resultSource(stored, running)).toBe(expected);
  });

  it.each([
    {
      name: 'a first-pass message carries no attempt',
      message: { rolloutId, wave: 0, index: 0 },
      expected: 0,
    },
    {
      name: 'a retry message carries its attempt',
      message: { rolloutId, wave: 0, index: 0, attempt: 3 },
      expected: 3,
    },
  ])('attemptOf: $name', ({ message, expected }) => {
    expect(attemptOf(message)).toBe(expected);
  });

  it.each([
    {
      name: 'same wave, same attempt',
      state: stateRowOf('Running'),
      message: { rolloutId, wave: 0, index: 0 },
      expected: false,
    },
    {
      name: 'same wave, older attempt',
      state: stateRowOf('Running', { attempt: 1 }),
      message: { rolloutId, wave: 0, index: 0 },
      expected: true,
    },
    {
      name: 'another wave is never superseded by this wave’s retry',
      state: stateRowOf('Running', { attempt: 1 }),
      message: { rolloutId, wave: 1, index: 0 },
      expected: false,
    },
  ])('isSuperseded: $name', ({ state, message, expected }) => {
    expect(isSuperseded(state, message)).toBe(expected);
  });
});
