import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { runCli } from '../helpers/cli.js';

const fixtures = new URL('../package/fixtures/xmlsec1/', import.meta.url);
let dir: string;
let pki: {
  root: string;
  intermediate: string;
  signer: string;
  signerKey: string;
  timestampRoot: string;
  timestampAuthority: string;
  timestampAuthorityKey: string;
};
let signedPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emfleet-cli-'));
  const made = await runCli(['dev', 'pki', '--out', join(dir, 'pki'), '--json']);
  expect(made.code, made.stderr).toBe(0);
  pki = JSON.parse(made.stdout).files;
  await writeFile(join(dir, 'catalogue.xml'), catalogueXml);
  signedPath = join(dir, 'catalogue.signed.xml');
  const signed = await runCli([
    'package',
    'sign',
    join(dir, 'catalogue.xml'),
    '--key',
    pki.signerKey,
    '--cert',
    pki.signer,
    '--chain',
    pki.intermediate,
    '--chain',
    pki.root,
    '--dev-tsa',
    join(dir, 'pki'),
    '--sequence',
    '7',
    '--out',
    signedPath,
  ]);
  expect(signed.code, signed.stderr).toBe(0);
  expect(signed.stdout).toMatch(/^signed: .*time-stamped/);
});

describe('emfleet dev pki', () => {
  it('writes the four files with the Microsoft signer subject and EKU', async () => {
    const signer = new X509Certificate(await readFile(pki.signer));
    expect(signer.subject).toBe('CN=Microsoft Exchange XML Signing');
    expect(signer.keyUsage).toContain('1.3.6.1.4.1.311.76.57.1.11');
    expect(await readFile(pki.signerKey, 'utf8')).toContain('BEGIN PRIVATE KEY');
    expect(new X509Certificate(await readFile(pki.intermediate)).ca).toBe(true);
    const tsa = new X509Certificate(await readFile(pki.timestampAuthority));
    expect(tsa.keyUsage).toEqual(['1.3.6.1.5.5.7.3.8']);
    expect(tsa.checkIssued(new X509Certificate(await readFile(pki.timestampRoot)))).toBe(true);
    expect(await readFile(pki.timestampAuthorityKey, 'utf8')).toContain('BEGIN PRIVATE KEY');
  });

  it('refuses to replace an existing PKI without --force', async () => {
    const again = await runCli(['dev', 'pki', '--out', join(dir, 'pki')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists; pass --force/);
  });
});

describe('emfleet package verify', () => {
  it('prints one verified line and exits 0', async () => {
    const run = await runCli(['package', 'verify', signedPath, '--trust-anchor', pki.root]);
    expect(run.code).toBe(0);
    expect(run.stdout.trim()).toBe(
      'verified: 4 mitigations (PING1, EM1, EM2, EM3) signed by CN=Microsoft Exchange XML Signing, time stamp not checked (no timestamp anchor)',
    );
  });

  it('with --timestamp-anchor (or EMFLEET_TIMESTAMP_ANCHORS, pinned) the time stamp is the signing time', async () => {
    const run = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--timestamp-anchor',
      pki.timestampRoot,
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(json.signingTime).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(json.timestamp).toMatchObject({
      status: 'verified',
      time: json.signingTime,
      chain: ['CN=emfleet Dev Time-Stamp Service', 'CN=emfleet Dev Time-Stamp Root CA'],
    });
    const fingerprint = new X509Certificate(await readFile(pki.timestampRoot)).fingerprint256;
    const byEnvironment = await runCli(['package', 'verify', signedPath], {
      env: {
        EMFLEET_TRUST_ANCHORS: pki.root,
        EMFLEET_TIMESTAMP_ANCHORS: pki.timestampRoot,
        EMFLEET_TIMESTAMP_ANCHOR_SHA256: fingerprint,
      },
    });
    expect(byEnvironment.code, byEnvironment.stderr).toBe(0);
    expect(byEnvironment.stdout).toMatch(/, time-stamped \d{4}-/);
    const wrongPin = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--timestamp-anchor',
      pki.timestampRoot,
      '--timestamp-anchor-sha256',
      'AB'.repeat(32),
    ]);
    expect(wrongPin.code).toBe(2);
    expect(wrongPin.stderr).toMatch(/timestamp anchor .* matches no configured pin/);
    const wrongRoot = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--timestamp-anchor',
      pki.root,
    ]);
    expect(wrongRoot.code).toBe(1);
    expect(wrongRoot.stderr).toMatch(/^emfleet: BadTimestamp: /);
  });

  it("verifies Microsoft's genuine 2021 package with both Microsoft roots, dated by its time stamp", async () => {
    const microsoft = new URL('../package/fixtures/microsoft/', import.meta.url);
    const run = await runCli([
      'package',
      'verify',
      new URL('getexchangemitigations-2021-09-29.xml', microsoft).pathname,
      '--trust-anchor',
      new URL('MicrosoftRootCertificateAuthority2011.pem', microsoft).pathname,
      '--anchor-sha256',
      '847DF6A78497943F27FC72EB93F9A637320A02B561D0A91B09E87A7807ED7C61',
      '--timestamp-anchor',
      new URL('MicrosoftRootCertificateAuthority2010.pem', microsoft).pathname,
      '--timestamp-anchor-sha256',
      'DF545BF919A2439C36983B54CDFC903DFA4F37D3996D8D84B4C31EEC6F3C163E',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: true,
      signingTime: '2021-09-15T16:42:08.621Z',
      mitigations: [{ id: 'PING1' }],
    });
  });

  it('prints the JSON contract with --json', async () => {
    const run = await runCli(['package', 'verify', signedPath, '--trust-anchor', pki.root, '--json']);
    expect(run.code).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(json).toMatchObject({
      ok: true,
      sequence: 7,
      signer: { subject: 'CN=Microsoft Exchange XML Signing' },
    });
    expect(json.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(json.mitigations.map((mitigation: { id: string }) => mitigation.id)).toEqual([
      'PING1',
      'EM1',
      'EM2',
      'EM3',
    ]);
    expect(json.mitigations[1].applicability[0]).toEqual({ min: '15.1.0.0', max: '15.1.2507.15' });
  });

  it('rejects a tampered package with exit 1 and one line on stderr', async () => {
    const tampered = join(dir, 'tampered.xml');
    await writeFile(tampered, (await readFile(signedPath, 'utf8')).replace('MSExchangeUM', 'MSExchangeIS'));
    const run = await runCli(['package', 'verify', tampered, '--trust-anchor', pki.root]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^emfleet: BadSignature: /);
    const json = await runCli(['package', 'verify', tampered, '--trust-anchor', pki.root, '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, reasonCode: 'BadSignature' });
    expect(json.stderr).toMatch(/^emfleet: BadSignature: /);
  });

  it('needs a trust anchor: no built-in trust', async () => {
    const run = await runCli(['package', 'verify', signedPath]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no trust anchor configured/);
  });

  it('takes the anchor from EMFLEET_TRUST_ANCHORS (path or PEM text)', async () => {
    const byPath = await runCli(['package', 'verify', signedPath], {
      env: { EMFLEET_TRUST_ANCHORS: pki.root },
    });
    expect(byPath.code, byPath.stderr).toBe(0);
    const byText = await runCli(['package', 'verify', signedPath], {
      env: { EMFLEET_TRUST_ANCHORS: await readFile(pki.root, 'utf8') },
    });
    expect(byText.code, byText.stderr).toBe(0);
  });

  it('checks the anchor pin', async () => {
    const fingerprint = new X509Certificate(await readFile(pki.root)).fingerprint256;
    const pinned = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--anchor-sha256',
      fingerprint,
    ]);
    expect(pinned.code, pinned.stderr).toBe(0);
    const wrong = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--anchor-sha256',
      'AB'.repeat(32),
    ]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/matches no configured pin/);
  });

  it('applies --subject, --eku and --deny-serials', async () => {
    const subject = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--subject',
      'Contoso Mitigations',
    ]);
    expect(subject.code).toBe(1);
    expect(subject.stderr).toMatch(/^emfleet: WrongSigner: .*Contoso Mitigations/);
    const eku = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--eku',
      '1.3.6.1.5.5.7.3.3',
    ]);
    expect(eku.stderr).toMatch(/^emfleet: WrongSigner: .*1\.3\.6\.1\.5\.5\.7\.3\.3/);
    const serial = new X509Certificate(await readFile(pki.intermediate)).serialNumber;
    const denyFile = join(dir, 'deny.txt');
    await writeFile(denyFile, `# revoked by the CA on 2026-11-01\n${serial.toLowerCase()}\n`);
    const revoked = await runCli([
      'package',
      'verify',
      signedPath,
      '--trust-anchor',
      pki.root,
      '--deny-serials',
      denyFile,
    ]);
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/^emfleet: Revoked: /);
  });

  it('verifies a package signed by xmlsec1 and rejects its SHA-1 sibling', async () => {
    const root = new URL('root.pem', fixtures).pathname;
    const full = await runCli([
      'package',
      'verify',
      new URL('full.signed.xml', fixtures).pathname,
      '--trust-anchor',
      root,
    ]);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/^verified: 4 mitigations \(PING1, EM1, EM2, EM3\)/);
    const sha1 = await runCli([
      'package',
      'verify',
      new URL('sha1.signed.xml', fixtures).pathname,
      '--trust-anchor',
      root,
    ]);
    expect(sha1.code).toBe(1);
    expect(sha1.stderr).toMatch(/^emfleet: UnsupportedAlgorithm: /);
  });

  it('refuses an oversized file by size, without parsing it', async () => {
    const huge = join(dir, 'huge.xml');
    await writeFile(huge, Buffer.alloc(6 * 1024 * 1024, 'a'));
    const run = await runCli(['package', 'verify', huge, '--trust-anchor', pki.root]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^emfleet: TooLarge: /);
  });

  it.each([
    {
      name: 'missing file',
      args: ['package', 'verify', '/nonexistent/package.xml', '--trust-anchor', 'ROOT'],
      message: /cannot read \/nonexistent\/package\.xml/,
    },
    {
      name: 'unknown option',
      args: ['package', 'verify', 'PKG', '--trust-anchor', 'ROOT', '--bogus'],
      message: /unknown option '--bogus'/,
    },
    { name: 'missing argument', args: ['package', 'verify'], message: /missing required argument 'file'/ },
    {
      name: 'unreadable anchor',
      args: ['package', 'verify', 'PKG', '--trust-anchor', '/nonexistent/root.pem'],
      message: /--trust-anchor \/nonexistent\/root\.pem/,
    },
  ])('exits 2 on a usage error: $name', async ({ args, message }) => {
    const run = await runCli(
      args.map((arg) => (arg === 'ROOT' ? pki.root : arg === 'PKG' ? signedPath : arg)),
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });
});

describe('emfleet package sign', () => {
  it.each([
    { name: 'already signed input', input: 'SIGNED', extra: ['--no-timestamp'], message: /already signed/ },
    {
      name: 'key of another certificate',
      input: 'CATALOGUE',
      extra: ['--cert', 'ROOT', '--no-timestamp'],
      message: /signing key does not belong to its certificate/,
    },
    {
      name: 'no time-stamp authority',
      input: 'CATALOGUE',
      extra: [],
      message: /give a time-stamp authority/,
    },
    {
      name: 'TSA key of another certificate',
      input: 'CATALOGUE',
      extra: ['--tsa-key', 'TSAKEY', '--tsa-cert', 'ROOT'],
      message: /time-stamp authority key does not belong to its certificate/,
    },
    {
      name: 'bad sequence',
      input: 'CATALOGUE',
      extra: ['--sequence', 'seven'],
      message: /--sequence "seven"/,
    },
    {
      name: 'not an EOCS document',
      input: 'ROOT',
      extra: ['--no-timestamp'],
      message: /not a valid EOCS document/,
    },
  ])('exits 2 and writes nothing: $name', async ({ input, extra, message }) => {
    const out = join(dir, `never-${Math.random().toString(16).slice(2)}.xml`);
    const resolve = (arg: string): string =>
      (
        ({
          SIGNED: signedPath,
          CATALOGUE: join(dir, 'catalogue.xml'),
          ROOT: pki.root,
          TSAKEY: pki.timestampAuthorityKey,
        }) as Record<string, string>
      )[arg] ?? arg;
    const args = [
      'package',
      'sign',
      resolve(input),
      '--key',
      pki.signerKey,
      '--cert',
      pki.signer,
      '--out',
      out,
      ...extra.map(resolve),
    ];
    const run = await runCli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    await expect(readFile(out)).rejects.toThrow(/ENOENT/);
  });
});

describe('--help', () => {
  it.each([
    ['package', 'verify'],
    ['package', 'sign'],
    ['dev', 'pki'],
  ])('emfleet %s %s --help explains with an example', async (...command) => {
    const run = await runCli([...command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Example:\n  emfleet /);
  });
});
