// The first screen downloads only what it draws, the app and its form: xterm.js, its fit addon
// and the addons a session needs (Unicode 11 widths, web links, the OSC 52 clipboard) are
// fetched when a session starts, the search addon when the search box first opens
// (app/src/term/script.rs), and search works once fetched. The session machinery (SSH, key
// formats, ciphers) is a WebAssembly module of its own (xtask/src/split.rs), fetched once the
// operator starts on the form, and sessions run on it.
import { test, expect } from '../fixtures';
import { passwordLogin } from '../pages/burrow-app';

const SESSION_ADDONS = ['xterm.js', 'addon-fit.js', 'addon-unicode11.js', 'addon-web-links.js', 'addon-clipboard.js'];
const SEARCH_ADDON = 'addon-search.js';
const SPLIT_MODULE = /-split_session\.wasm$/;

test('addons are fetched on first use, not with the first screen', async ({ app, tunnel, testUser, sshd }) => {
  const requested: string[] = [];
  app.page.on('request', (request) => requested.push(new URL(request.url()).pathname.replace(/^\//, '')));
  await app.open();
  await expect(app.page.getByTestId('connect')).toBeEnabled();
  // The first screen: the app itself and its form, no terminal yet, neither xterm.js nor any addon.
  expect(requested.some((file) => file.endsWith('.wasm'))).toBe(true);
  expect(requested.filter((file) => [...SESSION_ADDONS, SEARCH_ADDON].includes(file))).toEqual([]);
  expect(requested.filter((file) => /xterm.*\.js$/.test(file))).toEqual([]);
  expect(requested.filter((file) => SPLIT_MODULE.test(file))).toEqual([]);
  await expect(app.page.getByTestId('terminal-hint')).toBeVisible();
  await expect(app.page.getByTestId('terminal')).toHaveCount(0);

  await app.page.getByTestId('username').focus();
  await expect.poll(() => requested.filter((file) => SPLIT_MODULE.test(file))).toHaveLength(1);
  await app.login(passwordLogin(tunnel.sourceAccessToken, testUser), sshd.hostKeyFingerprints[0]);
  await expect(app.status).toHaveAttribute('data-state', 'connected');
  // Fetched once: the session ran on the module the focus fetched.
  expect(requested.filter((file) => SPLIT_MODULE.test(file))).toHaveLength(1);
  await expect.poll(() => SESSION_ADDONS.filter((file) => requested.includes(file))).toEqual(SESSION_ADDONS);
  await expect(app.page.getByTestId('terminal-hint')).toHaveCount(0);
  expect(requested).not.toContain(SEARCH_ADDON);

  await app.terminal.run('echo found-$((40+2))');
  await app.terminal.expectText(/^found-42$/m);
  await app.terminal.focus();
  await app.page.keyboard.press('Control+Shift+F');
  const search = app.page.getByTestId('search');
  await expect(search).toBeFocused();
  await expect.poll(() => requested.includes(SEARCH_ADDON)).toBe(true);
  await search.fill('found-42');
  await search.press('Enter');
  await expect(search).not.toHaveClass(/\bmiss\b/);
  await search.fill('not-on-screen-at-all');
  await search.press('Enter');
  await expect(search).toHaveClass(/\bmiss\b/);
});
