import { rename, writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { loadSettings } from '../config/index.js';
import { ConfigError } from '../errors.js';
import { formatBuild } from '../package/build.js';
import type { Mitigation, MitigationAction } from '../package/model.js';
import { signPackage } from '../package/sign.js';
import { parseSerialList, trustPolicyFromSettings, type TrustPolicy } from '../package/trust.js';
import { verifyPackage, type VerifiedPackage } from '../package/verify.js';
import { defaultXmlLimits } from '../package/xml.js';
import { collect, exitCodes, readInputFile, readTextFile, UsageError, type CliIo } from './io.js';
import { packageTestCommand } from './package-test.js';

interface TrustFlags {
  readonly trustAnchor: string[];
  readonly anchorSha256?: string;
  readonly subject?: string;
  readonly eku?: string;
  readonly denySerials?: string;
}

/** Flags override the app settings; the same trust policy the cloud builds from them. */
export async function trustPolicyFromFlags(flags: TrustFlags, io: CliIo): Promise<TrustPolicy> {
  const settings = loadSettings(io.env);
  const anchors = await Promise.all(flags.trustAnchor.map((path) => readTextFile(path, `--trust-anchor ${path}`)));
  const deny = flags.denySerials ? parseSerialList(await readTextFile(flags.denySerials, `--deny-serials ${flags.denySerials}`)) : undefined;
  try {
    return trustPolicyFromSettings({
      ...settings,
      EMFLEET_TRUST_ANCHORS: anchors.length > 0 ? anchors.join('\n') : settings.EMFLEET_TRUST_ANCHORS,
      EMFLEET_TRUST_ANCHOR_SHA256: flags.anchorSha256 ? flags.anchorSha256.split(',') : settings.EMFLEET_TRUST_ANCHOR_SHA256,
      EMFLEET_SIGNER_SUBJECT: flags.subject ?? settings.EMFLEET_SIGNER_SUBJECT,
      EMFLEET_SIGNER_EKU: flags.eku ?? settings.EMFLEET_SIGNER_EKU,
      EMFLEET_REVOKED_SERIALS: deny ?? settings.EMFLEET_REVOKED_SERIALS,
    });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
    throw error;
  }
}

export function addTrustOptions(command: Command): Command {
  return command
    .option('--trust-anchor <pem>', 'PEM file of a trust anchor (repeatable; default: EMFLEET_TRUST_ANCHORS)', collect, [])
    .option('--anchor-sha256 <hex>', 'SHA-256 pin(s) the anchors must match, comma-separated (default: EMFLEET_TRUST_ANCHOR_SHA256)')
    .option('--subject <cn>', 'required signer subject CN (default: EMFLEET_SIGNER_SUBJECT or "Microsoft Exchange XML Signing")')
    .option('--eku <oid>', 'required signer extended key usage (default: EMFLEET_SIGNER_EKU or 1.3.6.1.4.1.311.76.57.1.11)')
    .option('--deny-serials <file>', 'file of revoked certificate serials, one hex serial per line (default: EMFLEET_REVOKED_SERIALS)');
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
Expired, Revoked, Rollback) when it is not; exit 2 for usage errors.

Example:
  emfleet package verify mitigations.xml --trust-anchor MicrosoftRootCA2011.pem \\
    --anchor-sha256 847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61`,
    )
    .action(async (file: string, flags: TrustFlags & { json?: boolean }) => {
      const trust = await trustPolicyFromFlags(flags, io);
      const result = verifyPackage(await readInputFile(file, defaultXmlLimits.maxBytes), { trust });
      if (result.ok) {
        if (flags.json) io.stdout(JSON.stringify(verifiedJson(result)));
        else io.stdout(`verified: ${describeMitigations(result)} signed by ${result.signer.subject}`);
        setExitCode(exitCodes.ok);
      } else {
        if (flags.json) io.stdout(JSON.stringify({ ok: false, sha256: result.sha256, reason: result.reason, detail: result.detail }));
        else io.stderr(`rejected: ${result.reason}: ${result.detail}`);
        setExitCode(exitCodes.failed);
      }
    });

  command
    .command('sign')
    .description('sign an EOCS document (enveloped XML-DSig, RSA-SHA256, signer and chain in KeyInfo)')
    .argument('<in>', 'the unsigned EOCS document')
    .requiredOption('--key <pem>', "the signer's private key (PEM)")
    .requiredOption('--cert <pem>', "the signer's certificate (PEM)")
    .option('--chain <pem>', 'an intermediate certificate to include (repeatable)', collect, [])
    .requiredOption('--out <file>', 'where to write the signed package')
    .option('--sequence <n>', 'sequence number for an organization feed (must grow with each package)')
    .option('--json', 'print one JSON object on stdout')
    .addHelpText(
      'after',
      `
Stamps EOCS@signingTime (now) and, with --sequence, EOCS@sequence, then signs the whole document.

Example:
  emfleet package sign custom.xml --key signer.key --cert signer.pem --chain intermediate.pem \\
    --sequence 42 --out custom.signed.xml`,
    )
    .action(async (input: string, flags: { key: string; cert: string; chain: string[]; out: string; sequence?: string; json?: boolean }) => {
      const sequence = flags.sequence === undefined ? undefined : parseSequenceFlag(flags.sequence);
      const xml = Buffer.from(await readInputFile(input, defaultXmlLimits.maxBytes)).toString('utf8');
      const identity = {
        privateKeyPem: await readTextFile(flags.key, `--key ${flags.key}`),
        certificatePem: await readTextFile(flags.cert, `--cert ${flags.cert}`),
        chainPems: await Promise.all(flags.chain.map((path) => readTextFile(path, `--chain ${path}`))),
      };
      let signed: string;
      try {
        signed = signPackage(xml, identity, sequence === undefined ? {} : { sequence });
      } catch (error) {
        if (error instanceof ConfigError) throw new UsageError(error.message, { cause: error });
        throw error;
      }
      const temporary = `${flags.out}.${process.pid}.tmp`;
      await writeFile(temporary, signed);
      await rename(temporary, flags.out);
      if (flags.json) io.stdout(JSON.stringify({ ok: true, out: flags.out, bytes: Buffer.byteLength(signed) }));
      else io.stdout(`signed: ${flags.out} (${Buffer.byteLength(signed)} bytes)`);
    });

  command.addCommand(packageTestCommand(io, setExitCode));
  return command;
}

function parseSequenceFlag(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`--sequence "${text}" is not a non-negative integer`);
  return Number(text);
}

function describeMitigations(result: VerifiedPackage): string {
  const ids = result.package.mitigations.map((mitigation) => mitigation.id);
  return `${ids.length} mitigation${ids.length === 1 ? '' : 's'} (${ids.join(', ')})`;
}

function verifiedJson(result: VerifiedPackage): Record<string, unknown> {
  return {
    ok: true,
    sha256: result.sha256,
    version: result.package.version,
    signingTime: result.package.signingTime?.toISOString() ?? null,
    sequence: result.package.sequence ?? null,
    mitigations: result.package.mitigations.map(mitigationJson),
    unknown: result.package.unknown,
    signer: result.signer,
    chain: result.chain,
  };
}

/** Builds as text: what admins read and what other tools parse. */
export function mitigationJson(mitigation: Mitigation): Record<string, unknown> {
  return {
    id: mitigation.id,
    description: mitigation.description,
    applicability: mitigation.applicability.map((range) => ({ min: formatBuild(range.min), max: formatBuild(range.max) })),
    actions: mitigation.actions.map((action: MitigationAction) => ({ ...action })),
  };
}
