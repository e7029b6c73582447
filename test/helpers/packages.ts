import { parseBuild, type BuildRange, type ExchangeBuild } from '../../lib/model/build.js';
import { createDevPki, devTimestampAuthority, type DevPki } from '../../lib/package/dev-pki.js';
export { catalogueXml } from '../../lib/local/catalogue.js';
import { signPackage, type SignOptions } from '../../lib/package/sign.js';
import { createTrustPolicy, type TrustPolicy } from '../../lib/package/trust.js';

/** The public PING1 sample layout as OCS serves it. */
export const ping1Xml = `<?xml version="1.0" encoding="utf-8"?>
<EOCS version="1.0.4">
  <Config id="PING1" desc="Ping mitigation to validate the EM service is working.">
    <ActionList>
      <Action type="DoNothing" scope="Server" desc="Does nothing"><Value>DoNothing</Value></Action>
    </ActionList>
  </Config>
</EOCS>
`;

export interface TestPki extends DevPki {
  /** The signer's root as trust anchor and the TSA's root as timestamp anchor. */
  readonly trust: TrustPolicy;
  /**
   * Signs in Microsoft's real shape: CRLF, KeyValue + X509Data with signer, intermediate and root,
   * and the `ts-countersig` Object with an RFC 3161 token from the test TSA (at `signingTime`).
   */
  sign(xml: string, options?: SignOptions): string;
  /** Signed as `sign` does, but without a time stamp: a package whose age cannot be told. */
  signUntimed(xml: string): string;
}

/** A real three-level PKI and a TSA; RSA key generation is slow, so make one per test file. */
export async function createTestPki(label = 'emfleet Test'): Promise<TestPki> {
  const pki = await createDevPki({ label });
  const identity = {
    privateKeyPem: pki.signer.privateKeyPem,
    certificatePem: pki.signer.certificatePem,
    chainPems: [pki.intermediate.certificatePem, pki.root.certificatePem],
  };
  return {
    ...pki,
    trust: createTrustPolicy({
      anchorPems: [pki.root.certificatePem],
      timestampAnchorPems: [pki.timestampRoot.certificatePem],
    }),
    sign: (xml, options) =>
      signPackage(xml, identity, { timestampAuthority: devTimestampAuthority(pki), ...options }),
    signUntimed: (xml) => signPackage(xml, identity),
  };
}

export const bytes = (text: string): Uint8Array => Buffer.from(text, 'utf8');

/** A build from text; test data only, so a malformed one is a bug in the test. */
export function build(text: string): ExchangeBuild {
  const parsed = parseBuild(text);
  if (!parsed) throw new Error(`test data: "${text}" is not a build`);
  return parsed;
}

export function range(min: string, max: string): BuildRange {
  return { min: build(min), max: build(max) };
}
