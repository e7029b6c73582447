import { dashboardHandler } from '../lib/app/http.js';
import { register } from '../lib/functions.js';

/**
 * The fleet dashboard (issue 10): GET /api/dashboard is the page, /api/dashboard/{asset} its
 * script and stylesheet. The same function key as the admin API, whose endpoints the page reads.
 */
export const dashboard = register({
  kind: 'http',
  name: 'dashboard',
  options: {
    route: 'dashboard/{asset?}',
    methods: ['GET'],
    authLevel: 'function',
    handler: dashboardHandler,
  },
});
