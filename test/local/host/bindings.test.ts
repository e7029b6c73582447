import { input, output } from '@azure/functions';
import { describe, expect, it } from 'vitest';
import type { FunctionDefinition } from '../../../lib/functions.js';
import { refuseUnboundOptions, resolveSettingReferences } from '../../../lib/local/host/bindings.js';

const timer = (options: Record<string, unknown> = {}): FunctionDefinition => ({
  kind: 'timer',
  name: 'reconcile',
  options: { schedule: '0 0 * * * *', handler: () => undefined, ...options },
});

describe('resolveSettingReferences', () => {
  const settings = { POLL: '0 5 * * * *', QUEUE: 'waves', EMPTY: '' };

  it.each([
    { name: 'no reference', text: '0 0 * * * *', resolved: '0 0 * * * *' },
    { name: 'the whole text', text: '%POLL%', resolved: '0 5 * * * *' },
    { name: 'inside the text', text: 'emfleet-%QUEUE%-poison', resolved: 'emfleet-waves-poison' },
    { name: 'two references', text: '%QUEUE%%QUEUE%', resolved: 'waveswaves' },
    { name: 'an empty setting', text: 'x%EMPTY%y', resolved: 'xy' },
    { name: 'a lone percent sign', text: '50%', resolved: '50%' },
  ])('$name: $text', ({ text, resolved }) => {
    expect(resolveSettingReferences(timer(), 'schedule', text, settings)).toBe(resolved);
  });

  it('names the function, the text and the setting that is not set', () => {
    expect(() => resolveSettingReferences(timer(), 'schedule', '%MISSING%', settings)).toThrow(
      'function reconcile: schedule "%MISSING%" names app setting MISSING, which is not set',
    );
  });
});

describe('refuseUnboundOptions', () => {
  it.each([
    { name: 'a plain trigger', options: {}, refused: undefined },
    { name: 'empty extra lists', options: { extraInputs: [], extraOutputs: [] }, refused: undefined },
    {
      name: 'a declared trigger',
      options: { trigger: { type: 'timerTrigger', name: 't', schedule: '* * * * * *' } },
      refused: 'trigger',
    },
    {
      name: 'a return binding',
      options: { return: output.storageQueue({ queueName: 'x', connection: 'AzureWebJobsStorage' }) },
      refused: 'return',
    },
    {
      name: 'an extra input',
      options: { extraInputs: [input.storageBlob({ path: 'c/b', connection: 'AzureWebJobsStorage' })] },
      refused: 'extraInputs',
    },
    {
      name: 'a retry policy and an extra output',
      options: {
        extraOutputs: [output.storageQueue({ queueName: 'x', connection: 'AzureWebJobsStorage' })],
        retry: { strategy: 'fixedDelay', maxRetryCount: 2, delayInterval: 1000 },
      },
      refused: 'extraOutputs, retry',
    },
  ])('$name', ({ options, refused }) => {
    const check = (): void => refuseUnboundOptions(timer(options));
    if (refused === undefined) expect(check).not.toThrow();
    else expect(check).toThrow(`function reconcile: the local host does not support ${refused};`);
  });

  it("takes an HTTP function's http return binding, which app.http adds itself", () => {
    const definition: FunctionDefinition = {
      kind: 'http',
      name: 'status',
      options: { return: output.http({}), handler: () => ({}) },
    };
    expect(() => refuseUnboundOptions(definition)).not.toThrow();
  });
});
