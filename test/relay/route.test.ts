import { afterEach, describe, expect, it } from 'vitest';
import { parseRelayAddress, relayAddress } from '../../lib/relay/route.js';
import { hubAnswerOf, RelayTimeoutError, RelayUnreachableError } from '../../lib/relay/sender.js';
import { relayFixture, testAgent } from './fixture.js';

describe('relay addresses: a server on its own hybrid connection or behind its site hub', () => {
  it.each([
    {
      name: 'own hybrid connection',
      row: { rowKey: 'ex01.contoso.com', relayHybridConnection: 'ex01', relayPath: '' },
      address: 'ex01',
      route: { hybridConnection: 'ex01', relayPath: undefined },
    },
    {
      name: 'no hybrid connection named: the server name',
      row: { rowKey: 'ex01.contoso.com', relayHybridConnection: '', relayPath: '' },
      address: 'ex01.contoso.com',
      route: { hybridConnection: 'ex01.contoso.com', relayPath: undefined },
    },
    {
      name: 'behind the site hub',
      row: { rowKey: 'ex01.contoso.com', relayHybridConnection: 'site-ams', relayPath: 'ex01.contoso.com' },
      address: 'site-ams/ex01.contoso.com',
      route: { hybridConnection: 'site-ams', relayPath: 'ex01.contoso.com' },
    },
  ])('$name', ({ row, address, route }) => {
    expect(relayAddress(row)).toBe(address);
    expect(parseRelayAddress(address)).toEqual(route);
  });
});

describe('sending to a server behind a hub', () => {
  let fixture: Awaited<ReturnType<typeof relayFixture>> | undefined;
  afterEach(async () => {
    await fixture?.close();
    fixture = undefined;
  });

  it('goes to the site hybrid connection with the relay path first, under a token for the hybrid connection alone', async () => {
    fixture = await relayFixture();
    const agent = testAgent();
    const seen: string[] = [];
    fixture.listen(async (request) => {
      seen.push(request.path);
      return agent.handler({ ...request, path: request.path.replace(/^\/ex01\.contoso\.com/, '') });
    });
    // The emulator refuses a token for another resource (403), so an answer proves the token was for the hybrid connection.
    expect(
      await fixture.client.ping(`${fixture.hybridConnection}/ex01.contoso.com`, { nonce: 'n1' }),
    ).toMatchObject({ nonce: 'n1' });
    expect(seen).toEqual(['/ex01.contoso.com/ping']);
  });

  it.each([
    {
      name: 'AgentUnreachable: the relay could not deliver, as far as the cloud is concerned',
      code: 'AgentUnreachable',
      type: RelayUnreachableError,
    },
    { name: 'AgentTimeout: no answer in time', code: 'AgentTimeout', type: RelayTimeoutError },
  ])("the hub's 503 $name; its words are kept", async ({ code, type }) => {
    fixture = await relayFixture();
    const detail = `hub hub1 of site Amsterdam could not get an answer from ex01.contoso.com at https://10.0.0.1:8443: ECONNREFUSED`;
    fixture.listen(async () => ({
      status: 503,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ error: code, detail }),
    }));
    const error = await fixture.client
      .ping(`${fixture.hybridConnection}/ex01.contoso.com`)
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(type);
    expect(hubAnswerOf(error)).toBe(detail);
  });
});
