import { Command } from 'commander';
import { settingNameOf } from '../config/index.js';
import { z } from 'zod';
import { silentLogger } from '../log.js';
import { reasonLabel } from '../model/reasons.js';
import { readPolicy, syncDeclaredPolicy, type PolicyTarget } from '../fleet/policy.js';
import { describeRowProblem } from '../fleet/rows.js';
import { getServer, listServers } from '../fleet/servers.js';
import { mitigationId, serverName } from '../model/names.js';
import { onDegradedPolicies, type PolicyLayer, type ScopeRows } from '../model/policy.js';
import { declaredLayers, parseDeclaredPolicy } from '../policy/declared.js';
import { effectiveOnDegraded, effectiveScope, type EffectiveScope } from '../policy/effective.js';
import { explainPackage } from '../policy/explain.js';
import { verifyPackage } from '../package/verify.js';
import { defaultXmlLimits } from '../package/xml.js';
import { formatTable } from '../text.js';
import {
  addActorOption,
  addStorageOptions,
  checkedValue,
  fleetContext,
  type FleetContext,
  type StorageFlags,
} from './fleet.js';
import { exitCodes, readInputFile, readTextFile, reportReason, UsageError, type CliIo } from './io.js';
import { addTrustOptions, trustPolicyFromFlags } from './package.js';
import { latestFromTables } from './rollout.js';
import { editPolicy, type PolicyEditResult } from '../admin/policy-edit.js';
import { describePolicyEffect } from '../rollout/fixup.js';

interface ScopeFlags extends StorageFlags {
  readonly orgScope?: boolean;
  readonly server?: string;
  readonly now?: boolean;
}

export function policyCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  const command = new Command('policy').description(
    'who gets which mitigation: org and server policy (Policy table, Bicep)',
  );

  addStorageOptions(
    command
      .command('show')
      .description('effective policy, with where each value came from (bicep, table, default)'),
  )
    .option('--server <name>', 'show one server: its own settings and what applies to it')
    .addHelpText('after', '\nExample:\n  emfleet policy show --server ex01.contoso.com')
    .action(async (flags: ScopeFlags) => {
      const context = fleetContext(flags, io);
      const server =
        flags.server === undefined
          ? undefined
          : checkedValue(serverName, flags.server, '--server').toLowerCase();
      if (server !== undefined) await getServer(context.tables, context.org, server);
      const snapshot = await readPolicy(context.tables, context.org);
      const org = effectiveScope(snapshot.org);
      const servers = server === undefined ? [...snapshot.servers.keys()].sort() : [server];
      const shown = servers.map((name) => ({ name, scope: effectiveScope(snapshot.servers.get(name)) }));
      if (flags.json) {
        io.stdout(
          JSON.stringify({
            org: { name: context.org, ...scopeJson(org) },
            servers: shown.map(({ name, scope }) => ({
              name,
              ...scopeJson(scope),
              effective: effectiveJson(org, scope),
            })),
            problems: snapshot.problems,
          }),
        );
        return;
      }
      for (const problem of snapshot.problems)
        io.stderr(`emfleet: warning: InvalidRow: skipped ${describeRowProblem(problem)}`);
      io.stdout(`org ${context.org}`);
      for (const line of scopeLines(org, snapshot.org)) io.stdout(`  ${line}`);
      for (const { name, scope } of shown) {
        io.stdout(`server ${name}`);
        for (const line of scopeLines(scope, snapshot.servers.get(name))) io.stdout(`  ${line}`);
        const effective = effectiveJson(org, scope);
        io.stdout(
          `  effective: ${effective.mitigationsEnabled ? 'enabled' : `disabled (${effective.disabledBy})`}; blocked ${effective.blocked.map((block) => `${block.id} (${block.scope})`).join(', ') || 'none'}; on degraded ${effective.onDegraded.value} (${effective.onDegraded.scope})`,
        );
      }
    });

  addActorOption(
    addStorageOptions(
      scopeOptions(
        command
          .command('set')
          .description(
            'turn mitigations on or off, and choose what happens to a change that degrades a server, for the org or one server',
          ),
      ),
    ),
  )
    .option('--enabled <true|false>', 'whether emfleet may apply and remove mitigations there')
    .option(
      '--on-degraded <rollback|keep>',
      'when a change takes a health endpoint down or blocks a must-pass request: roll it back (default) or keep it and report Degraded',
    )
    .addHelpText(
      'after',
      `${takesEffectHelp}\nExamples:\n  emfleet policy set --server ex01.contoso.com --enabled true --now\n  emfleet policy set --org-scope --on-degraded keep`,
    )
    .action(async (flags: ScopeFlags & { enabled?: string; onDegraded?: string; actor?: string }) => {
      if (flags.enabled === undefined && flags.onDegraded === undefined)
        throw new UsageError('give --enabled true|false, --on-degraded rollback|keep, or both');
      const enabled =
        flags.enabled === undefined
          ? undefined
          : checkedValue(
              z.enum(['true', 'false'], { error: 'must be true or false' }),
              flags.enabled,
              '--enabled',
            ) === 'true';
      const onDegraded =
        flags.onDegraded === undefined
          ? undefined
          : checkedValue(
              z.enum(onDegradedPolicies, { error: 'must be rollback or keep' }),
              flags.onDegraded,
              '--on-degraded',
            );
      const { context, target } = await resolveScope(flags, io);
      await report(
        io,
        flags,
        target,
        await editPolicy(
          { ...context, logger: silentLogger },
          target,
          {
            kind: 'set',
            ...(enabled === undefined ? {} : { enabled }),
            ...(onDegraded === undefined ? {} : { onDegraded }),
          },
          { actor: context.actor, now: Boolean(flags.now) },
        ),
      );
    });

  for (const verb of ['block', 'unblock'] as const) {
    addActorOption(
      addStorageOptions(
        scopeOptions(
          command
            .command(verb)
            .description(
              verb === 'block' ? 'block mitigations (applied ones are removed)' : 'unblock mitigations',
            ),
        ),
      ),
    )
      .argument('<ids...>', 'mitigation ids, e.g. EM1 EM2')
      .addHelpText(
        'after',
        `${takesEffectHelp}\nExamples:\n  emfleet policy ${verb} --org-scope EM1 --now\n  emfleet policy ${verb} --server ex01.contoso.com EM2 EM3`,
      )
      .action(async (ids: string[], flags: ScopeFlags & { actor?: string }) => {
        const checked = ids.map((id) => checkedValue(mitigationId, id, 'mitigation id'));
        const { context, target } = await resolveScope(flags, io);
        await report(
          io,
          flags,
          target,
          await editPolicy(
            { ...context, logger: silentLogger },
            target,
            { kind: verb, ids: checked },
            { actor: context.actor, now: Boolean(flags.now) },
          ),
        );
      });
  }

  addTrustOptions(
    addStorageOptions(
      command
        .command('explain')
        .description('verify a package, then show the decision for each server and mitigation'),
    ),
  )
    .option('--package <file>', 'the signed package to explain')
    .option('--latest', "the feed's current (latest accepted) package, verified again")
    .option(
      '--feed <name>',
      `with --latest: the feed (default microsoft; or a name from ${settingNameOf.orgFeeds})`,
    )
    .option('--server <name>', 'only this server')
    .addHelpText(
      'after',
      '\nExamples:\n  emfleet policy explain --latest --server ex01.contoso.com\n  emfleet policy explain --latest --feed contoso --json\n  emfleet policy explain --package mitigations.xml --trust-anchor root.pem',
    )
    .action(
      async (
        flags: ScopeFlags & { package?: string; latest?: boolean; feed?: string; trustAnchor: string[] },
      ) => {
        if (Boolean(flags.package) === Boolean(flags.latest))
          throw new UsageError('give exactly one of --package FILE or --latest');
        if (flags.feed !== undefined && !flags.latest) throw new UsageError('--feed goes with --latest');
        const server =
          flags.server === undefined
            ? undefined
            : checkedValue(serverName, flags.server, '--server').toLowerCase();
        const verified = flags.package
          ? verifyPackage(await readInputFile(flags.package, defaultXmlLimits.maxBytes), {
              trust: await trustPolicyFromFlags(flags, io),
            })
          : undefined;
        if (verified && !verified.ok) {
          const rejection = { reasonCode: verified.reason, reasonDetail: verified.detail };
          if (flags.json) io.stdout(JSON.stringify({ ok: false, sha256: verified.sha256, ...rejection }));
          reportReason(io, rejection);
          setExitCode(exitCodes.failed);
          return;
        }
        const context = fleetContext(flags, io);
        const eocs = verified?.ok ? verified.package : await latestFromTables(context, flags.feed, io);
        if (!eocs) {
          setExitCode(exitCodes.failed);
          return;
        }
        const servers =
          server === undefined
            ? (await listServers(context.tables, context.org)).rows
            : [await getServer(context.tables, context.org, server)];
        const snapshot = await readPolicy(context.tables, context.org);
        const decisions = explainPackage(
          snapshot.org,
          snapshot.servers,
          servers.map((row) => ({
            name: row.rowKey,
            build: row.build,
            reportedApplied: row.reportedApplied,
          })),
          eocs.mitigations,
        );
        if (flags.json) {
          io.stdout(JSON.stringify(decisions));
          return;
        }
        for (const problem of snapshot.problems)
          io.stderr(`emfleet: warning: InvalidRow: skipped ${describeRowProblem(problem)}`);
        for (const line of formatTable(
          ['SERVER', 'MITIGATION', 'DECISION', 'REASON', 'ON-DEGRADED', 'DETAIL'],
          decisions.map((row) => [
            row.server,
            row.mitigation,
            row.decision,
            reasonLabel(row.reasonCode),
            `${row.onDegraded.value} (${row.onDegraded.scope})`,
            row.reasonDetail,
          ]),
        )) {
          io.stdout(line);
        }
      },
    );

  addActorOption(
    addStorageOptions(
      command
        .command('sync')
        .description(
          `sync the declared policy (${settingNameOf.declaredPolicy} or --file) into Policy rows with source=bicep`,
        ),
    ),
  )
    .option(
      '--file <policy.json>',
      `read the declaration from this file instead of ${settingNameOf.declaredPolicy}`,
    )
    .addHelpText(
      'after',
      '\nRows edited in Tables (source=table) are never touched; running it twice changes nothing.\n\nExample:\n  emfleet policy sync --file infra/policy.json',
    )
    .action(async (flags: StorageFlags & { file?: string }) => {
      const context = fleetContext(flags, io);
      const text = flags.file
        ? await readTextFile(flags.file, `--file ${flags.file}`)
        : context.config.declaredPolicy;
      if (text === undefined)
        throw new UsageError(`no declared policy: set ${settingNameOf.declaredPolicy} or pass --file`);
      const parsed = parseDeclaredPolicy(text, flags.file ?? settingNameOf.declaredPolicy);
      if (!parsed.ok) throw new UsageError(parsed.error);
      const synced = await syncDeclaredPolicy(context.tables, context.org, declaredLayers(parsed.policy), {
        actor: context.actor,
      });
      if (flags.json) io.stdout(JSON.stringify({ ok: true, ...synced }));
      else
        io.stdout(
          `synced declared policy: ${synced.upserted} written, ${synced.deleted} deleted, ${synced.unchanged} unchanged`,
        );
    });

  return command;
}

/** The scope of a change: `--org-scope` (the organization that --org or EMFLEET_ORG names) or one server. */
function scopeOptions(command: Command): Command {
  return command
    .option('--org-scope', `the whole organization (the one --org or ${settingNameOf.org} names)`)
    .option('--server <name>', 'one server')
    .option(
      '--now',
      'start the fix-up for what the change touches at once (a rollout through the waves) instead of at the next reconcile',
    );
}

const takesEffectHelp = `
Without --now the change takes effect at the next reconcile (${settingNameOf.reconcileSchedule}, by default
half past each hour); the command says when. With --now the servers and mitigations it touches are
fixed up at once by a rollout through the normal waves (removals only, as after a block, through
the emergency waves) and its id is printed. Disabling leaves servers alone: nothing is removed.
`;

async function resolveScope(
  flags: ScopeFlags,
  io: CliIo,
): Promise<{ context: FleetContext; target: PolicyTarget }> {
  if (Boolean(flags.orgScope) === (flags.server !== undefined))
    throw new UsageError('give exactly one of --org-scope or --server NAME');
  const server =
    flags.server === undefined ? undefined : checkedValue(serverName, flags.server, '--server').toLowerCase();
  const context = fleetContext(flags, io);
  if (server === undefined) return { context, target: { scope: 'org', name: context.org } };
  await getServer(context.tables, context.org, server);
  return { context, target: { scope: 'server', name: server } };
}

/** What changed, then when it takes effect: the fix-up's rollouts (--now), else the next reconcile's time. */
function report(io: CliIo, flags: StorageFlags, target: PolicyTarget, result: PolicyEditResult): void {
  if (flags.json) {
    io.stdout(
      JSON.stringify({ ok: true, changed: result.changed, target, policy: result.after, ...result.effect }),
    );
    return;
  }
  io.stdout(
    `${target.scope} ${target.name}: ${result.changed ? result.what : `no change (${result.what} already)`}`,
  );
  for (const line of describePolicyEffect(result.effect)) io.stdout(line);
}

function scopeJson(scope: EffectiveScope): Record<string, unknown> {
  if (!scope.valid) return { valid: false, problem: scope.problem };
  return {
    valid: true,
    mitigationsEnabled: scope.mitigationsEnabled,
    blockedMitigations: scope.blockedMitigations,
    ...(scope.ring ? { ring: scope.ring } : {}),
    onDegraded: scope.onDegraded,
  };
}

/** Each value with its source, and the declared value a Tables edit hides, so nobody is surprised by it. */
function scopeLines(scope: EffectiveScope, rows: ScopeRows | undefined): string[] {
  if (!scope.valid) return [`INVALID: ${scope.problem} (nothing is applied or removed here)`];
  const hidden = (
    field: keyof PolicyLayer,
    shown: (value: NonNullable<PolicyLayer[typeof field]>) => string,
  ): string => {
    const declared = rows?.bicep?.[field];
    return rows?.table?.[field] !== undefined && declared !== undefined
      ? `; overrides bicep: ${shown(declared)}`
      : '';
  };
  const list = (value: unknown): string => (value as string[]).join(', ') || 'none';
  return [
    `mitigations enabled: ${scope.mitigationsEnabled.value} (${scope.mitigationsEnabled.source}${hidden('mitigationsEnabled', String)})`,
    `blocked: ${list(scope.blockedMitigations.value)} (${scope.blockedMitigations.source}${hidden('blockedMitigations', list)})`,
    ...(scope.ring ? [`ring: ${scope.ring.value} (${scope.ring.source}${hidden('ring', String)})`] : []),
    `on degraded: ${scope.onDegraded.value} (${scope.onDegraded.source}${hidden('onDegraded', String)})`,
  ];
}

function effectiveJson(
  org: EffectiveScope,
  server: EffectiveScope,
): {
  mitigationsEnabled: boolean;
  disabledBy?: string;
  blocked: { id: string; scope: string; source: string }[];
  onDegraded: ReturnType<typeof effectiveOnDegraded>;
} {
  const onDegraded = effectiveOnDegraded(org, server);
  if (!org.valid || !server.valid)
    return { mitigationsEnabled: false, disabledBy: 'invalid policy', blocked: [], onDegraded };
  const disabledBy = !org.mitigationsEnabled.value
    ? 'org'
    : !server.mitigationsEnabled.value
      ? 'server'
      : undefined;
  return {
    mitigationsEnabled: disabledBy === undefined,
    ...(disabledBy === undefined ? {} : { disabledBy }),
    blocked: [
      ...org.blockedMitigations.value.map((id) => ({
        id,
        scope: 'org',
        source: org.blockedMitigations.source,
      })),
      ...server.blockedMitigations.value.map((id) => ({
        id,
        scope: 'server',
        source: server.blockedMitigations.source,
      })),
    ],
    onDegraded,
  };
}
