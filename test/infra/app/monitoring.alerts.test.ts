import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { beforeAll, describe, expect, it } from 'vitest';
import { appContextFor, invocationLogger, invocationOf } from '../../../lib/app/context.js';
import { pollCycle, reconcileCycle } from '../../../lib/app/timers.js';
import { pollFeed } from '../../../lib/rollout/poll.js';
import { readRollout } from '../../../lib/fleet/rollouts.js';
import { declarations, literalValue, stringLiteral } from '../../../tools/infra-checks/bicep.js';
import { catalogueXml } from '../../../lib/local/catalogue.js';
import type { WaveProfile } from '../../../lib/model/waves.js';
import { azuriteConnectionString } from '../../helpers/fleet.js';
import { acceptPackage, runQueues, useFleets } from '../../helpers/rollouts.js';
import { repoDocument } from '../../tools/infra-checks/fixture.js';

/**
 * The alert rules count App Insights traces whose JSON message has one of their events (and
 * state). These tests make the app halt a rollout and fail a poll, with the logger the Functions
 * host sees, and apply each rule's filter to the lines written.
 */
interface Alert {
  readonly name: string;
  readonly events: readonly string[];
  readonly state: string;
}

let alerts: Alert[];
const env = useFleets();

beforeAll(async () => {
  const monitoring = declarations(await repoDocument('infra/app/monitoring.bicep'));
  alerts = literalValue(monitoring.get('alerts')?.value)?.value as Alert[];
  // The filter below is this query's: one JSON object per message, its event (and state) compared.
  expect(stringLiteral(monitoring.get('queryTemplate')?.value)).toMatch(
    /\| extend entry = parse_json\(message\)\n\| where tostring\(entry\.event\) in \(\{0\}\)\{1\}/,
  );
});

/** What Functions sends to App Insights as `traces.message`, one entry per log call. */
function capturingContext(functionName: string): { context: InvocationContext; messages: string[] } {
  const messages: string[] = [];
  const context = new InvocationContext({
    functionName,
    logHandler: (_level, ...args) => messages.push(args.map(String).join(' ')),
  });
  return { context, messages };
}

function firing(alert: Alert, messages: readonly string[]): Record<string, unknown>[] {
  return messages
    .filter((message) => message.includes('"event"'))
    .map((message) => JSON.parse(message) as Record<string, unknown>)
    .filter(
      (entry) =>
        alert.events.includes(String(entry['event'])) &&
        (alert.state === '' || entry['state'] === alert.state),
    );
}

function alert(name: string): Alert {
  const found = alerts.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`no alert ${name} in infra/app/monitoring.bicep`);
  return found;
}

describe('alert rules match what the app logs', () => {
  it('rollout-halted fires when a canary failure halts a rollout, and not for its other transitions', async () => {
    const waves: WaveProfile = [
      { name: 'canary', select: { ring: 'canary' }, maxConcurrency: 1, maxErrors: 0, bake: 'PT0S' },
      { name: 'broad', select: { percent: 100 }, maxConcurrency: 2, maxErrors: 1, bake: 'PT0S' },
    ];
    const f = await env.fleet([
      { name: 'ex01', ring: 'canary', failOn: ['MSExchangeOWAAppPool'] },
      { name: 'ex02', ring: 'broad' },
    ]);
    const { context, messages } = capturingContext('gateWave');
    f.deps = { ...f.deps, logger: invocationLogger(context) };
    const id = await acceptPackage(f, env.pki, env.pki.sign(catalogueXml), waves);
    await runQueues(f);
    expect((await readRollout(f.tables, id)).state.state).toBe('Halted');
    expect(firing(alert('rollout-halted'), messages)).toEqual([
      expect.objectContaining({ rolloutId: id, state: 'Halted' }),
    ]);
  });

  it('poll-failed fires for an unreachable feed and for a misconfigured one', async () => {
    const { context, messages } = capturingContext('pollOcs');
    const app = invocationOf(
      appContextFor({
        AzureWebJobsStorage: azuriteConnectionString(),
        EMFLEET_TABLE_PREFIX: `a${randomBytes(5).toString('hex')}`,
        EMFLEET_ORG: 'contoso',
        // Nothing listens on port 1: the fetch fails at once.
        EMFLEET_OCS_URL: 'http://127.0.0.1:1/getexchangemitigations',
        EMFLEET_TRUST_ANCHORS: env.pki.root.certificatePem,
        EMFLEET_FEEDS: JSON.stringify([
          {
            name: 'contoso',
            url: 'http://127.0.0.1:1/feed.xml',
            trustAnchors: 'no PEM here and no such file',
            signerSubject: 'Contoso',
            signerEku: '1.2.3',
          },
        ]),
      }),
      invocationLogger(context),
    );
    await pollCycle(app);
    expect(firing(alert('poll-failed'), messages).map((entry) => [entry['event'], entry['feed']])).toEqual([
      ['FeedMisconfigured', 'contoso'],
      ['PollFailed', 'microsoft'],
    ]);
    expect(firing(alert('rollout-halted'), messages)).toEqual([]);
  });

  it('feed-frozen fires when reconcile freezes a feed whose signer was revoked, once per pass', async () => {
    const settings = {
      AzureWebJobsStorage: azuriteConnectionString(),
      EMFLEET_TABLE_PREFIX: `a${randomBytes(5).toString('hex')}`,
      EMFLEET_ORG: 'contoso',
      EMFLEET_TRUST_ANCHORS: env.pki.root.certificatePem,
    };
    const accepting = invocationOf(
      appContextFor(settings),
      invocationLogger(capturingContext('pollOcs').context),
    );
    await pollFeed(
      {
        tables: accepting.app.tables,
        queues: accepting.app.queues,
        org: 'contoso',
        waves: accepting.app.config.waves,
        logger: accepting.logger,
        fetch: async () => ({ kind: 'fetched', bytes: Buffer.from(env.pki.sign(catalogueXml)) }),
      },
      { name: 'microsoft', url: 'http://feed.invalid/', trust: env.pki.trust },
    );
    const { context, messages } = capturingContext('reconcile');
    const serial = env.pki.signer.certificate.serialNumber;
    await reconcileCycle(
      invocationOf(
        appContextFor({ ...settings, EMFLEET_REVOKED_SERIALS: serial }),
        invocationLogger(context),
      ),
    );
    expect(
      firing(alert('feed-frozen'), messages).map((entry) => [
        entry['event'],
        entry['feed'],
        entry['reasonCode'],
      ]),
    ).toEqual([['FeedFrozen', 'microsoft', 'Revoked']]);
  });
});
