import type { HttpHandler } from '@azure/functions';
import { adminHandlers } from '../lib/app/http.js';
import { register } from '../lib/functions.js';

/*
 * The admin API (DESIGN §10), one function per route rather than one catch-all dispatcher: the
 * host matches routes and methods itself (a wrong method is its 404, not ours), each route has
 * its own name in the logs and metrics, and the local host supports only {name} parameters.
 * All need a function key; in Azure, App Service Authentication in front signs the caller in, and
 * each handler checks the app role its route needs (lib/admin/auth.ts).
 */

/** One admin route: a function key, one method. */
function route(name: string, path: string, method: 'GET' | 'POST', handler: HttpHandler) {
  return register({
    kind: 'http',
    name,
    options: { route: path, methods: [method], authLevel: 'function', handler },
  });
}

export const adminStatus = route('adminStatus', 'status', 'GET', adminHandlers.status);
export const adminServers = route('adminServers', 'servers', 'GET', adminHandlers.servers);
export const adminServer = route('adminServer', 'servers/{name}', 'GET', adminHandlers.server);
export const adminRollouts = route('adminRollouts', 'rollouts', 'GET', adminHandlers.rollouts);
export const adminRollout = route('adminRollout', 'rollouts/{id}', 'GET', adminHandlers.rollout);
export const adminRolloutAction = route(
  'adminRolloutAction',
  'rollouts/{id}/{action}',
  'POST',
  adminHandlers.rolloutAction,
);
export const adminReconcile = route('adminReconcile', 'reconcile', 'POST', adminHandlers.reconcile);
export const adminConnectivity = route(
  'adminConnectivity',
  'connectivity',
  'POST',
  adminHandlers.connectivity,
);
export const adminOverview = route('adminOverview', 'overview', 'GET', adminHandlers.overview);
export const adminGrid = route('adminGrid', 'grid', 'GET', adminHandlers.grid);
export const adminPolicy = route('adminPolicy', 'policy', 'GET', adminHandlers.policy);
export const adminPoll = route('adminPoll', 'poll', 'POST', adminHandlers.poll);
export const adminPackage = route('adminPackage', 'packages/{feed}', 'GET', adminHandlers.package);
export const adminPlan = route('adminPlan', 'plan', 'GET', adminHandlers.plan);
export const adminExplain = route('adminExplain', 'explain', 'GET', adminHandlers.explain);
export const adminPolicyEdit = route('adminPolicyEdit', 'policy/{action}', 'POST', adminHandlers.policyEdit);
export const adminFeedAccept = route(
  'adminFeedAccept',
  'feeds/{feed}/accept',
  'POST',
  adminHandlers.feedAccept,
);
