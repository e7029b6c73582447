import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSettings, settingNames } from '../../lib/config/index.js';
import { emfleetVersion } from '../../lib/version.js';

/** Settings the Functions host itself reads; not emfleet's to parse. */
const hostSettings = ['FUNCTIONS_WORKER_RUNTIME'];

describe('settings', () => {
  it('local.settings.sample.json lists exactly the settings lib/config reads', () => {
    const sample = JSON.parse(readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8'));
    const sampled = Object.keys(sample.Values).filter((name) => !hostSettings.includes(name));
    expect(sampled.sort()).toEqual([...settingNames].sort());
  });

  it('every sample value in local.settings.sample.json is valid', () => {
    const sample = JSON.parse(readFileSync(new URL('../../local.settings.sample.json', import.meta.url), 'utf8'));
    const settings = loadSettings(sample.Values);
    expect(settings.EMFLEET_WAVES.map((wave) => wave.name)).toEqual(['canary', 'early', 'broad']);
    expect(settings.EMFLEET_ORG).toBe('contoso');
  });

  it('applies the Microsoft feed defaults', () => {
    const settings = loadSettings({});
    expect(settings.EMFLEET_SIGNER_SUBJECT).toBe('Microsoft Exchange XML Signing');
    expect(settings.EMFLEET_SIGNER_EKU).toBe('1.3.6.1.4.1.311.76.57.1.11');
    expect(settings.EMFLEET_TRUST_ANCHORS).toBeUndefined();
  });

  it('splits comma lists and ignores blank values', () => {
    const settings = loadSettings({ EMFLEET_REVOKED_SERIALS: ' 0A1B, ,ff00 ', EMFLEET_TRUST_ANCHORS: '  ' });
    expect(settings.EMFLEET_REVOKED_SERIALS).toEqual(['0A1B', 'ff00']);
    expect(settings.EMFLEET_TRUST_ANCHORS).toBeUndefined();
  });

  it('names the setting that is wrong', () => {
    expect(() => loadSettings({ EMFLEET_SIGNER_EKU: 'code signing' })).toThrow(/EMFLEET_SIGNER_EKU: must be a dotted OID/);
  });
});

describe('version', () => {
  it('lib/version.ts says what package.json says', () => {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(emfleetVersion).toBe(manifest.version);
  });
});
