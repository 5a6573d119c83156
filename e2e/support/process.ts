// Child processes the fixtures start (burrow serve, burrow agent, sshd): started with their
// output collected line by line, waited on for a readiness line, and stopped for sure.
//
// Nothing here knows what the programs are; the callers say what "ready" looks like.
import { spawn, ChildProcess, execFileSync } from 'node:child_process';
import * as net from 'node:net';

/** How many recent output lines a process keeps for failure reports. */
const KEPT_LINES = 2000;

/** Every process started and not yet stopped, so that a crashed run leaves nothing behind. */
const running = new Set<Proc>();

process.on('exit', () => {
  for (const proc of running) proc.killNow();
});

export interface StartOptions {
  /** A short name for logs and errors, e.g. `burrow serve`. */
  name: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Arguments to show as `***` in logs and errors (access tokens). */
  secrets?: string[];
}

/** A running child process with its collected output. */
export class Proc {
  readonly name: string;
  readonly command: string;
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly waiters: Array<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;

  constructor(program: string, args: string[], options: StartOptions) {
    this.name = options.name;
    const secrets = options.secrets ?? [];
    this.command = [program, ...args.map((a) => (secrets.includes(a) ? '***' : a))].join(' ');
    this.child = spawn(program, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        resolve();
      });
      this.child.on('error', (error) => {
        this.push(`[${this.name}] failed to start: ${error.message}`);
        this.exitInfo = { code: null, signal: null };
        running.delete(this);
        resolve();
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let pending = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        pending += chunk;
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          this.push(pending.slice(0, newline).replace(/\r$/, ''));
          pending = pending.slice(newline + 1);
          newline = pending.indexOf('\n');
        }
      });
      stream?.on('end', () => {
        if (pending) this.push(pending);
        pending = '';
      });
    }
  }

  private push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const match = line.match(this.waiters[i].pattern);
      if (match) {
        this.waiters[i].resolve(match);
        this.waiters.splice(i, 1);
      }
    }
  }

  /** The process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether the process has exited. */
  get hasExited(): boolean {
    return this.exitInfo !== null;
  }

  /** The output collected so far (stdout and stderr interleaved). */
  output(): string {
    return this.lines.join('\n');
  }

  /**
   * Waits for an output line matching `pattern` (also among lines already printed). Fails when
   * the process exits first or `timeoutMs` passes, with the output in the error.
   */
  async waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    for (const line of this.lines) {
      const match = line.match(pattern);
      if (match) return match;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        new Promise<RegExpMatchArray>((resolve) => this.waiters.push({ pattern, resolve })),
        this.exited.then(() => {
          throw new Error(
            `${this.name} exited (${this.describeExit()}) before printing ${pattern}\n` +
              `command: ${this.command}\noutput:\n${this.output()}`,
          );
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `${this.name} did not print ${pattern} within ${timeoutMs} ms\n` +
                    `command: ${this.command}\noutput:\n${this.output()}`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Waits until the process exits by itself. */
  async waitForExit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms\n${this.output()}`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      if (timer) clearTimeout(timer);
    }
    return this.exitInfo ?? { code: null, signal: null };
  }

  private describeExit(): string {
    if (!this.exitInfo) return 'running';
    return this.exitInfo.signal ? `signal ${this.exitInfo.signal}` : `code ${this.exitInfo.code}`;
  }

  /** Sends SIGKILL at once (used when the test runner itself exits). */
  killNow(): void {
    if (!this.hasExited) this.child.kill('SIGKILL');
  }

  /** Stops the process: SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.hasExited) return;
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    if (timedOut) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Starts `program` with `args`. */
export function start(program: string, args: string[], options: StartOptions): Proc {
  return new Proc(program, args, options);
}

/** Asks the kernel for a free loopback TCP port (free at the time of asking). */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a loopback listener'));
        return;
      }
      const port = address.port;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a short command to completion and returns its stdout; throws with its output on failure. */
export function runQuiet(program: string, args: string[], input?: string): string {
  try {
    return execFileSync(program, args, {
      input,
      encoding: 'utf8',
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${program} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}
