// A loopback TCP forwarder that adds a fixed one-way delay in both directions: a slow link
// (cellular, a far region) between the device's agent and its sshd, so a round trip through it
// takes at least twice the delay. Every chunk is held for the same time, so order is kept; the
// bandwidth is not limited.
import * as net from 'node:net';

import { listenLoopback, parseTarget } from './forward';

/** A delaying forwarder from a loopback port to `HOST:PORT`. */
export class Delay {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** `127.0.0.1:PORT`, where to connect instead of the target. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts forwarding to `target` (`HOST:PORT`), holding every chunk for `oneWayMs`. */
  static async start(target: string, oneWayMs: number): Promise<Delay> {
    const { host, port: targetPort } = parseTarget(target);
    const server = net.createServer();
    const port = await listenLoopback(server);
    const delay = new Delay(server, port);
    server.on('connection', (client) => delay.forward(client, host, targetPort, oneWayMs));
    return delay;
  }

  private forward(client: net.Socket, host: string, port: number, oneWayMs: number): void {
    const upstream = net.connect(port, host);
    // No delay means none at all: Node's timers wait at least 1 ms, which would add 2 ms to
    // every round trip of the "0 ms" link (native ssh's echo through it was 3.4 ms, 0.8 ms
    // without it). So a zero delay forwards in the data handler itself.
    const later = (action: () => void) => (oneWayMs > 0 ? setTimeout(action, oneWayMs) : action());
    const pass = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => {
        later(() => {
          if (!to.destroyed) to.write(chunk);
        });
      });
      // The end of a stream is delayed like its data, so it cannot overtake it.
      from.on('end', () => later(() => to.end()));
    };
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    pass(client, upstream);
    pass(upstream, client);
  }

  /** Stops listening and closes every connection through the forwarder. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
