import type { FunctionDefinition } from '../lib/functions.js';
import {
  adminConnectivity,
  adminExplain,
  adminGrid,
  adminOverview,
  adminPackage,
  adminPlan,
  adminPolicy,
  adminPolicyEdit,
  adminPoll,
  adminReconcile,
  adminRollout,
  adminRolloutAction,
  adminRollouts,
  adminServer,
  adminServers,
  adminStatus,
} from './adminApi.js';
import { applyPoison } from './applyPoison.js';
import { applyToServer } from './applyToServer.js';
import { dashboard } from './dashboard.js';
import { gateWave } from './gateWave.js';
import { pollOcs } from './pollOcs.js';
import { reconcile } from './reconcile.js';
import { startWave } from './startWave.js';

/** Every trigger of the app, for the local host (`npm start`) and the end-to-end tests. */
export const allFunctions: readonly FunctionDefinition[] = [
  pollOcs,
  reconcile,
  startWave,
  applyToServer,
  gateWave,
  applyPoison,
  adminStatus,
  adminServers,
  adminServer,
  adminRollouts,
  adminRollout,
  adminRolloutAction,
  adminConnectivity,
  adminReconcile,
  adminOverview,
  adminGrid,
  adminPolicy,
  adminPolicyEdit,
  adminPoll,
  adminPackage,
  adminPlan,
  adminExplain,
  dashboard,
];
