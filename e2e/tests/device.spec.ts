// Device mode, for real: a `burrow serve --mqtt` with the page's tunnel API, Debian's mosquitto,
// a destination `burrow agent --thing NAME` waiting for its tunnels' notifications, and OpenSSH.
// The operator types a thing name and a password; the page opens the tunnel through the API,
// the device gets its token by notification, the page its own (never typed, never shown).
//
// Also: host keys pinned per device (asked on the first tunnel only, a changed key refused),
// Send new access tokens after a cut, Close tunnel, a device that never comes, Join a tunnel
// opened by the aws CLI, and the `#thing=…&user=…` link.
import { test, expect, Processes } from '../fixtures';
import { BurrowApp } from '../pages/burrow-app';
import { awsTunneling } from '../support/aws';
import { BurrowService } from '../support/burrow';
import { Broker, startThingAgent } from '../support/mqtt';
import { NetCut } from '../support/netcut';
import { freePort, Proc } from '../support/process';
import type { Sshd, TestUser } from '../support/sshd';

/** A service with the tunnel API and notifications through a broker of the test's own. */
interface DeviceWorld {
  broker: Broker;
  service: BurrowService;
}

async function deviceWorld(processes: Processes, serveArgs: string[] = []): Promise<DeviceWorld> {
  const broker = await Broker.start();
  processes.track(broker.proc);
  processes.onCleanup(() => broker.stop());
  const service = await BurrowService.start(['--mqtt', broker.url, ...serveArgs]);
  processes.track(service.proc);
  return { broker, service };
}

/** A unique thing name per test (brokers keep persistent sessions by client id). */
function thingName(prefix: string): string {
  return `${prefix}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
}

/** Starts `burrow agent --thing` in front of `sshd`. */
async function deviceAgent(
  processes: Processes,
  world: DeviceWorld,
  thing: string,
  sshd: Sshd,
): Promise<Proc> {
  return processes.track(
    await startThingAgent({
      thing,
      mqtt: world.broker.url,
      endpoint: world.service.url,
      destinations: [`SSH=${sshd.address}`],
    }),
  );
}

/** Device mode's Connect, up to the prompt; accepts the host key when `expectQuestion`. */
async function connectDevice(
  app: BurrowApp,
  thing: string,
  user: TestUser,
  sshd: Sshd,
  expectQuestion: boolean,
): Promise<void> {
  await app.fillDevice({ thing, username: user.name, password: user.password });
  await app.connect();
  if (expectQuestion) {
    await expect(app.byId('hostkey-dialog')).toContainText(thing, { timeout: 45_000 });
    await expect(app.byId('hostkey-scope')).toContainText(`for the device ${thing}`);
    await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  }
  await app.terminal.waitForPrompt(user.name);
  if (!expectQuestion) await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
}

/** What the service's control plane says about a tunnel. */
async function describe(service: BurrowService, tunnelId: string): Promise<Record<string, unknown>> {
  const { status, json } = await service.control('DescribeTunnel', { tunnelId });
  expect(status, JSON.stringify(json)).toBe(200);
  return json.tunnel as Record<string, unknown>;
}

/** The id of the thing's open tunnel, as the service lists it. */
async function openTunnelOf(service: BurrowService, thing: string): Promise<string> {
  const { json } = await service.control('ListTunnels', { thingName: thing });
  const open = (json.tunnelSummaries as Array<Record<string, unknown>>).filter((t) => t.status === 'OPEN');
  expect(open.length).toBe(1);
  return open[0].tunnelId as string;
}

test('Device mode: a thing name and a password reach a shell, and no token is typed anywhere', async ({
  page,
  processes,
  sshd,
  testUser,
}) => {
  const world = await deviceWorld(processes);
  const thing = thingName('pump');
  await deviceAgent(processes, world, thing, sshd);
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  // The service offers the tunnel API: the page starts in Device mode.
  await expect(app.mode).toHaveAttribute('data-mode', 'device');
  await connectDevice(app, thing, testUser, sshd, true);
  await expect(app.token).toHaveValue('');
  // Connected, the form folds into the compact bar naming user and device.
  await expect(app.byId('session-login')).toHaveText(`${testUser.name}@${thing}`);
  await expect(app.byId('thing')).toBeHidden();
  await app.terminal.run('echo device-$((6*7))');
  await app.terminal.expectText(/^device-42$/m);
  // The page's own logs and storage hold no token.
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + location.href);
  expect(stored).not.toMatch(/AQGA[A-Za-z0-9_-]{100,}/);
});

test('the host key is asked on the first tunnel only; a changed key on the thing is refused', async ({
  page,
  processes,
  sshd,
  testUser,
  extraSshd,
}) => {
  const world = await deviceWorld(processes);
  const thing = thingName('pinned');
  const agent = await deviceAgent(processes, world, thing, sshd);
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  await connectDevice(app, thing, testUser, sshd, true);
  await app.disconnectButton.click();
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await app.byId('close-tunnel').click();
  await expect(app.byId('close-tunnel')).toHaveCount(0);

  // A second tunnel (a new id, new tokens) to the same thing, from a reloaded page: no question.
  await app.open();
  await connectDevice(app, thing, testUser, sshd, false);
  await app.disconnectButton.click();
  await app.byId('close-tunnel').click();
  await expect(app.byId('close-tunnel')).toHaveCount(0);

  // The same thing now answers with another sshd's key: refused, both fingerprints named.
  await agent.stop();
  const impostor = await extraSshd({});
  await deviceAgent(processes, world, thing, impostor);
  await app.open();
  await app.fillDevice({ thing, username: testUser.name, password: testUser.password });
  await app.connect();
  const message = await app.expectError(/REMOTE HOST IDENTIFICATION HAS CHANGED/);
  expect(message).toContain(impostor.hostKeyFingerprints[0]);
  expect(message).toContain(sshd.hostKeyFingerprints[0]);
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);

  // The known hosts export names the device as the host.
  await app.page.locator('details.known-hosts > summary').click();
  await app.byId('known-hosts-export').click();
  await expect(app.byId('known-hosts-text')).toHaveValue(new RegExp(`^${thing} ssh-`, 'm'));
});

test('after a cut, Send new access tokens resumes in the same terminal', async ({ page, processes, sshd, testUser }) => {
  // The page reaches its service over a network path the test can cut (its origin is the path).
  const port = await freePort();
  const world = await deviceWorld(processes, ['--allow-origin', `http://127.0.0.1:${port}`]);
  const path = await NetCut.start(world.service.url, port);
  processes.onCleanup(() => path.stop());
  const thing = thingName('cut');
  const agent = await deviceAgent(processes, world, thing, sshd);
  const app = new BurrowApp(page, path.url);
  await app.open();
  await connectDevice(app, thing, testUser, sshd, true);
  const tunnelId = await openTunnelOf(world.service, thing);
  await app.terminal.run('echo before-$((6*7))');
  await app.terminal.expectText(/^before-42$/m);

  path.cut();
  await expect(app.status).toHaveAttribute('data-state', 'ended', { timeout: 30_000 });
  await expect(app.byId('resend-tokens')).toBeVisible();
  const notified = agent.output().split('\n').filter((l) => /tunnel notification received/.test(l)).length;
  await app.byId('resend-tokens').click();
  // The device got its new token by notification; the page resumes without a host-key question.
  await app.terminal.expectText(new RegExp(`reconnecting ──\\n(?:.*\\n)*?${testUser.name}@[^\\n]*\\$`), 45_000);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await expect(app.byId('hostkey-dialog')).toHaveCount(0);
  expect(agent.output().split('\n').filter((l) => /tunnel notification received/.test(l)).length).toBe(notified + 1);
  await app.terminal.run('echo after-$((7*7))');
  await app.terminal.expectText(/^before-42$[\s\S]*^after-49$/m);
  // Still the same tunnel.
  expect(await openTunnelOf(world.service, thing)).toBe(tunnelId);
});

test('Close tunnel closes it on the service and the device drops its session', async ({
  page,
  processes,
  sshd,
  testUser,
}) => {
  const world = await deviceWorld(processes);
  const thing = thingName('close');
  const agent = await deviceAgent(processes, world, thing, sshd);
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  await connectDevice(app, thing, testUser, sshd, true);
  const tunnelId = await openTunnelOf(world.service, thing);

  await app.byId('close-tunnel').click();
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await expect(app.byId('notice')).toContainText(`The tunnel for ${thing} is closed`);
  await expect(app.byId('resend-tokens')).toHaveCount(0);
  await expect.poll(async () => (await describe(world.service, tunnelId)).status).toBe('CLOSED');
  await agent.waitForLine(/the tunnel's session ended; still waiting for notifications/, 20_000);
});

test('a device that speaks only V1 (the Device Client rules) is found in V1 once, then reached in V1 at once', async ({
  page,
  processes,
  sshd,
  testUser,
}) => {
  test.setTimeout(120_000);
  const world = await deviceWorld(processes);
  const thing = thingName('devclient');
  const agent = processes.track(
    await startThingAgent({
      thing,
      mqtt: world.broker.url,
      endpoint: world.service.url,
      destinations: [`SSH=${sshd.address}`],
      format: 'V1',
      deviceClientRules: true,
    }),
  );
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  // No memory for this device: V3 first; no banner within 2 s, so new tokens and V1.
  await app.fillDevice({ thing, username: testUser.name, password: testUser.password });
  await app.connect();
  await expect(app.byId('format-note')).toContainText(`retrying in V1 (remembered for ${thing})`, { timeout: 45_000 });
  await expect(app.byId('hostkey-dialog')).toContainText(thing, { timeout: 45_000 });
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run('echo found-v1-$((40+2))');
  await app.terminal.expectText(/^found-v1-42$/m);
  // The device really left the V3 stream unanswered.
  expect(agent.output()).toMatch(/Device Client rules: not answering/);
  await app.disconnectButton.click();
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await app.byId('close-tunnel').click();
  await expect(app.byId('close-tunnel')).toHaveCount(0);

  // Next time (a reloaded page, a new tunnel): V1 straight away, no retry, nothing unanswered.
  const before = agent.output().length;
  await app.open();
  await connectDevice(app, thing, testUser, sshd, false);
  await expect(app.byId('format-note')).toHaveCount(0);
  await app.terminal.run('echo direct-v1-$((40+2))');
  await app.terminal.expectText(/^direct-v1-42$/m);
  expect(agent.output().slice(before)).not.toMatch(/not answering/);
});

test('a thing with no agent running ends with the error that names its topic', async ({ page, processes, testUser }) => {
  test.setTimeout(90_000);
  const world = await deviceWorld(processes);
  const thing = thingName('absent');
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  await app.fillDevice({ thing, username: testUser.name, password: testUser.password });
  await app.connect();
  await expect(app.byId('status-label')).toHaveText(`Waiting for ${thing} to connect…`);
  // The wait has a 30 s deadline; then the error, and no spinner.
  await expect(app.error).toBeVisible({ timeout: 45_000 });
  const message = await app.expectError(new RegExp(`\\$aws/things/${thing}/tunnels/notify`));
  expect(message).toContain('Check the thing name');
  expect(message).toContain('agent is running');
  await expect(app.status).toHaveAttribute('data-state', 'ended');
  await expect(app.connectButton).toBeEnabled();
});

test('Join connects to a tunnel the aws CLI opened for a thing', async ({ page, processes, sshd, testUser }) => {
  const world = await deviceWorld(processes);
  const thing = thingName('joined');
  await deviceAgent(processes, world, thing, sshd);
  const opened = awsTunneling(world.service.url, [
    'open-tunnel',
    '--destination-config',
    `thingName=${thing},services=SSH`,
  ]);
  const tunnelId = opened.tunnelId as string;
  const app = new BurrowApp(page, world.service.url);
  await app.open();
  await app.username.fill(testUser.name);
  await app.password.fill(testUser.password);
  await app.page.locator('details.tunnels > summary').click();
  const row = app.page.locator(`[data-testid="tunnel-row"][data-tunnel-id="${tunnelId}"]`);
  await expect(row).toContainText(thing);
  // The list is read when asked: refresh until the device shows as connected.
  await expect(async () => {
    await app.byId('tunnels-refresh').click();
    await expect(row).toContainText('device connected', { timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await row.getByTestId('tunnel-join').click();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  await app.terminal.waitForPrompt(testUser.name);
  await expect(app.byId('session-login')).toHaveText(`${testUser.name}@${thing}`);
});

test('a #thing=…&user=… link opens Device mode filled in, and leaves the address bar', async ({ page, processes }) => {
  const world = await deviceWorld(processes);
  const app = new BurrowApp(page, world.service.url);
  await app.open('thing=pump-7&user=pi');
  await expect(app.mode).toHaveAttribute('data-mode', 'device');
  await expect(app.byId('thing')).toHaveValue('pump-7');
  await expect(app.username).toHaveValue('pi');
  expect(page.url()).toBe(`${world.service.url}/`);
});

test('relay mode with the tunnel API: refused without the operator header, the flow with it', async ({
  browser,
  processes,
  sshd,
  testUser,
}) => {
  // The worker's emulator stands in for AWS (data and control plane); the relay signs its
  // control-plane calls with its own credentials and wants an authenticating proxy's header.
  const world = await deviceWorld(processes);
  const relay = await BurrowService.start(
    [
      '--upstream',
      world.service.url.replace(/^http/, 'ws'),
      '--tunnel-api',
      '--control-plane-endpoint',
      world.service.url,
      '--region',
      'us-east-1',
      '--operator-header',
      'X-Operator',
    ],
    {
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      AWS_REGION: 'us-east-1',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
  );
  processes.track(relay.proc);
  const thing = thingName('relayed');
  await deviceAgent(processes, world, thing, sshd);

  const anonymous = await browser.newContext();
  processes.onCleanup(() => anonymous.close());
  const refused = new BurrowApp(await anonymous.newPage(), relay.url);
  await refused.open();
  await expect(refused.mode).toHaveAttribute('data-mode', 'device');
  await refused.expectError(/not signed in \(401 Unauthorized\)/);

  const signedIn = await browser.newContext({ extraHTTPHeaders: { 'X-Operator': 'alice' } });
  processes.onCleanup(() => signedIn.close());
  const app = new BurrowApp(await signedIn.newPage(), relay.url);
  await app.open();
  await expect(app.error).toHaveCount(0);
  await connectDevice(app, thing, testUser, sshd, true);
  await app.terminal.run('echo relayed-$((6*7))');
  await app.terminal.expectText(/^relayed-42$/m);
  await relay.proc.waitForLine(/tunnel-api operator=alice op=open thing=\S+ tunnel=\S+ result=ok/, 5_000);
});
