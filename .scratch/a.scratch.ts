import { it } from 'vitest';
import { createTestPki, ping1Xml, bytes } from '../test/helpers/packages.js';
import { verifyPackage } from '../lib/package/verify.js';
it('x', async () => {
  const pki = await createTestPki();
  const signed = pki.sign(ping1Xml, { sequence: 3 });
  console.log(signed);
  console.log(JSON.stringify(verifyPackage(bytes(signed), { trust: pki.trust }), null, 1));
});
