import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../lib/log.js';
import { createNotifier, webhookFormat, type NotifyEvent } from '../lib/notify.js';

interface Received {
  readonly method: string;
  readonly contentType: string;
  readonly body: { text: string; emfleet: Record<string, unknown> };
}

/** A loopback webhook: /ok answers 200, /fail 500 with a Slack-style reason, /hang never answers. */
let server: http.Server;
let base: string;
const received: Received[] = [];

interface LogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly event: string;
  readonly fields: Record<string, unknown>;
}

function recordingLogger(): { logger: Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const at =
    (level: LogEntry['level']) =>
    (event: string, fields: Record<string, unknown> = {}) =>
      void entries.push({ level, event, fields });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, entries };
}

beforeAll(async () => {
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        method: request.method ?? '',
        contentType: request.headers['content-type'] ?? '',
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Received['body'],
      });
      if (request.url === '/ok') response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      else if (request.url === '/fail')
        response.writeHead(500, { 'content-type': 'text/plain' }).end('invalid_payload');
      // /hang: the request is read and never answered.
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => {
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  received.length = 0;
});

/** A loopback port that was just free: nothing listens on it. */
async function closedPort(): Promise<number> {
  const probe = http.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

describe('createNotifier', () => {
  it('POSTs one readable line in text and the event under emfleet', async () => {
    const { logger, entries } = recordingLogger();
    const notify = createNotifier({ url: `${base}/ok`, logger });
    await notify({
      kind: 'RolloutHalted',
      rolloutId: 'microsoft-000042-apply',
      reasonCode: 'WaveHalted',
      reasonDetail: 'wave 1 had 3 failures, over its budget of 0 (ex01, ex02, ex03)',
    });
    expect(received).toEqual([
      {
        method: 'POST',
        contentType: 'application/json',
        body: {
          text: 'emfleet: rollout microsoft-000042-apply halted: WaveHalted: wave 1 had 3 failures, over its budget of 0 (ex01, ex02, ex03)',
          emfleet: {
            event: 'RolloutHalted',
            rolloutId: 'microsoft-000042-apply',
            reasonCode: 'WaveHalted',
            reasonDetail: 'wave 1 had 3 failures, over its budget of 0 (ex01, ex02, ex03)',
          },
        },
      },
    ]);
    expect(entries).toEqual([
      { level: 'info', event: 'NotificationSent', fields: { notification: received[0]!.body.emfleet } },
    ]);
  });

  const sha256 = 'ab12cd34ef56'.padEnd(64, '0');
  it.each<{ name: string; event: NotifyEvent; text: string }>([
    {
      name: 'an accepted package',
      event: {
        kind: 'PackageAccepted',
        feed: 'microsoft',
        sequence: 42,
        sha256,
        added: ['EM4'],
        changed: ['EM1', 'EM2'],
        withdrawn: [],
      },
      text: 'emfleet: feed microsoft accepted package 42 (sha256 ab12cd34ef56): added EM4; changed EM1, EM2',
    },
    {
      name: 'an accepted package that changes nothing',
      event: {
        kind: 'PackageAccepted',
        feed: 'contoso',
        sequence: 3,
        sha256,
        added: [],
        changed: [],
        withdrawn: [],
      },
      text: 'emfleet: feed contoso accepted package 3 (sha256 ab12cd34ef56): no mitigation changed',
    },
    {
      name: 'a rejected package, its detail on one line',
      event: {
        kind: 'PackageRejected',
        feed: 'microsoft',
        sha256,
        reasonCode: 'BadSignature',
        reasonDetail: 'digest mismatch\n  for reference ""',
      },
      text: 'emfleet: feed microsoft rejected a package (sha256 ab12cd34ef56): BadSignature: digest mismatch for reference ""',
    },
    {
      name: 'a completed rollout',
      event: { kind: 'RolloutCompleted', rolloutId: 'microsoft-000042-apply' },
      text: 'emfleet: rollout microsoft-000042-apply completed',
    },
    {
      name: 'an aborted rollout',
      event: {
        kind: 'RolloutAborted',
        rolloutId: 'microsoft-000042-apply',
        reasonCode: 'AbortedByAdmin',
        reasonDetail: 'by alice',
      },
      text: 'emfleet: rollout microsoft-000042-apply aborted: Aborted: by alice',
    },
    {
      name: 'a retried rollout',
      event: {
        kind: 'RolloutRetried',
        rolloutId: 'microsoft-000042-apply',
        reasonCode: 'RetriedByAdmin',
        reasonDetail: 'by alice: wave 1 sent again to its failed and unreached servers',
      },
      text: 'emfleet: rollout microsoft-000042-apply retried: Retried: by alice: wave 1 sent again to its failed and unreached servers',
    },
    {
      name: 'a hold',
      event: {
        kind: 'RolloutHeld',
        rolloutId: 'microsoft-000042-apply',
        feed: 'microsoft',
        mitigationIds: ['EM1', 'EM3'],
        servers: ['ex01', 'ex02'],
      },
      text: 'emfleet: rollout microsoft-000042-apply holds EM1, EM3 of feed microsoft: reconcile left 2 servers (ex01, ex02) without them until the rollout is retried or the feed publishes different content',
    },
    {
      name: 'drift on one server',
      event: { kind: 'DriftFound', servers: ['ex01'] },
      text: 'emfleet: drift found on 1 server (ex01)',
    },
    {
      name: 'drift with a fix-up rollout',
      event: { kind: 'DriftFound', servers: ['ex01', 'ex02'], rolloutId: 'microsoft-reconcile-2025010112' },
      text: 'emfleet: drift found on 2 servers (ex01, ex02); fix-up rollout microsoft-reconcile-2025010112',
    },
  ])('says $name in one line', async ({ event, text }) => {
    await createNotifier({ url: `${base}/ok`, logger: recordingLogger().logger })(event);
    const { kind, ...fields } = event;
    expect(received).toHaveLength(1);
    expect(received[0]!.body.text).toBe(text);
    expect(received[0]!.body.emfleet).toMatchObject({ event: kind, ...fields });
  });

  it('names the first servers of a large drift and counts the rest, so the message stays within webhook limits', async () => {
    const servers = Array.from({ length: 2500 }, (_, index) => `ex${String(index).padStart(4, '0')}`);
    await createNotifier({ url: `${base}/ok`, logger: recordingLogger().logger })({
      kind: 'DriftFound',
      servers,
    });
    const body = received[0]!.body;
    expect(body.text).toBe(
      `emfleet: drift found on 2500 servers (${servers.slice(0, 10).join(', ')} and 2490 more)`,
    );
    expect(body.emfleet).toEqual({ event: 'DriftFound', servers: servers.slice(0, 100), serverCount: 2500 });
  });

  it.each([
    { name: 'no URL', url: undefined },
    { name: 'an empty URL', url: '' },
  ])('sends nothing with $name', async ({ url }) => {
    const calls: unknown[] = [];
    const { logger, entries } = recordingLogger();
    const notify = createNotifier({
      url,
      logger,
      fetchImpl: async (...args) => (calls.push(args), new Response('ok')),
    });
    await notify({ kind: 'RolloutCompleted', rolloutId: 'r1' });
    expect(calls).toEqual([]);
    expect(entries).toEqual([]);
  });

  it('logs a non-2xx answer with the event and what the webhook said, and does not throw', async () => {
    const { logger, entries } = recordingLogger();
    await expect(
      createNotifier({ url: `${base}/fail`, logger })({
        kind: 'RolloutAborted',
        rolloutId: 'r1',
        reasonCode: 'AbortedByAdmin',
        reasonDetail: 'by bob',
      }),
    ).resolves.toBeUndefined();
    expect(received).toHaveLength(1);
    expect(entries).toEqual([
      {
        level: 'warn',
        event: 'NotificationFailed',
        fields: {
          notification: {
            event: 'RolloutAborted',
            rolloutId: 'r1',
            reasonCode: 'AbortedByAdmin',
            reasonDetail: 'by bob',
          },
          error: 'the webhook answered 500: invalid_payload',
        },
      },
    ]);
  });

  it('gives up on a webhook that never answers within the timeout, logs it and does not throw', async () => {
    const { logger, entries } = recordingLogger();
    await expect(
      createNotifier({ url: `${base}/hang`, logger, timeoutInMs: 300 })({
        kind: 'RolloutCompleted',
        rolloutId: 'r1',
      }),
    ).resolves.toBeUndefined();
    expect(received).toHaveLength(1);
    expect(entries).toEqual([
      {
        level: 'warn',
        event: 'NotificationFailed',
        fields: {
          notification: { event: 'RolloutCompleted', rolloutId: 'r1' },
          error: 'no answer within 300 ms',
        },
      },
    ]);
  });

  it.each([
    {
      name: 'a refused connection',
      url: async () => `http://127.0.0.1:${await closedPort()}/hook`,
      error: /^fetch failed: .*ECONNREFUSED/,
    },
    // Where DNS itself cannot be reached the lookup may outlast the timeout instead.
    {
      name: 'a host name that does not resolve',
      url: async () => 'http://emfleet-webhook.invalid/hook',
      error: /^fetch failed: .*(ENOTFOUND|EAI_AGAIN)|^no answer within/,
    },
  ])('logs $name with its cause, never the URL, and does not throw', async ({ url, error }) => {
    const { logger, entries } = recordingLogger();
    const webhook = await url();
    await expect(
      createNotifier({ url: webhook, logger, timeoutInMs: 5000 })({ kind: 'DriftFound', servers: ['ex01'] }),
    ).resolves.toBeUndefined();
    expect(entries).toEqual([
      {
        level: 'warn',
        event: 'NotificationFailed',
        fields: {
          notification: { event: 'DriftFound', servers: ['ex01'], serverCount: 1 },
          error: expect.stringMatching(error),
        },
      },
    ]);
    expect(JSON.stringify(entries)).not.toContain(webhook);
  });
});

describe('webhook formats, chosen by the URL', () => {
  it.each([
    {
      name: 'Teams Workflows on logic.azure.com',
      url: 'https://prod-12.westeurope.logic.azure.com:443/workflows/0123abcd/triggers/manual/paths/invoke?api-version=2016-06-01&sig=x',
      format: 'adaptiveCard',
    },
    {
      name: 'Teams Workflows on powerplatform.com',
      url: 'https://default0123.ab.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/0123abcd/triggers/manual/paths/invoke?api-version=1&sig=x',
      format: 'adaptiveCard',
    },
    {
      name: 'an Office 365 connector',
      url: 'https://contoso.webhook.office.com/webhookb2/0123@tenant/IncomingWebhook/abc/def',
      format: 'text',
    },
    { name: 'Slack', url: 'https://hooks.slack.com/services/T000/B000/XXXX', format: 'text' },
    {
      name: 'a logic app that is not a workflow trigger',
      url: 'https://prod-12.westeurope.logic.azure.com/other',
      format: 'text',
    },
    { name: 'not a URL', url: 'nonsense', format: 'text' },
  ] as const)('$name → $format', ({ url, format }) => {
    expect(webhookFormat(url)).toBe(format);
  });

  it('posts an Adaptive Card in a message envelope to a Teams Workflows URL, with the same line and the event beside it', async () => {
    const workflowUrl =
      'https://prod-12.westeurope.logic.azure.com:443/workflows/0123abcd/triggers/manual/paths/invoke?api-version=2016-06-01&sig=secret';
    const asked: string[] = [];
    // The real POST goes to this file's webhook server; only the address is swapped.
    const fetchImpl: typeof fetch = (input, init) => (asked.push(String(input)), fetch(`${base}/ok`, init));
    await createNotifier({ url: workflowUrl, logger: recordingLogger().logger, fetchImpl })({
      kind: 'RolloutHalted',
      rolloutId: 'microsoft-000042-apply',
      reasonCode: 'WaveHalted',
      reasonDetail: 'over budget',
    });
    expect(asked).toEqual([workflowUrl]);
    expect(received).toHaveLength(1);
    const body = received[0]!.body as unknown as {
      type: string;
      text?: string;
      attachments: {
        contentType: string;
        content: { type: string; version: string; body: { type: string; text: string }[] };
      }[];
      emfleet: unknown;
    };
    expect(body.type).toBe('message');
    expect(body.text).toBeUndefined();
    expect(body.attachments).toHaveLength(1);
    expect(body.attachments[0]!.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(body.attachments[0]!.content).toMatchObject({ type: 'AdaptiveCard', version: '1.4' });
    expect(body.attachments[0]!.content.body.map((block) => block.text)).toEqual([
      'emfleet: RolloutHalted',
      'rollout microsoft-000042-apply halted: WaveHalted: over budget',
    ]);
    expect(body.emfleet).toEqual({
      event: 'RolloutHalted',
      rolloutId: 'microsoft-000042-apply',
      reasonCode: 'WaveHalted',
      reasonDetail: 'over budget',
    });
  });
});
