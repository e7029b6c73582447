import { it } from 'vitest';
import { parseXml } from '../lib/package/xml.js';
import { XMLSerializer } from '@xmldom/xmldom';
const p = (x: string) => { try { const d = parseXml(x); console.log('ACCEPTED', JSON.stringify(x), '->', new XMLSerializer().serializeToString(d)); } catch (e: any) { console.log('rejected', JSON.stringify(x), e.detail); } };
it('x', () => {
  for (const x of ['<EOCS desc="a & b"/>', '<EOCS desc="a &b"/>', '<EOCS>a & b</EOCS>', '<EOCS desc="a < b"/>', '<EOCS desc=a/>', '<EOCS desc="a"desc2="b"/>', '<EOCS>]]></EOCS>', '<EOCS><a></b></EOCS>', '<EOCS>&#0;</EOCS>', '<EOCS>&#xD800;</EOCS>', '<EOCS>\u0001</EOCS>', '<1EOCS/>', '<EOCS xmlns:a="" />', '<a:EOCS/>', '<EOCS/>trailing', '<EOCS> x="1"</EOCS>', '<?xml version="1.0"?><?xml version="1.0"?><EOCS/>', ' <?xml version="1.0"?><EOCS/>', '<EOCS desc="&amp"/>', '<EOCS>&amp</EOCS>']) p(x);
});
