import { describe, expect, it } from 'vitest';
import {
  configFieldOf,
  loadConfig,
  settingNameOf,
  settingNames,
  settingReference,
  settingsEnvironment,
} from '../../lib/config/index.js';
import { ConfigError } from '../../lib/errors.js';

const wave = { name: 'all', select: { percent: 100 }, maxConcurrency: 5, maxErrors: 0, bake: 'PT0S' };

describe('loadConfig', () => {
  it('maps each setting to its camelCase field, with the Microsoft feed defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      signerSubject: 'Microsoft Exchange XML Signing',
      signerEku: '1.3.6.1.4.1.311.76.57.1.11',
      org: 'default',
      ocsUrl: 'https://officeclient.microsoft.com/getexchangemitigations',
      relaySendKeyName: 'send',
      pollSchedule: '0 0 * * * *',
      reconcileSchedule: '0 30 * * * *',
      orgFeeds: [],
      adminAuth: 'entra',
    });
    expect(config.trustAnchors).toBeUndefined();
    expect(config.storageConnectionString).toBeUndefined();
  });

  it('reads every field from the setting the table names', () => {
    const config = loadConfig({
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      EMFLEET_ORG: 'contoso',
      EMFLEET_QUEUE_PREFIX: 'run1',
      EMFLEET_WAVES: JSON.stringify([wave]),
      EMFLEET_ADMIN_AUTH: 'functionKey',
    });
    expect(config).toMatchObject({
      storageConnectionString: 'UseDevelopmentStorage=true',
      org: 'contoso',
      queuePrefix: 'run1',
      waves: [{ name: 'all', bake: 'PT0S' }],
      adminAuth: 'functionKey',
    });
  });

  it('splits comma lists and treats blank values as unset', () => {
    const config = loadConfig({ EMFLEET_REVOKED_SERIALS: ' 0A1B, ,ff00 ', EMFLEET_TRUST_ANCHORS: '  ' });
    expect(config.revokedSerials).toEqual(['0A1B', 'ff00']);
    expect(config.trustAnchors).toBeUndefined();
  });

  it('ignores what is not an emfleet setting, even a field name', () => {
    expect(loadConfig({ org: 'fabrikam', EMFLEET_UNKNOWN: 'x' }).org).toBe('default');
  });

  it.each([
    {
      name: 'an EKU that is not an OID',
      env: { EMFLEET_SIGNER_EKU: 'code signing' },
      error: /EMFLEET_SIGNER_EKU: must be a dotted OID/,
    },
    {
      name: 'a feed URL that is not http(s)',
      env: { EMFLEET_OCS_URL: 'ftp://example.com/feed' },
      error: /EMFLEET_OCS_URL: must be an http\(s\) URL/,
    },
    {
      name: 'an org that is not a table key',
      env: { EMFLEET_ORG: 'a/b' },
      error: /^invalid settings: EMFLEET_ORG: /,
    },
    {
      name: 'an account name with capitals',
      env: { EMFLEET_STORAGE_ACCOUNT: 'MyAccount' },
      error: /EMFLEET_STORAGE_ACCOUNT: must be a storage account name/,
    },
    {
      name: 'a 5-field cron',
      env: { EMFLEET_POLL_SCHEDULE: '0 * * * *' },
      error: /EMFLEET_POLL_SCHEDULE: must be a 6-field cron expression/,
    },
    {
      name: 'an unknown admin auth',
      env: { EMFLEET_ADMIN_AUTH: 'none' },
      error: /EMFLEET_ADMIN_AUTH: must be one of entra, functionKey/,
    },
    {
      name: 'waves that are not JSON',
      env: { EMFLEET_WAVES: '[canary' },
      error: /EMFLEET_WAVES: is not valid JSON/,
    },
    {
      name: 'a wave with a bad field',
      env: { EMFLEET_WAVES: JSON.stringify([{ ...wave, maxErrors: -1 }]) },
      error: /EMFLEET_WAVES\[0\]\.maxErrors: /,
    },
    {
      name: 'an org feed with a bad name',
      env: {
        EMFLEET_FEEDS: JSON.stringify([
          {
            name: 'Contoso Feed',
            url: 'https://x.example/f',
            trustAnchors: 'a.pem',
            signerSubject: 'S',
            signerEku: '1.2',
          },
        ]),
      },
      error: /EMFLEET_FEEDS\[0\]\.name: must be lower-case letters/,
    },
    {
      name: 'an org feed with an unknown key',
      env: {
        EMFLEET_FEEDS: JSON.stringify([
          {
            name: 'c',
            url: 'https://x.example/f',
            trustAnchors: 'a.pem',
            signerSubject: 'S',
            signerEku: '1.2',
            trust: 'all',
          },
        ]),
      },
      error: /EMFLEET_FEEDS\[0\]: /,
    },
  ])('$name: a ConfigError naming the setting', ({ env, error }) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(error);
  });

  it('names every setting that is wrong, not only the first', () => {
    expect(() => loadConfig({ EMFLEET_SIGNER_EKU: 'x', EMFLEET_NOTIFY_URL: 'not a url' })).toThrow(
      /EMFLEET_SIGNER_EKU: .*; EMFLEET_NOTIFY_URL: must be an http\(s\) URL/,
    );
  });
});

describe('the setting table', () => {
  it('maps each field to one setting and back', () => {
    expect(new Set(settingNames).size).toBe(settingNames.length);
    for (const [field, name] of Object.entries(settingNameOf)) expect(configFieldOf(name)).toBe(field);
    expect(configFieldOf('EMFLEET_NOT_A_SETTING')).toBeUndefined();
  });

  it('names settings for the host and for a local run', () => {
    expect(settingReference('pollSchedule')).toBe('%EMFLEET_POLL_SCHEDULE%');
    expect(settingsEnvironment({ org: 'contoso', storageConnectionString: 'cs' })).toEqual({
      EMFLEET_ORG: 'contoso',
      AzureWebJobsStorage: 'cs',
    });
  });
});
