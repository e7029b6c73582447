import type { Element } from '@xmldom/xmldom';
import { EmfleetError } from '../errors.js';
import { elementChildren } from '../package/parse.js';
import { PackageRejectedError } from '../package/reasons.js';
import { parseXml } from '../package/xml.js';

/**
 * IIS URL Rewrite 2.x, the parts Exchange Emergency Mitigation uses, evaluated the way the module
 * does, so the agent's probes and `emfleet package test` can say which request a rule blocks
 * before it reaches a server. docs/package-format.md ("Testing rewrite rules") lists what is
 * modelled and what is not. Sources: the URL Rewrite Module Configuration Reference
 * (learn.microsoft.com/iis/extensions/url-rewrite-module/url-rewrite-module-configuration-reference),
 * "Registry values for IIS URL Rewrite" and "How to escape curly brackets in URL Rewrite rule"
 * (Daniel Vasquez Lopez, IIS team blog), and the ProxyNotShell rules in microsoft/CSS-Exchange.
 */

/** One request to evaluate; `url` is the path and query exactly as sent on the wire (may be percent-encoded). */
export interface RewriteRequest {
  readonly method: string;
  readonly url: string;
  /** Lower- or mixed-case names; Cookie may be here. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra server variables, e.g. HTTPS, SERVER_NAME; they override the ones derived from the request. */
  readonly serverVariables?: Readonly<Record<string, string>>;
  /** URL paths that exist as files / directories, for `matchType="IsFile|IsDirectory"` (default: none). */
  readonly files?: readonly string[];
  readonly directories?: readonly string[];
}

/** A rule as the site holds it: its name and the <rule> element's XML (what the agent stores and EOCS carries). */
export interface SiteRule {
  readonly name: string;
  readonly xml: string;
}

export type RewriteVerdict =
  | { readonly kind: 'passed'; readonly url: string }
  | { readonly kind: 'aborted'; readonly rule: string }
  | {
      readonly kind: 'customResponse';
      readonly rule: string;
      readonly statusCode: number;
      readonly subStatusCode: number;
      readonly reason: string;
    }
  | { readonly kind: 'redirected'; readonly rule: string; readonly url: string; readonly statusCode: number };

export interface TraceStep {
  rule: string;
  matched: boolean;
  why: string;
}

export interface Evaluation {
  readonly verdict: RewriteVerdict;
  readonly rewrittenBy: readonly string[];
  readonly trace: readonly TraceStep[];
}

/** A rule the evaluator cannot understand (IIS would refuse the configuration, or we do not model it). */
export class RewriteRuleError extends EmfleetError {
  override readonly name = 'RewriteRuleError';
  readonly rule: string;

  constructor(rule: string, message: string, options: { cause?: unknown } = {}) {
    super('InvalidRewriteRule', `rule "${rule}": ${message}`, { ...options, context: { rule } });
    this.rule = rule;
  }
}

/**
 * A site's inbound rules as IIS merges them: those inherited from applicationHost.config, the
 * site's own web.config (where Microsoft's EOMT writes, and where emfleet writes), and each
 * application's web.config, which can add rules, `<remove name>` one or `<clear/>` them all.
 */
export interface SiteRewriteConfig {
  readonly inheritedRules?: readonly SiteRule[] | undefined;
  readonly rules: readonly SiteRule[];
  /** By application path (`/owa`, `/mapi`): what its web.config says in `<rewrite><rules>`. */
  readonly applications?: Readonly<Record<string, ApplicationRewriteConfig>> | undefined;
}

export interface ApplicationRewriteConfig {
  readonly clear?: boolean | undefined;
  readonly remove?: readonly string[] | undefined;
  readonly rules?: readonly SiteRule[] | undefined;
}

/** The application a request path falls in: the longest application path that prefixes it, or the site root. */
export function applicationOf(site: SiteRewriteConfig, path: string): string | undefined {
  const lower = path.toLowerCase();
  return Object.keys(site.applications ?? {})
    .filter(
      (application) =>
        lower === application.toLowerCase() || lower.startsWith(`${application.toLowerCase()}/`),
    )
    .sort((a, b) => b.length - a.length)[0];
}

/**
 * The rules in force for a request path, in evaluation order: the parent's first, then the
 * application's own; a `<clear/>` drops everything inherited, a `<remove>` one rule by name
 * (case-insensitive, as IIS compares collection keys). The same walk as HealthChecker's
 * Get-URLRewriteRule.ps1 (CSS-Exchange Diagnostics/HealthChecker/Analyzer/Get-URLRewriteRule.ps1,
 * lines 8-16 and 44-109: web.config first, then the applicationHost.config location, stopping at a clear).
 */
export function effectiveRules(site: SiteRewriteConfig, path: string): SiteRule[] {
  const inherited = [...(site.inheritedRules ?? []), ...site.rules];
  const application = applicationOf(site, path);
  if (application === undefined) return inherited;
  const config = site.applications![application]!;
  const removed = new Set((config.remove ?? []).map((name) => name.toLowerCase()));
  const kept = config.clear ? [] : inherited.filter((rule) => !removed.has(rule.name.toLowerCase()));
  return [...kept, ...(config.rules ?? [])];
}

/**
 * Where a rule of the site's root is not in force: each application whose web.config clears the
 * inherited rules or removes this one, with the reason (HealthChecker reports the same for
 * ProxyNotShell: Invoke-AnalyzerSecurityCve-2022-41040.NotPublished.ps1, lines 87-107).
 */
export function cancellations(site: SiteRewriteConfig, ruleName: string): string[] {
  const name = ruleName.toLowerCase();
  return Object.entries(site.applications ?? {}).flatMap(([application, config]) => {
    if (config.clear) return [`${application}: its web.config clears the inherited rules (<clear/>)`];
    if ((config.remove ?? []).some((removed) => removed.toLowerCase() === name))
      return [`${application}: its web.config removes the rule (<remove name="${ruleName}"/>)`];
    return [];
  });
}

/** Blocked = aborted, or a custom response with status >= 400. */
export function isBlocked(verdict: RewriteVerdict): boolean {
  return verdict.kind === 'aborted' || (verdict.kind === 'customResponse' && verdict.statusCode >= 400);
}

// ---------------------------------------------------------------------------------------------
// Parsed form

type PatternSyntax = 'ECMAScript' | 'Wildcard' | 'ExactMatch';

interface Matcher {
  readonly syntax: PatternSyntax;
  readonly pattern: string;
  readonly ignoreCase: boolean;
  readonly negate: boolean;
  /** Captures ({R:0} = the whole match), or null when the pattern does not match; negate not applied. */
  readonly exec: (input: string) => string[] | null;
}

type TemplatePart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'backReference'; readonly of: 'R' | 'C'; readonly index: number }
  | { readonly kind: 'variable'; readonly name: string }
  | { readonly kind: 'function'; readonly name: RewriteFunction; readonly argument: Template };

type Template = readonly TemplatePart[];

/** The three string functions the configuration reference documents. */
type RewriteFunction = 'UrlDecode' | 'UrlEncode' | 'ToLower';

interface Condition {
  readonly input: Template;
  readonly inputText: string;
  readonly matchType: 'Pattern' | 'IsFile' | 'IsDirectory';
  readonly matcher?: Matcher;
  readonly negate: boolean;
}

interface Conditions {
  readonly logicalGrouping: 'MatchAll' | 'MatchAny';
  readonly trackAllCaptures: boolean;
  readonly items: readonly Condition[];
}

type InboundAction =
  | { readonly type: 'None' }
  | { readonly type: 'AbortRequest' }
  | {
      readonly type: 'CustomResponse';
      readonly statusCode: number;
      readonly subStatusCode: number;
      readonly statusReason: string;
      readonly statusDescription: string;
    }
  | { readonly type: 'Rewrite'; readonly url: Template; readonly appendQueryString: boolean }
  | {
      readonly type: 'Redirect';
      readonly url: Template;
      readonly appendQueryString: boolean;
      readonly statusCode: number;
    };

interface InboundRule {
  readonly name: string;
  readonly enabled: boolean;
  readonly stopProcessing: boolean;
  readonly match: Matcher;
  readonly conditions: Conditions;
  readonly action: InboundAction;
}

interface OutboundRule {
  readonly name: string;
  readonly enabled: boolean;
  readonly stopProcessing: boolean;
  readonly preCondition?: string;
  /** Response header the rule reads and rewrites, e.g. `Server` for RESPONSE_Server. */
  readonly header: string;
  readonly match: Matcher;
  readonly conditions: Conditions;
  readonly action:
    | { readonly type: 'None' }
    | { readonly type: 'Rewrite'; readonly value: Template; readonly replace: boolean };
}

interface PreCondition {
  readonly name: string;
  readonly logicalGrouping: 'MatchAll' | 'MatchAny';
  readonly items: readonly Condition[];
}

// ---------------------------------------------------------------------------------------------
// Parsing, cached by XML text

/** Rule XML is small; anything bigger is not a rule we should spend a parse on. */
const ruleXmlLimits = { maxBytes: 64 * 1024, maxDepth: 8, maxElements: 512 } as const;
const cacheSize = 1024;
const inboundCache = new Map<string, InboundRule | RewriteRuleError>();
const outboundCache = new Map<string, OutboundRule | PreCondition | RewriteRuleError>();

function cached<T>(cache: Map<string, T | RewriteRuleError>, rule: SiteRule, parse: () => T): T {
  const key = `${rule.name}\u0000${rule.xml}`;
  let entry = cache.get(key);
  if (entry === undefined) {
    try {
      entry = parse();
    } catch (error) {
      if (!(error instanceof RewriteRuleError)) throw error;
      entry = error;
    }
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
    cache.set(key, entry);
  }
  if (entry instanceof RewriteRuleError) throw entry;
  return entry;
}

function parseRuleElement(rule: SiteRule, expected: readonly string[]): Element {
  if (rule.xml.length > ruleXmlLimits.maxBytes)
    throw new RewriteRuleError(
      rule.name,
      `rule XML is ${rule.xml.length} characters; the limit is ${ruleXmlLimits.maxBytes}`,
    );
  let root: Element;
  try {
    root = parseXml(rule.xml, ruleXmlLimits).documentElement!;
  } catch (error) {
    if (error instanceof PackageRejectedError)
      throw new RewriteRuleError(rule.name, error.detail, { cause: error });
    throw error;
  }
  if (!expected.includes(root.localName ?? '') || root.namespaceURI) {
    throw new RewriteRuleError(
      rule.name,
      `root element is <${root.nodeName}>, expected <${expected.join('> or <')}>`,
    );
  }
  return root;
}

class Attributes {
  private readonly seen = new Set<string>();

  constructor(
    private readonly element: Element,
    private readonly rule: string,
  ) {}

  text(name: string): string | undefined {
    this.seen.add(name);
    return this.element.getAttribute(name) ?? undefined;
  }

  required(name: string): string {
    const value = this.text(name);
    if (value === undefined)
      throw new RewriteRuleError(this.rule, `<${this.element.localName}> has no ${name} attribute`);
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.text(name);
    if (value === undefined) return fallback;
    if (/^true$/i.test(value)) return true;
    if (/^false$/i.test(value)) return false;
    throw new RewriteRuleError(
      this.rule,
      `<${this.element.localName} ${name}="${value}"> is not true or false`,
    );
  }

  choice<T extends string>(name: string, choices: readonly T[], fallback: T): T {
    const value = this.text(name);
    if (value === undefined) return fallback;
    const found = choices.find((choice) => choice.toLowerCase() === value.toLowerCase());
    if (found === undefined)
      throw new RewriteRuleError(
        this.rule,
        `<${this.element.localName} ${name}="${value}"> is not one of ${choices.join(', ')}`,
      );
    return found;
  }

  integer(name: string, fallback: number | undefined, min: number, max: number): number {
    const value = this.text(name);
    if (value === undefined) {
      if (fallback === undefined)
        throw new RewriteRuleError(this.rule, `<${this.element.localName}> has no ${name} attribute`);
      return fallback;
    }
    const number = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
    if (!(number >= min && number <= max))
      throw new RewriteRuleError(
        this.rule,
        `<${this.element.localName} ${name}="${value}"> is not an integer from ${min} to ${max}`,
      );
    return number;
  }

  /** IIS refuses a configuration with attributes its schema does not declare; so do we. */
  done(): void {
    for (let index = 0; index < this.element.attributes.length; index++) {
      const name = this.element.attributes.item(index)!.name;
      if (name === 'xmlns' || name.startsWith('xmlns:')) continue;
      if (!this.seen.has(name))
        throw new RewriteRuleError(this.rule, `<${this.element.localName}> has an unknown attribute ${name}`);
    }
  }
}

function children(element: Element, rule: string, allowed: readonly string[]): Map<string, Element> {
  const found = new Map<string, Element>();
  for (const child of elementChildren(element)) {
    const name = child.localName ?? '';
    if (!allowed.includes(name) || child.namespaceURI)
      throw new RewriteRuleError(rule, `<${element.localName}> has an unknown element <${child.nodeName}>`);
    if (found.has(name))
      throw new RewriteRuleError(rule, `<${element.localName}> has more than one <${name}>`);
    found.set(name, child);
  }
  return found;
}

/** The attributes inbound and outbound rules share. */
function ruleHead(
  attributes: Attributes,
  rule: SiteRule,
): { name: string; enabled: boolean; stopProcessing: boolean; syntax: PatternSyntax } {
  // The site knows the rule by SiteRule.name (what the agent stored); the attribute is read for validity.
  attributes.text('name');
  return {
    name: rule.name,
    enabled: attributes.boolean('enabled', true),
    stopProcessing: attributes.boolean('stopProcessing', false),
    syntax: patternSyntax(attributes),
  };
}

function patternSyntax(attributes: Attributes): PatternSyntax {
  return attributes.choice<PatternSyntax>(
    'patternSyntax',
    ['ECMAScript', 'Wildcard', 'ExactMatch'],
    'ECMAScript',
  );
}

function parseInboundRule(rule: SiteRule): InboundRule {
  const element = parseRuleElement(rule, ['rule']);
  const attributes = new Attributes(element, rule.name);
  const { name, enabled, stopProcessing, syntax } = ruleHead(attributes, rule);
  // URL Rewrite 2.1's output-cache hint: it does not change what the rule does to a request.
  attributes.text('responseCacheDirective');
  attributes.done();
  // <serverVariables> set values for the application: they neither end nor rewrite a request, so they are accepted and ignored.
  const parts = children(element, rule.name, ['match', 'conditions', 'action', 'serverVariables']);
  const matchElement = parts.get('match');
  if (!matchElement) throw new RewriteRuleError(rule.name, 'has no <match>');
  const matchAttributes = new Attributes(matchElement, rule.name);
  const match = compileMatcher(
    rule.name,
    syntax,
    matchAttributes.required('url'),
    matchAttributes.boolean('ignoreCase', true),
    matchAttributes.boolean('negate', false),
  );
  matchAttributes.done();
  children(matchElement, rule.name, []);
  const conditions = parseConditions(rule.name, syntax, parts.get('conditions'));
  const actionElement = parts.get('action');
  if (!actionElement) throw new RewriteRuleError(rule.name, 'has no <action>');
  return {
    name,
    enabled,
    stopProcessing,
    match,
    conditions,
    action: parseInboundAction(rule.name, actionElement),
  };
}

function parseConditions(rule: string, syntax: PatternSyntax, element: Element | undefined): Conditions {
  if (!element) return { logicalGrouping: 'MatchAll', trackAllCaptures: false, items: [] };
  const attributes = new Attributes(element, rule);
  const logicalGrouping = attributes.choice('logicalGrouping', ['MatchAll', 'MatchAny'] as const, 'MatchAll');
  const trackAllCaptures = attributes.boolean('trackAllCaptures', false);
  attributes.done();
  return { logicalGrouping, trackAllCaptures, items: parseConditionItems(rule, syntax, element) };
}

function parseConditionItems(rule: string, syntax: PatternSyntax, element: Element): Condition[] {
  const items: Condition[] = [];
  for (const child of elementChildren(element)) {
    if (child.localName === 'clear' && !child.namespaceURI) {
      items.length = 0;
      continue;
    }
    if (child.localName !== 'add' || child.namespaceURI)
      throw new RewriteRuleError(rule, `<${element.localName}> has an unknown element <${child.nodeName}>`);
    const attributes = new Attributes(child, rule);
    const matchType = attributes.choice(
      'matchType',
      ['Pattern', 'IsFile', 'IsDirectory'] as const,
      'Pattern',
    );
    // IsFile/IsDirectory default to the requested file, as the reference says.
    const inputText =
      matchType === 'Pattern'
        ? attributes.required('input')
        : (attributes.text('input') ?? '{REQUEST_FILENAME}');
    const ignoreCase = attributes.boolean('ignoreCase', true);
    const negate = attributes.boolean('negate', false);
    const pattern = attributes.text('pattern');
    attributes.done();
    if (matchType === 'Pattern' && pattern === undefined)
      throw new RewriteRuleError(rule, `condition ${inputText} has no pattern`);
    items.push({
      input: parseTemplate(rule, inputText),
      inputText,
      matchType,
      negate,
      ...(matchType === 'Pattern'
        ? { matcher: compileMatcher(rule, syntax, pattern!, ignoreCase, negate) }
        : {}),
    });
  }
  return items;
}

const redirectCodes = { Permanent: 301, Found: 302, SeeOther: 303, Temporary: 307 } as const;

function parseInboundAction(rule: string, element: Element): InboundAction {
  const attributes = new Attributes(element, rule);
  const type = attributes.choice(
    'type',
    ['None', 'AbortRequest', 'CustomResponse', 'Rewrite', 'Redirect'] as const,
    'None',
  );
  let action: InboundAction;
  switch (type) {
    case 'None':
    case 'AbortRequest':
      action = { type };
      break;
    case 'CustomResponse':
      action = {
        type,
        statusCode: attributes.integer('statusCode', undefined, 100, 999),
        subStatusCode: attributes.integer('subStatusCode', 0, 0, 999),
        statusReason: attributes.text('statusReason') ?? '',
        statusDescription: attributes.text('statusDescription') ?? '',
      };
      break;
    case 'Rewrite':
      action = {
        type,
        url: parseTemplate(rule, attributes.required('url')),
        appendQueryString: attributes.boolean('appendQueryString', true),
      };
      break;
    case 'Redirect': {
      const url = parseTemplate(rule, attributes.required('url'));
      const appendQueryString = attributes.boolean('appendQueryString', true);
      const redirectType = attributes.choice(
        'redirectType',
        Object.keys(redirectCodes) as (keyof typeof redirectCodes)[],
        'Permanent',
      );
      action = { type, url, appendQueryString, statusCode: redirectCodes[redirectType] };
      break;
    }
  }
  // Attributes of the other action types are allowed by the IIS schema and ignored by the module.
  for (const name of [
    'url',
    'appendQueryString',
    'logRewrittenUrl',
    'redirectType',
    'statusCode',
    'subStatusCode',
    'statusReason',
    'statusDescription',
  ])
    attributes.text(name);
  attributes.done();
  children(element, rule, []);
  return action;
}

function parseOutboundElement(rule: SiteRule): OutboundRule | PreCondition {
  const element = parseRuleElement(rule, ['rule', 'preCondition']);
  if (element.localName === 'preCondition') {
    const attributes = new Attributes(element, rule.name);
    const name = attributes.required('name');
    const logicalGrouping = attributes.choice(
      'logicalGrouping',
      ['MatchAll', 'MatchAny'] as const,
      'MatchAll',
    );
    const syntax = patternSyntax(attributes);
    attributes.done();
    return { name, logicalGrouping, items: parseConditionItems(rule.name, syntax, element) };
  }
  const attributes = new Attributes(element, rule.name);
  const { name, enabled, stopProcessing, syntax } = ruleHead(attributes, rule);
  const preCondition = attributes.text('preCondition');
  attributes.done();
  const parts = children(element, rule.name, ['match', 'conditions', 'action']);
  const matchElement = parts.get('match');
  if (!matchElement) throw new RewriteRuleError(rule.name, 'has no <match>');
  const matchAttributes = new Attributes(matchElement, rule.name);
  const variable = matchAttributes.text('serverVariable');
  if (variable === undefined || !/^RESPONSE_[A-Za-z0-9_]+$/i.test(variable)) {
    throw new RewriteRuleError(
      rule.name,
      'outbound <match> must name a response header (serverVariable="RESPONSE_..."); rewriting the response body is not modelled',
    );
  }
  const match = compileMatcher(
    rule.name,
    syntax,
    matchAttributes.required('pattern'),
    matchAttributes.boolean('ignoreCase', true),
    matchAttributes.boolean('negate', false),
  );
  matchAttributes.done();
  const conditions = parseConditions(rule.name, syntax, parts.get('conditions'));
  const actionElement = parts.get('action');
  if (!actionElement) throw new RewriteRuleError(rule.name, 'has no <action>');
  const actionAttributes = new Attributes(actionElement, rule.name);
  const type = actionAttributes.choice('type', ['None', 'Rewrite'] as const, 'None');
  const value = actionAttributes.text('value') ?? '';
  const replace = actionAttributes.boolean('replace', true);
  actionAttributes.done();
  return {
    name,
    enabled,
    stopProcessing,
    ...(preCondition ? { preCondition } : {}),
    header: variable.slice('RESPONSE_'.length).replace(/_/g, '-'),
    match,
    conditions,
    action: type === 'Rewrite' ? { type, value: parseTemplate(rule.name, value), replace } : { type },
  };
}

// ---------------------------------------------------------------------------------------------
// Patterns

function compileMatcher(
  rule: string,
  syntax: PatternSyntax,
  pattern: string,
  ignoreCase: boolean,
  negate: boolean,
): Matcher {
  const base = { syntax, pattern, ignoreCase, negate };
  switch (syntax) {
    case 'ECMAScript': {
      checkEcmaScript(rule, pattern);
      let regex: RegExp;
      try {
        regex = new RegExp(pattern, ignoreCase ? 'i' : '');
      } catch (error) {
        throw new RewriteRuleError(
          rule,
          `pattern "${pattern}" is not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
      return { ...base, exec: (input) => captures(regex.exec(input)) };
    }
    case 'Wildcard': {
      // `*` captures any run of characters, `?` matches one without capturing; the whole input must match.
      const source = pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '([\\s\\S]*)')
        .replace(/\?/g, '[\\s\\S]');
      const regex = new RegExp(`^${source}$`, ignoreCase ? 'i' : '');
      return { ...base, exec: (input) => captures(regex.exec(input)) };
    }
    case 'ExactMatch': {
      const wanted = ignoreCase ? pattern.toLowerCase() : pattern;
      return {
        ...base,
        exec: (input) => ((ignoreCase ? input.toLowerCase() : input) === wanted ? [input] : null),
      };
    }
  }
}

function captures(match: RegExpExecArray | null): string[] | null {
  return match ? Array.from(match, (group) => group ?? '') : null;
}

/**
 * JavaScript without the `u` flag reads an unknown escape such as `\A` or `\Z` as the bare letter,
 * where the IIS (ECMAScript) engine rejects it or means something else: such a rule would silently
 * block different requests here than on the server, so it is refused.
 */
function checkEcmaScript(rule: string, pattern: string): void {
  for (let index = 0; index < pattern.length; index++) {
    if (pattern[index] !== '\\') continue;
    const next = pattern[index + 1];
    index++;
    if (next === undefined)
      throw new RewriteRuleError(rule, `pattern "${pattern}" ends with a lone backslash`);
    if (!/[A-Za-z]/.test(next)) continue;
    if ('dDwWsSbBnrtfv'.includes(next)) continue;
    if (next === 'c' && /[A-Za-z]/.test(pattern[index + 1] ?? '')) continue;
    if (next === 'x' && /^[0-9A-Fa-f]{2}/.test(pattern.slice(index + 1))) continue;
    if (next === 'u' && /^[0-9A-Fa-f]{4}/.test(pattern.slice(index + 1))) continue;
    if (next === 'k' && pattern[index + 1] === '<') continue;
    throw new RewriteRuleError(
      rule,
      `pattern "${pattern}" uses \\${next}, which is not an ECMAScript escape`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Templates: {SERVER_VARIABLE}, {R:n}, {C:n}, {Function:...}

const functions: Readonly<Record<string, RewriteFunction>> = {
  urldecode: 'UrlDecode',
  urlencode: 'UrlEncode',
  tolower: 'ToLower',
};

function parseTemplate(rule: string, text: string): Template {
  const parts: TemplatePart[] = [];
  let literal = '';
  let index = 0;
  while (index < text.length) {
    const char = text[index]!;
    if (char !== '{') {
      literal += char;
      index++;
      continue;
    }
    let depth = 0;
    let end = index;
    for (; end < text.length; end++) {
      if (text[end] === '{') depth++;
      else if (text[end] === '}' && --depth === 0) break;
    }
    if (end >= text.length) throw new RewriteRuleError(rule, `"${text}" has an unclosed "{"`);
    if (literal) parts.push({ kind: 'text', text: literal });
    literal = '';
    parts.push(parseReference(rule, text.slice(index + 1, end), text));
    index = end + 1;
  }
  if (literal) parts.push({ kind: 'text', text: literal });
  return parts;
}

function parseReference(rule: string, inner: string, whole: string): TemplatePart {
  const backReference = /^([RC]):(\d{1,2})$/i.exec(inner);
  if (backReference)
    return {
      kind: 'backReference',
      of: backReference[1]!.toUpperCase() as 'R' | 'C',
      index: Number(backReference[2]),
    };
  const colon = inner.indexOf(':');
  if (colon === -1) {
    if (!/^[A-Za-z0-9_]+$/.test(inner))
      throw new RewriteRuleError(
        rule,
        `"${whole}" refers to "{${inner}}", which is not a server variable name`,
      );
    return { kind: 'variable', name: inner.toUpperCase() };
  }
  // `{function_name:any_string}`: the name runs to the first colon and everything after it,
  // spaces included, is the argument (there is no escaping or trimming in the expression syntax).
  // So `{UrlDecode: {REQUEST_URI}}` decodes " /path?query", with a leading space.
  const name = inner.slice(0, colon);
  const fn = functions[name.toLowerCase()];
  if (fn === undefined)
    throw new RewriteRuleError(
      rule,
      `"${whole}" calls "${name}", which is not a rewrite function (UrlDecode, UrlEncode, ToLower); rewrite maps are not modelled`,
    );
  return { kind: 'function', name: fn, argument: parseTemplate(rule, inner.slice(colon + 1)) };
}

// ---------------------------------------------------------------------------------------------
// Evaluation

interface RequestState {
  readonly request: RewriteRequest;
  /** Path and query as they stand after earlier rewrites (raw, as on the wire). */
  url: string;
}

interface Captures {
  readonly R: readonly string[];
  readonly C: readonly string[];
}

class DoubleEncodingError extends Error {}

/** Evaluates the inbound rules in order as IIS URL Rewrite does. Throws RewriteRuleError for a rule it cannot understand. */
export function evaluateInbound(rules: readonly SiteRule[], request: RewriteRequest): Evaluation {
  checkRequest(request);
  const parsed = rules.map((rule) => cached(inboundCache, rule, () => parseInboundRule(rule)));
  checkUniqueNames(rules);
  const state: RequestState = { request, url: request.url };
  const rewrittenBy: string[] = [];
  const trace: TraceStep[] = [];
  for (const rule of parsed) {
    if (!rule.enabled) {
      trace.push({ rule: rule.name, matched: false, why: 'disabled' });
      continue;
    }
    const input = matchInput(state.url);
    let outcome: RuleOutcome;
    try {
      outcome = applies(rule.match, input, 'url', rule.conditions, state);
    } catch (error) {
      if (!(error instanceof DoubleEncodingError)) throw error;
      // The module fails the request rather than decode twice (registry UrlDecodeAllowsDoubleEncoding
      // off by default); an inbound rule error is IIS's 500.50.
      trace.push({
        rule: rule.name,
        matched: true,
        why: `${error.message} → 500.50 URL Rewrite Module Error`,
      });
      return {
        verdict: {
          kind: 'customResponse',
          rule: rule.name,
          statusCode: 500,
          subStatusCode: 50,
          reason: 'URL Rewrite Module Error.',
        },
        rewrittenBy,
        trace,
      };
    }
    if (!outcome.matched) {
      trace.push({ rule: rule.name, matched: false, why: outcome.why });
      continue;
    }
    const action = rule.action;
    const done = (verdict: RewriteVerdict, what: string): Evaluation => {
      trace.push({ rule: rule.name, matched: true, why: `${outcome.why} → ${what}` });
      return { verdict, rewrittenBy, trace };
    };
    switch (action.type) {
      case 'AbortRequest':
        return done({ kind: 'aborted', rule: rule.name }, 'AbortRequest');
      case 'CustomResponse':
        return done(
          {
            kind: 'customResponse',
            rule: rule.name,
            statusCode: action.statusCode,
            subStatusCode: action.subStatusCode,
            reason: action.statusReason,
          },
          `CustomResponse ${action.statusCode}.${action.subStatusCode}`,
        );
      case 'Redirect': {
        const target = withQuery(
          expand(action.url, state, outcome.captures),
          action.appendQueryString ? queryOf(state.url) : '',
        );
        return done(
          { kind: 'redirected', rule: rule.name, url: target, statusCode: action.statusCode },
          `Redirect ${action.statusCode} to ${target}`,
        );
      }
      case 'Rewrite': {
        const target = withQuery(
          expand(action.url, state, outcome.captures),
          action.appendQueryString ? queryOf(state.url) : '',
        );
        state.url = asRequestUrl(target);
        rewrittenBy.push(rule.name);
        trace.push({ rule: rule.name, matched: true, why: `${outcome.why} → Rewrite to ${state.url}` });
        break;
      }
      case 'None':
        trace.push({ rule: rule.name, matched: true, why: `${outcome.why} → None` });
        break;
    }
    if (rule.stopProcessing) {
      trace[trace.length - 1]!.why += '; stopProcessing: later rules not evaluated';
      break;
    }
  }
  return { verdict: { kind: 'passed', url: state.url }, rewrittenBy, trace };
}

/** Outbound rules over response headers (the features EM uses): returns the response headers after the rules ran, and which rules matched. */
export function evaluateOutbound(
  rules: readonly SiteRule[],
  request: RewriteRequest,
  response: { readonly statusCode: number; readonly headers: Readonly<Record<string, string>> },
): OutboundResult {
  checkRequest(request);
  const parsed = rules.map((rule) => cached(outboundCache, rule, () => parseOutboundElement(rule)));
  // Rules and preconditions are separate collections in IIS, each keyed by name.
  checkUniqueNames(rules.filter((_, index) => 'header' in parsed[index]!));
  const preConditions = new Map<string, PreCondition>();
  for (const entry of parsed) if (!('header' in entry)) preConditions.set(entry.name.toLowerCase(), entry);
  const headers: Record<string, string> = { ...response.headers };
  const state: RequestState & { response: { statusCode: number; headers: Record<string, string> } } = {
    request,
    url: request.url,
    response: { statusCode: response.statusCode, headers },
  };
  const matched: string[] = [];
  for (const rule of parsed) {
    if (!('header' in rule) || !rule.enabled) continue;
    if (rule.preCondition !== undefined) {
      const preCondition = preConditions.get(rule.preCondition.toLowerCase());
      if (!preCondition)
        throw new RewriteRuleError(rule.name, `preCondition "${rule.preCondition}" is not defined`);
      const holds = evaluateConditions(
        { logicalGrouping: preCondition.logicalGrouping, trackAllCaptures: false, items: preCondition.items },
        state,
        { R: [], C: [] },
      );
      if (!holds.matched) continue;
    }
    const name = headerName(headers, rule.header);
    let outcome: RuleOutcome;
    let value = '';
    try {
      outcome = applies(
        rule.match,
        name === undefined ? '' : headers[name]!,
        `RESPONSE_${rule.header}`,
        rule.conditions,
        state,
      );
      if (outcome.matched && rule.action.type === 'Rewrite')
        value = expand(rule.action.value, state, outcome.captures);
    } catch (error) {
      if (!(error instanceof DoubleEncodingError)) throw error;
      // An outbound rule error is IIS's 500.52: the client gets an error instead of the response.
      return { headers, matched, statusCode: 500, failedRule: rule.name };
    }
    if (!outcome.matched) continue;
    matched.push(rule.name);
    if (rule.action.type === 'Rewrite') {
      const current = name === undefined ? '' : headers[name]!;
      const next = rule.action.replace ? value : current.replace(outcome.captures.R[0] ?? '', value);
      headers[name ?? rule.header] = next;
    }
    if (rule.stopProcessing) break;
  }
  return { headers, matched, statusCode: response.statusCode };
}

export interface OutboundResult {
  readonly headers: Record<string, string>;
  readonly matched: readonly string[];
  /** The response status after the rules: the original, or 500 (500.52) when a rule failed. */
  readonly statusCode: number;
  readonly failedRule?: string;
}

function checkRequest(request: RewriteRequest): void {
  if (!/^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*$/.test(request.method))
    throw new TypeError(`request method "${request.method}" is not an HTTP token`);
  if (!request.url.startsWith('/') || /[\u0000-\u0020\u007f]/.test(request.url))
    throw new TypeError(
      `request url "${request.url}" must be a path and query as sent on the wire (starting with "/", no spaces or control characters)`,
    );
}

/** IIS keys the rules collection by name: a second rule of the same name is a configuration error. */
function checkUniqueNames(rules: readonly SiteRule[]): void {
  const seen = new Set<string>();
  for (const rule of rules) {
    if (seen.has(rule.name)) throw new RewriteRuleError(rule.name, 'two rules on the site have this name');
    seen.add(rule.name);
  }
}

interface RuleOutcome {
  readonly matched: boolean;
  readonly why: string;
  readonly captures: Captures;
}

function applies(
  match: Matcher,
  input: string,
  what: string,
  conditions: Conditions,
  state: RequestState,
): RuleOutcome {
  const found = match.exec(input);
  const hit = match.negate ? found === null : found !== null;
  const described = `${what} "${input}" ${found !== null ? 'matches' : 'does not match'} ${describePattern(match)}${match.negate ? ' (negated)' : ''}`;
  if (!hit) return { matched: false, why: described, captures: { R: [], C: [] } };
  const R = match.negate ? [] : found!;
  const result = evaluateConditions(conditions, state, { R, C: [] });
  return {
    matched: result.matched,
    why: result.why ? `${described}; ${result.why}` : described,
    captures: { R, C: result.C },
  };
}

function describePattern(match: Matcher): string {
  const flags = [match.syntax === 'ECMAScript' ? '' : match.syntax, match.ignoreCase ? '' : 'case-sensitive']
    .filter(Boolean)
    .join(', ');
  return `"${match.pattern}"${flags ? ` (${flags})` : ''}`;
}

function evaluateConditions(
  conditions: Conditions,
  state: RequestState,
  captures: Captures,
): { matched: boolean; why: string; C: readonly string[] } {
  if (conditions.items.length === 0) return { matched: true, why: '', C: [] };
  let C: string[] = [];
  const notes: string[] = [];
  for (const [index, condition] of conditions.items.entries()) {
    const value = expand(condition.input, state, { R: captures.R, C });
    let hit: boolean;
    let groups: string[] | null = null;
    let description: string;
    if (condition.matchType === 'Pattern') {
      groups = condition.matcher!.exec(value);
      hit = condition.negate ? groups === null : groups !== null;
      description = `${groups === null ? 'does not match' : 'matches'} ${describePattern(condition.matcher!)}`;
    } else {
      const list = condition.matchType === 'IsFile' ? state.request.files : state.request.directories;
      const exists = (list ?? []).some((path) => path.toLowerCase() === value.toLowerCase());
      hit = condition.negate ? !exists : exists;
      description = `${exists ? 'is' : 'is not'} ${condition.matchType === 'IsFile' ? 'a file' : 'a directory'}`;
    }
    notes.push(
      `condition ${index + 1} ${condition.inputText} "${value}" ${description}${condition.negate ? ' (negated)' : ''}`,
    );
    if (hit && groups !== null && !condition.negate)
      C = conditions.trackAllCaptures ? [...C, ...(C.length === 0 ? groups : groups.slice(1))] : groups;
    if (conditions.logicalGrouping === 'MatchAll' && !hit)
      return { matched: false, why: notes.join('; '), C };
    if (conditions.logicalGrouping === 'MatchAny' && hit) return { matched: true, why: notes.join('; '), C };
  }
  return { matched: conditions.logicalGrouping === 'MatchAll', why: notes.join('; '), C };
}

function expand(template: Template, state: RequestState, captures: Captures): string {
  let result = '';
  for (const part of template) {
    switch (part.kind) {
      case 'text':
        result += part.text;
        break;
      case 'backReference':
        result += (part.of === 'R' ? captures.R : captures.C)[part.index] ?? '';
        break;
      case 'variable':
        result += serverVariable(part.name, state);
        break;
      case 'function':
        result += applyFunction(part.name, expand(part.argument, state, captures));
        break;
    }
  }
  return result;
}

function applyFunction(name: RewriteFunction, value: string): string {
  switch (name) {
    case 'ToLower':
      return value.toLowerCase();
    // "for special characters (non-ASCII or URI-unsafe)": the reference's own example,
    // {UrlEncode:{R:1}.aspx?p=[résumé]}, keeps the URL's delimiters, so encodeURI's set is the model.
    case 'UrlEncode':
      return encodeURI(value);
    case 'UrlDecode': {
      if (/%25[0-9A-Fa-f]{2}/i.test(value))
        throw new DoubleEncodingError(`UrlDecode refused double-encoded input "${value}"`);
      return percentDecode(value);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// URLs and server variables

/** Decodes %XX sequences as UTF-8 bytes; malformed sequences stay as written, `+` stays `+`. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.match(/%[0-9A-Fa-f]{2}/g)!, (pair) => parseInt(pair.slice(1), 16));
    return new TextDecoder('utf-8').decode(bytes);
  });
}

function pathOf(url: string): string {
  const question = url.indexOf('?');
  return question === -1 ? url : url.slice(0, question);
}

function queryOf(url: string): string {
  const question = url.indexOf('?');
  return question === -1 ? '' : url.slice(question + 1);
}

function withQuery(url: string, query: string): string {
  if (query === '') return url;
  return `${url}${url.includes('?') ? '&' : '?'}${query}`;
}

/**
 * The URL path as IIS hands it to URL Rewrite: percent-decoded once, backslashes as slashes, dot
 * segments resolved (http.sys canonicalisation), the query string cut off.
 */
function decodedPath(url: string): string {
  const decoded = percentDecode(pathOf(url)).replace(/\\/g, '/');
  const segments: string[] = [];
  for (const segment of decoded.split('/').slice(1)) {
    if (segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  return `/${segments.join('/')}`;
}

/** What `<match url>` sees: the decoded path without its leading slash. */
function matchInput(url: string): string {
  return decodedPath(url).slice(1);
}

/** A rewrite target becomes the request's new URL: site-relative paths get their slash, absolute URLs (ARR) keep only path and query. */
function asRequestUrl(target: string): string {
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*(.*)$/.exec(target);
  const rest = absolute ? absolute[1]! : target;
  return rest.startsWith('/') ? rest : `/${rest}`;
}

function header(request: RewriteRequest, name: string): string | undefined {
  if (!request.headers) return undefined;
  const found = headerName(request.headers, name);
  return found === undefined ? undefined : request.headers[found];
}

function headerName(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  const lower = name.toLowerCase();
  return Object.keys(headers).find((key) => key.toLowerCase() === lower);
}

function serverVariable(
  name: string,
  state: RequestState & { response?: { statusCode: number; headers: Record<string, string> } },
): string {
  const { request } = state;
  const supplied =
    request.serverVariables && Object.keys(request.serverVariables).find((key) => key.toUpperCase() === name);
  if (supplied !== undefined) return request.serverVariables![supplied]!;
  const https =
    (request.serverVariables &&
      Object.entries(request.serverVariables).find(([key]) => key.toUpperCase() === 'HTTPS')?.[1]) ??
    'off';
  const host = header(request, 'host') ?? 'localhost';
  switch (name) {
    // The original request, as sent (REQUEST_URI is what the ProxyNotShell rules read, still encoded).
    case 'REQUEST_URI':
    case 'UNENCODED_URL':
    case 'HTTP_URL':
      return request.url;
    case 'HTTP_X_ORIGINAL_URL':
      return withQuery(decodedPath(request.url), queryOf(request.url));
    // The current (possibly rewritten) URL, decoded.
    case 'URL':
    case 'PATH_INFO':
    case 'SCRIPT_NAME':
    case 'REQUEST_FILENAME':
      return decodedPath(state.url);
    case 'QUERY_STRING':
      return queryOf(state.url);
    case 'REQUEST_METHOD':
      return request.method.toUpperCase();
    case 'HTTPS':
      return https;
    case 'SERVER_PROTOCOL':
      return 'HTTP/1.1';
    case 'SERVER_NAME':
      return host.replace(/:\d+$/, '');
    case 'SERVER_PORT':
      return /:(\d+)$/.exec(host)?.[1] ?? (https.toLowerCase() === 'on' ? '443' : '80');
    case 'SERVER_PORT_SECURE':
      return https.toLowerCase() === 'on' ? '1' : '0';
    case 'CACHE_URL':
      return `${https.toLowerCase() === 'on' ? 'https' : 'http'}://${host}${state.url}`;
    case 'RESPONSE_STATUS':
      return state.response ? String(state.response.statusCode) : '';
  }
  if (name.startsWith('HTTP_')) return header(request, name.slice(5).replace(/_/g, '-')) ?? '';
  if (name.startsWith('RESPONSE_') && state.response) {
    const found = headerName(state.response.headers, name.slice(9).replace(/_/g, '-'));
    return found === undefined ? '' : state.response.headers[found]!;
  }
  // IIS gives an unknown server variable as the empty string.
  return '';
}
