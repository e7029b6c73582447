/**
 * Agent trust binds each anchor to its own signer (issue 19): an agent serving Microsoft's feed and
 * an organization's feed accepts each feed's signer only under that feed's anchor.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { agentTrustPolicies } from '../../lib/agent/run.js';
import { parseAgentConfig } from '../../lib/agent/config.js';
import {
  createDevPki,
  devTimestampAuthority,
  issueCertificate,
  type DevPki,
  type IssuedCertificate,
} from '../../lib/package/dev-pki.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';
import { signPackage } from '../../lib/package/sign.js';
import { verifyPackageWithAny, type VerifyResult } from '../../lib/package/verify.js';
import { bytes, ping1Xml } from '../helpers/packages.js';

const contosoSubject = 'Contoso Mitigations';
const contosoEku = '1.3.6.1.4.1.99999.7';

let microsoft: DevPki;
let contoso: DevPki;
let microsoftNamedUnderContoso: IssuedCertificate;

beforeAll(async () => {
  [microsoft, contoso] = await Promise.all([
    createDevPki({ label: 'emfleet Bound Microsoft' }),
    createDevPki({
      label: 'emfleet Bound Contoso',
      signerSubjectCn: contosoSubject,
      signerExtendedKeyUsages: [contosoEku],
    }),
  ]);
  microsoftNamedUnderContoso = await issueCertificate({
    subjectCn: microsoftSignerSubjectCn,
    extendedKeyUsages: [microsoftSignerEku],
    issuer: contoso.intermediate,
  });
});

function agentTrust(): ReturnType<typeof agentTrustPolicies> {
  const config = parseAgentConfig(
    {
      server: 'ex01',
      build: '15.2.1544.4',
      relay: {
        namespace: 'contoso-emfleet.servicebus.windows.net',
        hybridConnection: 'ex01',
        key: 'c2VjcmV0',
      },
      trust: [
        {
          anchors: [microsoft.root.certificatePem],
          timestampAnchors: [microsoft.timestampRoot.certificatePem],
        },
        { anchors: [contoso.root.certificatePem], signerSubject: contosoSubject, signerEku: contosoEku },
      ],
      applier: { kind: 'powershell' },
      stateDirectory: '/var/lib/emfleet',
    },
    '/etc/emfleet',
  );
  return agentTrustPolicies(config);
}

function signed(pki: DevPki, signer: IssuedCertificate = pki.signer): Uint8Array {
  return bytes(
    signPackage(
      ping1Xml,
      {
        privateKeyPem: signer.privateKeyPem,
        certificatePem: signer.certificatePem,
        chainPems: [pki.intermediate.certificatePem],
      },
      { timestampAuthority: devTimestampAuthority(microsoft) },
    ),
  );
}

function reasonOf(result: VerifyResult): string {
  return result.ok ? 'ok' : `${result.reason}`;
}

describe('agent trust with two feeds', () => {
  it("accepts Microsoft's signer under Microsoft's anchor, with its time stamp", () => {
    const result = verifyPackageWithAny(signed(microsoft), agentTrust());
    expect(reasonOf(result)).toBe('ok');
    expect(result.ok && result.timestamp.status).toBe('verified');
  });

  it("accepts the organization's signer under the organization's anchor", () => {
    expect(reasonOf(verifyPackageWithAny(signed(contoso), agentTrust()))).toBe('ok');
  });

  it("refuses a certificate named like Microsoft's signer under the organization's anchor: WrongSigner", () => {
    const result = verifyPackageWithAny(signed(contoso, microsoftNamedUnderContoso), agentTrust());
    expect(reasonOf(result)).toBe('WrongSigner');
    expect(result.ok ? '' : result.detail).toContain(contosoSubject);
  });

  it("verifies Microsoft's genuine 2021 package with Microsoft's roots in agent.json", () => {
    const fixtures = new URL('../package/fixtures/microsoft/', import.meta.url);
    const config = parseAgentConfig(
      {
        server: 'ex01',
        build: '15.2.1544.4',
        relay: {
          namespace: 'contoso-emfleet.servicebus.windows.net',
          hybridConnection: 'ex01',
          key: 'c2VjcmV0',
        },
        trust: [
          {
            anchors: ['MicrosoftRootCertificateAuthority2011.pem'],
            anchorSha256: ['847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61'],
            timestampAnchors: ['MicrosoftRootCertificateAuthority2010.pem'],
            timestampAnchorSha256: ['DF545BF919A2439C36983B54CDFC903DFA4F37D3996D8D84B4C31EEC6F3C163E'],
          },
          { anchors: [contoso.root.certificatePem], signerSubject: contosoSubject, signerEku: contosoEku },
        ],
        applier: { kind: 'powershell' },
        stateDirectory: 'state',
      },
      fixtures.pathname,
    );
    const result = verifyPackageWithAny(
      readFileSync(new URL('getexchangemitigations-2021-09-29.xml', fixtures)),
      agentTrustPolicies(config),
    );
    expect(result.ok, result.ok ? '' : `${result.reason}: ${result.detail}`).toBe(true);
    expect(result.ok && result.package.signingTime?.toISOString()).toBe('2021-09-15T16:42:08.621Z');
  });

  it('refuses a package chaining to neither anchor: UntrustedChain', async () => {
    const stranger = await createDevPki({ label: 'emfleet Bound Stranger' });
    expect(reasonOf(verifyPackageWithAny(signed(stranger), agentTrust()))).toBe('UntrustedChain');
  });
});
