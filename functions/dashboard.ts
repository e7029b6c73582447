import type { HttpHandler } from '@azure/functions';
import { invocationLogger } from '../lib/app.js';
import { serveDashboard } from '../lib/dashboard/page.js';
import { register } from '../lib/functions.js';

/**
 * The fleet dashboard (issue 10): GET /api/dashboard is the page, /api/dashboard/{asset} its
 * script and stylesheet. The same function key as the admin API, whose endpoints the page reads.
 */
const handler: HttpHandler = (request, context) =>
  serveDashboard(request, { logger: invocationLogger(context) });

export const dashboard = register({
  kind: 'http',
  name: 'dashboard',
  options: { route: 'dashboard/{asset?}', methods: ['GET'], authLevel: 'function', handler },
});
