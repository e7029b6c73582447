import { DOMParser, type Element } from '@xmldom/xmldom';
import { elementChildren } from '../package/parse.js';

/**
 * An IIS rewrite rule reduced to what it does: element names, attributes sorted, text trimmed,
 * the rule's own `name` left out. Two rules with the same form block the same requests, so an
 * existing rule is recognised by content even under another name.
 */
export function ruleFingerprint(ruleXml: string): string {
  const document = new DOMParser({ onError: () => undefined }).parseFromString(ruleXml, 'text/xml');
  const root = document.documentElement;
  if (!root) return `unparsable:${ruleXml}`;
  return describe(root, true);
}

function describe(node: Element, isRule: boolean): string {
  const attributes: string[] = [];
  for (let index = 0; index < node.attributes.length; index++) {
    const attribute = node.attributes.item(index)!;
    if (isRule && attribute.name === 'name') continue;
    attributes.push(`${attribute.name}=${JSON.stringify(attribute.value)}`);
  }
  attributes.sort();
  const children = elementChildren(node).map((child) => describe(child, false));
  const text = elementChildren(node).length === 0 ? (node.textContent ?? '').trim() : '';
  return `<${node.localName}${attributes.map((attribute) => ` ${attribute}`).join('')}>${text}${children.join('')}</${node.localName}>`;
}
