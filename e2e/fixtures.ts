// Playwright fixtures: real components for every test.
//
// Per worker: the test user with its keys, one sshd, one `burrow serve` (serving the built app).
// Per test: a fresh tunnel with a connected destination agent in front of that sshd, the app's
// page object, and a log collector that attaches every process's output and the browser console
// to the report when a test fails.
import { test as base, expect } from '@playwright/test';
import { BurrowApp } from './pages/burrow-app';
import { BurrowService, Tunnel, startAgent, AgentOptions } from './support/burrow';
import { Delay } from './support/delay';
import { Proc } from './support/process';
import { Sshd, SshdOptions, TestUser, prepareTestUser, removeTestUserFiles } from './support/sshd';

/** A tunnel whose destination agent is connected and bridges `SSH` to the worker's sshd. */
export interface ReadyTunnel extends Tunnel {
  agent: Proc;
}

/** Processes a test starts itself; they are stopped and their logs kept on failure. */
export class Processes {
  private readonly procs: Proc[] = [];
  private readonly stoppers: Array<() => Promise<void>> = [];

  track(proc: Proc): Proc {
    this.procs.push(proc);
    return proc;
  }

  /** Registers a clean-up to run after the test (in reverse order). */
  onCleanup(stop: () => Promise<void>): void {
    this.stoppers.push(stop);
  }

  all(): Proc[] {
    return [...this.procs];
  }

  async stopAll(): Promise<void> {
    for (const stop of this.stoppers.reverse()) await stop();
    for (const proc of this.procs.reverse()) await proc.stop();
  }
}

interface WorkerFixtures {
  testUser: TestUser;
  sshd: Sshd;
  burrow: BurrowService;
}

interface TestFixtures {
  processes: Processes;
  tunnel: ReadyTunnel;
  app: BurrowApp;
  /** Starts a destination agent for `tunnel`-like setups of a test's own. */
  agent: (options: AgentOptions) => Promise<Proc>;
  /** Starts an extra sshd (e.g. with PAM for keyboard-interactive). */
  extraSshd: (options: SshdOptions) => Promise<Sshd>;
  /** Starts an extra `burrow serve` with extra arguments. */
  extraService: (args: string[]) => Promise<BurrowService>;
  /**
   * Opens a tunnel with a connected destination agent in front of a device: by default the
   * worker's service and sshd (what `tunnel` is), or a test's own (a rate-limited service, an
   * sshd with PAM or without SFTP), with the agent writing `format` and, with
   * `deviceClientRules`, keeping the AWS IoT Device Client's rules; with `oneWayDelayMs`, a slow
   * link (a forwarder holding every chunk that long each way) between the agent and the sshd.
   */
  device: (options?: {
    service?: BurrowService;
    sshd?: Sshd;
    format?: AgentOptions['format'];
    deviceClientRules?: boolean;
    oneWayDelayMs?: number;
  }) => Promise<ReadyTunnel>;
}

export const test = base.extend<TestFixtures, WorkerFixtures>({
  testUser: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const user = prepareTestUser();
      await use(user);
      removeTestUserFiles(user);
    },
    { scope: 'worker' },
  ],
  sshd: [
    async ({ testUser }, use) => {
      const sshd = await Sshd.start(testUser);
      await use(sshd);
      await sshd.stop();
    },
    { scope: 'worker' },
  ],
  burrow: [
    // eslint-disable-next-line no-empty-pattern
    async ({}, use) => {
      const service = await BurrowService.start();
      await use(service);
      await service.stop();
    },
    { scope: 'worker' },
  ],

  processes: [
    async ({ page, burrow, sshd }, use, testInfo) => {
      const processes = new Processes();
      const consoleLines: string[] = [];
      page.on('console', (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
      page.on('pageerror', (error) => consoleLines.push(`[pageerror] ${error.message}`));
      const burrowStart = burrow.proc.output().length;
      const sshdStart = sshd.proc.output().length;
      await use(processes);
      const failed = testInfo.status !== testInfo.expectedStatus;
      if (failed) {
        await testInfo.attach('browser-console.txt', { body: consoleLines.join('\n'), contentType: 'text/plain' });
        await testInfo.attach('burrow-serve.txt', {
          body: burrow.proc.output().slice(burrowStart),
          contentType: 'text/plain',
        });
        await testInfo.attach('sshd.txt', { body: sshd.proc.output().slice(sshdStart), contentType: 'text/plain' });
        for (const [index, proc] of processes.all().entries()) {
          await testInfo.attach(`${index}-${proc.name.replace(/\W+/g, '-')}.txt`, {
            body: `$ ${proc.command}\n${proc.output()}`,
            contentType: 'text/plain',
          });
        }
      }
      await processes.stopAll();
    },
    { auto: true },
  ],

  agent: async ({ processes }, use) => {
    await use(async (options) => processes.track(await startAgent(options)));
  },

  extraSshd: async ({ testUser, processes }, use) => {
    await use(async (options) => {
      const sshd = await Sshd.start(testUser, options);
      processes.track(sshd.proc);
      // Also removes its folder of host keys and configuration.
      processes.onCleanup(() => sshd.stop());
      return sshd;
    });
  },

  extraService: async ({ processes }, use) => {
    await use(async (args) => {
      const service = await BurrowService.start(args);
      processes.track(service.proc);
      return service;
    });
  },

  device: async ({ burrow, sshd, agent, processes }, use) => {
    await use(async (options = {}) => {
      const service = options.service ?? burrow;
      let address = (options.sshd ?? sshd).address;
      if (options.oneWayDelayMs !== undefined) {
        const delay = await Delay.start(address, options.oneWayDelayMs);
        processes.onCleanup(() => delay.stop());
        address = delay.address;
      }
      const tunnel = await service.openTunnel(['SSH']);
      const agentProc = await agent({
        endpoint: service.url,
        token: tunnel.destinationAccessToken,
        destinations: [`SSH=${address}`],
        format: options.format,
        deviceClientRules: options.deviceClientRules,
      });
      return { ...tunnel, agent: agentProc };
    });
  },

  tunnel: async ({ device }, use) => {
    await use(await device());
  },

  app: async ({ page, burrow }, use) => {
    await use(new BurrowApp(page, burrow.url));
  },
});

export { expect };
