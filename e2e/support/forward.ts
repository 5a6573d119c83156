// What the loopback TCP forwarders of the tests share (`netcut.ts`, `delay.ts`): reading their
// target and listening on a free loopback port.
import * as net from 'node:net';

/** `HOST:PORT`, or a URL such as `http://HOST:PORT/…`, as host and port. */
export function parseTarget(target: string): { host: string; port: number } {
  const hostPort = target.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  const colon = hostPort.lastIndexOf(':');
  const port = Number(hostPort.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port)) throw new Error(`not HOST:PORT: ${target}`);
  return { host: hostPort.slice(0, colon), port };
}

/** Listens on `port` (default: a free port) of 127.0.0.1 and returns it. */
export function listenLoopback(server: net.Server, port = 0): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('the forwarder has no TCP address'));
        return;
      }
      resolve(address.port);
    });
  });
}
