import type { Attr, Element, Node } from '@xmldom/xmldom';
import { element } from './format.js';
import { reject } from './reasons.js';

/** Characters the canonical form would have to escape in a namespace URI, which xml-crypto writes as they are. */
const unescapedInNamespace = /[&<>"\r\n\t]/;

/**
 * Brings the document element, its Signature already detached, to the node set its canonical form
 * (C14N without comments, the only kind on the allow-list) stands for, so that the DOM the model is
 * read from is the very one that was canonicalized and digested, and says nothing the digest does
 * not cover: comments go, CDATA sections become the text they hold, adjacent text is merged, and
 * attributes take the canonical order (so a rule's serialized XML is the same however the signed
 * document ordered them).
 *
 * Refused (Malformed), because xml-crypto's canonical form of them does not say what the DOM says,
 * so a document could be changed in them and keep its digest:
 * - processing instructions: their data is written as if it were text;
 * - attributes named `xmlns…` that are not namespace declarations: left out;
 * - namespace declarations below the root: one that is unused or repeats its parent's is left out
 *   (and the model's serialized rules would carry it unsigned); EOCS declares none there;
 * - a namespace URI with a character that would need escaping: written unescaped, so it could stand
 *   for an attribute.
 */
export function reduceToSignedNodes(
  root: Element,
  options: { readonly path?: string; readonly namespacesOnRoot?: boolean } = {},
): void {
  reduce(root, options.namespacesOnRoot === false ? undefined : root, options.path ?? `<${element.root}>`);
  root.normalize();
}

function reduce(node: Element, root: Element | undefined, path: string): void {
  checkAttributes(node, node === root, path);
  putAttributesInCanonicalOrder(node);
  for (let child = node.firstChild; child !== null; ) {
    const next: Node | null = child.nextSibling;
    switch (child.nodeType) {
      case child.COMMENT_NODE:
        node.removeChild(child);
        break;
      case child.CDATA_SECTION_NODE:
        // xmldom's ChildNode type has no `data`; a CDATA section node does (CharacterData).
        node.replaceChild(
          node.ownerDocument!.createTextNode((child as unknown as { data: string }).data),
          child,
        );
        break;
      case child.PROCESSING_INSTRUCTION_NODE:
        reject(
          'Malformed',
          `${path}: processing instructions are not allowed in a package (<?${child.nodeName} …?>)`,
        );
        break;
      case child.ELEMENT_NODE:
        reduce(child as Element, root, `${path}/${child.nodeName}`);
        break;
      default:
        break;
    }
    child = next;
  }
}

function checkAttributes(node: Element, isRoot: boolean, path: string): void {
  for (let index = 0; index < node.attributes.length; index++) {
    const { name, value } = node.attributes.item(index)!;
    if (!name.startsWith('xmlns')) continue;
    if (name !== 'xmlns' && !name.startsWith('xmlns:'))
      reject('Malformed', `${path}: attribute name ${name} is reserved (it starts with xmlns)`);
    if (!isRoot)
      reject(
        'Malformed',
        `${path}: namespace declarations are allowed only on <${element.root}>, found ${name}`,
      );
    if (unescapedInNamespace.test(value))
      reject(
        'Malformed',
        `${path}: namespace ${name}="${value}" has a character that cannot be canonicalized safely`,
      );
  }
}

/** C14N's order: attributes in no namespace first, then by namespace URI and local name. */
function compareAttributes(left: Attr, right: Attr): number {
  if (!left.namespaceURI !== !right.namespaceURI) return left.namespaceURI ? 1 : -1;
  const leftKey = `${left.namespaceURI ?? ''}${left.localName}`;
  const rightKey = `${right.namespaceURI ?? ''}${right.localName}`;
  return leftKey < rightKey ? -1 : leftKey > rightKey ? 1 : 0;
}

function putAttributesInCanonicalOrder(node: Element): void {
  const attributes = Array.from(
    { length: node.attributes.length },
    (_, index) => node.attributes.item(index)!,
  );
  if (
    attributes.every(
      (attribute, index) => index === 0 || compareAttributes(attributes[index - 1]!, attribute) <= 0,
    )
  )
    return;
  for (const attribute of attributes) node.removeAttributeNode(attribute);
  for (const attribute of attributes.sort(compareAttributes)) node.setAttributeNodeNS(attribute);
}
