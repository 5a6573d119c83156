// Burrow's own programs, started for real from the release binary: `burrow serve` (the local
// tunneling service with its control plane, cookie helper and the built app), and destination
// `burrow agent`s. Plus the control-plane calls the tests make (the same JSON 1.1 API the AWS
// CLI speaks).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Proc, start } from './process';

/** The repository root (e2e/ is one level below it). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** The release binary, built by `cargo xtask test` before the suite runs. */
export const BURROW_BIN = process.env.BURROW_BIN ?? path.join(REPO_ROOT, 'target', 'release', 'burrow');
/** The built app, from `trunk build --release`. */
export const DIST_DIR = process.env.BURROW_DIST ?? path.join(REPO_ROOT, 'dist');

function requireBuilt(): void {
  if (!fs.existsSync(BURROW_BIN)) {
    throw new Error(`${BURROW_BIN} is missing: build it with \`cargo build --release -p burrow-server\``);
  }
  if (!fs.existsSync(path.join(DIST_DIR, 'index.html'))) {
    throw new Error(`${DIST_DIR}/index.html is missing: build the app with \`trunk build --release --offline\``);
  }
}

/** What OpenTunnel returns. */
export interface Tunnel {
  tunnelId: string;
  tunnelArn?: string;
  sourceAccessToken: string;
  destinationAccessToken: string;
}

/** A running `burrow serve`. */
export class BurrowService {
  private constructor(
    readonly url: string,
    readonly proc: Proc,
  ) {}

  /** `127.0.0.1:PORT`. */
  get hostPort(): string {
    return new URL(this.url).host;
  }

  /**
   * Starts `burrow serve` on a free loopback port, serving the built app (`dist`, by default
   * BURROW_DIST); `extraArgs` are appended and `env` is added to its environment.
   */
  static async start(extraArgs: string[] = [], env: Record<string, string> = {}, dist: string = DIST_DIR): Promise<BurrowService> {
    requireBuilt();
    const proc = start(BURROW_BIN, ['serve', '--listen', '127.0.0.1:0', '--static', dist, ...extraArgs], {
      name: 'burrow serve',
      env: { RUST_LOG: process.env.RUST_LOG ?? 'info', ...env },
    });
    const match = await proc.waitForLine(/burrow serve: listening on (http:\/\/127\.0\.0\.1:\d+)/, 20_000);
    return new BurrowService(match[1], proc);
  }

  /** Calls a control-plane action (`IoTSecuredTunneling.<action>`) and returns its JSON answer. */
  async control(action: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const response = await fetch(`${this.url}/`, {
      method: 'POST',
      headers: {
        'X-Amz-Target': `IoTSecuredTunneling.${action}`,
        'Content-Type': 'application/x-amz-json-1.1',
      },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      throw new Error(`${action} answered ${response.status} with non-JSON: ${text}`);
    }
    return { status: response.status, json };
  }

  /** Opens a tunnel with the given services (default: one service `SSH`). */
  async openTunnel(services: string[] = ['SSH']): Promise<Tunnel> {
    const { status, json } = await this.control('OpenTunnel', { destinationConfig: { services } });
    if (status !== 200) throw new Error(`OpenTunnel failed with ${status}: ${JSON.stringify(json)}`);
    for (const field of ['tunnelId', 'sourceAccessToken', 'destinationAccessToken']) {
      if (typeof json[field] !== 'string') throw new Error(`OpenTunnel answer lacks ${field}: ${JSON.stringify(json)}`);
    }
    return json as unknown as Tunnel;
  }

  /** Closes a tunnel for good. */
  async closeTunnel(tunnelId: string): Promise<void> {
    const { status, json } = await this.control('CloseTunnel', { tunnelId });
    if (status !== 200) throw new Error(`CloseTunnel failed with ${status}: ${JSON.stringify(json)}`);
  }

  /** Rotates a tunnel's tokens (`clientMode` SOURCE, DESTINATION or ALL). */
  async rotateTokens(tunnelId: string, clientMode: 'SOURCE' | 'DESTINATION' | 'ALL'): Promise<Record<string, unknown>> {
    const body: Record<string, unknown> = { tunnelId, clientMode };
    if (clientMode !== 'SOURCE') body.destinationConfig = { services: ['SSH'] };
    const { status, json } = await this.control('RotateTunnelAccessToken', body);
    if (status !== 200) throw new Error(`RotateTunnelAccessToken failed with ${status}: ${JSON.stringify(json)}`);
    return json;
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

export interface AgentOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** The destination access token. */
  token: string;
  /** `SERVICE=HOST:PORT` mappings, e.g. `SSH=127.0.0.1:2222`. */
  destinations: string[];
  /** The message format the agent writes (`V1`, `V2`, `V3`). */
  format?: 'V1' | 'V2' | 'V3';
  /** Behave as the AWS IoT Device Client does (`--device-client-rules`; V1 only). */
  deviceClientRules?: boolean;
}

/** Starts a destination `burrow agent` and waits until it is connected to the service. */
export async function startAgent(options: AgentOptions): Promise<Proc> {
  requireBuilt();
  const args = ['agent', '--mode', 'destination', '--endpoint', options.endpoint, '--token', options.token];
  for (const destination of options.destinations) args.push('-d', destination);
  if (options.format) args.push('--format', options.format);
  if (options.deviceClientRules) args.push('--device-client-rules');
  const proc = start(BURROW_BIN, args, {
    name: 'burrow agent',
    secrets: [options.token],
    env: { RUST_LOG: process.env.RUST_LOG ?? 'info' },
  });
  await proc.waitForLine(/burrow agent: connected/, 20_000);
  return proc;
}
