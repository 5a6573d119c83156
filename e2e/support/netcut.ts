// A loopback TCP forwarder that can cut every connection through it at once: the network path
// between the page and a tunnel endpoint, so a test can drop a live WebSocket for real (the
// browser sees the TCP connection reset, as on a network loss) while both ends keep running.
import * as net from 'node:net';

import { listenLoopback, parseTarget } from './forward';

/** A forwarder from a loopback port to `target` (`HOST:PORT`). */
export class NetCut {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private target: { host: string; port: number },
  ) {}

  /** `http://127.0.0.1:PORT`, the forwarder's own address. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Starts forwarding from a loopback port (`listenPort`, default a free one) to `target`
   * (`HOST:PORT` or `http://HOST:PORT`).
   */
  static async start(target: string, listenPort = 0): Promise<NetCut> {
    const parsed = parseTarget(target);
    const server = net.createServer();
    const port = await listenLoopback(server, listenPort);
    const cut = new NetCut(server, port, parsed);
    server.on('connection', (client) => cut.forward(client));
    return cut;
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => this.sockets.delete(socket));
      // A reset on one side ends the other side too; errors are expected when cutting.
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Resets every connection open through the forwarder (new connections still go through). */
  cut(): void {
    for (const socket of [...this.sockets]) socket.resetAndDestroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
