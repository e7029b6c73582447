import { XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import { compareBuilds, formatBuild, parseBuild, type BuildRange } from '../model/build.js';
import {
  actionAttributes,
  configAttributes,
  defaultIisSite,
  DSIG_NS,
  element,
  expectedDownAttributes,
  forbiddenProbeHeaders,
  iisValueAttributes,
  probeAttributes,
  probeExpectations,
  probeHeaderAttributes,
  probeLimits,
  rangeAttributes,
  rootAttributes,
  type ProbeExpectation,
} from './format.js';
import { mitigationIdPattern } from '../model/names.js';
import {
  isSupportedActionType,
  type EocsPackage,
  type Mitigation,
  type MitigationAction,
  type ProbeSpec,
} from './model.js';
import { PackageRejectedError, reject } from './reasons.js';
import { reduceToSignedNodes } from './signed-nodes.js';
import { defaultXmlLimits, parseXml } from './xml.js';

/**
 * EOCS document → typed model. Known elements that are wrong are `Malformed` (with the path);
 * unknown elements and attributes are listed in `unknown`, and an action of an unknown type or
 * with unknown attributes becomes `Unsupported`: kept, reported, never applied.
 */
export function parseEocs(document: Document): EocsPackage {
  const root = document.documentElement;
  if (!root || root.localName !== element.root || root.namespaceURI) {
    reject('Malformed', `root element must be <${element.root}>, found <${root?.nodeName ?? 'nothing'}>`);
  }
  const unknown: string[] = [];
  noteUnknownAttributes(root, rootAttributes, element.root, unknown);

  const mitigations: Mitigation[] = [];
  const seen = new Set<string>();
  for (const child of elementChildren(root)) {
    if (child.localName === element.signature && child.namespaceURI === DSIG_NS) continue;
    if (child.localName !== element.config || child.namespaceURI) {
      unknown.push(`${element.root}/${child.nodeName}`);
      continue;
    }
    const mitigation = parseConfig(child, unknown);
    if (seen.has(mitigation.id))
      reject(
        'Malformed',
        `${element.config}[id=${mitigation.id}]: mitigation id ${mitigation.id} appears more than once`,
      );
    seen.add(mitigation.id);
    mitigations.push(mitigation);
  }

  const version = root.getAttribute('version') ?? '';
  const sequence = parseSequence(root.getAttribute('sequence'));
  return {
    version,
    ...(sequence === undefined ? {} : { sequence }),
    mitigations,
    unknown,
  };
}

function parseSequence(text: string | null): number | undefined {
  if (text === null) return undefined;
  if (!/^\d{1,15}$/.test(text))
    reject('Malformed', `${element.root}@sequence "${text}" is not a non-negative integer`);
  return Number(text);
}

function parseConfig(config: Element, unknown: string[]): Mitigation {
  const id = config.getAttribute('id') ?? '';
  if (!mitigationIdPattern.test(id)) {
    reject(
      'Malformed',
      `${element.config}@id "${id}" is not a valid mitigation id (letters, digits, . _ -; at most 64)`,
    );
  }
  const path = `${element.config}[id=${id}]`;
  noteUnknownAttributes(config, configAttributes, path, unknown);

  let applicability: BuildRange[] = [];
  const actions: MitigationAction[] = [];
  let actionLists = 0;
  for (const child of elementChildren(config)) {
    if (child.localName === element.applicability && !child.namespaceURI) {
      if (applicability.length > 0)
        reject('Malformed', `${path} has more than one <${element.applicability}>`);
      noteUnknownAttributes(child, [], `${path}/${element.applicability}`, unknown);
      applicability = parseApplicability(child, `${path}/${element.applicability}`, unknown);
    } else if (child.localName === element.actionList && !child.namespaceURI) {
      actionLists++;
      noteUnknownAttributes(child, [], `${path}/${element.actionList}`, unknown);
      let index = 0;
      for (const action of elementChildren(child)) {
        index++;
        const actionPath = `${path}/${element.actionList}/${action.nodeName}[${index}]`;
        if (action.localName !== element.action || action.namespaceURI) {
          unknown.push(actionPath);
          continue;
        }
        actions.push(parseAction(action, actionPath, unknown));
      }
    } else {
      unknown.push(`${path}/${child.nodeName}`);
    }
  }
  if (actionLists !== 1)
    reject('Malformed', `${path} must have exactly one <${element.actionList}>, found ${actionLists}`);
  return { id, description: config.getAttribute('desc') ?? '', applicability, actions };
}

function parseApplicability(node: Element, path: string, unknown: string[]): BuildRange[] {
  const ranges: BuildRange[] = [];
  for (const child of elementChildren(node)) {
    if (child.localName !== element.range || child.namespaceURI) {
      unknown.push(`${path}/${child.nodeName}`);
      continue;
    }
    const rangePath = `${path}/${element.range}[${ranges.length + 1}]`;
    noteUnknownAttributes(child, rangeAttributes, rangePath, unknown);
    const [min, max] = rangeAttributes.map((name) => {
      const text = child.getAttribute(name) ?? '';
      const build = parseBuild(text);
      if (!build)
        reject('Malformed', `${rangePath}@${name} "${text}" is not an Exchange build like 15.2.1544.4`);
      return build;
    }) as [BuildRange['min'], BuildRange['max']];
    if (compareBuilds(min, max) > 0) {
      reject('Malformed', `${rangePath}: min ${formatBuild(min)} is above max ${formatBuild(max)}`);
    }
    ranges.push({ min, max });
  }
  if (ranges.length === 0)
    reject('Malformed', `${path} has no <${element.range}>; omit it to apply to every build`);
  return ranges;
}

/**
 * Anything about an action that emfleet does not understand (type, attributes, extra elements, a
 * qualifier on its value) makes it Unsupported: a condition we ignore could change what it means.
 * `<Probe>` and `<ExpectedDown>` are emfleet's own and checked strictly: a probe we misread would
 * prove nothing, so a wrong one makes the package Malformed.
 */
function parseAction(action: Element, path: string, unknown: string[]): MitigationAction {
  const type = action.getAttribute('type') ?? '';
  const base = { scope: action.getAttribute('scope') ?? '', description: action.getAttribute('desc') ?? '' };
  const unsupported = (why: string): MitigationAction => {
    unknown.push(`${path}: ${why}`);
    return { kind: 'Unsupported', type, ...base, why };
  };
  const extra = attributeNames(action).filter(
    (name) => !(actionAttributes as readonly string[]).includes(name),
  );
  if (!isSupportedActionType(type)) return unsupported(`unknown action type "${type}"`);
  if (extra.length > 0) return unsupported(`unknown attributes ${extra.join(', ')}`);
  const known: readonly string[] = [element.value, element.probe, element.expectedDown];
  const others = elementChildren(action).filter(
    (child) => !known.includes(child.localName ?? '') || child.namespaceURI,
  );
  if (others.length > 0)
    return unsupported(`unknown elements ${others.map((child) => `<${child.nodeName}>`).join(', ')}`);

  const values = elementChildren(action).filter((child) => child.localName === element.value);
  if (values.length !== 1)
    reject('Malformed', `${path} must have exactly one <${element.value}>, found ${values.length}`);
  const value = values[0]!;
  const valuePath = `${path}/${element.value}`;
  const knownValueAttributes = type === 'IisUrlRewrite' ? (iisValueAttributes as readonly string[]) : [];
  const valueExtra = attributeNames(value).filter((name) => !knownValueAttributes.includes(name));
  if (valueExtra.length > 0)
    return unsupported(`unknown attributes ${valueExtra.join(', ')} on <${element.value}>`);

  const probes = parseProbes(action, path);
  if (probes.length > 0 && type !== 'IisUrlRewrite')
    reject(
      'Malformed',
      `${path}/${element.probe}[1]: <${element.probe}> is only for IisUrlRewrite actions, not ${type}`,
    );
  const expectedDown = parseExpectedDown(action, path);
  const declared = { ...base, ...(expectedDown.length > 0 ? { expectedDown } : {}) };

  switch (type) {
    case 'DoNothing':
      for (const child of elementChildren(value)) unknown.push(`${valuePath}/${child.nodeName}`);
      return { kind: 'DoNothing', ...declared, value: (value.textContent ?? '').trim() };
    case 'DisableAppPool':
      return { kind: 'DisableAppPool', ...declared, appPool: windowsName(value, valuePath, 'app pool') };
    case 'DisableService':
      return { kind: 'DisableService', ...declared, service: windowsName(value, valuePath, 'service') };
    case 'IisUrlRewrite': {
      const rule = ruleOf(value, valuePath);
      const ruleName = rule.getAttribute('name') ?? '';
      if (ruleName.trim() === '') reject('Malformed', `${valuePath}/${element.iisRule} has no name`);
      const site = value.getAttribute('site') ?? defaultIisSite;
      if (site.trim() === '' || hasControlCharacters(site))
        reject('Malformed', `${valuePath}@site "${site}" is not a site name`);
      return {
        kind: 'IisUrlRewrite',
        ...declared,
        site,
        ruleName,
        ruleXml: new XMLSerializer().serializeToString(rule),
        ...(probes.length > 0 ? { probes } : {}),
      };
    }
  }
}

/**
 * The `<rule>` of an IisUrlRewrite Value: an element (emfleet's packages), or its markup as text
 * (CDATA or escaped), since Microsoft has not published which its packages use. Text is parsed with
 * the same strict parser and caps, and reduced the same way as signed content, so both forms give
 * the same model.
 */
function ruleOf(value: Element, valuePath: string): Element {
  const elements = elementChildren(value);
  const text = elements.length === 0 ? (value.textContent ?? '').trim() : '';
  if (text !== '') return ruleFromText(text, valuePath);
  if (
    elements.length !== 1 ||
    elements[0]!.localName !== element.iisRule ||
    elements[0]!.namespaceURI ||
    hasText(value)
  ) {
    reject(
      'Malformed',
      `${valuePath} must hold exactly one <${element.iisRule}> element, or its markup as text`,
    );
  }
  return elements[0]!;
}

function ruleFromText(text: string, valuePath: string): Element {
  let rule: Element;
  try {
    rule = parseXml(text, { ...defaultXmlLimits, maxBytes: ruleTextMaxCharacters }).documentElement!;
    reduceToSignedNodes(rule, { path: `${valuePath}/${element.iisRule}`, namespacesOnRoot: false });
  } catch (error) {
    if (error instanceof PackageRejectedError)
      reject(
        'Malformed',
        `${valuePath} holds text that is not a <${element.iisRule}> element: ${error.detail}`,
        error,
      );
    throw error;
  }
  if (rule.localName !== element.iisRule || rule.namespaceURI)
    reject(
      'Malformed',
      `${valuePath} holds text whose element is <${rule.nodeName}>, not <${element.iisRule}>`,
    );
  return rule;
}

/** A rule is a few hundred characters; the package cap applies to the whole text anyway. */
const ruleTextMaxCharacters = 64 * 1024;

/** `<Probe method="GET" path="/..." expect="blocked|passed" cookie="..."><Header name="" value=""/></Probe>` */
function parseProbes(action: Element, path: string): ProbeSpec[] {
  const nodes = elementChildren(action).filter((child) => child.localName === element.probe);
  if (nodes.length > probeLimits.perAction)
    reject(
      'Malformed',
      `${path} has ${nodes.length} <${element.probe}> elements; at most ${probeLimits.perAction}`,
    );
  return nodes.map((node, index) => {
    const where = `${path}/${element.probe}[${index + 1}]`;
    strictAttributes(node, probeAttributes, where);
    const method = node.getAttribute('method') ?? 'GET';
    if (!/^[A-Z]{1,16}$/.test(method))
      reject('Malformed', `${where}@method "${method}" is not an HTTP method in capitals, such as GET`);
    const requestPath = node.getAttribute('path');
    if (requestPath === null) reject('Malformed', `${where} has no path`);
    // "//host" would be read as another authority by URL parsers; a probe only ever targets the server itself.
    if (
      !requestPath.startsWith('/') ||
      requestPath.startsWith('//') ||
      requestPath.length > probeLimits.pathLength ||
      /[\s#\u0000-\u001f\u007f]/.test(requestPath)
    ) {
      reject(
        'Malformed',
        `${where}@path "${requestPath.slice(0, 80)}" must start with one "/", hold no spaces, control characters or "#", and be at most ${probeLimits.pathLength} characters (percent-encode what a request would)`,
      );
    }
    const expect = node.getAttribute('expect') ?? '';
    if (!(probeExpectations as readonly string[]).includes(expect))
      reject('Malformed', `${where}@expect "${expect}" must be ${probeExpectations.join(' or ')}`);
    const cookie = node.getAttribute('cookie');
    if (cookie !== null) headerValue(cookie, `${where}@cookie`);
    const headerNodes = elementChildren(node);
    if (headerNodes.length > probeLimits.headersPerProbe)
      reject(
        'Malformed',
        `${where} has ${headerNodes.length} headers; at most ${probeLimits.headersPerProbe}`,
      );
    const headers = headerNodes.map((header, headerIndex) => {
      const headerPath = `${where}/${element.probeHeader}[${headerIndex + 1}]`;
      if (header.localName !== element.probeHeader || header.namespaceURI)
        reject(
          'Malformed',
          `${where}: <${header.nodeName}> is not allowed in <${element.probe}>, only <${element.probeHeader}>`,
        );
      strictAttributes(header, probeHeaderAttributes, headerPath);
      if (elementChildren(header).length > 0 || hasText(header))
        reject('Malformed', `${headerPath} must be empty`);
      const name = header.getAttribute('name') ?? '';
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/.test(name))
        reject('Malformed', `${headerPath}@name "${name.slice(0, 80)}" is not an HTTP header name`);
      if ((forbiddenProbeHeaders as readonly string[]).includes(name.toLowerCase()))
        reject(
          'Malformed',
          `${headerPath}@name "${name}" may not be set by a probe${name.toLowerCase() === 'cookie' ? ' (use the cookie attribute)' : ''}`,
        );
      return { name, value: headerValue(header.getAttribute('value') ?? '', `${headerPath}@value`) };
    });
    if (hasText(node))
      reject('Malformed', `${where} may hold only <${element.probeHeader}> elements, not text`);
    return {
      method,
      path: requestPath,
      headers,
      ...(cookie === null ? {} : { cookie }),
      expect: expect as ProbeExpectation,
    };
  });
}

/** `<ExpectedDown endpoint="/owa/healthcheck.htm"/>`: health endpoints the action takes down by design. */
function parseExpectedDown(action: Element, path: string): string[] {
  const nodes = elementChildren(action).filter((child) => child.localName === element.expectedDown);
  if (nodes.length > probeLimits.expectedDownPerAction)
    reject(
      'Malformed',
      `${path} has ${nodes.length} <${element.expectedDown}> elements; at most ${probeLimits.expectedDownPerAction}`,
    );
  return nodes.map((node, index) => {
    const where = `${path}/${element.expectedDown}[${index + 1}]`;
    strictAttributes(node, expectedDownAttributes, where);
    if (elementChildren(node).length > 0 || hasText(node)) reject('Malformed', `${where} must be empty`);
    const endpoint = node.getAttribute('endpoint') ?? '';
    if (!/^\/[^\s?#\u0000-\u001f\u007f]{0,255}$/.test(endpoint) || endpoint.startsWith('//')) {
      reject(
        'Malformed',
        `${where}@endpoint "${endpoint.slice(0, 80)}" must be a path such as /owa/healthcheck.htm`,
      );
    }
    return endpoint;
  });
}

function strictAttributes(node: Element, known: readonly string[], where: string): void {
  const extra = attributeNames(node).filter((name) => !known.includes(name));
  if (extra.length > 0)
    reject('Malformed', `${where} has unknown attributes ${extra.join(', ')} (allowed: ${known.join(', ')})`);
}

function hasText(node: Element): boolean {
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (
      (child.nodeType === child.TEXT_NODE || child.nodeType === child.CDATA_SECTION_NODE) &&
      (child.textContent ?? '').trim() !== ''
    )
      return true;
  }
  return false;
}

function headerValue(text: string, where: string): string {
  if (text.length > probeLimits.valueLength || /[\u0000-\u0008\u000a-\u001f\u007f]/.test(text)) {
    reject(
      'Malformed',
      `${where} must be at most ${probeLimits.valueLength} characters without line breaks or control characters`,
    );
  }
  return text;
}

/** App pool and service names go to IIS and the service manager as data; still, refuse nonsense early. */
function windowsName(value: Element, path: string, what: string): string {
  if (elementChildren(value).length > 0) reject('Malformed', `${path} must be a plain ${what} name`);
  const name = (value.textContent ?? '').trim();
  if (name === '' || name.length > 256 || hasControlCharacters(name) || /["\\/]/.test(name)) {
    reject('Malformed', `${path} "${name}" is not a valid ${what} name`);
  }
  return name;
}

function hasControlCharacters(text: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(text);
}

function noteUnknownAttributes(
  node: Element,
  known: readonly string[],
  path: string,
  unknown: string[],
): void {
  for (const name of attributeNames(node)) {
    if (!known.includes(name)) unknown.push(`${path}@${name}`);
  }
}

function attributeNames(node: Element): string[] {
  const names: string[] = [];
  for (let index = 0; index < node.attributes.length; index++) {
    const name = node.attributes.item(index)!.name;
    if (name !== 'xmlns' && !name.startsWith('xmlns:')) names.push(name);
  }
  return names;
}

export function elementChildren(node: Element): Element[] {
  const children: Element[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) {
    if (child.nodeType === child.ELEMENT_NODE) children.push(child as Element);
  }
  return children;
}
