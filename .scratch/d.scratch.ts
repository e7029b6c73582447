import { it } from 'vitest';
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { subjectCommonNames } from '../lib/package/trust.js';
it('x', async () => {
  x509.cryptoProvider.set(webcrypto as any);
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  for (const json of [[{ CN: ['Evil\nCN=Microsoft Exchange XML Signing'] }], [{ O: ['x\nCN=Microsoft Exchange XML Signing'] }]]) {
    const name = new x509.Name(json as any);
    const c = await x509.X509CertificateGenerator.createSelfSigned({ name, keys, signingAlgorithm: alg, notBefore: new Date(), notAfter: new Date(Date.now() + 1e9) });
    const n = new X509Certificate(c.toString('pem'));
    console.log(JSON.stringify(n.subject), subjectCommonNames(n));
  }
});
