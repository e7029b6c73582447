import { it } from 'vitest';
import { parseEocs } from '../lib/package/parse.js';
import { parseXml } from '../lib/package/xml.js';
const p = (x: string) => { try { console.log(JSON.stringify(parseEocs(parseXml(x)))); } catch (e: any) { console.log('ERR', e.reason, e.detail); } };
it('x', () => {
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList><Action type="DisableService" scope="Server" desc="x"><Value>MSExchangeUM</Value><Condition build="15.2.0.0"/></Action></ActionList></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList><Action type="DisableService" scope="Server" desc="x"><Value computer="OTHER">MSExchangeUM</Value></Action></ActionList></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList><Action type="DoNothing" scope="Server" desc="x"><Value>a<b>c</b>d</Value></Action></ActionList></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList><Action type="DoNothing" scope="Server" desc="x" extra="1"><Value>a</Value></Action></ActionList></Config></EOCS>');
  p('<EOCS version="1" foo="1"><Config id="A" desc="d" bar="2"><Applicability x="1"><Range min="15.0.0.0" max="15.0.0.1" y="2"/><Note/></Applicability><ActionList><Note/><Action type="X" scope="Server" desc="x"><Value>a</Value></Action></ActionList><Extra/></Config><Other/></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList/><ActionList/></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList></ActionList></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><Applicability/><ActionList></ActionList></Config></EOCS>');
  p('<EOCS version="1"><Config id="A" desc="d"><ActionList><Action type="DoNothing" scope="Server" desc="x"/></ActionList></Config></EOCS>');
});
