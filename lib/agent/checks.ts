import { DOMParser } from '@xmldom/xmldom';
import type { ProbeSpec } from '../package/model.js';
import { clip, endpointName } from '../text.js';
import { elementChildren } from '../package/parse.js';
import { describeAnswer, type EndpointHealth, type ProbeAnswer } from './probes.js';

/**
 * Pure judgements over what the prober saw: which endpoints a change took down, and whether a
 * rewrite rule blocks what it must and lets through what it must.
 */

export interface HealthChange {
  readonly endpoint: string;
  readonly before: string;
  readonly after: string;
}

/** Endpoints healthy before and not after, except those the change declares it takes down (compared without case, as IIS does). */
export function newlyUnhealthy(
  before: readonly EndpointHealth[],
  after: readonly EndpointHealth[],
  expectedDown: readonly string[] = [],
): HealthChange[] {
  const expected = new Set(expectedDown.map((endpoint) => endpoint.toLowerCase()));
  const earlier = new Map(before.map((health) => [health.endpoint.toLowerCase(), health]));
  return after
    .filter(
      (health) =>
        !health.healthy &&
        earlier.get(health.endpoint.toLowerCase())?.healthy === true &&
        !expected.has(health.endpoint.toLowerCase()),
    )
    .map((health) => ({
      endpoint: health.endpoint,
      before: earlier.get(health.endpoint.toLowerCase())!.detail,
      after: health.detail,
    }));
}

/** Declared endpoints that did go down: said in the detail so nobody wonders. */
export function downAsDeclared(
  before: readonly EndpointHealth[],
  after: readonly EndpointHealth[],
  expectedDown: readonly string[],
): string[] {
  const expected = new Set(expectedDown.map((endpoint) => endpoint.toLowerCase()));
  const earlier = new Map(before.map((health) => [health.endpoint.toLowerCase(), health]));
  return after
    .filter(
      (health) =>
        !health.healthy &&
        earlier.get(health.endpoint.toLowerCase())?.healthy &&
        expected.has(health.endpoint.toLowerCase()),
    )
    .map((health) => health.endpoint);
}

/** "ecp: 503 after apply (was 200)" */
export function describeChange(change: HealthChange, when: string): string {
  return `${endpointName(change.endpoint)}: ${change.after} after ${when} (was ${change.before})`;
}

/**
 * Probes for mitigations whose rule is public and well understood, used when the package brings
 * none. CVE-2022-41040 ("ProxyNotShell"), EM's M1 and the demo catalogue's EM1: the SSRF request
 * names autodiscover.json and PowerShell in its query string, also percent-encoded; ordinary
 * OWA and Autodiscover requests must still get through.
 */
const proxyNotShell: readonly ProbeSpec[] = [
  {
    method: 'GET',
    path: '/autodiscover/autodiscover.json?@evil.com/owa/&Email=autodiscover/autodiscover.json%3F@evil.com&Protocol=XYZ&FooProtocol=Powershell',
    headers: [],
    expect: 'blocked',
  },
  {
    method: 'GET',
    path: '/autodiscover/autodiscover.json?@evil.com/%50owershell',
    headers: [],
    expect: 'blocked',
  },
  {
    method: 'GET',
    path: '/autodiscover/autodiscover.json?Email=user%40contoso.com&Protocol=ActiveSync',
    headers: [],
    expect: 'passed',
  },
  { method: 'GET', path: '/owa/', headers: [], expect: 'passed' },
];

export const builtInProbes: Readonly<Record<string, readonly ProbeSpec[]>> = {
  EM1: proxyNotShell,
  M1: proxyNotShell,
  'M1.1': proxyNotShell,
};

export type ProbeSource = 'package' | 'built-in' | 'none';

export function probesFor(
  mitigationId: string,
  declared: readonly ProbeSpec[] | undefined,
): { probes: readonly ProbeSpec[]; source: ProbeSource } {
  if (declared && declared.length > 0) return { probes: declared, source: 'package' };
  const builtIn = builtInProbes[mitigationId];
  return builtIn ? { probes: builtIn, source: 'built-in' } : { probes: [], source: 'none' };
}

/** How a rule answers what it blocks: its CustomResponse status, if it has one (AbortRequest closes the connection). */
export function customResponseStatus(ruleXml: string): number | undefined {
  const rule = new DOMParser({ onError: () => undefined }).parseFromString(
    ruleXml,
    'text/xml',
  ).documentElement;
  const action = rule ? elementChildren(rule).find((child) => child.localName === 'action') : undefined;
  if (action?.getAttribute('type') !== 'CustomResponse') return undefined;
  const status = Number(action.getAttribute('statusCode'));
  return Number.isInteger(status) && status >= 400 ? status : undefined;
}

export type ProbeResult = 'blocked' | 'passed' | 'unanswered';

/** Blocked: the connection closed unanswered, or the rule's own CustomResponse status came back. */
export function judgeAnswer(answer: ProbeAnswer, ruleStatus: number | undefined): ProbeResult {
  if (answer.kind === 'aborted') return 'blocked';
  if (answer.kind === 'response')
    return ruleStatus !== undefined && answer.status === ruleStatus ? 'blocked' : 'passed';
  return 'unanswered';
}

/**
 * A must-block request that passed, or got no answer, was not shown blocked: the rule is
 * Ineffective. A must-pass request that was blocked: the rule Degrades the server. A must-pass
 * request with no answer says nothing about the rule (a rule aborts or answers, it never hangs;
 * a sick server shows in the health probes): it is noted, not counted.
 */
export interface Effectiveness {
  readonly missed: readonly string[];
  readonly harmed: readonly string[];
  readonly unproven: readonly string[];
  readonly blocked: number;
  readonly mustBlock: number;
  readonly passed: number;
  readonly mustPass: number;
}

export function judgeEffectiveness(
  probes: readonly ProbeSpec[],
  answers: readonly ProbeAnswer[],
  ruleStatus: number | undefined,
): Effectiveness {
  const missed: string[] = [];
  const harmed: string[] = [];
  const unproven: string[] = [];
  let blocked = 0;
  let passed = 0;
  probes.forEach((probe, index) => {
    const answer = answers[index]!;
    const result = judgeAnswer(answer, ruleStatus);
    const what = `${probe.expect === 'blocked' ? 'must-block' : 'must-pass'} ${probe.method} ${clip(probe.path, 100)}`;
    if (probe.expect === 'blocked') {
      if (result === 'blocked') blocked++;
      else
        missed.push(
          `${what} ${result === 'passed' ? 'passed' : 'got no answer'} (${describeAnswer(answer)})`,
        );
    } else if (result === 'passed') {
      passed++;
    } else if (result === 'blocked') {
      harmed.push(`${what} was blocked (${describeAnswer(answer)})`);
    } else {
      unproven.push(`${what} got no answer (${describeAnswer(answer)})`);
    }
  });
  return {
    missed,
    harmed,
    unproven,
    blocked,
    mustBlock: probes.filter((probe) => probe.expect === 'blocked').length,
    passed,
    mustPass: probes.filter((probe) => probe.expect === 'passed').length,
  };
}
