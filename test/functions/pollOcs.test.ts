import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { InvocationContext, type Timer } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollOcs } from '../../functions/pollOcs.js';
import { latestPackage } from '../../lib/fleet/packages.js';
import { FleetTables } from '../../lib/fleet/storage.js';
import { createDevPki } from '../../lib/package/dev-pki.js';
import { signPackage } from '../../lib/package/sign.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { allEntities, azuriteConnectionString, rawTable } from '../helpers/fleet.js';
import { createTestPki } from '../helpers/packages.js';

/** The registered timer handler, driven as the host would, with the settings in the environment. */
let server: http.Server;
const bodies = new Map<string, string>();
const saved = { ...process.env };
let prefix: string;

beforeAll(async () => {
  const microsoft = await createTestPki();
  const contoso = await createDevPki({
    label: 'Contoso',
    signerSubjectCn: 'Contoso Exchange Mitigations',
    signerExtendedKeyUsages: ['1.3.6.1.5.5.7.3.3'],
  });
  const custom = catalogueXml
    .replace(/<Config id="EM[123]"[\s\S]*?<\/Config>/g, '')
    .replace('id="PING1"', 'id="CONTOSO1"');
  bodies.set('/microsoft', microsoft.sign(catalogueXml));
  bodies.set(
    '/contoso',
    signPackage(
      custom,
      {
        privateKeyPem: contoso.signer.privateKeyPem,
        certificatePem: contoso.signer.certificatePem,
        chainPems: [contoso.intermediate.certificatePem],
      },
      { sequence: 1 },
    ),
  );
  server = http.createServer((request, response) => {
    const body = bodies.get(request.url ?? '');
    if (body === undefined) return void response.writeHead(404).end();
    response.writeHead(200, { 'content-type': 'application/xml' }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  prefix = `f${randomBytes(5).toString('hex')}`;
  Object.assign(process.env, {
    AzureWebJobsStorage: azuriteConnectionString(),
    EMFLEET_TABLE_PREFIX: prefix,
    EMFLEET_ORG: 'contoso',
    EMFLEET_OCS_URL: `${base}/microsoft`,
    EMFLEET_TRUST_ANCHORS: microsoft.root.certificatePem,
    EMFLEET_POLICY: JSON.stringify({ org: { blockedMitigations: ['EM3'] } }),
    EMFLEET_FEEDS: JSON.stringify([
      {
        name: 'contoso',
        url: `${base}/contoso`,
        trustAnchors: contoso.root.certificatePem,
        signerSubject: 'Contoso Exchange Mitigations',
        signerEku: '1.3.6.1.5.5.7.3.3',
      },
      {
        name: 'broken',
        url: `${base}/missing`,
        trustAnchors: 'no PEM here and no such file',
        signerSubject: 'x',
        signerEku: '1.2.3',
      },
    ]),
  });
});

afterAll(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
  Object.assign(process.env, saved);
  server?.close();
});

describe('functions/pollOcs', () => {
  it('is an hourly timer by app setting', () => {
    expect(pollOcs).toMatchObject({
      kind: 'timer',
      name: 'pollOcs',
      options: { schedule: '%EMFLEET_POLL_SCHEDULE%' },
    });
  });

  it('syncs the declared policy, polls every feed with its own trust, and names a misconfigured feed', async () => {
    const lines: string[] = [];
    const context = new InvocationContext({
      functionName: 'pollOcs',
      logHandler: (_level, ...args) => lines.push(args.map(String).join(' ')),
    });
    await pollOcs.options.handler({ isPastDue: false, schedule: { adjustForDST: false } } as Timer, context);
    const events = lines.map((line) => JSON.parse(line) as { event: string; feed?: string });
    expect(
      events
        .filter((entry) => entry.event === 'PackageAccepted')
        .map((entry) => entry.feed)
        .sort(),
    ).toEqual(['contoso', 'microsoft']);
    expect(events).toContainEqual(expect.objectContaining({ event: 'FeedMisconfigured', feed: 'broken' }));

    const tables = new FleetTables(
      { kind: 'connectionString', connectionString: azuriteConnectionString() },
      { prefix },
    );
    expect((await latestPackage(tables, 'microsoft'))?.mitigationIds).toEqual(['PING1', 'EM1', 'EM2', 'EM3']);
    expect((await latestPackage(tables, 'contoso'))?.mitigationIds).toEqual(['CONTOSO1']);
    const policy = await allEntities(rawTable(prefix, 'Policy'));
    expect(policy).toContainEqual(
      expect.objectContaining({
        partitionKey: 'org',
        rowKey: 'contoso|bicep',
        source: 'bicep',
        blockedMitigations: '["EM3"]',
      }),
    );
  });
});
