import { beforeAll, describe, expect, it } from 'vitest';
import { readPolicy } from '../../lib/fleet/policy.js';
import { StorageQueueSender } from '../../lib/fleet/queues.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { parseDeclaredPolicy } from '../../lib/policy/declared.js';
import { runPollCycle, type PollCycleDeps } from '../../lib/rollout/poll-cycle.js';
import type { WaveProfile } from '../../lib/model/waves.js';
import { azuriteConnectionString, freshTables } from '../helpers/fleet.js';
import { recordingLogger } from '../helpers/logs.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';

const waves: WaveProfile = [
  { name: 'all', select: { percent: 100 }, maxConcurrency: 4, maxErrors: 0, bake: 'PT0S' },
];
let pki: TestPki;

beforeAll(async () => {
  pki = await createTestPki('emfleet Poll Cycle');
});

function deps(declaredPolicy: PollCycleDeps['declaredPolicy']) {
  const fresh = freshTables();
  const logger = recordingLogger();
  const signed = Buffer.from(pki.sign(catalogueXml));
  return {
    logger,
    tables: fresh.tables,
    deps: {
      tables: fresh.tables,
      queues: new StorageQueueSender(
        { kind: 'connectionString', connectionString: azuriteConnectionString() },
        { prefix: fresh.prefix },
      ),
      org: 'contoso',
      waves,
      logger,
      fetch: async () => ({ kind: 'fetched' as const, bytes: signed }),
      declaredPolicy,
    } satisfies PollCycleDeps,
  };
}

describe('runPollCycle', () => {
  it('syncs the declared policy, polls each feed, and reports a misconfigured feed without polling it', async () => {
    const declared = parseDeclaredPolicy(
      JSON.stringify({ org: { blockedMitigations: ['EM3'] } }),
      'EMFLEET_POLICY',
    );
    const { deps: cycleDeps, tables, logger } = deps(declared);
    const outcomes = await runPollCycle(cycleDeps, {
      feeds: [{ name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust }],
      problems: [{ feed: 'contoso', error: 'EMFLEET_FEEDS contoso: no PEM' }],
    });
    expect(outcomes).toMatchObject({
      microsoft: { kind: 'accepted', sequence: 1 },
      contoso: { kind: 'misconfigured', error: 'EMFLEET_FEEDS contoso: no PEM' },
    });
    expect(logger.named('FeedMisconfigured').map((entry) => entry.fields)).toEqual([
      { feed: 'contoso', error: 'EMFLEET_FEEDS contoso: no PEM' },
    ]);
    const policy = await readPolicy(tables, 'contoso');
    expect(policy.org).toMatchObject({ bicep: { blockedMitigations: ['EM3'] } });
  });

  it('a declaration that does not parse is logged with its error, and the feeds are still polled', async () => {
    const declared = parseDeclaredPolicy('{"org": 1}', 'EMFLEET_POLICY');
    const { deps: cycleDeps, tables, logger } = deps(declared);
    const outcomes = await runPollCycle(cycleDeps, {
      feeds: [{ name: 'microsoft', url: 'http://feed.invalid/', trust: pki.trust }],
      problems: [],
    });
    expect(outcomes['microsoft']).toMatchObject({ kind: 'accepted' });
    expect(logger.named('DeclaredPolicyInvalid')).toEqual([
      expect.objectContaining({
        level: 'error',
        fields: { error: expect.stringMatching(/^EMFLEET_POLICY at org: /) },
      }),
    ]);
    expect((await readPolicy(tables, 'contoso')).org.bicep).toBeUndefined();
  });

  it('without a declaration, touches no Policy row', async () => {
    const { deps: cycleDeps, tables, logger } = deps(undefined);
    await runPollCycle(cycleDeps, { feeds: [], problems: [] });
    expect(logger.events).toEqual([]);
    expect((await readPolicy(tables, 'contoso')).org.bicep).toBeUndefined();
  });
});
