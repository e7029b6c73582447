import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { DOMParser } from '@xmldom/xmldom';
import { catalogueXml } from '../lib/local/catalogue.js';
import { createDevPki, devTimestampAuthority } from '../lib/package/dev-pki.js';
import { signPackage } from '../lib/package/sign.js';
import { createTrustPolicy } from '../lib/package/trust.js';
import { verifyPackage } from '../lib/package/verify.js';

export interface VerifyFigures {
  /** Size of the signed package. */
  readonly bytes: number;
  readonly iterations: number;
  /** Median of verifyPackage, per package. */
  readonly verifyMs: number;
  /** Median of one RSA-SHA256 verify over the same bytes plus one DOM parse of them. */
  readonly baselineMs: number;
  readonly ratio: number;
}

const targetBytes = 64 * 1024;

/**
 * The cost of the hardened verifier (caps, DOCTYPE scan, signature shape, C14N, digest, chain,
 * re-parse of the signed bytes) against the floor any verifier pays: one RSA-SHA256 verify over
 * the package and one XML parse. Same process, alternated, so noise hits both alike.
 */
export async function measureVerify(options: { iterations: number }): Promise<VerifyFigures> {
  const pki = await createDevPki({ label: 'emfleet Bench' });
  const xml = paddedCatalogue(targetBytes - 5_000);
  // Microsoft's shape: KeyValue, the chain with its root, and an RFC 3161 countersignature checked against its anchor.
  const signed = signPackage(
    xml,
    {
      privateKeyPem: pki.signer.privateKeyPem,
      certificatePem: pki.signer.certificatePem,
      chainPems: [pki.intermediate.certificatePem, pki.root.certificatePem],
    },
    { timestampAuthority: devTimestampAuthority(pki) },
  );
  const bytes = Buffer.from(signed);
  const trust = createTrustPolicy({
    anchorPems: [pki.root.certificatePem],
    timestampAnchorPems: [pki.timestampRoot.certificatePem],
  });
  const first = verifyPackage(bytes, { trust });
  if (!first.ok)
    throw new Error(`the 64 KiB bench package does not verify: ${first.reason}: ${first.detail}`);
  const publicKey = createPublicKey(pki.signer.certificatePem);
  const signature = sign('sha256', bytes, createPrivateKey(pki.signer.privateKeyPem));
  const baseline = (): void => {
    if (!verify('sha256', bytes, publicKey, signature)) throw new Error('raw verify failed');
    const document = new DOMParser().parseFromString(bytes.toString('utf8'), 'text/xml');
    if (!document.documentElement) throw new Error('raw parse failed');
  };
  const full = (): void => {
    if (!verifyPackage(bytes, { trust }).ok) throw new Error('verifyPackage failed');
  };
  for (let warm = 0; warm < 5; warm++) {
    full();
    baseline();
  }
  const fullTimes: number[] = [];
  const baselineTimes: number[] = [];
  const time = (work: () => void): number => {
    const started = process.hrtime.bigint();
    work();
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  for (let round = 0; round < options.iterations; round++) {
    // Alternate which goes first, so neither always runs on a warmer cache.
    if (round % 2 === 0) {
      fullTimes.push(time(full));
      baselineTimes.push(time(baseline));
    } else {
      baselineTimes.push(time(baseline));
      fullTimes.push(time(full));
    }
  }
  const verifyMs = median(fullTimes);
  const baselineMs = median(baselineTimes);
  return {
    bytes: bytes.length,
    iterations: options.iterations,
    verifyMs,
    baselineMs,
    ratio: verifyMs / baselineMs,
  };
}

/** The demo catalogue with DoNothing configs added until the unsigned text is about `size` bytes. */
function paddedCatalogue(size: number): string {
  const padding: string[] = [];
  let length = catalogueXml.length;
  for (let index = 1; length < size; index++) {
    const config = `  <Config id="PAD${index}" desc="Padding mitigation ${index} for the verify benchmark">\n    <ActionList><Action type="DoNothing" scope="Server" desc="Does nothing"><Value>DoNothing</Value></Action></ActionList>\n  </Config>\n`;
    padding.push(config);
    length += config.length;
  }
  return catalogueXml.replace('</EOCS>', `${padding.join('')}</EOCS>`);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
