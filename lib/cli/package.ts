import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { loadConfig, settingNameOf } from '../config/index.js';
import { microsoftFeedSource } from '../config/sources.js';
import { ConfigError } from '../errors.js';
import { devPkiFiles } from '../package/dev-pki-files.js';
import { signPackage } from '../package/sign.js';
import type { TimestampAuthority } from '../package/timestamp.js';
import { feedTrust } from '../ocs/feeds.js';
import { parseSerialList, type TrustPolicy } from '../package/trust.js';
import { verifyPackage, type VerifiedPackage } from '../package/verify.js';
import {
  currentPackage,
  NoPackageError,
  resolveFeed,
  storedPackageJson,
  verifiedJson,
} from '../admin/feeds.js';
import { addStorageOptions, fleetContext, type StorageFlags } from './fleet.js';
import { defaultXmlLimits } from '../package/xml.js';
import { collect, exitCodes, readInputFile, readTextFile, UsageError, type CliIo } from './io.js';
import { packageTestCommand } from './package-test.js';

interface TrustFlags {
  readonly trustAnchor: string[];
  readonly anchorSha256?: string;
  /** Absent where a caller builds the flags itself (rollout plan --latest). */
  readonly timestampAnchor?: string[];
  readonly timestampAnchorSha256?: string;
  readonly subject?: string;
  readonly eku?: string;
  readonly denySerials?: string;
}

/** Flags override the app settings; the same trust policy the cloud builds from them. */
export async function trustPolicyFromFlags(flags: TrustFlags, io: CliIo): Promise<TrustPolicy> {
  const config = loadConfig(io.env);
  const anchors = await Promise.all(
    flags.trustAnchor.map((path) => readTextFile(path, `--trust-anchor ${path}`)),
  );
  const timestampAnchors = await Promise.all(
    (flags.timestampAnchor ?? []).map((path) => readTextFile(path, `--timestamp-anchor ${path}`)),
  );
  const deny = flags.denySerials
    ? parseSerialList(await readTextFile(flags.denySerials, `--deny-serials ${flags.denySerials}`))
    : undefined;
  try {
    const settings = microsoftFeedSource(config);
    return feedTrust({
      ...settings,
      trustAnchors: anchors.length > 0 ? anchors.join('\n') : settings.trustAnchors,
      anchorSha256: flags.anchorSha256 ? flags.anchorSha256.split(',') : settings.anchorSha256,
      timestampAnchors: timestampAnchors.length > 0 ? timestampAnchors.join('\n') : settings.timestampAnchors,
      timestampAnchorSha256: flags.timestampAnchorSha256
        ? flags.timestampAnchorSha256.split(',')
        : settings.timestampAnchorSha256,
      signerSubject: flags.subject ?? settings.signerSubject,
      signerEku: flags.eku ?? settings.signerEku,
      revokedSerials: deny ?? settings.revokedSerials,
    });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

export function addTrustOptions(command: Command): Command {
  return command
    .option(
      '--trust-anchor <pem>',
      `PEM file of a trust anchor (repeatable; default: ${settingNameOf.trustAnchors})`,
      collect,
      [],
    )
    .option(
      '--anchor-sha256 <hex>',
      `SHA-256 pin(s) the anchors must match, comma-separated (default: ${settingNameOf.trustAnchorSha256})`,
    )
    .option(
      '--timestamp-anchor <pem>',
      `PEM file of a time-stamp authority root (repeatable; default: ${settingNameOf.timestampAnchors}); without one, time stamps are not checked and certificates must be valid now`,
      collect,
      [],
    )
    .option(
      '--timestamp-anchor-sha256 <hex>',
      `SHA-256 pin(s) the timestamp anchors must match, comma-separated (default: ${settingNameOf.timestampAnchorSha256})`,
    )
    .option(
      '--subject <cn>',
      `required signer subject CN (default: ${settingNameOf.signerSubject} or "Microsoft Exchange XML Signing")`,
    )
    .option(
      '--eku <oid>',
      `required signer extended key usage (default: ${settingNameOf.signerEku} or 1.3.6.1.4.1.311.76.57.1.11)`,
    )
    .option(
      '--deny-serials <file>',
      `file of revoked certificate serials, one hex serial per line (default: ${settingNameOf.revokedSerials})`,
    );
}

export function packageCommand(io: CliIo, setExitCode: (code: number) => void): Command {
  const command = new Command('package').description('sign, verify and test EOCS mitigation packages');

  addTrustOptions(
    command
      .command('verify')
      .description('verify a signed mitigation package exactly as the cloud and the agent do')
      .argument('<file>', 'the signed package (XML)')
      .option('--json', 'print one JSON object on stdout'),
  )
    .addHelpText(
      'after',
      `
Exit 0 and "verified: ..." when the package is trusted; exit 1 and "rejected: CODE: detail"
(codes: Malformed, TooLarge, BadSignature, UnsupportedAlgorithm, UntrustedChain, WrongSigner,
Expired, Revoked, BadTimestamp, Rollback) when it is not; exit 2 for usage errors.
With a timestamp anchor, the package's RFC 3161 time stamp is its signing time (--json:
signingTime), and the signer chain is checked at that time; Microsoft rotates its signing
certificate yearly, so its packages need one once the certificate has expired.

Microsoft's feed (export both roots with certutil, docs/package-format.md):

Example:
  emfleet package verify mitigations.xml \\
    --trust-anchor MicrosoftRootCertificateAuthority2011.pem \\
    --anchor-sha256 847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61 \\
    --timestamp-anchor MicrosoftRootCertificateAuthority2010.pem \\
    --timestamp-anchor-sha256 DF545BF919A2439C36983B54CDFC903DFA4F37D3996D8D84B4C31EEC6F3C163E`,
    )
    .action(async (file: string, flags: TrustFlags & { json?: boolean }) => {
      const trust = await trustPolicyFromFlags(flags, io);
      const result = verifyPackage(await readInputFile(file, defaultXmlLimits.maxBytes), { trust });
      if (result.ok) {
        if (flags.json) io.stdout(JSON.stringify(verifiedJson(result)));
        else
          io.stdout(
            `verified: ${describeMitigations(result)} signed by ${result.signer.subject}${describeTime(result)}`,
          );
        setExitCode(exitCodes.ok);
      } else {
        if (flags.json)
          io.stdout(
            JSON.stringify({
              ok: false,
              sha256: result.sha256,
              reason: result.reason,
              detail: result.detail,
            }),
          );
        else io.stderr(`rejected: ${result.reason}: ${result.detail}`);
        setExitCode(exitCodes.failed);
      }
    });

  command
    .command('sign')
    .description(
      "sign an EOCS document in the shape of Microsoft's packages (enveloped XML-DSig, RSA-SHA256, KeyValue and chain in KeyInfo, RFC 3161 countersignature)",
    )
    .argument('<in>', 'the unsigned EOCS document')
    .requiredOption('--key <pem>', "the signer's private key (PEM)")
    .requiredOption('--cert <pem>', "the signer's certificate (PEM)")
    .option(
      '--chain <pem>',
      'an issuer certificate to include after the signer: intermediates, then the root (repeatable)',
      collect,
      [],
    )
    .option('--tsa-key <pem>', "the time-stamp authority's private key (PEM), with --tsa-cert")
    .option(
      '--tsa-cert <pem>',
      "the time-stamp authority's certificate (PEM; extended key usage timeStamping)",
    )
    .option(
      '--tsa-chain <pem>',
      'an issuer of the TSA certificate to include in the countersignature (repeatable)',
      collect,
      [],
    )
    .option('--dev-tsa <dir>', 'time-stamp with the TSA of an `emfleet dev pki` directory (tsa.key, tsa.pem)')
    .option(
      '--no-timestamp',
      'leave the package without a time stamp (verifiers then check certificates at their current time)',
    )
    .requiredOption('--out <file>', 'where to write the signed package')
    .option('--sequence <n>', 'sequence number for an organization feed (must grow with each package)')
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
Writes the XML declaration and CRLF line ends, stamps EOCS@sequence with --sequence, signs the
whole document, then asks the time-stamp authority for an RFC 3161 token over the SignatureValue
and adds it in <Object Id="ts-countersig">. A time stamp is required (--tsa-key/--tsa-cert or
--dev-tsa) unless --no-timestamp is given.

Example:
  emfleet package sign custom.xml --key signer.key --cert signer.pem --chain intermediate.pem \\
    --chain root.pem --tsa-key tsa.key --tsa-cert tsa.pem --sequence 42 --out custom.signed.xml
  emfleet package sign catalogue.xml --key .emfleet/pki/signer.key --cert .emfleet/pki/signer.pem \\
    --chain .emfleet/pki/intermediate.pem --chain .emfleet/pki/root.pem --dev-tsa .emfleet/pki \\
    --out catalogue.signed.xml`,
    )
    .action(async (input: string, flags: SignFlags) => {
      const sequence = flags.sequence === undefined ? undefined : parseSequenceFlag(flags.sequence);
      const xml = Buffer.from(await readInputFile(input, defaultXmlLimits.maxBytes)).toString('utf8');
      const identity = {
        privateKeyPem: await readTextFile(flags.key, `--key ${flags.key}`),
        certificatePem: await readTextFile(flags.cert, `--cert ${flags.cert}`),
        chainPems: await Promise.all(flags.chain.map((path) => readTextFile(path, `--chain ${path}`))),
      };
      const timestampAuthority = await timestampAuthorityFromFlags(flags);
      let signed: string;
      try {
        signed = signPackage(xml, identity, {
          ...(sequence === undefined ? {} : { sequence }),
          ...(timestampAuthority ? { timestampAuthority } : {}),
        });
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
        throw error;
      }
      await writeFileAtomically(flags.out, signed);
      if (flags.json)
        io.stdout(
          JSON.stringify({
            ok: true,
            out: flags.out,
            bytes: Buffer.byteLength(signed),
            timestamped: timestampAuthority !== undefined,
          }),
        );
      else
        io.stdout(
          `signed: ${flags.out} (${Buffer.byteLength(signed)} bytes${timestampAuthority ? ', time-stamped' : ', no time stamp'})`,
        );
    });

  addStorageOptions(
    command
      .command('show')
      .description(
        "a feed's current stored package: what was accepted, how it verifies today, and the exact signed XML written out",
      ),
  )
    .option('--feed <name>', `the feed (default microsoft; or a name from ${settingNameOf.orgFeeds})`)
    .option(
      '--out <file>',
      'write the stored signed XML, byte for byte, to this file (for package verify, package test, policy explain --package)',
    )
    .addHelpText(
      'after',
      `
Verification is run again under today's trust settings (${settingNameOf.trustAnchors} and the rest, or the feed's own in
${settingNameOf.orgFeeds}), as reconcile does; a package that no longer verifies is shown with the reason.
The same as GET /api/packages/{feed}.

Examples:
  emfleet package show
  emfleet package show --feed contoso --out contoso-current.xml --json`,
    )
    .action(async (flags: StorageFlags & { feed?: string; out?: string }) => {
      const context = fleetContext(flags, io);
      const feed = resolveFeed(context.config, flags.feed);
      const current = await currentPackage(context.tables, feed);
      if (!current) throw new NoPackageError(feed.name);
      if (flags.out) await writeFileAtomically(flags.out, current.stored.bytes);
      const shown = storedPackageJson(feed.name, current);
      if (flags.json)
        return void io.stdout(JSON.stringify({ ...shown, ...(flags.out ? { out: flags.out } : {}) }));
      io.stdout(`feed ${feed.name}: package ${shown.sequence}, sha256 ${shown.sha256}, ${shown.bytes} bytes`);
      io.stdout(`  signed ${shown.signingTime ?? '(no signing time)'}, accepted ${shown.acceptedAt}`);
      io.stdout(`  mitigations: ${current.stored.mitigationIds.join(', ') || 'none'}`);
      if (current.verified.ok)
        io.stdout(
          `  verification: verified today: ${describeMitigations(current.verified)} signed by ${current.verified.signer.subject} (issuer ${current.verified.signer.issuer}, serial ${current.verified.signer.serialNumber})`,
        );
      else
        io.stdout(
          `  verification: FAILS today: ${current.verified.reason}: ${current.verified.detail} (the feed is frozen on it: nothing is applied or removed)`,
        );
      if (flags.out) io.stdout(`  written to ${flags.out}`);
    });

  command.addCommand(packageTestCommand(io, setExitCode));
  return command;
}

interface SignFlags {
  readonly key: string;
  readonly cert: string;
  readonly chain: string[];
  readonly tsaKey?: string;
  readonly tsaCert?: string;
  readonly tsaChain: string[];
  readonly devTsa?: string;
  /** commander's --no-timestamp: false when given. */
  readonly timestamp: boolean;
  readonly out: string;
  readonly sequence?: string;
  readonly json?: boolean;
}

async function timestampAuthorityFromFlags(flags: SignFlags): Promise<TimestampAuthority | undefined> {
  const given = [
    flags.tsaKey !== undefined || flags.tsaCert !== undefined,
    flags.devTsa !== undefined,
  ].filter(Boolean).length;
  if (!flags.timestamp) {
    if (given > 0) throw new UsageError('--no-timestamp contradicts --tsa-key/--tsa-cert/--dev-tsa');
    return undefined;
  }
  if (given === 0)
    throw new UsageError(
      'give a time-stamp authority (--tsa-key and --tsa-cert, or --dev-tsa DIR), or --no-timestamp',
    );
  if (given > 1) throw new UsageError('give either --tsa-key/--tsa-cert or --dev-tsa, not both');
  if (flags.devTsa !== undefined) {
    return {
      privateKeyPem: await readTextFile(
        join(flags.devTsa, devPkiFiles.timestampAuthorityKey),
        `--dev-tsa ${flags.devTsa}`,
      ),
      certificatePem: await readTextFile(
        join(flags.devTsa, devPkiFiles.timestampAuthority),
        `--dev-tsa ${flags.devTsa}`,
      ),
    };
  }
  if (flags.tsaKey === undefined || flags.tsaCert === undefined)
    throw new UsageError('--tsa-key and --tsa-cert go together');
  return {
    privateKeyPem: await readTextFile(flags.tsaKey, `--tsa-key ${flags.tsaKey}`),
    certificatePem: await readTextFile(flags.tsaCert, `--tsa-cert ${flags.tsaCert}`),
    chainPems: await Promise.all(flags.tsaChain.map((path) => readTextFile(path, `--tsa-chain ${path}`))),
  };
}

function describeTime(result: VerifiedPackage): string {
  switch (result.timestamp.status) {
    case 'verified':
      return `, time-stamped ${result.timestamp.time.toISOString()}`;
    case 'unchecked':
      return ', time stamp not checked (no timestamp anchor)';
    case 'absent':
      return ', no time stamp';
  }
}

function parseSequenceFlag(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`--sequence "${text}" is not a non-negative integer`);
  return Number(text);
}

function describeMitigations(result: VerifiedPackage): string {
  const ids = result.package.mitigations.map((mitigation) => mitigation.id);
  return `${ids.length} mitigation${ids.length === 1 ? '' : 's'} (${ids.join(', ')})`;
}

/** Written beside and renamed into place, so a reader never sees half a package. */
async function writeFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, data);
  await rename(temporary, path);
}
