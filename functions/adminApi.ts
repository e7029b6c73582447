import type { HttpHandler } from '@azure/functions';
import {
  getExplain,
  getGrid,
  getOverview,
  getPackage,
  getPlan,
  getPolicy,
  getRollout,
  getRollouts,
  getServers,
  getServerView,
  getStatus,
  postConnectivity,
  postFeedAccept,
  postPolicy,
  postPoll,
  postReconcile,
  postRolloutAction,
  type AdminHandler,
} from '../lib/admin/api.js';
import { appContext, invocationLogger } from '../lib/app.js';
import { register } from '../lib/functions.js';

/*
 * The admin API (DESIGN §10), one function per route rather than one catch-all dispatcher: the
 * host matches routes and methods itself (a wrong method is its 404, not ours), each route has
 * its own name in the logs and metrics, and the local host supports only {name} parameters.
 * All need a function key; in Azure, App Service Authentication in front signs the caller in, and
 * each handler checks the app role its route needs (lib/admin/auth.ts).
 */

/** One admin route: a function key, one method, the handler given the app's dependencies. */
function route(name: string, path: string, method: 'GET' | 'POST', admin: AdminHandler) {
  const handler: HttpHandler = (request, context) => admin(appContext(invocationLogger(context)), request);
  return register({
    kind: 'http',
    name,
    options: { route: path, methods: [method], authLevel: 'function', handler },
  });
}

export const adminStatus = route('adminStatus', 'status', 'GET', getStatus);
export const adminServers = route('adminServers', 'servers', 'GET', getServers);
export const adminServer = route('adminServer', 'servers/{name}', 'GET', getServerView);
export const adminRollouts = route('adminRollouts', 'rollouts', 'GET', getRollouts);
export const adminRollout = route('adminRollout', 'rollouts/{id}', 'GET', getRollout);
export const adminRolloutAction = route(
  'adminRolloutAction',
  'rollouts/{id}/{action}',
  'POST',
  postRolloutAction,
);
export const adminReconcile = route('adminReconcile', 'reconcile', 'POST', postReconcile);
export const adminConnectivity = route('adminConnectivity', 'connectivity', 'POST', postConnectivity);
export const adminOverview = route('adminOverview', 'overview', 'GET', getOverview);
export const adminGrid = route('adminGrid', 'grid', 'GET', getGrid);
export const adminPolicy = route('adminPolicy', 'policy', 'GET', getPolicy);
export const adminPoll = route('adminPoll', 'poll', 'POST', postPoll);
export const adminPackage = route('adminPackage', 'packages/{feed}', 'GET', getPackage);
export const adminPlan = route('adminPlan', 'plan', 'GET', getPlan);
export const adminExplain = route('adminExplain', 'explain', 'GET', getExplain);
export const adminPolicyEdit = route('adminPolicyEdit', 'policy/{action}', 'POST', postPolicy);
export const adminFeedAccept = route('adminFeedAccept', 'feeds/{feed}/accept', 'POST', postFeedAccept);
