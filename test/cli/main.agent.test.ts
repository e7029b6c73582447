import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningAgent } from '../../lib/agent/run.js';
import { catalogueXml } from '../../lib/local/catalogue.js';
import { issueCertificate } from '../../lib/package/dev-pki.js';
import { emfleetBin, runCli, type CliRun } from '../helpers/cli.js';
import { relayRules, relayWithClient, runAgent, writeAgentConfig } from '../helpers/agents.js';
import { azuriteConnectionString } from '../helpers/fleet.js';
import { createTestPki, type TestPki } from '../helpers/packages.js';
import { waitFor } from '../helpers/wait.js';

let pki: TestPki;
let fixture: Awaited<ReturnType<typeof relayWithClient>>;

beforeAll(async () => {
  pki = await createTestPki();
  fixture = await relayWithClient();
});

afterAll(async () => {
  await fixture?.stop();
});

describe('emfleet agent', () => {
  it('listens on its hybrid connection, answers through the relay, and stops cleanly on SIGTERM', async () => {
    const { path } = await writeAgentConfig(fixture.relay, pki, { server: 'ex07.contoso.com' });
    const child = spawn(process.execPath, [emfleetBin, 'agent', '--config', path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const complete = buffered.split('\n');
      buffered = complete.pop() ?? '';
      lines.push(...complete.filter(Boolean));
    });
    await waitFor(
      'the agent to log that it listens, or to exit',
      () => lines.some((line) => line.includes('"listening"')) || child.exitCode !== null,
    );
    expect(child.exitCode, `agent exited before listening: ${lines.join('\n')}`).toBeNull();
    expect(await fixture.client.ping('ex07')).toMatchObject({
      server: 'ex07.contoso.com',
      build: '15.2.1118.7',
    });
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(lines.some((line) => line.includes('AgentStopping'))).toBe(true);
  });

  it('names what is wrong in agent.json and exits 2', async () => {
    const { path, directory } = await writeAgentConfig(fixture.relay, pki);
    const broken = join(directory, 'broken.json');
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.build = '15.2';
    await writeFile(broken, JSON.stringify(json));
    const run = await runCli(['agent', '--config', broken]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/build: must be an Exchange build/);
  });
});

describe('emfleet agent --hub', () => {
  it('forwards to an agent behind it: ping through the site hybrid connection answers from that agent; SIGTERM stops it', async () => {
    const tls = await issueCertificate({ subjectCn: 'localhost' });
    const secret = randomBytes(32).toString('base64');
    const { config, directory } = await writeAgentConfig(fixture.relay, pki, { server: 'ex08.contoso.com' });
    const { relay: _relay, ...behindHub } = config;
    const agent = await runAgent({
      ...behindHub,
      siteLink: {
        host: '127.0.0.1',
        port: 0,
        certificate: tls.certificatePem,
        privateKey: tls.privateKeyPem,
        secret,
      },
    });
    const hybridConnection = `site-${randomBytes(3).toString('hex')}`;
    const hubPath = join(directory, 'hub.json');
    await writeFile(join(directory, 'site.secret'), secret);
    await writeFile(
      hubPath,
      JSON.stringify({
        mode: 'hub',
        site: 'Delft',
        relay: {
          namespace: '127.0.0.1',
          hybridConnection,
          endpoint: fixture.relay.baseUrl.replace(/^http/, 'ws'),
          keyName: relayRules.listen.keyName,
          keyFile: 'listen.key',
        },
        secretFile: 'site.secret',
        agents: { 'ex08.contoso.com': agent.siteLink },
      }),
    );
    const child = spawn(process.execPath, [emfleetBin, 'agent', '--hub', '--config', hubPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => void (out += chunk.toString()));
    try {
      await waitFor('the hub to start listening', () => {
        if (child.exitCode !== null) throw new Error(`the hub exited (${child.exitCode}): ${out}`);
        return out.includes('"listening"');
      });
      expect(out).toMatch(/"event":"HubStarted".*"site":"Delft"/);
      expect(await fixture.client.ping(`${hybridConnection}/ex08.contoso.com`)).toMatchObject({
        server: 'ex08.contoso.com',
      });
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(out).toMatch(/"event":"HubForwarded".*"relayPath":"ex08.contoso.com"/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await agent.close();
    }
  });

  it("--hub with a server's agent.json: exit 2, naming what is missing", async () => {
    const { path } = await writeAgentConfig(fixture.relay, pki);
    const run = await runCli(['agent', '--hub', '--config', path]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--hub needs a hub configuration \("mode": "hub"\)/);
  });
});

describe('emfleet test-connectivity', () => {
  let agent: RunningAgent;
  let feed: http.Server;
  let feedUrl: string;
  let env: Record<string, string>;
  const run = (...args: string[]): Promise<CliRun> => runCli(args, { env });

  beforeAll(async () => {
    const signed = pki.sign(catalogueXml);
    feed = http.createServer((_request, response) =>
      response.writeHead(200, { 'content-type': 'application/xml' }).end(signed),
    );
    feed.listen(0, '127.0.0.1');
    await once(feed, 'listening');
    feedUrl = `http://127.0.0.1:${(feed.address() as AddressInfo).port}/getexchangemitigations`;
    agent = await runAgent(
      (await writeAgentConfig(fixture.relay, pki, { server: 'ex01.contoso.com' })).config,
    );
    env = {
      AzureWebJobsStorage: azuriteConnectionString(),
      EMFLEET_TABLE_PREFIX: `k${randomBytes(5).toString('hex')}`,
      EMFLEET_ORG: 'contoso',
      EMFLEET_OCS_URL: feedUrl,
      EMFLEET_TRUST_ANCHORS: pki.root.certificatePem,
      EMFLEET_RELAY_NAMESPACE: '127.0.0.1',
      EMFLEET_RELAY_ENDPOINT: fixture.relay.baseUrl,
      EMFLEET_RELAY_SEND_KEY_NAME: relayRules.send.keyName,
      EMFLEET_RELAY_SEND_KEY: relayRules.send.key,
    };
    for (const [name, hc] of [
      ['ex01.contoso.com', 'ex01'],
      ['ex02.contoso.com', 'ex02'],
    ]) {
      const added = await run('servers', 'add', name!, '--build', '15.2.1118.7', '--relay-hc', hc!);
      expect(added.code, added.stderr).toBe(0);
    }
  });

  afterAll(async () => {
    await agent?.close();
    feed?.close();
  });

  it('checks OCS, the package and every agent, and fails when one agent does not answer', async () => {
    const text = await run('test-connectivity');
    expect(text.code).toBe(1);
    // EM's words: a Result line, then a Message line that says what was checked, from where, and what failed.
    expect(text.stdout).toContain(
      `OCS reachable over HTTPS (${feedUrl})\nResult: Success.\nMessage: The Mitigation Service endpoint ${feedUrl} is accessible from this computer (`,
    );
    expect(text.stdout).toMatch(
      /The mitigation package verifies\nResult: Success\.\nMessage: The package served by .* verifies against the configured trust: 4 mitigations \(PING1, EM1, EM2, EM3\)/,
    );
    expect(text.stdout).toMatch(
      /Agent answers through Azure Relay: ex01\.contoso\.com\nResult: Success\.\nMessage: The emfleet agent of ex01\.contoso\.com \(hybrid connection ex01\) answered through Azure Relay from this computer: ex01\.contoso\.com, build 15\.2\.1118\.7/,
    );
    expect(text.stdout).toMatch(
      /Agent answers through Azure Relay: ex02\.contoso\.com\nResult: Failed\.\nMessage: Unable to reach the emfleet agent of ex02\.contoso\.com .* through Azure Relay from this computer: .*no listener/,
    );
    expect(text.stdout).toMatch(/1 of 4 checks failed\./);

    const json = JSON.parse((await run('test-connectivity', '--json')).stdout);
    expect(json.ok).toBe(false);
    expect(json.checks.map((check: { result: string }) => check.result).sort()).toEqual([
      'Failed',
      'Success',
      'Success',
      'Success',
    ]);
  });

  it('passes for one answering server', async () => {
    const single = await run('test-connectivity', '--server', 'ex01.contoso.com');
    expect(single.code, single.stdout).toBe(0);
    expect(single.stdout).toMatch(/All 3 checks passed\./);
  });

  it('never reports a check that could not run as Success', async () => {
    const down = await runCli(['test-connectivity', '--json'], {
      env: { ...env, EMFLEET_OCS_URL: 'http://127.0.0.1:9/feed', EMFLEET_RELAY_SEND_KEY: 'wrong' },
    });
    expect(down.code).toBe(1);
    const checks = JSON.parse(down.stdout).checks as { name: string; result: string; detail: string }[];
    expect(checks[0]).toMatchObject({
      result: 'Failed',
      message: expect.stringMatching(
        /^Unable to connect to the Mitigation Service endpoint http:\/\/127\.0\.0\.1:9\/feed from this computer: .*To learn about connectivity requirements, see https:\/\/aka\.ms\/HelpConnectivityEEMS$/,
      ),
    });
    expect(checks[1]).toMatchObject({
      name: 'The mitigation package verifies',
      result: 'Failed',
      detail: 'not run: the feed could not be fetched',
    });
    expect(checks.filter((check) => check.result === 'Success')).toEqual([]);
    expect(checks.some((check) => /401|send rule/i.test(check.detail))).toBe(true);
  });
});
