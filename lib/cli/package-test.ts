import { Command } from 'commander';
import { z } from 'zod';
import { EmfleetError } from '../errors.js';
import { evaluateApplicability, formatBuild, parseBuild, type ExchangeBuild } from '../model/build.js';
import { defaultIisSite, type ProbeExpectation } from '../package/format.js';
import type { EocsPackage } from '../package/model.js';
import { parseEocs } from '../package/parse.js';
import { PackageRejectedError } from '../package/reasons.js';
import { decodePackageText, defaultXmlLimits, parseXml } from '../package/xml.js';
import {
  evaluateInbound,
  isBlocked,
  RewriteRuleError,
  type Evaluation,
  type RewriteRequest,
  type SiteRule,
} from '../iis/rewrite.js';
import { formatTable } from '../text.js';
import { collect, exitCodes, readInputFile, reportReason, UsageError, type CliIo } from './io.js';

/** A request to test and where it came from (`--request 2`, `probes.txt:14`, `EM1 probe 2`), for messages and --json. */
export interface TestRequest extends RewriteRequest {
  readonly source: string;
  /** A package probe: what the rules must do to it, on its action's site. */
  readonly expect?: ProbeExpectation;
  readonly site?: string;
}

const token = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const wireUrl = /^\/[^\s\u0000-\u001f\u007f]*$/;
const jsonRequestSchema = z
  .object({
    method: z.string().regex(token, 'not an HTTP method'),
    url: z
      .string()
      .regex(wireUrl, 'must start with "/" and hold no spaces or control characters (percent-encode them)'),
    headers: z.record(z.string().regex(token, 'not a header name'), z.string()).optional(),
    serverVariables: z
      .record(z.string().regex(/^[A-Za-z0-9_]+$/, 'not a server variable name'), z.string())
      .optional(),
  })
  .strict();

/**
 * One request, in either form (docs/package-format.md, "Testing rewrite rules"):
 * `METHOD /path?query` with optional ` | Name: value` headers after it, or one JSON object
 * `{"method","url","headers"?,"serverVariables"?}`. Throws UsageError naming `source`.
 */
export function parseRequestLine(line: string, source: string): TestRequest {
  const text = line.trim();
  const fail = (why: string): never => {
    throw new UsageError(`${source}: ${why}`);
  };
  if (text.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return fail(`not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
    }
    const parsed = jsonRequestSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return fail(`${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`);
    }
    const { method, url, headers, serverVariables } = parsed.data;
    return {
      source,
      method,
      url,
      ...(headers ? { headers } : {}),
      ...(serverVariables ? { serverVariables } : {}),
    };
  }
  const [first, ...headerParts] = text.split(' | ');
  const words = first!.trim().split(/\s+/);
  if (words.length !== 2) fail(`expected "METHOD /path?query", found "${first!.trim()}"`);
  const [method, url] = words as [string, string];
  if (!token.test(method)) fail(`"${method}" is not an HTTP method`);
  if (!wireUrl.test(url)) fail(`"${url}" must start with "/" (a path and query as sent, no host)`);
  const headers: Record<string, string> = {};
  for (const part of headerParts) {
    const colon = part.indexOf(':');
    const name = colon === -1 ? '' : part.slice(0, colon).trim();
    if (!token.test(name)) fail(`"${part.trim()}" is not a header ("Name: value")`);
    headers[name] = part.slice(colon + 1).trim();
  }
  return { source, method, url, ...(headerParts.length > 0 ? { headers } : {}) };
}

/** Lines of a --requests file; blank lines and lines starting with # are skipped. */
export function parseRequestsFile(text: string, file: string): TestRequest[] {
  const requests: TestRequest[] = [];
  for (const [index, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    requests.push(parseRequestLine(line, `${file}:${index + 1}`));
  }
  return requests;
}

/** One IIS rewrite rule of the package, with the mitigation that carries it. */
interface PackageRule {
  readonly mitigation: string;
  readonly site: string;
  readonly rule: SiteRule;
}

interface Skipped {
  readonly mitigation: string;
  readonly what: string;
}

/** The package's rewrite rules by site, in package order (the order EM adds them to the site). */
export function packageRules(
  eocs: EocsPackage,
  options: { build?: ExchangeBuild; site?: string } = {},
): { rules: PackageRule[]; probes: TestRequest[]; skipped: Skipped[] } {
  const rules: PackageRule[] = [];
  const probes: TestRequest[] = [];
  const skipped: Skipped[] = [];
  for (const mitigation of eocs.mitigations) {
    if (options.build && evaluateApplicability(mitigation.applicability, options.build) !== 'Applies') {
      skipped.push({ mitigation: mitigation.id, what: `not applied on build ${formatBuild(options.build)}` });
      continue;
    }
    for (const action of mitigation.actions) {
      switch (action.kind) {
        case 'IisUrlRewrite':
          if (options.site === undefined || action.site === options.site) {
            rules.push({
              mitigation: mitigation.id,
              site: action.site,
              rule: { name: action.ruleName, xml: action.ruleXml },
            });
            for (const probe of action.probes ?? []) {
              const headers = Object.fromEntries([
                ...probe.headers.map((header) => [header.name, header.value]),
                ...(probe.cookie === undefined ? [] : [['Cookie', probe.cookie]]),
              ]);
              probes.push({
                source: `${mitigation.id} probe ${probes.filter((other) => other.source.startsWith(`${mitigation.id} probe `)).length + 1}`,
                method: probe.method,
                url: probe.path,
                ...(Object.keys(headers).length > 0 ? { headers } : {}),
                expect: probe.expect,
                site: action.site,
              });
            }
          } else
            skipped.push({
              mitigation: mitigation.id,
              what: `rule "${action.ruleName}" is for site "${action.site}"`,
            });
          break;
        case 'DisableAppPool':
          skipped.push({
            mitigation: mitigation.id,
            what: `disables app pool ${action.appPool} (not evaluated: every request to it fails)`,
          });
          break;
        case 'DisableService':
          skipped.push({
            mitigation: mitigation.id,
            what: `disables service ${action.service} (not evaluated)`,
          });
          break;
        case 'Unsupported':
          skipped.push({
            mitigation: mitigation.id,
            what: `unsupported action "${action.type}": ${action.why}`,
          });
          break;
        case 'DoNothing':
          break;
      }
    }
  }
  return { rules, probes, skipped };
}

export type TestVerdict = 'Blocked' | 'Rewritten' | 'Redirected' | 'Responded' | 'Passed';

export interface TestResult {
  readonly request: TestRequest;
  readonly site: string;
  readonly verdict: TestVerdict;
  /** For a probe: whether the rules did what it expects (blocked = isBlocked, as the agent judges it). */
  readonly met?: boolean;
  readonly mitigation: string | null;
  readonly rule: string | null;
  readonly why: string;
  readonly evaluation: Evaluation;
}

/** Every request against the rules of every site (or of the one site asked for). */
export function testRequests(
  rules: readonly PackageRule[],
  requests: readonly TestRequest[],
  site: string | undefined,
): TestResult[] {
  const sites = site !== undefined ? [site] : [...new Set(rules.map((entry) => entry.site))];
  const results: TestResult[] = [];
  for (const request of requests) {
    for (const name of request.site !== undefined ? [request.site] : sites) {
      const onSite = rules.filter((entry) => entry.site === name);
      const owner = (rule: string): string | null =>
        onSite.find((entry) => entry.rule.name === rule)?.mitigation ?? null;
      let evaluation: Evaluation;
      try {
        evaluation = evaluateInbound(
          onSite.map((entry) => entry.rule),
          request,
        );
      } catch (error) {
        if (error instanceof RewriteRuleError) {
          throw new EmfleetError(
            'InvalidRewriteRule',
            `mitigation ${owner(error.rule) ?? '?'}: ${error.message}`,
            { cause: error, context: { ...error.context, mitigation: owner(error.rule) } },
          );
        }
        throw error;
      }
      const met =
        request.expect === undefined
          ? {}
          : { met: isBlocked(evaluation.verdict) === (request.expect === 'blocked') };
      results.push({ request, site: name, ...describe(evaluation, owner), ...met, evaluation });
    }
  }
  return results;
}

function describe(
  evaluation: Evaluation,
  owner: (rule: string) => string | null,
): { verdict: TestVerdict; mitigation: string | null; rule: string | null; why: string } {
  const { verdict } = evaluation;
  const decidedBy = verdict.kind === 'passed' ? undefined : verdict.rule;
  const why =
    decidedBy === undefined
      ? ''
      : ([...evaluation.trace].reverse().find((step) => step.rule === decidedBy && step.matched)?.why ?? '');
  switch (verdict.kind) {
    case 'aborted':
      return { verdict: 'Blocked', mitigation: owner(verdict.rule), rule: verdict.rule, why };
    case 'customResponse':
      return {
        verdict: isBlocked(verdict) ? 'Blocked' : 'Responded',
        mitigation: owner(verdict.rule),
        rule: verdict.rule,
        why,
      };
    case 'redirected':
      return { verdict: 'Redirected', mitigation: owner(verdict.rule), rule: verdict.rule, why };
    case 'passed': {
      if (evaluation.rewrittenBy.length > 0) {
        return {
          verdict: 'Rewritten',
          mitigation: [...new Set(evaluation.rewrittenBy.map((rule) => owner(rule) ?? '?'))].join(', '),
          rule: evaluation.rewrittenBy.join(', '),
          why: `rewritten to ${verdict.url}`,
        };
      }
      const evaluated = evaluation.trace.length;
      return {
        verdict: 'Passed',
        mitigation: null,
        rule: null,
        why:
          evaluated === 0
            ? 'no rewrite rules on the site'
            : `none of ${evaluated} rule${evaluated === 1 ? '' : 's'} ended or rewrote it`,
      };
    }
  }
}

const maxRequestsFileBytes = 1024 * 1024;

export function packageTestCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  return new Command('test')
    .description(
      'show which IIS rewrite rule of which mitigation blocks, rewrites or passes each request, before anything is signed or rolled out',
    )
    .argument('<file>', 'an EOCS package, signed or not (the signature is not checked here)')
    .option(
      '--request <request>',
      'a request: "METHOD /path?query" with optional " | Name: value" headers, or a JSON object (repeatable)',
      collect,
      [],
    )
    .option(
      '--requests <file>',
      'a file of requests, one per line in either form; blank lines and # comments are skipped',
    )
    .option('--site <name>', 'only the rules for this IIS site (default: each site in the package)')
    .option('--build <build>', 'only the mitigations that apply to this Exchange build, e.g. 15.2.1118.7')
    .option(
      '--probes',
      "also run the package's own <Probe> requests; exit 1 if any does not get what it expects",
    )
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
The rules are evaluated the way IIS URL Rewrite does (lib/iis/rewrite.ts; docs/package-format.md,
"Testing rewrite rules", says what is modelled): in package order, as EM adds them to the site.
Verdicts: Blocked (AbortRequest, or a CustomResponse of 400 or more), Rewritten, Redirected,
Responded (a CustomResponse below 400), Passed.

Exit 0 with the table; exit 2 for bad arguments or a malformed request (naming its line);
exit 1 for a package that cannot be read or parsed, a rule the evaluator cannot understand, or
(with --probes) a probe the rules do not block or pass as it expects.

Examples:
  emfleet package test mitigations.xml \\
    --request "GET /autodiscover/autodiscover.json?@evil.com/%50owershell/" \\
    --request "POST /owa/auth.owa | Cookie: X-BEResource=a"
  emfleet package test mitigations.xml --requests probes.txt --build 15.2.1118.7 --json

probes.txt:
  # must block
  GET /autodiscover/autodiscover.json?@evil.com/powershell/
  # must pass
  GET /owa/ | Host: mail.contoso.com
  {"method":"GET","url":"/ecp/","serverVariables":{"HTTPS":"on"}}`,
    )
    .action(
      async (
        file: string,
        flags: {
          request: string[];
          requests?: string;
          site?: string;
          build?: string;
          probes?: boolean;
          json?: boolean;
        },
      ) => {
        const build = flags.build === undefined ? undefined : parseBuild(flags.build);
        if (flags.build !== undefined && build === undefined)
          throw new UsageError(`--build "${flags.build}" is not an Exchange build like 15.2.1118.7`);
        if (flags.site !== undefined && flags.site.trim() === '') throw new UsageError('--site is empty');
        const requests = flags.request.map((line, index) => parseRequestLine(line, `--request ${index + 1}`));
        if (flags.requests !== undefined) {
          const bytes = await readInputFile(flags.requests, maxRequestsFileBytes);
          if (bytes.byteLength > maxRequestsFileBytes)
            throw new UsageError(`--requests ${flags.requests} is larger than ${maxRequestsFileBytes} bytes`);
          requests.push(...parseRequestsFile(Buffer.from(bytes).toString('utf8'), flags.requests));
        }
        if (requests.length === 0 && !flags.probes)
          throw new UsageError('no requests: give --request "METHOD /path", --requests FILE or --probes');

        const eocs = await readPackage(file);
        const { rules, probes, skipped } = packageRules(eocs, {
          ...(build ? { build } : {}),
          ...(flags.site !== undefined ? { site: flags.site } : {}),
        });
        const results = testRequests(
          rules,
          [...requests, ...(flags.probes ? probes : [])],
          flags.site ?? (rules.length === 0 ? defaultIisSite : undefined),
        );
        const failed = results.filter((result) => result.met === false);
        if (failed.length > 0) {
          const first = failed[0]!;
          reportReason(io, {
            reasonCode: 'ProbeUnmet',
            reasonDetail: `${failed.length} of ${results.filter((result) => result.met !== undefined).length} probes did not get what they expect; first: ${first.request.source} must be ${first.request.expect} but was ${first.verdict}`,
          });
          setExitCode(exitCodes.failed);
        }

        if (flags.json) {
          io.stdout(JSON.stringify(testJson(rules, skipped, results)));
          return;
        }
        const showSite = new Set(results.map((result) => result.site)).size > 1;
        const showProbe = results.some((result) => result.met !== undefined);
        const header = [
          'request',
          ...(showSite ? ['site'] : []),
          ...(showProbe ? ['probe'] : []),
          'verdict',
          'mitigation',
          'rule',
          'why',
        ];
        const rows = results.map((result) => [
          `${result.request.method} ${result.request.url}`,
          ...(showSite ? [result.site] : []),
          ...(showProbe
            ? [
                result.met === undefined
                  ? ''
                  : `${result.request.source}: must be ${result.request.expect}, ${result.met ? 'ok' : 'FAILED'}`,
              ]
            : []),
          result.verdict,
          result.mitigation ?? '-',
          result.rule ?? '-',
          result.why,
        ]);
        for (const line of formatTable(header, rows)) io.stdout(line);
        for (const note of skipped) io.stdout(`note: ${note.mitigation} ${note.what}`);
      },
    );
}

/** Unreadable or malformed: exit 1 (the package is the problem, not the arguments). */
async function readPackage(file: string): Promise<EocsPackage> {
  try {
    const bytes = await readInputFile(file, defaultXmlLimits.maxBytes);
    return parseEocs(parseXml(decodePackageText(bytes)));
  } catch (error) {
    if (error instanceof UsageError || error instanceof PackageRejectedError) {
      throw new EmfleetError(
        'UnreadablePackage',
        error instanceof UsageError ? error.message : `${file}: ${error.message}`,
        { cause: error, context: { file } },
      );
    }
    throw error;
  }
}

function testJson(
  rules: readonly PackageRule[],
  skipped: readonly Skipped[],
  results: readonly TestResult[],
): Record<string, unknown> {
  const counts: Record<TestVerdict, number> = {
    Blocked: 0,
    Rewritten: 0,
    Redirected: 0,
    Responded: 0,
    Passed: 0,
  };
  for (const result of results) counts[result.verdict]++;
  return {
    ok: true,
    rules: rules.map((entry) => ({ mitigation: entry.mitigation, site: entry.site, rule: entry.rule.name })),
    skipped,
    counts,
    probes: {
      total: results.filter((result) => result.met !== undefined).length,
      failed: results.filter((result) => result.met === false).length,
    },
    results: results.map(
      ({
        request: { source, expect, site: _probeSite, ...request },
        site,
        verdict,
        met,
        mitigation,
        rule,
        why,
        evaluation,
      }) => ({
        source,
        request,
        site,
        ...(expect === undefined ? {} : { expect, met }),
        verdict,
        mitigation,
        rule,
        why,
        outcome: evaluation.verdict,
        rewrittenBy: evaluation.rewrittenBy,
        trace: evaluation.trace,
      }),
    ),
  };
}
