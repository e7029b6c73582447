/**
 * Import rules, written from DESIGN §2 (layout) and STYLE ("layers are checked, not hoped for"):
 * which folder may import which. `npm run lint` runs them (depcruise), so a break fails `npm test`.
 *
 * Each rule is written as it must be. What the tree breaks today is listed in `knownBreaks`, one
 * commented entry per import, and allowed by the rule's `pathNot`: the vocabulary redesign (issue 24)
 * removes them. A new break is not allowed by adding it here without saying which issue removes it.
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
 * The decisions in lib/rollout that are pure: plan, diff, waves, gate state, durations, messages, and
 * the rules the queue steps (lib/rollout/steps/) call: wave accounting, passes and their bitsets,
 * the agent's requests, deliveries, events, gate, operation ids, outcomes, the poison handler's result.
 */
const pureRollout =
  '^lib/rollout/(accounting|agent-calls|bits|deliveries|diff|drift|duration|events|gate|messages|operations|outcomes|pass|plan|poisoned|progress|state|waves)\\.ts$';
/** What runs only on a developer's machine or in CI: never shipped code's dependency. */
const notProduction = ['^lib/local/', '^bench/', '^test/'];

/** Today's breaks, by rule: `from` → `to` as regular expressions over paths. Issue 24 removes them. */
const knownBreaks = {
  functionsThin: [
    // The queue triggers call the rollout steps and parse their messages directly, and build their
    // queue sender; DESIGN wants one lib/app entry point per trigger.
    [
      '^functions/(startWave|applyToServer|gateWave|applyPoison)\\.ts$',
      '^lib/(rollout/(steps/[a-z-]+|messages)|fleet/queues)\\.ts$',
    ],
    // The HTTP triggers call the admin API and the dashboard page handlers directly.
    ['^functions/adminApi\\.ts$', '^lib/admin/api\\.ts$'],
    ['^functions/dashboard\\.ts$', '^lib/dashboard/page\\.ts$'],
  ],
  productionNotDev: [
    // `emfleet dev pki` makes the local run's test PKI: a developer command in the shipped CLI. The
    // PKI maker belongs beside it (or the command in a dev-only entry point): issue 24.
    ['^lib/cli/dev\\.ts$', '^lib/local/pki\\.ts$'],
    // `emfleet package sign --dev-tsa` reads the dev TSA's key and certificate from the dev PKI's file
    // layout (lib/local/pki-files.ts): the same developer convenience, removed with the one above.
    ['^lib/cli/package\\.ts$', '^lib/local/pki-files\\.ts$'],
  ],
  folderCycles: [
    // Folder names (no trailing slash): a folder in a cycle today is exempt as a whole, since a folder
    // rule cannot name the edge. lib/fleet and lib/policy left the cycles when the vocabulary moved to
    // lib/model, and lib/agent when the rollout steps stopped reading clip and endpointName from
    // lib/agent/checks.ts (they are in lib/text.ts); what remains is one loop, config → rollout → relay → config:
    // - config → rollout: lib/config/index.ts reads the wave profile schema and defaults from
    //   lib/rollout/waves.ts;
    // - relay → config: lib/relay/settings.ts reads the Settings type from lib/config;
    // - rollout → relay: the steps send through the relay.
    // Issue 24's app-context slice removes it: the camelCase AppConfig (config no longer reads
    // lib/rollout, relay no longer reads config's Settings).
    ['^lib/(config|rollout|relay)$'],
  ],
};
const list = (value) => (value === undefined ? [] : [value].flat());

/**
 * A rule, and its known breaks as narrow exemptions: the rule holds for every module but the breaks'
 * `from`; each of those gets the same rule less that one `to`.
 */
const withBreaks = (rule, breaks = []) => [
  { ...rule, from: { ...rule.from, pathNot: [...list(rule.from.pathNot), ...breaks.map(([from]) => from)] } },
  ...breaks.map(([from, to]) => ({
    ...rule,
    name: `${rule.name}-known-break`,
    comment: `${rule.comment} Known break, removed by issue 24: ${from} → ${to}.`,
    from: { path: from },
    to: { ...rule.to, pathNot: [...list(rule.to.pathNot), to] },
  })),
];

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
    ...withBreaks(
      {
        name: 'functions-thin',
        comment:
          'functions/ registers triggers only: it imports lib/app*.ts and lib/functions.ts (DESIGN §2).',
        severity: 'error',
        from: { path: '^functions/' },
        to: { path: '^(lib|bench|test|web)/', pathNot: '^lib/(app[^/]*|functions)\\.ts$' },
      },
      knownBreaks.functionsThin,
    ),
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
      comment: 'The on-prem agent ships alone: never lib/fleet, lib/rollout or lib/local (DESIGN §8).',
      severity: 'error',
      from: { path: '^lib/agent/' },
      to: { path: '^lib/(fleet|rollout|local)/' },
    },
    ...withBreaks(
      {
        name: 'production-not-dev',
        comment:
          'Shipped code (lib/, functions/, web/) never imports lib/local, bench/ or test/; lib/local itself may.',
        severity: 'error',
        from: { path: '^(lib|functions|web)/', pathNot: '^lib/local/' },
        to: { path: notProduction },
      },
      knownBreaks.productionNotDev,
    ),
    {
      name: 'no-folder-cycles',
      comment: 'Folders form layers: no folder imports, through any path, a folder that imports it back.',
      severity: 'error',
      scope: 'folder',
      from: { pathNot: knownBreaks.folderCycles.map(([folder]) => folder) },
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
