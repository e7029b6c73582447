import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { filesUnder, sourceCandidates, unmirroredTests } from '../../tools/test-layout.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('sourceCandidates', () => {
  it.each([
    {
      name: 'a lib module',
      test: 'test/rollout/gate.test.ts',
      sources: ['lib/rollout/gate', 'rollout/gate'],
    },
    {
      name: 'an aspect of one',
      test: 'test/package/verify.attacks.test.ts',
      sources: ['lib/package/verify', 'package/verify'],
    },
    { name: 'a root module', test: 'test/clock.test.ts', sources: ['lib/clock', 'clock'] },
    {
      name: 'a nested folder',
      test: 'test/local/host/queues.test.ts',
      sources: ['lib/local/host/queues', 'local/host/queues'],
    },
    {
      name: 'a trigger',
      test: 'test/functions/pollOcs.test.ts',
      sources: ['lib/functions/pollOcs', 'functions/pollOcs'],
    },
    { name: 'not a test file', test: 'test/helpers/wait.ts', sources: [] },
  ])('$name: $test', ({ test, sources }) => {
    expect(sourceCandidates(test)).toEqual(sources);
  });
});

describe('unmirroredTests', () => {
  const sources = [
    'lib/rollout/gate.ts',
    'lib/local/host/index.ts',
    'functions/pollOcs.ts',
    'infra/main.bicep',
    'README.md',
    'tools/infra-checks/bicep.ts',
  ];
  it.each([
    { name: 'a module', test: 'test/rollout/gate.test.ts', mirrored: true },
    { name: 'an aspect of a module', test: 'test/rollout/gate.budget-edges.test.ts', mirrored: true },
    { name: 'a folder of modules', test: 'test/local/host.test.ts', mirrored: true },
    { name: 'a trigger', test: 'test/functions/pollOcs.test.ts', mirrored: true },
    { name: 'a Bicep file', test: 'test/infra/main.test.ts', mirrored: true },
    { name: 'the README, in any case', test: 'test/readme.test.ts', mirrored: true },
    { name: 'a tool', test: 'test/tools/infra-checks/bicep.test.ts', mirrored: true },
    { name: 'a whole flow', test: 'test/e2e/halt.test.ts', mirrored: true },
    { name: 'a test named after no file', test: 'test/rollout/fanout.test.ts', mirrored: false },
    { name: 'a test in the wrong folder', test: 'test/gate.test.ts', mirrored: false },
    { name: 'a prefix of a name is not the name', test: 'test/rollout/ga.test.ts', mirrored: false },
  ])('$name: $test', ({ test, mirrored }) => {
    expect(unmirroredTests([test], sources)).toEqual(mirrored ? [] : [test]);
  });
});

describe('this repository', () => {
  it('names, for every test file, the source file it specifies', () => {
    const testFiles = filesUnder(root, 'test').filter((path) => path.endsWith('.test.ts'));
    const sources = ['lib', 'functions', 'tools', 'bench', 'infra', 'web', 'scripts']
      .flatMap((folder) => filesUnder(root, folder))
      .concat(
        readdirSync(root, { withFileTypes: true })
          .filter((entry) => entry.isFile())
          .map((entry) => entry.name),
      );
    expect(testFiles.length).toBeGreaterThan(50);
    expect(unmirroredTests(testFiles, sources)).toEqual([]);
  });
});
