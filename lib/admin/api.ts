import type { HttpRequest, HttpResponseInit } from '@azure/functions';
import { z } from 'zod';
import { connectivityProbesOf, connectivityTargets, runConnectivityChecks } from './connectivity.js';
import { EmfleetError } from '../errors.js';
import type { ReasonCode } from '../model/reasons.js';
import { rolloutActionJson, rolloutDetailJson, rolloutJson, serverJson } from '../fleet/json.js';
import type { QueueSender } from '../fleet/queues.js';
import { listRollouts, readRollout, RolloutNotFoundError } from '../fleet/rollouts.js';
import type { RowProblem } from '../fleet/rows.js';
import type { ServerRow } from '../fleet/schemas.js';
import { mitigationId, ringName, serverName, siteName, storedServerName } from '../model/names.js';
import { onDegradedPolicies } from '../model/policy.js';
import { getServer, scanServers, serverMatches, ServerNotFoundError } from '../fleet/servers.js';
import type { FleetTables } from '../fleet/storage.js';
import { cellOutcomes, maxGridRowsPerPage, readGridPage } from '../dashboard/grid.js';
import { readOverview } from '../dashboard/overview.js';
import { readPolicyView } from '../dashboard/policy.js';
import type { GridPage, Overview, PolicyView } from '../dashboard/types.js';
import { redactUrl, type Logger } from '../log.js';
import { authorize, type AdminRole, type Caller } from './auth.js';
import { NoPackageError, currentPackage, resolveFeed, storedPackageJson, UnknownFeedError } from './feeds.js';
import { explainCurrentPackage, planCurrentPackage } from './plan.js';
import { editPolicy } from './policy-edit.js';
import { pollNow } from './poll.js';
import { readServerView } from './server-view.js';
import { readStatus } from './status.js';
import type { Notify } from '../notify.js';
import type { AppConfig } from '../config/index.js';
import { feedSources, relayTargetOf } from '../config/sources.js';
import { feedsOf } from '../ocs/feeds.js';
import { changeRollout } from '../rollout/admin.js';
import { runReconcileCycle } from '../rollout/reconcile-cycle.js';
import type { AgentClient } from '../relay/sender.js';
import { agentClientFor } from '../relay/settings.js';
import { approveHeldPackage, HeldPackageError } from '../rollout/poll.js';
import { rolloutProblems } from '../rollout/problems.js';
import { startWaveMessage } from '../rollout/messages.js';
import { rolloutActions } from '../rollout/state.js';
import { heldBy } from '../rollout/holds.js';
import { latestPackage } from '../fleet/packages.js';

/** What the handlers need; the Functions app passes its AppContext, tests pass their own. */
export interface AdminDeps {
  readonly tables: FleetTables;
  readonly queues: QueueSender;
  readonly config: AppConfig;
  readonly logger: Logger;
  /** Aborts and other events from the API notify like those from the CLI. */
  readonly notify?: Notify;
  /** The app's relay client (kept for the process); without it, one is made from the config. */
  readonly agents?: () => Promise<AgentClient>;
}

/** A route's handler, with the app role its callers need (checked before it runs). */
export type AdminHandler = ((deps: AdminDeps, request: HttpRequest) => Promise<HttpResponseInit>) & {
  readonly role: AdminRole;
};

/** A request the handler cannot serve as asked: answered with its status and `{code, detail}`. */
class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: ReasonCode,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/**
 * Every route is built here, with the role it needs: the caller is authorized first (401/403,
 * lib/admin/auth.ts), then what went wrong maps to a status: bad input 400, unknown rollout or
 * server 404, the rest 500 (logged).
 */
function handler(
  role: AdminRole,
  run: (deps: AdminDeps, request: HttpRequest, caller: Caller) => Promise<HttpResponseInit>,
): AdminHandler {
  const handle = async (deps: AdminDeps, request: HttpRequest): Promise<HttpResponseInit> => {
    const authorization = authorize(request.headers, role, deps.config.adminAuth);
    if (!authorization.ok) {
      deps.logger.warn('AdminRequestRefused', {
        method: request.method,
        url: redactUrl(request.url),
        status: authorization.status,
        reasonCode: authorization.code,
        reasonDetail: authorization.detail,
      });
      return problem(authorization.status, authorization.code, authorization.detail);
    }
    try {
      return await run(deps, request, authorization.caller);
    } catch (error) {
      if (error instanceof HttpProblem) return problem(error.status, error.code, error.detail);
      if (
        error instanceof RolloutNotFoundError ||
        error instanceof ServerNotFoundError ||
        error instanceof UnknownFeedError ||
        error instanceof NoPackageError
      )
        return problem(404, error.code, error.message);
      const detail = error instanceof Error ? error.message : String(error);
      // Every EmfleetError's code is the catalogue's (a storage Conflict, an InvalidRow…); anything else is InternalError.
      const known = error instanceof EmfleetError ? error.code : undefined;
      // Never the raw URL: it carries the function key as code= when a caller puts it there.
      deps.logger.error('AdminRequestFailed', {
        method: request.method,
        url: redactUrl(request.url),
        reasonCode: known ?? 'InternalError',
        reasonDetail: detail,
      });
      return problem(500, known ?? 'InternalError', detail);
    }
  };
  return Object.assign(handle, { role });
}

/** The problem JSON of every refused or failed request: a code of the reason catalogue (lib/model/reasons.ts) and the detail. */
const problem = (status: number, code: ReasonCode, detail: string): HttpResponseInit => ({
  status,
  jsonBody: { code, detail },
});

/** Validates one part of the request; the 400 names the part, the field and what is wrong with it. */
function parsed<T>(schema: z.ZodType<T>, value: unknown, part: 'route' | 'query' | 'body' | 'header'): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length > 0 ? `${part} ${issue.path.join('.')}` : part;
  const codes = {
    route: 'InvalidRoute',
    query: 'InvalidQuery',
    body: 'InvalidBody',
    header: 'InvalidHeader',
  } as const;
  throw new HttpProblem(400, codes[part], `${where}: ${issue.message}`);
}

/** The id format queue messages accept, so the API takes exactly the ids the engine can hold. */
const rolloutId = startWaveMessage.shape.rolloutId;

// ---- GET /api/status

export const getStatus: AdminHandler = handler('Reader', async (deps) => ({
  jsonBody: await readStatus(deps),
}));

// ---- GET /api/servers

export const maxServersPerPage = 1000;

/**
 * The continuation token is the last server name served (base64url, so it needs no escaping in a
 * query string); the next page starts after it, a range query on the one org partition.
 */
const continuationToken = z
  .string()
  .max(1024)
  .transform((token, context) => {
    const after = storedServerName.safeParse(Buffer.from(token, 'base64url').toString('utf8'));
    if (after.success) return after.data;
    context.addIssue({ code: 'custom', message: 'is not a token from a previous page' });
    return z.NEVER;
  });

/** The token for a page that ends with `server`; null at the end. */
const tokenAfter = (server: string | undefined): string | null =>
  server === undefined ? null : Buffer.from(server, 'utf8').toString('base64url');

const serversQuery = z.object({
  // An empty ring or site selects the servers that have none.
  ring: z.union([ringName, z.literal('')]).optional(),
  site: siteName.optional(),
  search: z
    .string()
    .trim()
    .min(1)
    .max(253)
    .transform((text) => text.toLowerCase())
    .optional(),
  top: z.coerce.number().int().min(1).max(maxServersPerPage).default(maxServersPerPage),
  continuationToken: continuationToken.optional(),
});

export const getServers: AdminHandler = handler('Reader', async (deps, request) => {
  const query = parsed(serversQuery, Object.fromEntries(request.query), 'query');
  const page = await readServersPage(deps.tables, deps.config.org, query);
  return {
    jsonBody: {
      servers: page.rows.map(serverJson),
      continuationToken: tokenAfter(page.after),
      problems: page.problems,
    },
  };
});

/**
 * One page of at most `top` servers, in name order. Ring and site filter in Tables; the search (a
 * substring of the name or FQDN, which Tables cannot filter on) is applied here, so a search reads
 * Tables in full pages, while without one every row read is served and Tables is asked for `top`.
 */
async function readServersPage(
  tables: FleetTables,
  org: string,
  query: z.infer<typeof serversQuery>,
): Promise<{ rows: ServerRow[]; problems: RowProblem[]; after: string | undefined }> {
  const rows: ServerRow[] = [];
  const problems: RowProblem[] = [];
  const scan = {
    ring: query.ring,
    site: query.site,
    after: query.continuationToken,
    pageSize: query.search === undefined ? query.top : maxServersPerPage,
  };
  for await (const page of scanServers(tables, org, scan)) {
    for (const [index, checked] of page.entries.entries()) {
      if (!checked.ok) {
        problems.push(checked.problem);
      } else if (query.search === undefined || serverMatches(checked.row, query.search)) {
        rows.push(checked.row);
        if (rows.length === query.top)
          return {
            rows,
            problems,
            after: index < page.entries.length - 1 || page.more ? checked.row.rowKey : undefined,
          };
      }
    }
  }
  return { rows, problems, after: undefined };
}

// ---- GET /api/servers/{name}

export const getServerView: AdminHandler = handler('Reader', async (deps, request) => {
  const { name } = parsed(
    z.object({ name: serverName.transform((server) => server.toLowerCase()) }),
    request.params,
    'route',
  );
  return { jsonBody: await readServerView(deps, name) };
});

// ---- GET /api/rollouts, GET /api/rollouts/{id}, POST /api/rollouts/{id}/{action}

export const getRollouts: AdminHandler = handler('Reader', async (deps) => ({
  jsonBody: { rollouts: (await listRollouts(deps.tables, { logger: deps.logger })).map(rolloutJson) },
}));

export const getRollout: AdminHandler = handler('Reader', async (deps, request) => {
  const { id } = parsed(z.object({ id: rolloutId }), request.params, 'route');
  const { state, waves } = await readRollout(deps.tables, id);
  const [problems, current] = await Promise.all([
    rolloutProblems(deps.tables, id, waves),
    latestPackage(deps.tables, state.feed),
  ]);
  return { jsonBody: rolloutDetailJson(state, waves, problems, heldBy(state, current?.content)) };
});

export const postRolloutAction: AdminHandler = handler('Operator', async (deps, request, caller) => {
  const { id, action } = parsed(
    z.object({
      id: rolloutId,
      action: z.enum(rolloutActions, { error: `must be one of ${rolloutActions.join(', ')}` }),
    }),
    request.params,
    'route',
  );
  const result = await changeRollout(deps, id, action, caller.actor, {
    emergencyWaves: deps.config.emergencyWaves,
  });
  if (!result.ok)
    return {
      status: 409,
      jsonBody: { code: 'Refused', detail: result.refusal?.reasonDetail, ...rolloutActionJson(id, result) },
    };
  return { jsonBody: rolloutActionJson(id, result) };
});

// ---- GET /api/overview, GET /api/grid, GET /api/policy (what the dashboard shows; scripts may read them too)

export const getOverview: AdminHandler = handler('Reader', async (deps) => ({
  jsonBody: (await readOverview(deps)) satisfies Overview,
}));

const gridQuery = z.object({
  ring: serversQuery.shape.ring,
  site: serversQuery.shape.site,
  search: serversQuery.shape.search,
  outcome: z.enum(cellOutcomes, { error: `must be one of ${cellOutcomes.join(', ')}` }).optional(),
  top: z.coerce.number().int().min(1).max(maxGridRowsPerPage).default(100),
  continuationToken: continuationToken.optional(),
});

export const getGrid: AdminHandler = handler('Reader', async (deps, request) => {
  const { continuationToken: after, ...query } = parsed(
    gridQuery,
    Object.fromEntries(request.query),
    'query',
  );
  const { after: next, ...page } = await readGridPage(deps, { ...query, after });
  return { jsonBody: { ...page, continuationToken: tokenAfter(next) } satisfies GridPage };
});

export const getPolicy: AdminHandler = handler('Reader', async (deps) => ({
  jsonBody: (await readPolicyView(deps)) satisfies PolicyView,
}));

// ---- POST /api/feeds/{feed}/accept

const feedAcceptBody = z
  .object({
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits')
      .transform((sha) => sha.toLowerCase()),
  })
  .strict();

/**
 * `emfleet feed accept SHA` over HTTP: approves the package the feed holds for an admin (audited
 * with the signed-in operator), then polls the feed so it rolls out. 404 when the feed is not in
 * the settings, 409 when it holds no package with that SHA-256.
 */
export const postFeedAccept: AdminHandler = handler('Operator', async (deps, request, caller) => {
  const { feed: name } = parsed(z.object({ feed: z.string().min(1).max(64) }), request.params, 'route');
  const text = await request.text();
  const { sha256 } = parsed(feedAcceptBody, parseJson(text), 'body');
  const { feeds, problems } = feedsOf(feedSources(deps.config));
  const feed = feeds.find((candidate) => candidate.name === name);
  if (!feed) {
    const problem = problems.find((candidate) => candidate.feed === name);
    throw problem
      ? new HttpProblem(404, 'Misconfigured', `feed ${name} cannot be polled: ${problem.error}`)
      : new HttpProblem(404, 'UnknownFeed', `no feed named ${name} in the settings`);
  }
  try {
    const outcome = await approveHeldPackage(
      {
        tables: deps.tables,
        queues: deps.queues,
        org: deps.config.org,
        waves: deps.config.waves,
        logger: deps.logger,
        ...(deps.notify ? { notify: deps.notify } : {}),
      },
      feed,
      sha256,
      caller.actor,
    );
    return { jsonBody: { feed: name, sha256, approvedBy: caller.actor, outcome } };
  } catch (error) {
    if (error instanceof HeldPackageError) throw new HttpProblem(409, 'NotHeld', error.message);
    throw error;
  }
});

// ---- POST /api/reconcile

const reconcileQuery = z.object({
  dryRun: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
});

/** `emfleet reconcile` over HTTP: the hourly fix-up now; `?dryRun=true` reports what it would do and writes nothing. */
export const postReconcile: AdminHandler = handler('Operator', async (deps, request) => {
  const dryRun = parsed(reconcileQuery, Object.fromEntries(request.query), 'query').dryRun === 'true';
  const feeds = await runReconcileCycle(
    {
      tables: deps.tables,
      queues: deps.queues,
      org: deps.config.org,
      waves: deps.config.waves,
      logger: deps.logger,
      ...(deps.notify && !dryRun ? { notify: deps.notify } : {}),
      agents: deps.agents ?? (async () => agentClientFor(relayTargetOf(deps.config))),
    },
    feedsOf(feedSources(deps.config)),
    { dryRun },
  );
  return { jsonBody: { dryRun, feeds } };
});

// ---- POST /api/connectivity

const connectivityBody = z
  .object({ server: serverName.transform((name) => name.toLowerCase()).optional() })
  .strict();

/** `emfleet test-connectivity` over HTTP: 200 whatever the checks found; `ok` says whether all passed. */
export const postConnectivity: AdminHandler = handler('Operator', async (deps, request) => {
  const { server } = parsed(connectivityBody, await jsonBody(request), 'body');
  const { tables, config } = deps;
  if (server !== undefined) {
    try {
      await getServer(tables, config.org, server);
    } catch (error) {
      // An unknown server is the caller's mistake (404), not a failed check; storage trouble is what the checks report.
      if (error instanceof ServerNotFoundError) throw error;
    }
  }
  const checks = await runConnectivityChecks(
    connectivityProbesOf(config, () => connectivityTargets(tables, config.org, server)),
    undefined,
    { where: 'the function app' },
  );
  return { jsonBody: { ok: checks.every((check) => check.result === 'Success'), checks } };
});

/** A JSON body, `{}` when empty; text that is not JSON is a 400. */
async function jsonBody(request: HttpRequest): Promise<unknown> {
  const text = await request.text();
  const body = text.trim() === '' ? {} : parseJson(text);
  if (body === undefined) throw new HttpProblem(400, 'InvalidBody', 'body: is not valid JSON');
  return body;
}

// ---- POST /api/poll: `emfleet poll`

const feedNameField = z.string().min(1).max(63);

export const postPoll: AdminHandler = handler('Operator', async (deps, request) => {
  const { feed } = parsed(
    z.object({ feed: feedNameField.optional() }).strict(),
    await jsonBody(request),
    'body',
  );
  const outcomes = await pollNow(deps, feed === undefined ? {} : { feed });
  return {
    jsonBody: {
      ok: outcomes.every((outcome) => outcome.kind === 'unchanged' || outcome.kind === 'accepted'),
      outcomes,
    },
  };
});

// ---- GET /api/packages/{feed}: `emfleet package show` (with the XML)

export const getPackage: AdminHandler = handler('Reader', async (deps, request) => {
  const { feed: name } = parsed(z.object({ feed: feedNameField }), request.params, 'route');
  const feed = resolveFeed(deps.config, name);
  const current = await currentPackage(deps.tables, feed);
  if (!current) throw new NoPackageError(feed.name);
  return {
    jsonBody: {
      ...storedPackageJson(feed.name, current),
      xml: Buffer.from(current.stored.bytes).toString('utf8'),
    },
  };
});

// ---- GET /api/plan, GET /api/explain: `rollout plan --latest`, `policy explain --latest`

export const getPlan: AdminHandler = handler('Reader', async (deps, request) => {
  const query = parsed(
    z.object({ feed: feedNameField.optional(), emergency: z.enum(['true', 'false']).optional() }),
    Object.fromEntries(request.query),
    'query',
  );
  return {
    jsonBody: await planCurrentPackage(deps, { feed: query.feed, emergency: query.emergency === 'true' }),
  };
});

export const getExplain: AdminHandler = handler('Reader', async (deps, request) => {
  const query = parsed(
    z.object({
      feed: feedNameField.optional(),
      server: serverName.transform((name) => name.toLowerCase()).optional(),
    }),
    Object.fromEntries(request.query),
    'query',
  );
  return { jsonBody: await explainCurrentPackage(deps, query) };
});

// ---- POST /api/policy/{action}: `policy set|block|unblock [--now]`

const policyEditBody = z
  .object({
    scope: z.enum(['org', 'server']),
    server: serverName.transform((name) => name.toLowerCase()).optional(),
    enabled: z.boolean().optional(),
    onDegraded: z.enum(onDegradedPolicies).optional(),
    ids: z.array(mitigationId).min(1).optional(),
    now: z.boolean().default(false),
  })
  .strict()
  .refine((body) => (body.scope === 'server') === (body.server !== undefined), {
    message: 'scope "server" needs "server", scope "org" takes none',
    path: ['server'],
  });

export const postPolicy: AdminHandler = handler('Operator', async (deps, request, caller) => {
  const { action } = parsed(
    z.object({
      action: z.enum(['set', 'block', 'unblock'], { error: 'must be one of set, block, unblock' }),
    }),
    request.params,
    'route',
  );
  const body = parsed(policyEditBody, await jsonBody(request), 'body');
  const edit =
    action === 'set'
      ? {
          kind: 'set' as const,
          ...(body.enabled === undefined ? {} : { enabled: body.enabled }),
          ...(body.onDegraded === undefined ? {} : { onDegraded: body.onDegraded }),
        }
      : { kind: action, ids: body.ids ?? [] };
  if (edit.kind === 'set' && edit.enabled === undefined && edit.onDegraded === undefined)
    throw new HttpProblem(400, 'InvalidBody', 'body: give enabled, onDegraded, or both');
  if (edit.kind !== 'set' && edit.ids.length === 0)
    throw new HttpProblem(400, 'InvalidBody', 'body ids: give the mitigation ids to ' + action);
  const org = deps.config.org;
  if (body.server !== undefined) await getServer(deps.tables, org, body.server);
  const target =
    body.server === undefined
      ? { scope: 'org' as const, name: org }
      : { scope: 'server' as const, name: body.server };
  const result = await editPolicy(deps, target, edit, { actor: caller.actor, now: body.now });
  return { jsonBody: { ok: true, changed: result.changed, target, policy: result.after, ...result.effect } };
});

/** The parsed value, or undefined (which no schema here accepts) when the text is not JSON. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
