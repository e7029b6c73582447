import { randomBytes } from 'node:crypto';
import {
  startRelayListener,
  type IncomingRelayRequest,
  type RelayListener,
  type RelayListenerOptions,
  type RelayReply,
} from '../../lib/agent/listener.js';
import {
  startRelayEmulator,
  type RelayEmulator,
  type RelayEmulatorOptions,
  type RelayRule,
} from '../../lib/local/relay.js';
import {
  applyRequest,
  removeRequest,
  pingRequest,
  type OperationReply,
  type StatusReply,
} from '../../lib/relay/protocol.js';
import { createSasToken } from '../../lib/relay/sas.js';
import { recordingLogger } from '../helpers/logs.js';
import { waitFor as waitUntil } from '../helpers/wait.js';
export { recordingLogger, type LoggedEvent } from '../helpers/logs.js';
import { AgentClient, RelaySender, type RelaySenderOptions } from '../../lib/relay/sender.js';

export const rules = {
  listen: { keyName: 'listen', key: randomBytes(32).toString('base64') },
  send: { keyName: 'send', key: randomBytes(32).toString('base64') },
} as const;

/** A promise the test opens when it wants a held-up handler to go on. */
export function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** A Listen token as the agent makes it: for http://{host}/{hc}, signed with the listen rule. */
export function listenToken(hybridConnection: string, rule: RelayRule = rules.listen): () => string {
  return () => createSasToken(`http://127.0.0.1/${hybridConnection}`, rule.keyName, rule.key);
}

/** Waits until `condition` holds, failing with `what` (see test/helpers/wait.ts). */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  await waitUntil(what, () => condition(), { timeoutMs });
}

/**
 * A tiny stand-in for the agent service: the four protocol paths over an in-memory set of applied
 * mitigations, validating requests with the same schemas. Replies can be overridden per path.
 */
export function testAgent(server = 'ex01.contoso.com') {
  const applied = new Set<string>();
  const requests: IncomingRelayRequest[] = [];
  const overrides = new Map<string, (request: IncomingRelayRequest) => Promise<RelayReply>>();
  const json = (status: number, value: unknown): RelayReply => ({
    status,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  const handler = async (request: IncomingRelayRequest): Promise<RelayReply> => {
    requests.push(request);
    const override = overrides.get(request.path);
    if (override) return override(request);
    const body = request.body.length === 0 ? {} : (JSON.parse(request.body.toString('utf8')) as unknown);
    switch (`${request.method} ${request.path}`) {
      case 'POST /apply': {
        const parsed = applyRequest.parse(body);
        const outcomes: OperationReply['outcomes'] = {};
        for (const id of parsed.mitigationIds) {
          outcomes[id] = {
            outcome: applied.has(id) ? 'AlreadyApplied' : 'Applied',
            detail: `package of ${parsed.packageBase64.length} base64 characters`,
          };
          applied.add(id);
        }
        return json(200, { operationId: parsed.operationId, status: 'Completed', outcomes });
      }
      case 'POST /remove': {
        const parsed = removeRequest.parse(body);
        const outcomes: OperationReply['outcomes'] = {};
        for (const id of parsed.mitigationIds)
          outcomes[id] = { outcome: applied.delete(id) ? 'Removed' : 'NotApplicable', detail: '' };
        return json(200, { operationId: parsed.operationId, status: 'Completed', outcomes });
      }
      case 'GET /status': {
        const status: StatusReply = {
          server,
          build: '15.2.1544.4',
          agentVersion: '0.1.0',
          applied: [...applied].sort(),
          blocked: [],
          drifted: [],
          journal: { entries: applied.size, pending: 0 },
          operations: [],
        };
        return json(200, status);
      }
      case 'POST /ping': {
        const parsed = pingRequest.parse(body);
        return json(200, { server, build: '15.2.1544.4', agentVersion: '0.1.0', ...parsed });
      }
      default:
        return json(404, { error: 'NotFound', detail: `no such agent path ${request.path}` });
    }
  };
  return { handler, requests, applied, overrides, json };
}

/** One emulator, a sender and client on it, and listeners that are all closed by close(). */
export async function relayFixture(
  options: { emulator?: Partial<RelayEmulatorOptions>; sender?: Partial<RelaySenderOptions> } = {},
) {
  const emulatorLog = recordingLogger();
  const emulator: RelayEmulator = await startRelayEmulator({
    rules,
    logger: emulatorLog,
    ...options.emulator,
  });
  // Short enough that a lost request fails its test clearly, long enough for a loaded machine.
  const sender = new RelaySender({
    baseUrl: emulator.baseUrl,
    auth: { kind: 'sas', ...rules.send },
    timeoutMs: 5000,
    ...options.sender,
  });
  const client = new AgentClient(sender);
  const listeners: RelayListener[] = [];
  const hybridConnection = `hc-${randomBytes(4).toString('hex')}`;
  return {
    emulator,
    emulatorLog,
    sender,
    client,
    hybridConnection,
    listen(
      handler: RelayListenerOptions['handler'],
      extra: Partial<RelayListenerOptions> = {},
      name = hybridConnection,
    ): RelayListener {
      const listener = startRelayListener({
        listenUri: emulator.listenUri(name),
        token: listenToken(name),
        handler,
        ...extra,
      });
      listeners.push(listener);
      return listener;
    },
    async close(): Promise<void> {
      await Promise.all(listeners.map((listener) => listener.close()));
      sender.close();
      await emulator.stop();
    },
  };
}
