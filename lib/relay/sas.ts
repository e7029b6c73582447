import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Shared Access Signature tokens for Azure Relay, made and checked the way the service and its
 * SDKs do: HMAC-SHA256 keyed with the rule's key text (UTF-8, not base64-decoded) over
 * `{url-encoded resource}\n{expiry}`, where the signed resource is the `sr` value exactly as it
 * appears in the token (so the casing of its %-escapes matters, as in Azure).
 */

export interface SasTokenOptions {
  readonly expiresInSeconds?: number;
  readonly now?: Date;
}

const prefix = 'SharedAccessSignature ';

export function createSasToken(
  resourceUri: string,
  keyName: string,
  key: string,
  options: SasTokenOptions = {},
): string {
  const { expiresInSeconds = 3600, now = new Date() } = options;
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds <= 0)
    throw new RangeError(`expiresInSeconds must be a positive integer, got ${expiresInSeconds}`);
  const expiry = String(Math.floor(now.getTime() / 1000) + expiresInSeconds);
  const resource = encodeURIComponent(resourceUri);
  const signature = sign(key, resource, expiry).toString('base64');
  return `${prefix}sr=${resource}&sig=${encodeURIComponent(signature)}&se=${expiry}&skn=${encodeURIComponent(keyName)}`;
}

export type SasRejection = 'BadFormat' | 'UnknownKeyName' | 'BadSignature' | 'Expired' | 'WrongResource';

export type SasVerification =
  | { readonly ok: true; readonly keyName: string }
  | { readonly ok: false; readonly reason: SasRejection; readonly detail: string };

export interface SasVerifyOptions {
  /** The hybrid connection the token must grant: its `sr` path must be this name or a parent of it. */
  readonly resource: string;
  readonly now?: Date;
}

export function verifySasToken(
  token: string,
  rules: Readonly<Record<string, string>>,
  options: SasVerifyOptions,
): SasVerification {
  const fields = parseFields(token);
  if (typeof fields === 'string') return { ok: false, reason: 'BadFormat', detail: fields };
  const { sr, sig, se, skn } = fields;

  // Object.hasOwn: a key name such as "constructor" must not find a prototype member.
  if (!Object.hasOwn(rules, skn))
    return { ok: false, reason: 'UnknownKeyName', detail: `no rule named ${JSON.stringify(skn)}` };
  const expected = sign(rules[skn]!, sr, se);
  const given = Buffer.from(sig, 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return {
      ok: false,
      reason: 'BadSignature',
      detail: `signature does not match rule ${JSON.stringify(skn)}`,
    };

  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Number(se) <= nowSeconds)
    return {
      ok: false,
      reason: 'Expired',
      detail: `expired at ${new Date(Number(se) * 1000).toISOString()}`,
    };

  const granted = resourcePath(decodeURIComponent(sr));
  if (granted === undefined) return { ok: false, reason: 'BadFormat', detail: 'sr is not a URL' };
  const wanted = segments(options.resource);
  // Entity names are case-insensitive in Azure; a namespace-wide token (no path) grants every entity.
  const grants =
    granted.length <= wanted.length &&
    granted.every((segment, index) => segment.toLowerCase() === wanted[index]!.toLowerCase());
  if (!grants)
    return {
      ok: false,
      reason: 'WrongResource',
      detail: `token is for /${granted.join('/')}, not /${wanted.join('/')}`,
    };
  return { ok: true, keyName: skn };
}

function sign(key: string, encodedResource: string, expiry: string): Buffer {
  return createHmac('sha256', Buffer.from(key, 'utf8'))
    .update(`${encodedResource}\n${expiry}`, 'utf8')
    .digest();
}

/** The four fields, sr still encoded (it is signed as is), the others decoded; or why not. */
function parseFields(token: string): { sr: string; sig: string; se: string; skn: string } | string {
  if (token.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase())
    return 'not a SharedAccessSignature token';
  const found = new Map<string, string>();
  for (const pair of token.slice(prefix.length).trim().split('&')) {
    if (pair === '') continue;
    const equals = pair.indexOf('=');
    if (equals <= 0) return `field ${JSON.stringify(pair)} has no name=value`;
    const name = pair.slice(0, equals).toLowerCase();
    if (found.has(name)) return `field ${name} given twice`;
    found.set(name, pair.slice(equals + 1));
  }
  const sr = found.get('sr');
  const sig = found.get('sig');
  const se = found.get('se');
  const skn = found.get('skn');
  if (sr === undefined || sig === undefined || se === undefined || skn === undefined)
    return 'sr, sig, se and skn are all required';
  if (!/^\d{1,12}$/.test(se)) return 'se must be whole seconds since 1970';
  try {
    decodeURIComponent(sr);
    return { sr, sig: decodeURIComponent(sig), se, skn: decodeURIComponent(skn) };
  } catch {
    return 'bad %-encoding';
  }
}

function resourcePath(uri: string): string[] | undefined {
  try {
    return segments(decodeURIComponent(new URL(uri).pathname));
  } catch {
    return undefined;
  }
}

function segments(path: string): string[] {
  return path.split('/').filter((segment) => segment !== '');
}
