// The notification path of Device mode, for real: Debian's mosquitto on a free loopback port,
// and a destination `burrow agent --thing NAME --mqtt URL` that waits for its tunnels'
// notifications on `$aws/things/NAME/tunnels/notify` (what AWS IoT Device Client does).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { BURROW_BIN } from './burrow';
import { Proc, freePort, start } from './process';

/** A running mosquitto. */
export class Broker {
  private constructor(
    readonly port: number,
    readonly proc: Proc,
    private readonly dir: string,
  ) {}

  /** `mqtt://127.0.0.1:PORT`. */
  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Starts mosquitto (anonymous, loopback only) and waits until it accepts connections. */
  static async start(): Promise<Broker> {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-mqtt-'));
    const conf = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(
      conf,
      `listener ${port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n`,
    );
    const proc = start('mosquitto', ['-c', conf], { name: 'mosquitto' });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (await accepts(port)) break;
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within 10 s:\n${proc.output()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return new Broker(port, proc, dir);
  }

  async stop(): Promise<void> {
    await this.proc.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether something accepts TCP connections on the loopback `port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface ThingAgentOptions {
  /** The thing name the agent waits for tunnels of. */
  thing: string;
  /** The broker's URL. */
  mqtt: string;
  /** The service's base URL (where the agent connects its tunnels). */
  endpoint: string;
  /** `SERVICE=HOST:PORT` mappings. */
  destinations: string[];
  /** The message format the agent writes. */
  format?: 'V1' | 'V2' | 'V3';
  /** Behave as the AWS IoT Device Client does (`--device-client-rules`; V1 only). */
  deviceClientRules?: boolean;
}

/** Starts `burrow agent --thing` and waits until it is subscribed to the thing's topic. */
export async function startThingAgent(options: ThingAgentOptions): Promise<Proc> {
  const args = ['agent', '--mode', 'destination', '--thing', options.thing, '--mqtt', options.mqtt];
  args.push('--endpoint', options.endpoint);
  for (const destination of options.destinations) args.push('-d', destination);
  if (options.format) args.push('--format', options.format);
  if (options.deviceClientRules) args.push('--device-client-rules');
  const proc = start(BURROW_BIN, args, {
    name: `agent of ${options.thing}`,
    env: { RUST_LOG: process.env.RUST_LOG ?? 'info' },
  });
  await proc.waitForLine(/burrow agent: waiting for tunnels of /, 20_000);
  return proc;
}
