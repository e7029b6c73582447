import { it } from 'vitest';
import { issueCertificate } from '../lib/local/pki.js';
import { subjectCommonNames } from '../lib/package/trust.js';
it('x', async () => {
  for (const cn of ['Evil\nCN=Microsoft Exchange XML Signing', 'Evil+CN=Microsoft Exchange XML Signing', 'Evil, CN=Microsoft Exchange XML Signing', 'Microsoft Exchange XML Signing\u0000x']) {
    try {
      const c = await issueCertificate({ subjectCn: cn });
      console.log(JSON.stringify(cn), '=>', JSON.stringify(c.certificate.subject), subjectCommonNames(c.certificate));
    } catch (e) { console.log(JSON.stringify(cn), 'ERR', String(e)); }
  }
  const c = await issueCertificate({ subjectCn: 'x', serialNumber: '00ab12' });
  console.log(c.certificate.serialNumber);
  const d = await issueCertificate({ subjectCn: 'x', serialNumber: '0abc' });
  console.log(d.certificate.serialNumber);
  const e = await issueCertificate({ subjectCn: 'x', serialNumber: '7f01' });
  console.log(e.certificate.serialNumber, e.certificate.keyUsage);
});
