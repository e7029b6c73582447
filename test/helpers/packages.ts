import { parseBuild, type BuildRange, type ExchangeBuild } from '../../lib/package/build.js';
import { createDevPki, devTimestampAuthority, type DevPki } from '../../lib/local/pki.js';
export { catalogueXml } from '../../lib/local/catalogue.js';
import { algorithms } from '../../lib/package/format.js';
import { signPackage, type SignOptions } from '../../lib/package/sign.js';
import { restrictedSignedXml } from '../../lib/package/signed-xml.js';
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
  /** Signed as `sign` does, but with no signing time at all (neither EOCS@signingTime nor a timestamp): a package whose age cannot be told. */
  signUntimed(xml: string): string;
}

/** A real three-level PKI and a TSA; RSA key generation is slow, so make one per test file. */
export async function createTestPki(label = 'emfleet Test'): Promise<TestPki> {
  const pki = await createDevPki({ label });
  return {
    ...pki,
    trust: createTrustPolicy({ anchorPems: [pki.root.certificatePem], timestampAnchorPems: [pki.timestampRoot.certificatePem] }),
    sign: (xml, options) =>
      signPackage(
        xml,
        { privateKeyPem: pki.signer.privateKeyPem, certificatePem: pki.signer.certificatePem, chainPems: [pki.intermediate.certificatePem, pki.root.certificatePem] },
        { timestampAuthority: devTimestampAuthority(pki), ...options },
      ),
    signUntimed: (xml) => {
      const signed = restrictedSignedXml({
        privateKey: pki.signer.privateKeyPem,
        signatureAlgorithm: algorithms.signature.rsaSha256,
        canonicalizationAlgorithm: algorithms.canonicalization.c14n,
        getKeyInfoContent: () => `<X509Data>${[pki.signer, pki.intermediate].map((issued) => `<X509Certificate>${issued.certificate.raw.toString('base64')}</X509Certificate>`).join('')}</X509Data>`,
      });
      signed.addReference({ xpath: '/*', isEmptyUri: true, transforms: [algorithms.envelopedSignature, algorithms.canonicalization.c14n], digestAlgorithm: algorithms.digest.sha256 });
      signed.computeSignature(xml, { location: { reference: '/*', action: 'append' } });
      return signed.getSignedXml();
    },
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
