import { randomBytes } from 'node:crypto';
import { InvocationContext } from '@azure/functions';
import { afterEach, describe, expect, it } from 'vitest';
import { adminHandlers } from '../../lib/app/http.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
import { adminRequest } from '../helpers/admin.js';

/** The admin routes as the host calls them: the settings come from the process environment. */
const saved = { ...process.env };

afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
});

function useSettings(settings: Record<string, string>): void {
  Object.assign(process.env, {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: `h${randomBytes(5).toString('hex')}`,
    ...settings,
  });
}

const context = () => new InvocationContext({ functionName: 'adminStatus', logHandler: () => undefined });

describe('adminHandlers', () => {
  it("answer with the worker's context: the org and the admin auth the settings name", async () => {
    useSettings({ EMFLEET_ORG: 'fabrikam', EMFLEET_ADMIN_AUTH: 'functionKey' });
    const response = await adminHandlers.status(
      adminRequest('GET', 'status', { signedIn: false }),
      context(),
    );
    expect(response).toMatchObject({ jsonBody: { org: 'fabrikam' } });
  });

  it('without a sign-in under Entra auth, the refusal names the setting that opens the API locally', async () => {
    useSettings({ EMFLEET_ADMIN_AUTH: 'entra' });
    const response = await adminHandlers.status(
      adminRequest('GET', 'status', { signedIn: false }),
      context(),
    );
    expect(response).toMatchObject({
      status: 401,
      jsonBody: {
        code: 'Unauthenticated',
        detail: expect.stringContaining('EMFLEET_ADMIN_AUTH=functionKey'),
      },
    });
  });

  it('a setting that is wrong fails the invocation with its name, not a half-built context', async () => {
    useSettings({ EMFLEET_ADMIN_AUTH: 'anyone' });
    await expect(
      Promise.resolve().then(() => adminHandlers.status(adminRequest('GET', 'status'), context())),
    ).rejects.toThrow(/EMFLEET_ADMIN_AUTH: must be one of entra, functionKey/);
  });
});
