/** The files `emfleet dev pki` writes; apart from dev-pki.ts so the CLI can name them without loading the X.509 builder. */
export const devPkiFiles = {
  root: 'root.pem',
  intermediate: 'intermediate.pem',
  signer: 'signer.pem',
  signerKey: 'signer.key',
  timestampRoot: 'tsa-root.pem',
  timestampAuthority: 'tsa.pem',
  timestampAuthorityKey: 'tsa.key',
} as const;
