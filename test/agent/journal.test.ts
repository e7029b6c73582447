import { describe, it, expect, beforeEach, afterAll } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplicableAction } from '../../lib/agent/applier.js';
import { SimulatedApplier } from '../../lib/agent/appliers/simulated.js';
import { Journal, JournalError, type JournalEntry } from '../../lib/agent/journal.js';
import { EmfleetError } from '../../lib/errors.js';
import { recordingLogger } from '../helpers/logs.js';
import { silentLogger } from '../../lib/log.js';

const ruleName = 'EEMS EM1 - Autodiscover Rule';
const ruleXml = `<rule name="${ruleName}" stopProcessing="true"><match url=".*autodiscover\\.json.*Powershell.*"/><action type="AbortRequest"/></rule>`;
const em1: ApplicableAction[] = [
  {
    kind: 'IisUrlRewrite',
    scope: 'Server',
    description: 'rewrite',
    site: 'Default Web Site',
    ruleName,
    ruleXml,
  },
];
const em2: ApplicableAction[] = [
  { kind: 'DisableAppPool', scope: 'Server', description: 'stop OWA', appPool: 'MSExchangeOWAAppPool' },
];
/** Two actions, so repair must restore both. */
const em10: ApplicableAction[] = [
  { kind: 'DisableService', scope: 'Server', description: 'stop HM', service: 'MSExchangeHM' },
  { kind: 'DisableService', scope: 'Server', description: 'stop UM', service: 'MSExchangeUM' },
];

const directories: string[] = [];
let directory: string;
let journalFile: string;
let applier: SimulatedApplier;

beforeEach(async () => {
  directory = await mkdtemp(join(tmpdir(), 'emfleet-journal-'));
  directories.push(directory);
  journalFile = join(directory, 'journal.json');
  applier = new SimulatedApplier(join(directory, 'server.json'));
});

afterAll(async () => {
  await Promise.all(directories.map((path) => rm(path, { recursive: true, force: true })));
});

/** What the agent does before a change: capture the priors and journal them. */
async function journalBeforeChange(
  journal: Journal,
  mitigationId: string,
  actions: ApplicableAction[],
  state: JournalEntry['state'] = 'applying',
): Promise<JournalEntry> {
  const priors = [];
  for (const action of actions) priors.push(await applier.capture(action));
  const entry: JournalEntry = {
    mitigationId,
    operationId: `op-${mitigationId}`,
    state,
    actions,
    priors,
    at: new Date().toISOString(),
  };
  await journal.put(entry);
  return entry;
}

async function applyAll(actions: ApplicableAction[]): Promise<void> {
  for (const action of actions) await applier.apply(action);
}

async function journalError(promise: Promise<unknown>): Promise<JournalError> {
  const error: unknown = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, 'expected a JournalError').toBeInstanceOf(JournalError);
  expect(error).toBeInstanceOf(EmfleetError);
  expect((error as JournalError).code).toBe('Journal');
  return error as JournalError;
}

describe('Journal', () => {
  it('starts empty when there is no file, and keeps entries across reopening', async () => {
    const journal = await Journal.open(journalFile);
    expect(journal.entries()).toEqual([]);
    await expect(readFile(journalFile)).rejects.toThrow(/ENOENT/);
    const entry = await journalBeforeChange(journal, 'EM2', em2, 'applied');
    expect(journal.get('EM2')).toEqual(entry);

    const reopened = await Journal.open(journalFile);
    expect(reopened.entries()).toEqual([entry]);
    expect(reopened.get('EM2')?.priors).toEqual([
      { kind: 'DisableAppPool', appPool: 'MSExchangeOWAAppPool', state: 'Started', autoStart: true },
    ]);
    await reopened.drop('EM2');
    expect((await Journal.open(journalFile)).entries()).toEqual([]);
  });

  it('repair after a crash between the change and "applied": the prior state is restored and the entry is gone', async () => {
    const before = await applier.read();
    const journal = await Journal.open(journalFile);
    await journalBeforeChange(journal, 'EM2', em2);
    await journalBeforeChange(journal, 'EM1', em1);
    await applyAll(em2);
    await applyAll(em1);
    expect(await applier.isApplied(em2[0]!)).toBe(true);
    // the process dies here; a new one starts
    const logger = recordingLogger();
    const restarted = await Journal.open(journalFile);
    expect(restarted.entries().map((entry) => entry.state)).toEqual(['applying', 'applying']);
    const { repaired, failed } = await restarted.repair(applier, logger);

    expect(repaired.sort()).toEqual(['EM1', 'EM2']);
    expect(failed).toEqual([]);
    expect(await applier.read()).toEqual(before);
    expect(restarted.entries()).toEqual([]);
    expect((await Journal.open(journalFile)).entries()).toEqual([]);
    expect(
      logger.events
        .filter((line) => line.event === 'JournalRepaired')
        .map((line) => [line.level, line.fields.mitigationId, line.fields.interrupted])
        .sort(),
    ).toEqual([
      ['warn', 'EM1', 'applying'],
      ['warn', 'EM2', 'applying'],
    ]);
  });

  it('repair after a crash before the change: restoring the prior is harmless', async () => {
    const before = await applier.read();
    const journal = await Journal.open(journalFile);
    await journalBeforeChange(journal, 'EM2', em2);
    const restarted = await Journal.open(journalFile);
    expect(await restarted.repair(applier, silentLogger)).toEqual({ repaired: ['EM2'], failed: [] });
    expect(await applier.read()).toEqual(before);
    expect(restarted.entries()).toEqual([]);
  });

  it('repair of a multi-action entry restores every action', async () => {
    const before = await applier.read();
    const journal = await Journal.open(journalFile);
    await journalBeforeChange(journal, 'EM10', em10);
    await applyAll(em10);
    const restarted = await Journal.open(journalFile);
    await restarted.repair(applier, silentLogger);
    expect(await applier.read()).toEqual(before);
  });

  it('an entry left "removing" is completed: the prior state is restored and the entry dropped', async () => {
    const before = await applier.read();
    const journal = await Journal.open(journalFile);
    const entry = await journalBeforeChange(journal, 'EM2', em2);
    await applyAll(em2);
    await journal.put({ ...entry, state: 'applied' });
    await journal.put({ ...entry, state: 'removing' });
    // dies before restoring
    const logger = recordingLogger();
    const restarted = await Journal.open(journalFile);
    expect(await restarted.repair(applier, logger)).toEqual({ repaired: ['EM2'], failed: [] });
    expect(await applier.read()).toEqual(before);
    expect((await Journal.open(journalFile)).entries()).toEqual([]);
    expect(logger.events).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        event: 'JournalRepaired',
        fields: expect.objectContaining({ mitigationId: 'EM2', interrupted: 'removing' }),
      }),
    );
  });

  it('an "applied" entry is left alone', async () => {
    const journal = await Journal.open(journalFile);
    const entry = await journalBeforeChange(journal, 'EM2', em2);
    await applyAll(em2);
    await journal.put({ ...entry, state: 'applied' });
    const changed = await readFile(join(directory, 'server.json'));
    const journalBytes = await readFile(journalFile);

    const restarted = await Journal.open(journalFile);
    expect(await restarted.repair(applier, silentLogger)).toEqual({ repaired: [], failed: [] });
    expect(restarted.entries()).toEqual([{ ...entry, state: 'applied' }]);
    expect(await readFile(join(directory, 'server.json'))).toEqual(changed);
    expect(await readFile(journalFile)).toEqual(journalBytes);
    expect(await applier.isApplied(em2[0]!)).toBe(true);
  });

  it('a repair that cannot restore keeps the entry, logs why and goes on, so the next try finishes it', async () => {
    const journal = await Journal.open(journalFile);
    await journalBeforeChange(journal, 'EM2', em2);
    await applyAll(em2);
    const broken = new SimulatedApplier(join(directory, 'server.json'), {
      failRestoreOn: ['MSExchangeOWAAppPool'],
    });
    const restarted = await Journal.open(journalFile);
    const logger = recordingLogger();
    // Before: the first failure threw out of repair, and the agent did not start.
    expect(await restarted.repair(broken, logger)).toEqual({ repaired: [], failed: ['EM2'] });
    expect(logger.events.find((line) => line.event === 'JournalRepairFailed')).toMatchObject({
      level: 'error',
      fields: { mitigationId: 'EM2', error: expect.stringMatching(/MSExchangeOWAAppPool/) },
    });
    expect((await Journal.open(journalFile)).get('EM2')?.state).toBe('removing');
    // the next try, with a working IIS, finishes it
    expect(await (await Journal.open(journalFile)).repair(applier, silentLogger)).toEqual({
      repaired: ['EM2'],
      failed: [],
    });
    expect(await applier.isApplied(em2[0]!)).toBe(false);
  });

  it('a journal file that is not JSON is a JournalError naming the file', async () => {
    await writeFile(journalFile, '{"version": 1, "entries": {');
    const error = await journalError(Journal.open(journalFile));
    expect(error.message).toContain(journalFile);
    expect(error.message).toMatch(/not valid JSON/);
  });

  it('a journal file of the wrong shape is a JournalError naming the file and the field', async () => {
    const shapes: Array<[unknown, RegExp]> = [
      [{ version: 2, entries: {} }, /version/],
      [[], /invalid/],
      [
        {
          version: 1,
          entries: {
            EM2: {
              mitigationId: 'EM2',
              operationId: 'op',
              state: 'half-done',
              actions: [],
              priors: [],
              at: 'now',
            },
          },
        },
        /entries\.EM2\.state/,
      ],
      [
        {
          version: 1,
          entries: {
            EM2: {
              mitigationId: 'EM2',
              operationId: 'op',
              state: 'applying',
              actions: [],
              priors: ['x'],
              at: 'now',
            },
          },
        },
        /entries\.EM2\.priors/,
      ],
    ];
    for (const [json, field] of shapes) {
      await writeFile(journalFile, JSON.stringify(json));
      const error = await journalError(Journal.open(journalFile));
      expect(error.message).toContain(journalFile);
      expect(error.message).toMatch(field);
    }
  });

  it('writes atomically: no .tmp is left behind, and a stale .tmp from a crash mid-write is ignored', async () => {
    const journal = await Journal.open(journalFile);
    const entry = await journalBeforeChange(journal, 'EM2', em2);
    await journal.put({ ...entry, state: 'applied' });
    await journalBeforeChange(journal, 'EM1', em1);
    await journal.drop('EM1');
    expect((await readdir(directory)).filter((name) => name.startsWith('journal'))).toEqual(['journal.json']);
    JSON.parse(await readFile(journalFile, 'utf8'));

    // a crash while writing leaves a half-written temporary; the journal itself is intact
    await writeFile(`${journalFile}.tmp`, '{"version": 1, "entr');
    const reopened = await Journal.open(journalFile);
    expect(reopened.entries()).toEqual([{ ...entry, state: 'applied' }]);
    await reopened.drop('EM2');
    expect((await readdir(directory)).filter((name) => name.startsWith('journal'))).toEqual(['journal.json']);
    expect((await Journal.open(journalFile)).entries()).toEqual([]);
  });

  it('creates its directory on first write', async () => {
    const nested = join(directory, 'state', 'agent', 'journal.json');
    const journal = await Journal.open(nested);
    await journalBeforeChange(journal, 'EM2', em2);
    expect((await Journal.open(nested)).get('EM2')?.mitigationId).toBe('EM2');
  });
});
