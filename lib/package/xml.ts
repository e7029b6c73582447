import { DOMParser, type Document } from '@xmldom/xmldom';
import { reject } from './reasons.js';

export interface XmlLimits {
  readonly maxBytes: number;
  readonly maxDepth: number;
  readonly maxElements: number;
}

/**
 * The largest package emfleet accepts: what one Azure Tables row can hold as binary (15 properties
 * of 64 KiB), leaving room in the 1 MiB entity for the rest of the row. Real EOCS packages are a
 * few KiB.
 */
export const maxPackageBytes = 15 * 64 * 1024;

export const defaultXmlLimits: XmlLimits = { maxBytes: maxPackageBytes, maxDepth: 32, maxElements: 10_000 };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Bytes → text, refusing anything but UTF-8 (which is what OCS serves and what we sign). */
export function decodePackageText(bytes: Uint8Array, limits: XmlLimits = defaultXmlLimits): string {
  if (bytes.byteLength > limits.maxBytes) {
    reject('TooLarge', `package is ${bytes.byteLength} bytes; the limit is ${limits.maxBytes}`);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (error) {
    reject('Malformed', 'package is not valid UTF-8', error);
  }
  const declaration = /^<\?xml[^>]*\bencoding\s*=\s*["']([^"']+)["']/.exec(text);
  if (declaration && !/^utf-?8$/i.test(declaration[1]!)) {
    reject('Malformed', `package declares encoding "${declaration[1]}"; only UTF-8 is accepted`);
  }
  return text;
}

/**
 * A linear pass over the raw text before any parser sees it: rejects DOCTYPE and entity
 * declarations (XXE, billion laughs) and enforces the depth and element caps, so hostile input
 * costs O(n) and never builds a DOM.
 */
export function prescanXml(text: string, limits: XmlLimits = defaultXmlLimits): void {
  const control = forbiddenCharacter.exec(text);
  if (control)
    reject(
      'Malformed',
      `character U+${control[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()} is not allowed in XML (offset ${control.index})`,
    );
  let depth = 0;
  let elements = 0;
  let markupEnd = 0;
  let at = text.indexOf('<');
  const checkReferences = referenceChecker(text);
  while (at !== -1) {
    checkReferences(markupEnd, at);
    const skipTo = (terminator: string, what: string): number => {
      const end = text.indexOf(terminator, at);
      if (end === -1) reject('Malformed', `unterminated ${what} at offset ${at}`);
      return end + terminator.length;
    };
    let next: number;
    if (text.startsWith('<!--', at)) {
      next = skipTo('-->', 'comment');
    } else if (text.startsWith('<![CDATA[', at)) {
      next = skipTo(']]>', 'CDATA section');
    } else if (text.startsWith('<?', at)) {
      next = skipTo('?>', 'processing instruction');
    } else if (text.startsWith('<!', at)) {
      reject('Malformed', `DOCTYPE and entity declarations are not allowed (offset ${at})`);
    } else if (text.startsWith('</', at)) {
      next = skipTo('>', 'end tag');
      depth--;
    } else {
      next = endOfStartTag(text, at);
      checkReferences(at, next);
      elements++;
      if (elements > limits.maxElements) reject('TooLarge', `more than ${limits.maxElements} elements`);
      if (text[next - 2] !== '/') {
        depth++;
        if (depth > limits.maxDepth)
          reject('TooLarge', `elements nested deeper than ${limits.maxDepth} (offset ${at})`);
      }
    }
    markupEnd = next;
    at = text.indexOf('<', next);
  }
  checkReferences(markupEnd, text.length);
}

/** XML 1.0 forbids these anywhere, even escaped; xmldom lets some through, so we do not rely on it. */
const forbiddenCharacter = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
/** Sticky: tried exactly where an `&` was found; a bare `&` is the last alternative, so it always matches. */
const reference = /&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#x([0-9A-Fa-f]{1,6}));|&/y;

/**
 * Without a DOCTYPE only the five predefined entities exist: a bare `&` or a character reference
 * to a character XML forbids (`&#0;`) is not well-formed, whatever a lenient parser makes of it.
 * The ranges come in document order, and each `&` is found once: a search restarted at every
 * range would run on to the next `&` however far away, which made the scan quadratic (a 64 KiB
 * package with few references took 60 ms here).
 */
function referenceChecker(text: string): (from: number, to: number) => void {
  let next = text.indexOf('&');
  return (from, to) => {
    while (next !== -1 && next < from) next = text.indexOf('&', next + 1);
    for (; next !== -1 && next < to; next = text.indexOf('&', next + 1)) {
      reference.lastIndex = next;
      const match = reference.exec(text)!;
      if (match[1] !== undefined) continue;
      const code =
        match[2] !== undefined
          ? Number(match[2])
          : match[3] !== undefined
            ? parseInt(match[3], 16)
            : undefined;
      if (code === undefined) reject('Malformed', `bare "&" at offset ${match.index}; write &amp;`);
      if (!isXmlCharacter(code))
        reject(
          'Malformed',
          `character reference ${match[0]} at offset ${match.index} names a character XML does not allow`,
        );
    }
  };
}

function isXmlCharacter(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

function endOfStartTag(text: string, start: number): number {
  let quote: string | undefined;
  for (let index = start + 1; index < text.length; index++) {
    const char = text[index];
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (char === '>') {
      return index + 1;
    }
  }
  return reject('Malformed', `unterminated start tag at offset ${start}`);
}

/** Strict parse: any warning or error from the parser rejects the document. */
export function parseXml(text: string, limits: XmlLimits = defaultXmlLimits): Document {
  prescanXml(text, limits);
  const problems: string[] = [];
  const parser = new DOMParser({
    onError: (level, message) => {
      problems.push(`${level}: ${message}`);
      throw new Error(message);
    },
  });
  let document: Document;
  try {
    document = parser.parseFromString(text, 'text/xml');
  } catch (error) {
    const detail = problems[0] ?? (error instanceof Error ? error.message : String(error));
    reject('Malformed', `not well-formed XML: ${oneLine(detail)}`, error);
  }
  if (!document.documentElement) reject('Malformed', 'document has no root element');
  return document;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
