import { parseHubConfig } from '../lib/agent/config.js';
import { startHub, type RunningHub } from '../lib/agent/run.js';
import { silentLogger } from '../lib/log.js';
import { serveCommands, type Command } from './ipc.js';

/**
 * A worker process hosting the bench's site relay hubs (`emfleet agent --hub`, real hyco-https
 * listeners on the relay emulator), each forwarding to its site's agents over loopback.
 */
export interface HubSpec {
  readonly site: string;
  readonly hybridConnection: string;
  /** By relay path: where the agent listens. */
  readonly agents: Readonly<Record<string, string>>;
}

export interface StartHubs extends Command {
  readonly kind: 'start';
  readonly hubs: readonly HubSpec[];
  readonly hubsPerSite: number;
  readonly relayEndpoint: string;
  readonly keyName: string;
  readonly key: string;
  readonly secret: string;
  readonly certificateSha256: string;
}

let running: RunningHub[] = [];

serveCommands(async (command) => {
  switch (command.kind) {
    case 'start': {
      const start = command as StartHubs;
      const started = Date.now();
      for (const spec of start.hubs) {
        const config = parseHubConfig(
          {
            mode: 'hub',
            site: spec.site,
            relay: {
              namespace: '127.0.0.1',
              hybridConnection: spec.hybridConnection,
              endpoint: start.relayEndpoint,
              keyName: start.keyName,
              key: start.key,
            },
            secret: start.secret,
            agents: Object.fromEntries(
              Object.entries(spec.agents).map(([relayPath, url]) => [
                relayPath,
                { url, certificateSha256: start.certificateSha256 },
              ]),
            ),
          },
          process.cwd(),
        );
        for (let index = 1; index <= start.hubsPerSite; index++)
          running.push(
            await startHub({ ...config, name: `${spec.site}-hub${index}` }, { logger: silentLogger }),
          );
      }
      await Promise.all(running.map((hub) => hub.ready));
      return { hubs: running.length, ms: Date.now() - started };
    }
    case 'stop': {
      const closing = running;
      running = [];
      await Promise.all(closing.map((hub) => hub.close()));
      return { hubs: 0 };
    }
    default:
      throw new Error(`unknown command ${command.kind}`);
  }
});
