import { createHmac } from 'node:crypto';
import https from 'node:https';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createSasToken, verifySasToken } from '../../lib/relay/sas.js';

/** hyco-https's index.js, loaded as Microsoft's samples do; it replaces https.Server, which we put back. */
function hycoCreateRelayToken(): (
  uri: string,
  keyName: string,
  key: string,
  expirationSeconds?: number,
) => string {
  const saved = { Server: https.Server };
  const hyco = createRequire(import.meta.url)('hyco-https') as {
    createRelayToken: (uri: string, keyName: string, key: string, expirationSeconds?: number) => string;
  };
  Object.assign(https, saved);
  return hyco.createRelayToken;
}

const key = 'k3y/with+base64=chars';
const rules = { listen: key };
const fields = (token: string): Record<string, string> =>
  Object.fromEntries(
    token
      .replace(/^SharedAccessSignature /, '')
      .split('&')
      .map((pair) => pair.split('=') as [string, string]),
  );

describe('createSasToken', () => {
  it("signs the encoded resource and expiry with the key text, in Azure's field order", () => {
    const now = new Date('2026-01-02T03:04:05.678Z');
    const token = createSasToken('http://contoso.servicebus.windows.net/hc1', 'send', key, {
      now,
      expiresInSeconds: 600,
    });
    const se = Math.floor(now.getTime() / 1000) + 600;
    const sr = encodeURIComponent('http://contoso.servicebus.windows.net/hc1');
    const sig = createHmac('sha256', key).update(`${sr}\n${se}`).digest('base64');
    expect(token).toBe(`SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=send`);
  });

  it('is byte for byte what hyco-https createRelayToken makes for a listen URI', () => {
    const createRelayToken = hycoCreateRelayToken();
    const listenUri = 'ws://127.0.0.1:4711/$hc/hc1?sb-hc-action=listen';
    const theirs = createRelayToken(listenUri, 'listen', key);
    const se = Number(fields(theirs)['se']);
    // hyco signs http://{host}{path} with $hc/ and the query taken out.
    const ours = createSasToken('http://127.0.0.1:4711/hc1', 'listen', key, {
      now: new Date((se - 3600) * 1000),
    });
    expect(ours).toBe(theirs);
  });

  it('refuses a non-positive lifetime', () => {
    expect(() => createSasToken('http://ns/hc', 'k', key, { expiresInSeconds: 0 })).toThrow(RangeError);
  });
});

describe('verifySasToken', () => {
  const now = new Date('2026-01-02T03:04:05Z');
  const valid = createSasToken('http://contoso.servicebus.windows.net/hc1', 'listen', key, {
    now,
    expiresInSeconds: 60,
  });

  it('accepts a token made by hyco-https createRelayToken', () => {
    const token = hycoCreateRelayToken()(
      'wss://contoso.servicebus.windows.net:443/$hc/hc1?sb-hc-action=listen',
      'listen',
      key,
    );
    expect(verifySasToken(token, rules, { resource: 'hc1' })).toEqual({ ok: true, keyName: 'listen' });
  });

  it('accepts its own tokens until they expire, and not at or after the expiry second', () => {
    expect(verifySasToken(valid, rules, { resource: 'hc1', now })).toEqual({ ok: true, keyName: 'listen' });
    expect(verifySasToken(valid, rules, { resource: 'hc1', now: new Date(now.getTime() + 59_000) }).ok).toBe(
      true,
    );
    expect(
      verifySasToken(valid, rules, { resource: 'hc1', now: new Date(now.getTime() + 60_000) }),
    ).toMatchObject({ ok: false, reason: 'Expired' });
    expect(
      verifySasToken(valid, rules, { resource: 'hc1', now: new Date(now.getTime() + 3_600_000) }),
    ).toMatchObject({ ok: false, reason: 'Expired' });
  });

  it('rejects a wrong key, and any field changed after signing', () => {
    expect(verifySasToken(valid, { listen: 'other' }, { resource: 'hc1', now })).toMatchObject({
      ok: false,
      reason: 'BadSignature',
    });
    const later = valid.replace(/se=(\d+)/, (_, se: string) => `se=${Number(se) + 3600}`);
    expect(verifySasToken(later, rules, { resource: 'hc1', now })).toMatchObject({
      ok: false,
      reason: 'BadSignature',
    });
    const elsewhere = valid.replace('hc1', 'hc2');
    expect(verifySasToken(elsewhere, rules, { resource: 'hc2', now })).toMatchObject({
      ok: false,
      reason: 'BadSignature',
    });
    const truncated = valid.replace(/sig=[^&]+/, 'sig=AAAA');
    expect(verifySasToken(truncated, rules, { resource: 'hc1', now })).toMatchObject({
      ok: false,
      reason: 'BadSignature',
    });
  });

  it('rejects key names it has no rule for, including prototype members', () => {
    expect(verifySasToken(valid, { send: key }, { resource: 'hc1', now })).toMatchObject({
      ok: false,
      reason: 'UnknownKeyName',
    });
    const sneaky = createSasToken('http://ns/hc1', 'constructor', key, { now });
    expect(verifySasToken(sneaky, {}, { resource: 'hc1', now })).toMatchObject({
      ok: false,
      reason: 'UnknownKeyName',
    });
  });

  it('rejects what is not a SAS token', () => {
    for (const token of [
      'Bearer eyJ0eXAiOiJKV1QifQ.e30.sig',
      'SharedAccessSignature sr=a&sig=b&se=1',
      'SharedAccessSignature sr=a&sig=b&se=soon&skn=listen',
      `${valid}&se=1`,
      'SharedAccessSignature sr=%E0%A4%A&sig=b&se=1&skn=listen',
      '',
    ]) {
      expect(verifySasToken(token, rules, { resource: 'hc1', now }), token).toMatchObject({
        ok: false,
        reason: 'BadFormat',
      });
    }
  });

  it('grants the named hybrid connection, case-insensitively, and a namespace-wide token grants all; nothing else', () => {
    const namespaceWide = createSasToken('http://contoso.servicebus.windows.net/', 'listen', key, { now });
    expect(verifySasToken(namespaceWide, rules, { resource: 'anything', now }).ok).toBe(true);
    expect(verifySasToken(valid, rules, { resource: 'HC1', now }).ok).toBe(true);
    expect(verifySasToken(valid, rules, { resource: 'hc2', now })).toMatchObject({
      ok: false,
      reason: 'WrongResource',
    });
    expect(verifySasToken(valid, rules, { resource: 'hc10', now })).toMatchObject({
      ok: false,
      reason: 'WrongResource',
    });
  });

  it('signs sr as it appears, so .NET-style lower-case escapes verify too', () => {
    const sr = 'http%3a%2f%2fcontoso.servicebus.windows.net%2fhc1';
    const se = Math.floor(now.getTime() / 1000) + 60;
    const sig = createHmac('sha256', key).update(`${sr}\n${se}`).digest('base64');
    const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=listen`;
    expect(verifySasToken(token, rules, { resource: 'hc1', now })).toEqual({ ok: true, keyName: 'listen' });
  });
});
