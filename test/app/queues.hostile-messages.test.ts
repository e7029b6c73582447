import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyToServer } from '../../functions/applyToServer.js';
import { gateWave } from '../../functions/gateWave.js';
import { startWave } from '../../functions/startWave.js';
import { allEntities, azuriteConnectionString, rawTable } from '../helpers/fleet.js';

/** The queue functions as the host calls them: a message that fails its schema is recorded and not retried. */
const saved = { ...process.env };
let prefix: string;

beforeAll(() => {
  prefix = `m${randomBytes(5).toString('hex')}`;
  Object.assign(process.env, {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: prefix,
    EMFLEET_RELAY_ENDPOINT: 'http://127.0.0.1:9',
    EMFLEET_RELAY_SEND_KEY: 'unused',
  });
});

afterAll(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

describe('queue functions and hostile messages', () => {
  it.each([
    { name: 'not an object', fn: startWave, message: 'hello' },
    { name: 'a path in the rollout id', fn: startWave, message: { rolloutId: '../../etc', wave: 0 } },
    {
      name: 'an extra key',
      fn: applyToServer,
      message: { rolloutId: 'r1', wave: 0, index: 0, mitigationIds: ['EM1'] },
    },
    { name: 'a negative index', fn: applyToServer, message: { rolloutId: 'r1', wave: 0, index: -1 } },
    { name: 'a wave beyond the limit', fn: gateWave, message: { rolloutId: 'r1', wave: 1000 } },
  ])('$name: recorded with its message id, not retried', async ({ fn, message }) => {
    const id = `msg-${randomBytes(4).toString('hex')}`;
    const context = new InvocationContext({
      functionName: fn.name,
      logHandler: () => undefined,
      triggerMetadata: { id, dequeueCount: 1 },
    });
    await expect(fn.options.handler(message, context)).resolves.toBeUndefined();
    const audit = await allEntities(rawTable(prefix, 'Audit'));
    const entry = audit.find((row) => String(row['after']).includes(id));
    expect(entry).toMatchObject({ action: 'message.invalid' });
  });

  it('a valid message for a rollout that does not exist changes nothing and is not retried', async () => {
    const context = new InvocationContext({
      functionName: 'startWave',
      logHandler: () => undefined,
      triggerMetadata: { id: 'm-ok', dequeueCount: 1 },
    });
    await expect(
      startWave.options.handler({ rolloutId: 'no-such-rollout', wave: 0 }, context),
    ).resolves.toBeUndefined();
  });
});
