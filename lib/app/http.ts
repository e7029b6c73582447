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
} from '../admin/api.js';
import { serveDashboard } from '../dashboard/page.js';
import { invocationFor, invocationLogger } from './context.js';

/** An admin route as the host calls it: the handler given the app's dependencies for this invocation. */
function adminRoute(admin: AdminHandler): HttpHandler {
  return (request, context) => {
    const { app, logger, notify } = invocationFor(context);
    return admin(
      { tables: app.tables, queues: app.queues, config: app.config, logger, notify, agents: app.agents },
      request,
    );
  };
}

/** The admin API's handlers (DESIGN §10), each checking the app role its route needs (lib/admin/auth.ts). */
export const adminHandlers = {
  status: adminRoute(getStatus),
  servers: adminRoute(getServers),
  server: adminRoute(getServerView),
  rollouts: adminRoute(getRollouts),
  rollout: adminRoute(getRollout),
  rolloutAction: adminRoute(postRolloutAction),
  reconcile: adminRoute(postReconcile),
  connectivity: adminRoute(postConnectivity),
  overview: adminRoute(getOverview),
  grid: adminRoute(getGrid),
  policy: adminRoute(getPolicy),
  policyEdit: adminRoute(postPolicy),
  poll: adminRoute(postPoll),
  package: adminRoute(getPackage),
  plan: adminRoute(getPlan),
  explain: adminRoute(getExplain),
  feedAccept: adminRoute(postFeedAccept),
} as const satisfies Record<string, HttpHandler>;

/** The fleet dashboard page and its assets (lib/dashboard/page.ts). */
export const dashboardHandler: HttpHandler = (request, context) =>
  serveDashboard(request, { logger: invocationLogger(context) });
