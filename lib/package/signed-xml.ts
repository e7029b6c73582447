import { SignedXml } from 'xml-crypto';
import { algorithms } from './format.js';

/**
 * xml-crypto with its algorithm maps replaced by emfleet's allow-list, so nothing it enables by
 * default (SHA-1, HMAC, comment-preserving canonicalization) is reachable, whatever a package names.
 */
export function restrictedSignedXml(options: ConstructorParameters<typeof SignedXml>[0] = {}): SignedXml {
  const signedXml = new SignedXml(options);
  const defaults = {
    canonicalization: signedXml.CanonicalizationAlgorithms,
    hash: signedXml.HashAlgorithms,
    signature: signedXml.SignatureAlgorithms,
  };
  signedXml.CanonicalizationAlgorithms = pick(defaults.canonicalization, [
    ...Object.values(algorithms.canonicalization),
    algorithms.envelopedSignature,
  ]);
  signedXml.HashAlgorithms = pick(defaults.hash, Object.values(algorithms.digest));
  signedXml.SignatureAlgorithms = pick(defaults.signature, Object.values(algorithms.signature));
  return signedXml;
}

function pick<T>(map: Record<string, T>, allowed: readonly string[]): Record<string, T> {
  const picked: Record<string, T> = {};
  for (const uri of allowed) {
    const implementation = map[uri];
    if (implementation === undefined) throw new Error(`xml-crypto does not implement allowed algorithm ${uri}`);
    picked[uri] = implementation;
  }
  return picked;
}
