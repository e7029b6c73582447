import type { HttpHandler } from '@azure/functions';
import { getRollout, getRollouts, getServers, getStatus, postConnectivity, postRolloutAction, type AdminHandler } from '../lib/admin/api.js';
import { appContext, invocationLogger } from '../lib/app.js';
import { register } from '../lib/functions.js';

/*
 * The admin API (DESIGN §10), one function per route rather than one catch-all dispatcher: the
 * host matches routes and methods itself (a wrong method is its 404, not ours), each route has
 * its own name in the logs and metrics, and the local host supports only {name} parameters.
 * All need a function key; App Service Authentication in front adds the signed-in user.
 */

const run =
  (admin: AdminHandler): HttpHandler =>
  (request, context) =>
    admin(appContext(invocationLogger(context)), request);

export const adminStatus = register({
  kind: 'http',
  name: 'adminStatus',
  options: { route: 'status', methods: ['GET'], authLevel: 'function', handler: run(getStatus) },
});

export const adminServers = register({
  kind: 'http',
  name: 'adminServers',
  options: { route: 'servers', methods: ['GET'], authLevel: 'function', handler: run(getServers) },
});

export const adminRollouts = register({
  kind: 'http',
  name: 'adminRollouts',
  options: { route: 'rollouts', methods: ['GET'], authLevel: 'function', handler: run(getRollouts) },
});

export const adminRollout = register({
  kind: 'http',
  name: 'adminRollout',
  options: { route: 'rollouts/{id}', methods: ['GET'], authLevel: 'function', handler: run(getRollout) },
});

export const adminRolloutAction = register({
  kind: 'http',
  name: 'adminRolloutAction',
  options: { route: 'rollouts/{id}/{action}', methods: ['POST'], authLevel: 'function', handler: run(postRolloutAction) },
});

export const adminConnectivity = register({
  kind: 'http',
  name: 'adminConnectivity',
  options: { route: 'connectivity', methods: ['POST'], authLevel: 'function', handler: run(postConnectivity) },
});
