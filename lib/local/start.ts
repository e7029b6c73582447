import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createDevPki, devPkiFiles, writeDevPki } from './pki.js';
import { catalogueXml } from './catalogue.js';
import { signPackage } from '../package/sign.js';
import { createTrustPolicy } from '../package/trust.js';
import { verifyPackage } from '../package/verify.js';
import { formatBuild } from '../package/build.js';

/**
 * `npm start`. Until the local Functions host exists, this shows the trust core end to end on the
 * dev PKI: make the PKI under .emfleet/ on first run, sign the demo catalogue, verify it as the
 * cloud would, and say what the package asks for.
 */
async function start(): Promise<void> {
  const home = resolve('.emfleet');
  const pkiDirectory = join(home, 'pki');
  const file = (name: keyof typeof devPkiFiles): string => join(pkiDirectory, devPkiFiles[name]);
  const made = await access(file('root')).then(() => false, async () => {
    await writeDevPki(await createDevPki(), pkiDirectory);
    return true;
  });
  const [rootPem, privateKeyPem, certificatePem, intermediatePem] = await Promise.all(
    (['root', 'signerKey', 'signer', 'intermediate'] as const).map((name) => readFile(file(name), 'utf8')),
  );
  const signer = { privateKeyPem: privateKeyPem!, certificatePem: certificatePem!, chainPems: [intermediatePem!] };
  log(made ? `made the dev PKI in ${pkiDirectory}` : `using the dev PKI in ${pkiDirectory}`);

  const signed = signPackage(catalogueXml, signer);
  await mkdir(join(home, 'packages'), { recursive: true });
  const packagePath = join(home, 'packages', 'catalogue.signed.xml');
  await writeFile(packagePath, signed);
  log(`signed the demo catalogue: ${packagePath}`);

  const result = verifyPackage(Buffer.from(signed), { trust: createTrustPolicy({ anchorPems: [rootPem!] }) });
  if (!result.ok) throw new Error(`the demo package was rejected: ${result.reason}: ${result.detail}`);
  log(`verified: sha256 ${result.sha256}, signed by ${result.signer.subject} (${result.chain.join(' → ')})`);
  for (const mitigation of result.package.mitigations) {
    const builds = mitigation.applicability.length === 0
      ? 'every build'
      : mitigation.applicability.map((range) => `${formatBuild(range.min)}–${formatBuild(range.max)}`).join(', ');
    const actions = mitigation.actions.map((action) => action.kind).join(', ');
    log(`  ${mitigation.id.padEnd(6)} ${actions.padEnd(15)} ${builds}`);
  }
  log('the full local run (Azurite, local Functions host, relay emulator, simulated agents) is exercised by `npm test` (test/e2e); `npm start` will run it next.');
  log(`try: npx emfleet package verify ${packagePath} --trust-anchor ${join(pkiDirectory, devPkiFiles.root)}`);
}

function log(line: string): void {
  process.stdout.write(line + '\n');
}

start().catch((error: unknown) => {
  process.stderr.write(`emfleet start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
