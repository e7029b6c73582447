import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { UsageError, type CliIo } from './io.js';

export function devCommand(io: CliIo): Command {
  const command = new Command('dev').description(
    'tools for local runs and tests (never for production trust)',
  );

  command
    .command('pki')
    .description(
      'make a development PKI: root → intermediate → signer with the Microsoft signer subject and EKU, and a time-stamp authority under its own root',
    )
    .requiredOption(
      '--out <dir>',
      'directory to write root.pem, intermediate.pem, signer.pem, signer.key, tsa-root.pem, tsa.pem, tsa.key',
    )
    .option('--force', 'overwrite existing files')
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
The signer is "CN=Microsoft Exchange XML Signing" with EKU 1.3.6.1.4.1.311.76.57.1.11, so packages it
signs verify with the default trust settings once root.pem is the anchor. The time-stamp authority
(tsa.pem, EKU timeStamping) chains to tsa-root.pem, as Microsoft's chains to Microsoft Root
Certificate Authority 2010 apart from the signing root: make tsa-root.pem the timestamp anchor.

Example:
  emfleet dev pki --out .emfleet/pki
  emfleet package sign catalogue.xml --key .emfleet/pki/signer.key --cert .emfleet/pki/signer.pem \\
    --chain .emfleet/pki/intermediate.pem --chain .emfleet/pki/root.pem --dev-tsa .emfleet/pki \\
    --out catalogue.signed.xml
  emfleet package verify catalogue.signed.xml --trust-anchor .emfleet/pki/root.pem \\
    --timestamp-anchor .emfleet/pki/tsa-root.pem`,
    )
    .action(async (flags: { out: string; force?: boolean; json?: boolean }) => {
      // Loaded on demand: the X.509 builder is heavy and only this command needs it.
      const { createDevPki, devPkiFiles, writeDevPki } = await import('../package/dev-pki.js');
      if (!flags.force) {
        for (const name of Object.values(devPkiFiles)) {
          const exists = await access(join(flags.out, name)).then(
            () => true,
            () => false,
          );
          if (exists)
            throw new UsageError(`${join(flags.out, name)} exists; pass --force to replace the PKI`);
        }
      }
      const pki = await createDevPki();
      const paths = await writeDevPki(pki, flags.out);
      const rootSha256 = pki.root.certificate.fingerprint256.replace(/:/g, '');
      const timestampRootSha256 = pki.timestampRoot.certificate.fingerprint256.replace(/:/g, '');
      if (flags.json) {
        io.stdout(
          JSON.stringify({
            ok: true,
            files: paths,
            rootSha256,
            timestampRootSha256,
            signerSubject: pki.signer.certificate.subject,
          }),
        );
      } else {
        io.stdout(`wrote ${Object.values(paths).join(', ')}`);
        io.stdout(`root SHA-256: ${rootSha256}`);
        io.stdout(`timestamp root SHA-256: ${timestampRootSha256}`);
      }
    });

  return command;
}
