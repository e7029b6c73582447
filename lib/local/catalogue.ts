/**
 * The demo mitigation catalogue that local runs sign and serve: PING1 plus one mitigation of
 * each kind, with build ranges. EM1 is shaped like Microsoft's CVE-2022-41040 rule (the decoded
 * REQUEST_URI is checked, so the query-string and percent-encoded forms are caught) and carries
 * its own probes; EM2 declares that it takes OWA down. Unsigned; `npm start` and the tests sign
 * it with the dev PKI.
 */
export const catalogueXml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="PING1" desc="Ping">
    <ActionList><Action type="DoNothing" scope="Server" desc="Does nothing"><Value>DoNothing</Value></Action></ActionList>
  </Config>
  <Config id="EM1" desc="Block autodiscover SSRF">
    <Applicability><Range min="15.1.0.0" max="15.1.2507.15"/><Range min="15.2.0.0" max="15.2.1118.19"/></Applicability>
    <ActionList>
      <Action type="IisUrlRewrite" scope="Server" desc="URL rewrite">
        <Value site="Default Web Site"><rule name="EEMS EM1 - Autodiscover Rule" stopProcessing="true"><match url=".*autodiscover\\.json.*"/><conditions logicalGrouping="MatchAny"><add input="{UrlDecode:{REQUEST_URI}}" pattern=".*autodiscover\\.json.*Powershell.*"/></conditions><action type="AbortRequest"/></rule></Value>
        <Probe path="/autodiscover/autodiscover.json?@evil.com/owa/&amp;Email=autodiscover/autodiscover.json%3F@evil.com&amp;Protocol=XYZ&amp;FooProtocol=Powershell" expect="blocked"/>
        <Probe path="/autodiscover/autodiscover.json?@evil.com/%50owershell" expect="blocked"/>
        <Probe path="/autodiscover/autodiscover.json?Email=user%40contoso.com&amp;Protocol=ActiveSync" expect="passed"/>
        <Probe path="/owa/" expect="passed" cookie="X-OWA-CANARY=probe"><Header name="User-Agent" value="emfleet-probe"/></Probe>
      </Action>
    </ActionList>
  </Config>
  <Config id="EM2" desc="Disable OWA app pool">
    <Applicability><Range min="15.2.0.0" max="15.2.1544.4"/></Applicability>
    <ActionList><Action type="DisableAppPool" scope="Server" desc="Stop OWA"><Value>MSExchangeOWAAppPool</Value><ExpectedDown endpoint="/owa/healthcheck.htm"/></Action></ActionList>
  </Config>
  <Config id="EM3" desc="Disable UM service">
    <ActionList><Action type="DisableService" scope="Server" desc="Stop UM"><Value>MSExchangeUM</Value></Action></ActionList>
  </Config>
</EOCS>
`;
