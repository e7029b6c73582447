import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { formatBuild, parseBuild } from '../model/build.js';
import { ApplierError } from './applier.js';
import { callScript, scriptInvocation, spawnScriptRunner, type ScriptRunner } from './appliers/powershell.js';

/*
 * The agent reads its Exchange build from the server itself (docs/agent.md, "The Exchange build"),
 * at start and on every status request, so nobody types it and a Cumulative or Security Update is
 * noticed. `build` in agent.json is an override only.
 *
 * Two sources, as Microsoft's own scripts use them (CSS-Exchange HealthChecker): ExSetup.exe's file
 * version, which Security Updates change, and the Setup registry key (MsiProductMajor/Minor,
 * MsiBuildMajor/Minor), which records the Cumulative Update only. ExSetup's version is preferred:
 * the fixing builds in mitigation packages are Security Update builds such as 15.2.1118.20.
 */

/** What the Setup key and ExSetup.exe say (any may be missing). */
export const setupValues = z
  .object({
    MsiProductMajor: z.number().int().nonnegative().optional(),
    MsiProductMinor: z.number().int().nonnegative().optional(),
    MsiBuildMajor: z.number().int().nonnegative().optional(),
    MsiBuildMinor: z.number().int().nonnegative().optional(),
    /** ExSetup.exe's FileVersion, e.g. 15.02.1544.004. */
    ExSetupVersion: z.string().max(64).optional(),
  })
  .strict();
export type SetupValues = z.infer<typeof setupValues>;

export type BuildSource = 'agent.json' | 'ExSetup.exe' | 'registry';

export type DetectedBuild =
  | { readonly build: string; readonly source: BuildSource }
  | { readonly build: undefined; readonly problem: string };

/** Exchange 2016 is 15.1, Exchange 2019 and Subscription Edition are 15.2. */
const supportedProducts = new Set(['15.1', '15.2']);

/** The build the Setup values give (pure): ExSetup.exe's version first, else the registry's four numbers. */
export function buildFromSetup(values: SetupValues): DetectedBuild {
  const problems: string[] = [];
  const candidates: { source: BuildSource; text: string | undefined }[] = [
    { source: 'ExSetup.exe', text: values.ExSetupVersion },
    {
      source: 'registry',
      text: [
        values.MsiProductMajor,
        values.MsiProductMinor,
        values.MsiBuildMajor,
        values.MsiBuildMinor,
      ].every((part) => part !== undefined)
        ? [values.MsiProductMajor, values.MsiProductMinor, values.MsiBuildMajor, values.MsiBuildMinor].join(
            '.',
          )
        : undefined,
    },
  ];
  for (const { source, text } of candidates) {
    if (text === undefined) {
      problems.push(
        source === 'ExSetup.exe'
          ? 'no ExSetup.exe version'
          : 'the Setup registry key lacks MsiProductMajor, MsiProductMinor, MsiBuildMajor or MsiBuildMinor',
      );
      continue;
    }
    const build = parseBuild(text);
    if (!build) {
      problems.push(`${source} says "${text}", which is not an Exchange build`);
      continue;
    }
    if (!supportedProducts.has(`${build[0]}.${build[1]}`)) {
      problems.push(
        `${source} says ${formatBuild(build)}, which is not Exchange 2016 (15.1), 2019 or SE (15.2)`,
      );
      continue;
    }
    // 15.02.1544.004 as ExSetup writes it is 15.2.1544.4.
    return { build: formatBuild(build), source };
  }
  return { build: undefined, problem: problems.join('; ') };
}

/** Reads the Setup values of this server. */
export type SetupReader = () => Promise<SetupValues>;

/**
 * The Windows reader: the constant script exchange-build.read.ps1 (it reads
 * HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\Setup and Bin\ExSetup.exe under its MsiInstallPath),
 * run like the applier's scripts, nothing passed in.
 */
export function windowsSetupReader(
  options: { executable?: string | undefined; timeoutInMs?: number; run?: ScriptRunner } = {},
): SetupReader {
  const runner = { run: options.run ?? spawnScriptRunner, timeoutInMs: options.timeoutInMs ?? 30_000 };
  return () =>
    callScript(
      runner,
      scriptInvocation(
        'exchange-build.read',
        {},
        {
          ...(options.executable === undefined ? {} : { executable: options.executable }),
          timeoutInMs: runner.timeoutInMs,
        },
      ),
      'exchange-build.read',
      setupValues,
    );
}

/**
 * A simulated server's Setup key: exchange-setup.json in the state directory, with the same values
 * ({"ExSetupVersion": "15.02.1118.020"}), so tests and local runs install a Cumulative Update by
 * writing a file. No file: nothing detected.
 */
export function simulatedSetupFile(stateDirectory: string): string {
  return join(stateDirectory, 'exchange-setup.json');
}

export function fileSetupReader(file: string): SetupReader {
  return async () => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw error;
    }
    return parseSetupJson(text, file);
  };
}

function parseSetupJson(text: string, where: string): SetupValues {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApplierError('BadReply', `${where} did not give JSON: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const parsed = setupValues.safeParse(json);
  if (!parsed.success)
    throw new ApplierError(
      'BadReply',
      `${where}: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`,
    );
  return parsed.data;
}

/** The build to report: the override when agent.json has one, else what the server says; a failure to read is a problem, not a crash. */
export async function detectBuild(read: SetupReader, override?: string): Promise<DetectedBuild> {
  if (override !== undefined) return { build: override, source: 'agent.json' };
  try {
    return buildFromSetup(await read());
  } catch (error) {
    return { build: undefined, problem: error instanceof Error ? error.message : String(error) };
  }
}
