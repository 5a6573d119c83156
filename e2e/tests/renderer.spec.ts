// The WebGL renderer's script is fetched only when the browser has hardware WebGL2.
//
// The test browser (headless, --disable-gpu) has none: the page must never request
// addon-webgl.js and must draw with the DOM renderer. With the WebGL2 probe answered as a
// hardware GPU (a stand-in for the one context the app's probe creates), the page fetches the
// script and the terminal switches to the WebGL renderer (the test browser's software WebGL
// draws it) and keeps working.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

const WEBGL_SCRIPT = /\/addon-webgl\.js$/;

test('without hardware WebGL the WebGL addon is never downloaded', async ({ app, tunnel, testUser, sshd }) => {
  const requested: string[] = [];
  app.page.on('request', (request) => requested.push(request.url()));
  await app.open();
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  await app.terminal.run('echo dom-$((40+2))');
  await app.terminal.expectText(/^dom-42$/m);
  await expect(app.page.getByTestId('terminal')).toHaveAttribute('data-renderer', 'dom');
  expect(requested.filter((url) => WEBGL_SCRIPT.test(url))).toEqual([]);
  // The app's own files were fetched (the request log works), and the addon is still served.
  expect(requested.some((url) => /\.wasm$/.test(url))).toBe(true);
  const script = await app.page.request.get(new URL('/addon-webgl.js', app.page.url()).toString());
  expect(script.status()).toBe(200);
  expect(await script.text()).toContain('WebglAddon');
});

test('with hardware WebGL the addon is fetched and draws the terminal', async ({ app, tunnel, testUser, sshd }) => {
  // The first `getContext('webgl2')` is the app's probe: answer it as a hardware GPU would. The
  // addon's own context is then the test browser's software WebGL, which draws fine.
  await app.page.addInitScript(() => {
    const real = HTMLCanvasElement.prototype.getContext;
    let probed = false;
    HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement, kind: string, ...rest: unknown[]) {
      if (kind === 'webgl2' && !probed) {
        probed = true;
        const fake = Object.create(WebGL2RenderingContext.prototype);
        fake.getExtension = (name: string) => (name === 'WEBGL_lose_context' ? { loseContext() {} } : {});
        fake.getParameter = () => 'ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)';
        return fake;
      }
      return (real as any).call(this, kind, ...rest);
    } as typeof real;
  });
  const fetched = app.page.waitForRequest(WEBGL_SCRIPT);
  await app.open();
  await app.fill(passwordLogin(tunnel.sourceAccessToken, testUser));
  await app.connect();
  await app.acceptHostKey(sshd.hostKeyFingerprints[0]);
  const request = await fetched;
  expect((await request.response())?.status()).toBe(200);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  // The renderer switches once the script has loaded; the DOM rows are gone then.
  await expect(app.terminal.root).toHaveAttribute('data-renderer', 'webgl');
  await expect(app.terminal.root.locator('canvas').first()).toBeVisible();
  // The canvas cannot be read as text: the shell writes its answer to a file instead.
  const file = path.join(os.tmpdir(), `burrow-e2e-webgl-${process.pid}-${Date.now()}`);
  await app.terminal.run(`echo webgl-$((40+2)) > ${file}; chmod 644 ${file}`);
  await expect
    .poll(() => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''), { timeout: 20_000 })
    .toBe('webgl-42\n');
  fs.rmSync(file, { force: true });
});
