/**
 * The demo mitigation catalogue that local runs sign and serve: PING1 plus one mitigation of
 * each kind, with build ranges. Unsigned; `npm start` and the tests sign it with the dev PKI.
 */
export const catalogueXml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="PING1" desc="Ping">
    <ActionList><Action type="DoNothing" scope="Server" desc="Does nothing"><Value>DoNothing</Value></Action></ActionList>
  </Config>
  <Config id="EM1" desc="Block autodiscover SSRF">
    <Applicability><Range min="15.1.0.0" max="15.1.2507.15"/><Range min="15.2.0.0" max="15.2.1118.19"/></Applicability>
    <ActionList>
      <Action type="IisUrlRewrite" scope="Server" desc="URL rewrite"><Value site="Default Web Site"><rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true"><match url=".*autodiscover\\.json.*Powershell.*"/><action type="AbortRequest"/></rule></Value></Action>
    </ActionList>
  </Config>
  <Config id="EM2" desc="Disable OWA app pool">
    <Applicability><Range min="15.2.0.0" max="15.2.1544.4"/></Applicability>
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value></Action></ActionList>
  </Config>
  <Config id="EM3" desc="Disable UM service">
    <ActionList><Action type="DisableService" scope="Server" desc="Stop UM"><Value>MSExchangeUM</Value></Action></ActionList>
  </Config>
</EOCS>
`;
