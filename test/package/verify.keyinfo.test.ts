import { beforeAll, describe, expect, it } from 'vitest';
import { verifyPackage } from '../../lib/package/verify.js';
import { bytes, catalogueXml, createTestPki, type TestPki } from '../helpers/packages.js';

/** What .NET's SignedXml puts in KeyInfo besides certificates; the certificate alone decides the key, a KeyValue must be it. */
let pki: TestPki;
let signed: string;

beforeAll(async () => {
  pki = await createTestPki();
  signed = pki.sign(catalogueXml);
});

function withKeyInfo(extra: string): string {
  expect(signed).toContain('<KeyInfo><KeyValue>');
  return signed.replace('<KeyInfo><KeyValue>', `<KeyInfo>${extra}<KeyValue>`);
}

describe('KeyInfo contents', () => {
  it("a KeyName beside the signer's KeyValue and X509Data is accepted (and not used)", () => {
    const result = verifyPackage(bytes(withKeyInfo('<KeyName>Microsoft Exchange XML Signing</KeyName>')), {
      trust: pki.trust,
    });
    expect(result.ok, result.ok ? '' : `${result.reason}: ${result.detail}`).toBe(true);
  });

  it('a second KeyValue that is not the signer certificate key is BadSignature', () => {
    const result = verifyPackage(
      bytes(
        withKeyInfo(
          '<KeyValue><RSAKeyValue><Modulus>AAAA</Modulus><Exponent>AQAB</Exponent></RSAKeyValue></KeyValue>',
        ),
      ),
      { trust: pki.trust },
    );
    expect(!result.ok && result.reason).toBe('BadSignature');
  });

  it.each([
    { name: 'a forged Config inside KeyValue', extra: '<KeyValue><Config xmlns="" id="EVIL"/></KeyValue>' },
    { name: 'a RetrievalMethod', extra: '<RetrievalMethod URI="http://attacker.example/key"/>' },
    { name: 'an element of another namespace', extra: '<x:Key xmlns:x="urn:x"/>' },
  ])('$name is BadSignature', ({ extra }) => {
    const result = verifyPackage(bytes(withKeyInfo(extra)), { trust: pki.trust });
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toBe('BadSignature');
  });
});
