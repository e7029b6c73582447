import { describe, it, expect } from 'vitest';
import { join, resolve } from 'node:path';
import { parseAgentConfig, parseHubConfig, type AgentConfig } from '../../lib/agent/config.js';
import { ConfigError } from '../../lib/errors.js';
import { defaultHealthEndpoints } from '../../lib/agent/probes.js';
import { microsoftSignerEku, microsoftSignerSubjectCn } from '../../lib/package/format.js';

const base = resolve('/srv/emfleet/agent');
const pem = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTEST\n-----END CERTIFICATE-----\n';

/** A complete agent.json as an operator would write it. */
function fullConfig(): Record<string, unknown> {
  return {
    server: 'ex01.contoso.com',
    build: '15.2.1544.4',
    relay: {
      namespace: 'contoso-emfleet.servicebus.windows.net',
      hybridConnection: 'ex01',
      endpoint: 'ws://127.0.0.1:9443',
      keyName: 'listen-ex01',
      keyFile: 'secrets/listen.key',
    },
    trust: [
      {
        anchors: ['anchors/root.pem', '/etc/emfleet/other-root.pem', pem],
        anchorSha256: ['AB'.repeat(32)],
        signerSubject: 'Microsoft Exchange Server Auth Certificate',
        signerEku: '1.3.6.1.4.1.311.10.3.13',
        revokedSerials: ['01AB'],
        timestampAnchors: ['anchors/tsa-root.pem'],
        timestampAnchorSha256: ['CD'.repeat(32)],
      },
      {
        anchors: ['anchors/contoso-root.pem'],
        signerSubject: 'Contoso Mitigations',
        signerEku: '1.3.6.1.4.1.99999.1',
      },
    ],
    applier: { kind: 'simulated', stateFile: 'state/server.json', failOn: ['MSExchangeUM'], delayInMs: 50 },
    stateDirectory: 'state',
    allowKeepOnDegraded: true,
    retryRestoresEveryInMs: 60_000,
    replyWithinMs: 15_000,
    probes: {
      baseUrl: 'https://localhost:444/prefix',
      endpoints: ['/owa/healthcheck.htm', '/ecp/healthcheck.htm'],
      timeoutInMs: 2000,
      roundDeadlineInMs: 10_000,
    },
  };
}

function minimalConfig(): Record<string, unknown> {
  return {
    server: 'ex02',
    build: '15.1.2507.15',
    relay: { namespace: 'contoso-emfleet.servicebus.windows.net', hybridConnection: 'ex02', key: 'c2VjcmV0' },
    trust: { anchors: [pem] },
    applier: { kind: 'powershell' },
    stateDirectory: '/var/lib/emfleet',
  };
}

function configError(json: unknown): ConfigError {
  try {
    parseAgentConfig(json, base, 'agent.json');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected parseAgentConfig to throw a ConfigError');
}

/** A deep copy with one change, for the error cases. */
function edited(
  change: (config: Record<string, any>) => void,
  start: () => Record<string, unknown> = fullConfig,
): Record<string, unknown> {
  const config = structuredClone(start()) as Record<string, any>;
  change(config);
  return config;
}

describe('parseAgentConfig', () => {
  it('accepts a full config and resolves relative paths against the base directory', () => {
    const config: AgentConfig = parseAgentConfig(fullConfig(), base);
    expect(config).toEqual({
      server: 'ex01.contoso.com',
      build: '15.2.1544.4',
      relay: {
        namespace: 'contoso-emfleet.servicebus.windows.net',
        hybridConnection: 'ex01',
        endpoint: 'ws://127.0.0.1:9443',
        keyName: 'listen-ex01',
        keyFile: join(base, 'secrets', 'listen.key'),
      },
      trust: [
        {
          anchors: [join(base, 'anchors', 'root.pem'), '/etc/emfleet/other-root.pem', pem],
          anchorSha256: ['AB'.repeat(32)],
          signerSubject: 'Microsoft Exchange Server Auth Certificate',
          signerEku: '1.3.6.1.4.1.311.10.3.13',
          revokedSerials: ['01AB'],
          timestampAnchors: [join(base, 'anchors', 'tsa-root.pem')],
          timestampAnchorSha256: ['CD'.repeat(32)],
        },
        {
          anchors: [join(base, 'anchors', 'contoso-root.pem')],
          anchorSha256: [],
          signerSubject: 'Contoso Mitigations',
          signerEku: '1.3.6.1.4.1.99999.1',
          revokedSerials: [],
          timestampAnchors: [],
          timestampAnchorSha256: [],
        },
      ],
      applier: {
        kind: 'simulated',
        stateFile: join(base, 'state', 'server.json'),
        failOn: ['MSExchangeUM'],
        delayInMs: 50,
      },
      stateDirectory: join(base, 'state'),
      allowKeepOnDegraded: true,
      retryRestoresEveryInMs: 60_000,
      logs: { directory: join(base, 'state', 'logs'), maxBytes: 10 * 1024 * 1024, keep: 5 },
      replyWithinMs: 15_000,
      probes: {
        baseUrl: 'https://localhost:444/prefix',
        endpoints: ['/owa/healthcheck.htm', '/ecp/healthcheck.htm'],
        timeoutInMs: 2000,
        roundDeadlineInMs: 10_000,
      },
    });
  });

  it('fills defaults and leaves PEM text and absolute paths alone', () => {
    const config = parseAgentConfig(minimalConfig(), base);
    expect(config.relay).toEqual({
      namespace: 'contoso-emfleet.servicebus.windows.net',
      hybridConnection: 'ex02',
      key: 'c2VjcmV0',
      keyName: 'listen',
    });
    expect(config.trust).toEqual([
      {
        anchors: [pem],
        anchorSha256: [],
        signerSubject: microsoftSignerSubjectCn,
        signerEku: microsoftSignerEku,
        revokedSerials: [],
        timestampAnchors: [],
        timestampAnchorSha256: [],
      },
    ]);
    // No executable: the agent uses Windows PowerShell by full path (windowsPowerShellPath); Exchange services can take minutes.
    expect(config.applier).toEqual({ kind: 'powershell', timeoutInMs: 300_000, waitForIisInMs: 600_000 });
    expect(config.stateDirectory).toBe('/var/lib/emfleet');
    expect(config.allowKeepOnDegraded).toBe(false);
    expect(config.retryRestoresEveryInMs).toBe(300_000);
    expect(config.replyWithinMs).toBe(20_000);
    // probes: the server itself (https://{server}, set by the agent), the nine Exchange endpoints
    expect(config.probes).toEqual({
      endpoints: [...defaultHealthEndpoints],
      timeoutInMs: 5000,
      roundDeadlineInMs: 15_000,
    });
  });

  it.each([
    [
      'a base URL with a query',
      (json: Record<string, any>) => (json.probes.baseUrl = 'https://ex01/?a=1'),
      /^agent\.json: probes\.baseUrl: /,
    ],
    [
      'a base URL with credentials',
      (json: Record<string, any>) => (json.probes.baseUrl = 'https://user:pw@ex01'),
      /^agent\.json: probes\.baseUrl: /,
    ],
    [
      'a base URL of another scheme',
      (json: Record<string, any>) => (json.probes.baseUrl = 'ftp://ex01'),
      /^agent\.json: probes\.baseUrl: /,
    ],
    [
      'an endpoint that is not a path',
      (json: Record<string, any>) => (json.probes.endpoints = ['owa/healthcheck.htm']),
      /^agent\.json: probes\.endpoints\.0: /,
    ],
    [
      'no endpoints',
      (json: Record<string, any>) => (json.probes.endpoints = []),
      /^agent\.json: probes\.endpoints: /,
    ],
    [
      'a timeout beyond the round deadline',
      (json: Record<string, any>) => (json.probes.timeoutInMs = 12_000),
      /^agent\.json: probes\.timeoutInMs: timeoutInMs must not exceed roundDeadlineInMs/,
    ],
    [
      "a round deadline past the relay's reply budget",
      (json: Record<string, any>) => (json.probes.roundDeadlineInMs = 60_000),
      /^agent\.json: probes\.roundDeadlineInMs: /,
    ],
    [
      'an unknown probe setting',
      (json: Record<string, any>) => (json.probes.insecure = true),
      /^agent\.json: probes: .*insecure/,
    ],
  ])('probes: %s is refused and named', (_name, change, message) => {
    expect(configError(edited(change)).message).toMatch(message);
  });

  it.each([
    ['powershell.exe', /^agent\.json: applier\.executable: must be a full path/],
    ['WindowsPowerShell\\v1.0\\powershell.exe', /^agent\.json: applier\.executable: must be a full path/],
    ['\\Windows\\powershell.exe', /^agent\.json: applier\.executable: must be a full path/],
  ])(
    'the PowerShell executable %j is refused: only a full path, never the search path',
    (executable, message) => {
      expect(
        configError(edited((json) => (json.applier = { kind: 'powershell', executable }), minimalConfig))
          .message,
      ).toMatch(message);
    },
  );

  it('the PowerShell executable may be given by full path', () => {
    const executable = 'D:\\Windows\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe';
    expect(
      parseAgentConfig(
        edited((json) => (json.applier = { kind: 'powershell', executable }), minimalConfig),
        base,
      ).applier,
    ).toEqual({ kind: 'powershell', executable, timeoutInMs: 300_000, waitForIisInMs: 600_000 });
  });

  it('simulated applier defaults: no faults, state file left unset when not given', () => {
    const config = parseAgentConfig(
      edited((json) => (json.applier = { kind: 'simulated' }), minimalConfig),
      base,
    );
    expect(config.applier).toEqual({ kind: 'simulated', failOn: [], delayInMs: 0 });
  });

  it('a simulated server can be coupled: a virtual directory that also needs other pools or services', () => {
    const couplings = {
      '/ecp': { appPools: ['MSExchangeOWAAppPool'] },
      '/ews': { services: ['MSExchangeIS'] },
    };
    const config = parseAgentConfig(
      edited((json) => (json.applier = { kind: 'simulated', couplings }), minimalConfig),
      base,
    );
    expect(config.applier).toEqual({ kind: 'simulated', failOn: [], delayInMs: 0, couplings });
    expect(
      configError(
        edited((json) => (json.applier = { kind: 'simulated', couplings: { ecp: {} } }), minimalConfig),
      ).message,
    ).toMatch(/^agent\.json: applier\.couplings\.ecp: /);
    expect(
      configError(
        edited(
          (json) => (json.applier = { kind: 'simulated', couplings: { '/ecp': { pools: [] } } }),
          minimalConfig,
        ),
      ).message,
    ).toMatch(/^agent\.json: applier\.couplings\.\/ecp: .*pools/);
  });

  it('does not change its input', () => {
    const json = fullConfig();
    const copy = structuredClone(json);
    parseAgentConfig(json, base);
    expect(json).toEqual(copy);
  });

  it('both key and keyFile: the error names relay.key', () => {
    const error = configError(edited((json) => (json.relay.key = 'c2VjcmV0')));
    expect(error.message).toMatch(/^agent\.json: relay\.key: give exactly one of key or keyFile$/);
  });

  it('neither key nor keyFile: the error names relay.key', () => {
    const error = configError(edited((json) => delete json.relay.keyFile));
    expect(error.message).toMatch(/^agent\.json: relay\.key: give exactly one of key or keyFile$/);
  });

  it('a bad build: the error names build', () => {
    for (const build of ['15.2', 'fifteen', '15.2.1544.4; rm -rf /', '']) {
      const error = configError(edited((json) => (json.build = build)));
      expect(error.message).toMatch(/^agent\.json: build: must be an Exchange build/);
    }
    expect(configError(edited((json) => (json.build = 15.2))).message).toMatch(/^agent\.json: build: /);
  });

  it('a bad applier kind: the error names applier.kind', () => {
    const error = configError(edited((json) => (json.applier = { kind: 'ssh', host: 'ex01' })));
    expect(error.message).toMatch(/^agent\.json: applier\.kind: .*'simulated' \| 'powershell'/);
  });

  it('an unknown key anywhere is refused and named (strict)', () => {
    expect(configError({ ...fullConfig(), trustEverything: true }).message).toMatch(
      /^agent\.json: \(top\): .*"trustEverything"/,
    );
    expect(configError(edited((json) => (json.relay.sharedAccessKey = 'x'))).message).toMatch(
      /^agent\.json: relay: .*sharedAccessKey/,
    );
    expect(configError(edited((json) => (json.trust[0].allowUnsigned = true))).message).toMatch(
      /^agent\.json: trust\.0: .*allowUnsigned/,
    );
    expect(configError(edited((json) => (json.applier.script = 'Stop-Service'))).message).toMatch(
      /^agent\.json: applier: .*script/,
    );
    expect(
      configError(edited((json) => (json.applier = { kind: 'powershell', stateFile: 'x' }))).message,
    ).toMatch(/^agent\.json: applier: .*stateFile/);
  });

  it('other fields are named too', () => {
    expect(configError(edited((json) => (json.server = 'ex01 ; evil'))).message).toMatch(
      /^agent\.json: server: /,
    );
    expect(
      configError(edited((json) => (json.relay.endpoint = 'http://127.0.0.1:9443/path'))).message,
    ).toMatch(/^agent\.json: relay\.endpoint: /);
    expect(configError(edited((json) => (json.trust[0].anchors = []))).message).toMatch(
      /^agent\.json: trust\.0\.anchors: /,
    );
    expect(configError(edited((json) => (json.replyWithinMs = 60_000))).message).toMatch(
      /^agent\.json: replyWithinMs: /,
    );
    expect(configError(edited((json) => (json.applier.delayInMs = -1))).message).toMatch(
      /^agent\.json: applier\.delayInMs: /,
    );
    expect(configError(edited((json) => delete json.stateDirectory)).message).toMatch(
      /^agent\.json: stateDirectory: /,
    );
    expect(configError('not an object').message).toMatch(/^agent\.json: \(top\): /);
  });
});

describe('an agent behind its site hub (siteLink)', () => {
  const siteLink = { certificate: 'tls/agent.pem', privateKey: 'tls/agent.key', secretFile: 'site.secret' };

  it('siteLink instead of relay: defaults filled, paths resolved', () => {
    const config = parseAgentConfig(
      edited((json) => {
        delete json.relay;
        json.siteLink = siteLink;
      }),
      base,
    );
    expect(config.relay).toBeUndefined();
    expect(config.siteLink).toEqual({
      host: '0.0.0.0',
      port: 8443,
      certificate: join(base, 'tls/agent.pem'),
      privateKey: join(base, 'tls/agent.key'),
      secretFile: join(base, 'site.secret'),
    });
  });

  it.each([
    {
      name: 'neither relay nor siteLink',
      change: (json: Record<string, any>) => delete json.relay,
      message: /^agent\.json: relay: give relay .*, siteLink .*, or both$/,
    },
    {
      name: 'both secret and secretFile',
      change: (json: Record<string, any>) => (json.siteLink = { ...siteLink, secret: 'x' }),
      message: /^agent\.json: siteLink\.secret: give exactly one of secret or secretFile$/,
    },
    {
      name: 'a relay path of two segments',
      change: (json: Record<string, any>) => (json.siteLink = { ...siteLink, relayPath: 'a/b' }),
      message: /^agent\.json: siteLink\.relayPath: /,
    },
    {
      name: 'a port past 65535',
      change: (json: Record<string, any>) => (json.siteLink = { ...siteLink, port: 70_000 }),
      message: /^agent\.json: siteLink\.port: /,
    },
  ])('$name is refused and named', ({ change, message }) => {
    expect(configError(edited(change)).message).toMatch(message);
  });
});

describe('parseHubConfig', () => {
  const hub = (): Record<string, any> => ({
    mode: 'hub',
    site: 'Amsterdam',
    relay: {
      namespace: 'contoso-emfleet.servicebus.windows.net',
      hybridConnection: 'site-amsterdam',
      keyFile: 'listen.key',
    },
    secretFile: 'site.secret',
    agents: {
      'ex01.contoso.com': {
        url: 'https://ex01.contoso.com:8443',
        certificateSha256: 'ab:'.repeat(31) + 'ab',
      },
    },
  });
  const hubError = (json: unknown): string => {
    try {
      parseHubConfig(json, base, 'hub.json');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('expected parseHubConfig to throw');
  };

  it("a hub config: forward deadline defaulted inside the relay's 60 s, paths resolved", () => {
    const config = parseHubConfig(hub(), base);
    expect(config).toMatchObject({
      mode: 'hub',
      site: 'Amsterdam',
      forwardTimeoutInMs: 25_000,
      secretFile: join(base, 'site.secret'),
      relay: { keyName: 'listen', keyFile: join(base, 'listen.key') },
    });
  });

  it.each([
    {
      name: 'a forward deadline past 55 s',
      change: (json: Record<string, any>) => (json.forwardTimeoutInMs = 60_000),
      message: /^hub\.json: forwardTimeoutInMs: /,
    },
    {
      name: 'no agents',
      change: (json: Record<string, any>) => (json.agents = {}),
      message: /^hub\.json: agents: must list at least one agent$/,
    },
    {
      name: 'an agent over plain http',
      change: (json: Record<string, any>) => (json.agents['ex01.contoso.com'].url = 'http://ex01:8443'),
      message: /^hub\.json: agents\.ex01\.contoso\.com\.url: must be https/,
    },
    {
      name: 'a short fingerprint',
      change: (json: Record<string, any>) => (json.agents['ex01.contoso.com'].certificateSha256 = 'abcd'),
      message: /^hub\.json: agents\.ex01\.contoso\.com\.certificateSha256: /,
    },
    {
      name: 'no site',
      change: (json: Record<string, any>) => (json.site = ''),
      message: /^hub\.json: site: must name the site$/,
    },
    {
      name: 'trust anchors (a hub verifies nothing)',
      change: (json: Record<string, any>) => (json.trust = { anchors: ['root.pem'] }),
      message: /^hub\.json: \(top\): .*trust/,
    },
    {
      name: 'an applier (a hub applies nothing)',
      change: (json: Record<string, any>) => (json.applier = { kind: 'powershell' }),
      message: /^hub\.json: \(top\): .*applier/,
    },
  ])('$name is refused and named', ({ change, message }) => {
    const json = hub();
    change(json);
    expect(hubError(json)).toMatch(message);
  });
});
