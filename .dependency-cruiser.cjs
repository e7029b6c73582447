/**
 * Import rules, written from DESIGN §2 (layout) and STYLE ("layers are checked, not hoped for"):
 * which folder may import which. `npm run lint` runs them (depcruise), so a break fails `npm test`.
 *
 * Each rule is written as it must be, with no exception: the vocabulary redesign (issue 24) removed
 * the known breaks the tree had. A new one is not allowed by adding an exception here.
 */

/** Storage: the Tables and queues adapters, and the storage SDKs themselves. */
const storage = ['^lib/fleet/', '^node_modules/@azure/(data-tables|storage-queue)/'];
/** Network: the OCS client, the relay sender, webhooks, raw sockets and the HTTP/WebSocket stacks. */
const network = [
  '^lib/(ocs|relay)/',
  '^lib/notify\\.ts$',
  '^(http|https|http2|net|tls|dgram|dns)$',
  '^node_modules/(ws|hyco-https|https-proxy-agent|undici)/',
];
const azureSdk = ['^node_modules/@azure/'];
/**
 * The decisions in lib/rollout that are pure: plan, diff, drift, gate state, messages (waves and
 * durations are lib/model), and the rules the queue steps (lib/rollout/steps/) call: wave accounting,
 * passes and their bitsets, the agent's requests, deliveries, events, gate, apply messages, outcomes,
 * the poison handler's result.
 */
const pureRollout =
  '^lib/rollout/(accounting|agent-calls|bits|deliveries|diff|drift|events|gate|messages|operations|outcomes|pass|plan|poisoned|progress|state)\\.ts$';
/**
 * What runs only on a developer's machine or in CI: never shipped code's dependency. tools/ holds the
 * build and check tooling (the agent packager, the Bicep checks, the tree-sitter loader).
 */
const notProduction = ['^lib/local/', '^bench/', '^test/', '^tools/'];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'model-is-a-leaf',
      comment:
        'lib/model is the vocabulary everyone reads: it imports zod (and node:crypto, to hash long operation ids), nothing of ours (STYLE: the vocabulary is a leaf).',
      severity: 'error',
      from: { path: '^lib/model/' },
      to: { pathNot: ['^lib/model/', '^node_modules/zod/', '^(node:)?crypto$'] },
    },
    {
      name: 'root-helpers-are-leaves',
      comment:
        'The files at the root of lib/ (clock, errors, log, text, concurrency, notify…) are helpers every layer may use, the agent included: they import only each other and the vocabulary (lib/model: notify renders reasons from its catalogue). lib/functions.ts, the trigger registration helper, is the one that reads lib/config.',
      severity: 'error',
      from: { path: '^lib/[^/]+\\.ts$', pathNot: '^lib/functions\\.ts$' },
      to: { path: '^(lib|functions|web|tools|bench|test)/', pathNot: ['^lib/[^/]+\\.ts$', '^lib/model/'] },
    },
    {
      name: 'functions-thin',
      comment:
        'functions/ registers triggers only: it imports lib/app/*.ts and lib/functions.ts (DESIGN §2).',
      severity: 'error',
      from: { path: '^functions/' },
      to: { path: '^(lib|bench|test|web)/', pathNot: '^lib/(app/[^/]+|functions)\\.ts$' },
    },
    {
      name: 'policy-is-pure',
      comment: 'lib/policy decides from plain data: no storage, network or Azure SDK (DESIGN §6).',
      severity: 'error',
      from: { path: '^lib/policy/' },
      to: { path: [...storage, ...network, ...azureSdk] },
    },
    {
      name: 'pure-rollout-is-pure',
      comment:
        "lib/rollout's planner and gate decisions take and return plain data (STYLE: decisions are pure).",
      severity: 'error',
      from: { path: pureRollout },
      to: { path: [...storage, ...network, ...azureSdk] },
    },
    {
      name: 'package-no-io',
      comment: 'lib/package parses, signs and verifies bytes: no storage or network (DESIGN §4).',
      severity: 'error',
      from: { path: '^lib/package/' },
      to: { path: [...storage, ...network] },
    },
    {
      name: 'agent-alone',
      comment:
        'The on-prem agent ships alone (DESIGN §8): of ours it imports only the vocabulary (lib/model), the signed package (lib/package), the URL Rewrite model (lib/iis), the root helpers, and the wire protocol both relay ends share (lib/relay: protocol, SAS tokens, relay paths).',
      severity: 'error',
      from: { path: '^lib/agent/' },
      to: {
        path: '^(lib|functions|web|tools|bench|test)/',
        pathNot: '^lib/(agent/|model/|package/|iis/|relay/(protocol|sas|route)\\.ts$|[^/]+\\.ts$)',
      },
    },
    {
      name: 'production-not-dev',
      comment:
        'Shipped code (lib/, functions/, web/) never imports lib/local, tools/, bench/ or test/; lib/local itself may.',
      severity: 'error',
      from: { path: '^(lib|functions|web)/', pathNot: '^lib/local/' },
      to: { path: notProduction },
    },
    {
      name: 'no-folder-cycles',
      comment: 'Folders form layers: no folder imports, through any path, a folder that imports it back.',
      severity: 'error',
      scope: 'folder',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-module-cycles',
      comment: 'No import cycles between modules either.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // functions/index.ts only gathers the registrations for the local host (lib/local/run.ts) and tests;
    // left in, that one dev-harness edge puts every folder in a cycle through lib ↔ functions.
    exclude: { path: ['^(dist|node_modules|\\.emfleet)/', '^functions/index\\.ts$'] },
    // TypeScript 7 has no JavaScript API for dependency-cruiser yet: swc parses the sources, and sees
    // type-only imports too (a layer that names another's types depends on it).
    parser: 'swc',
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
    moduleSystems: ['es6', 'cjs'],
  },
};
