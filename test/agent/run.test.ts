import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AgentConfig } from '../../lib/agent/config.js';
import { startAgent, type RunningAgent } from '../../lib/agent/run.js';
import { SimulatedApplier, type SimulatedServer } from '../../lib/agent/appliers/simulated.js';
import { RelayUnreachableError } from '../../lib/relay/sender.js';
import { relayWithClient, runAgent, writeAgentConfig } from '../helpers/agents.js';
import { recordingLogger } from '../helpers/logs.js';
import { catalogueXml, createTestPki, type TestPki } from '../helpers/packages.js';

/** The real agent (startAgent: journal, simulated applier, hyco-https listener) behind the relay emulator. */
let pki: TestPki;
let fixture: Awaited<ReturnType<typeof relayWithClient>>;
let agent: RunningAgent;
let directory: string;
let signed: string;

beforeAll(async () => {
  pki = await createTestPki();
  signed = pki.sign(catalogueXml);
  fixture = await relayWithClient();
  const written = await writeAgentConfig(fixture.relay, pki);
  directory = written.directory;
  agent = await runAgent(written.config);
});

afterAll(async () => {
  await agent?.close();
  await fixture?.stop();
});

async function simulatedState(): Promise<SimulatedServer> {
  return new SimulatedApplier(join(directory, 'state', 'simulated-server.json')).read();
}

describe('the agent over the relay', () => {
  it('answers ping with its identity', async () => {
    const reply = await fixture.client.ping('ex01', { nonce: 'n-1' });
    expect(reply).toMatchObject({ server: 'ex01.contoso.com', build: '15.2.1118.7', nonce: 'n-1' });
  });

  it('applies a verified package, reports it in status, and removes it back to the prior state', async () => {
    const before = await simulatedState();
    const applied = await fixture.client.apply('ex01', {
      operationId: 'r1:ex01:apply',
      packageBase64: Buffer.from(signed).toString('base64'),
      mitigationIds: ['EM1', 'EM2', 'EM3'],
    });
    expect(applied.status).toBe('Completed');
    expect(
      Object.fromEntries(Object.entries(applied.outcomes).map(([id, result]) => [id, result.outcome])),
    ).toEqual({ EM1: 'Applied', EM2: 'Applied', EM3: 'Applied' });
    const during = await simulatedState();
    expect(during.appPools['MSExchangeOWAAppPool']).toEqual({ state: 'Stopped', autoStart: false });
    expect(during.services['MSExchangeUM']).toEqual({ status: 'Stopped', startType: 'Disabled' });
    expect((await fixture.client.status('ex01')).applied).toEqual(['EM1', 'EM2', 'EM3']);

    const removed = await fixture.client.remove('ex01', {
      operationId: 'r2:ex01:remove',
      mitigationIds: ['EM1', 'EM2', 'EM3'],
    });
    expect(Object.values(removed.outcomes).map((result) => result.outcome)).toEqual([
      'Removed',
      'Removed',
      'Removed',
    ]);
    expect(await simulatedState()).toEqual(before);
    expect((await fixture.client.status('ex01')).applied).toEqual([]);
  });

  it('carries a package over 64 KiB (rendezvous) and still verifies it', async () => {
    const padded = pki.sign(catalogueXml.replace('desc="Ping"', `desc="${'p'.repeat(80 * 1024)}"`));
    const reply = await fixture.client.apply('ex01', {
      operationId: 'r3:ex01:apply',
      packageBase64: Buffer.from(padded).toString('base64'),
      mitigationIds: ['PING1'],
    });
    expect(reply.outcomes['PING1']?.outcome).toBe('Applied');
  });

  it('refuses a tampered package and changes nothing', async () => {
    const before = await simulatedState();
    const tampered = signed.replace('MSExchangeUM', 'MSExchangeIS');
    const reply = await fixture.client.apply('ex01', {
      operationId: 'r4:ex01:apply',
      packageBase64: Buffer.from(tampered).toString('base64'),
      mitigationIds: ['EM3'],
    });
    expect(reply.outcomes['EM3']).toMatchObject({
      outcome: 'Failed',
      detail: expect.stringMatching(/package rejected by the agent: BadSignature/),
    });
    expect(await simulatedState()).toEqual(before);
  });

  it('a server without a listening agent is Unreachable', async () => {
    await expect(fixture.client.ping('ex99')).rejects.toBeInstanceOf(RelayUnreachableError);
  });
});

describe('startAgent and its journal', () => {
  /** A journal with an unfinished removal that puts back a pool this server does not have (yet). */
  async function agentWithStuckRemoval(): Promise<{ config: AgentConfig; stateFile: string }> {
    const written = await writeAgentConfig(fixture.relay, pki, { server: 'ex31.contoso.com' });
    const state = join(written.directory, 'state');
    await mkdir(state, { recursive: true, mode: 0o700 });
    const action = {
      kind: 'DisableAppPool',
      scope: 'Server',
      description: 'Stop the legacy pool',
      appPool: 'MSExchangeLegacyAppPool',
    };
    const prior = {
      kind: 'DisableAppPool',
      appPool: 'MSExchangeLegacyAppPool',
      state: 'Started',
      autoStart: true,
    };
    const entry = {
      mitigationId: 'EM9',
      operationId: 'op-old',
      state: 'removing',
      actions: [action],
      priors: [prior],
      at: new Date().toISOString(),
    };
    await writeFile(join(state, 'journal.json'), JSON.stringify({ version: 1, entries: { EM9: entry } }), {
      mode: 0o600,
    });
    return {
      config: { ...written.config, retryRestoresEveryInMs: 1000 },
      stateFile: join(state, 'simulated-server.json'),
    };
  }

  it('a restore that fails at start is logged and retried on a schedule; the agent serves meanwhile', async () => {
    const { config, stateFile } = await agentWithStuckRemoval();
    const logger = recordingLogger();
    // Before: the failed repair threw out of startAgent, and the agent never listened.
    const stuck = await runAgent(config, logger);
    try {
      expect(logger.events.find((line) => line.event === 'AgentRepairPending')).toMatchObject({
        level: 'error',
        fields: { when: 'start', mitigationIds: ['EM9'] },
      });
      expect((await fixture.client.ping('ex31')).server).toBe('ex31.contoso.com');
      expect((await fixture.client.status('ex31')).journal).toEqual({ entries: 1, pending: 1 });

      // The pool appears (IIS repaired): the next scheduled try restores it.
      const server = await new SimulatedApplier(stateFile).read();
      server.appPools['MSExchangeLegacyAppPool'] = { state: 'Stopped', autoStart: false };
      await writeFile(stateFile, JSON.stringify(server));
      await vi.waitFor(
        async () => expect((await fixture.client.status('ex31')).journal).toEqual({ entries: 0, pending: 0 }),
        { timeout: 15_000, interval: 200 },
      );
      expect((await new SimulatedApplier(stateFile).read()).appPools['MSExchangeLegacyAppPool']).toEqual({
        state: 'Started',
        autoStart: true,
      });
      expect(logger.events.find((line) => line.event === 'AgentRepairedJournal')).toMatchObject({
        fields: { when: 'schedule', mitigationIds: ['EM9'] },
      });
    } finally {
      await stuck.close();
    }
  });

  it('refuses to start on a journal others can write', async () => {
    const { config } = await agentWithStuckRemoval();
    await chmod(join(config.stateDirectory, 'journal.json'), 0o666);
    await expect(startAgent(config, { logger: recordingLogger() })).rejects.toMatchObject({
      code: 'StateDirectoryUnsafe',
    });
  });
});
