// Page objects of Burrow's browser app. Every element is found by its `data-testid`, the
// contract between the app and this suite; nothing here depends on CSS classes or layout, except
// reading the terminal's text from xterm.js's own DOM.
import { expect, Locator, Page } from '@playwright/test';

/** How the operator logs in. */
export type Credential =
  | { kind: 'password'; password: string }
  | { kind: 'key'; privateKey: string; passphrase?: string }
  | { kind: 'key-file'; path: string; passphrase?: string }
  | { kind: 'none' };

export interface LoginForm {
  token: string;
  username: string;
  credential: Credential;
  /** The destination's message format: `auto` (V3), `V2` or `V1`. */
  format?: 'auto' | 'V2' | 'V1';
  /** The service id, when the tunnel has several. */
  service?: string;
  /** A tunnel endpoint other than the page's own origin. */
  endpoint?: string;
  /** A cookie helper URL other than `<origin>/cookie`. */
  cookieHelper?: string;
  /** The device's name (its thing), under which its host key is remembered. */
  deviceName?: string;
}

/** Device mode's form. */
export interface DeviceForm {
  thing: string;
  username: string;
  password: string;
  /** The services field (default `SSH`). */
  services?: string;
  format?: 'auto' | 'V2' | 'V1';
}

/** The login form for `user`'s password and `token`, plus any other fields. */
export function passwordLogin(
  token: string,
  user: { name: string; password: string },
  extra: Partial<LoginForm> = {},
): LoginForm {
  return { token, username: user.name, credential: { kind: 'password', password: user.password }, ...extra };
}

/** The whole app: the connect form, the host-key dialog, status, errors and the terminal. */
export class BurrowApp {
  readonly terminal: Terminal;

  constructor(
    readonly page: Page,
    readonly baseUrl: string,
  ) {
    this.terminal = new Terminal(page);
  }

  byId(id: string): Locator {
    return this.page.getByTestId(id);
  }

  get endpoint(): Locator {
    return this.byId('endpoint');
  }
  get cookieHelper(): Locator {
    return this.byId('cookie-helper');
  }
  get token(): Locator {
    return this.byId('token');
  }
  get service(): Locator {
    return this.byId('service');
  }
  get username(): Locator {
    return this.byId('username');
  }
  get password(): Locator {
    return this.byId('password');
  }
  get privateKey(): Locator {
    return this.byId('private-key');
  }
  get privateKeyFile(): Locator {
    return this.byId('private-key-file');
  }
  get passphrase(): Locator {
    return this.byId('passphrase');
  }
  get format(): Locator {
    return this.byId('format');
  }
  get connectButton(): Locator {
    return this.byId('connect');
  }
  get hostKeyFingerprint(): Locator {
    return this.byId('hostkey-fingerprint');
  }
  get hostKeyAccept(): Locator {
    return this.byId('hostkey-accept');
  }
  get hostKeyReject(): Locator {
    return this.byId('hostkey-reject');
  }
  get status(): Locator {
    return this.byId('status');
  }
  get error(): Locator {
    return this.byId('error');
  }
  get disconnectButton(): Locator {
    return this.byId('disconnect');
  }
  get reconnectButton(): Locator {
    return this.byId('reconnect');
  }
  get kbdPrompts(): Locator {
    return this.byId('kbd-prompt');
  }
  get kbdSubmit(): Locator {
    return this.byId('kbd-submit');
  }

  /**
   * Opens the app (optionally with a URL fragment such as `token=…`) and waits for the form and
   * for the page to have learnt whether the service offers the tunnel API (Device mode).
   */
  async open(fragment?: string): Promise<void> {
    await this.page.goto(`${this.baseUrl}/${fragment ? `#${fragment}` : ''}`);
    await expect(this.connectButton).toBeVisible();
    await expect(this.byId('connect-form')).toHaveAttribute('data-probed', 'true');
  }

  /** The way in the form shows (`device` or `token`). */
  get mode(): Locator {
    return this.byId('connect-form');
  }

  /** Fills the connect form in Token mode. */
  async fill(form: LoginForm): Promise<void> {
    await this.byId('mode-token').click();
    await expect(this.mode).toHaveAttribute('data-mode', 'token');
    if (form.endpoint !== undefined) await this.endpoint.fill(form.endpoint);
    if (form.cookieHelper !== undefined) await this.cookieHelper.fill(form.cookieHelper);
    await this.token.fill(form.token);
    await this.username.fill(form.username);
    const credential = form.credential;
    switch (credential.kind) {
      case 'password':
        await this.password.fill(credential.password);
        break;
      case 'key':
        await this.privateKey.fill(credential.privateKey);
        if (credential.passphrase !== undefined) await this.passphrase.fill(credential.passphrase);
        break;
      case 'key-file':
        await this.privateKeyFile.setInputFiles(credential.path);
        // The app reads the file asynchronously into the key field.
        await expect(this.privateKey).toHaveValue(/PRIVATE KEY/);
        if (credential.passphrase !== undefined) await this.passphrase.fill(credential.passphrase);
        break;
      case 'none':
        break;
    }
    if (form.format !== undefined) await this.selectFormat(form.format);
    if (form.service !== undefined) await this.service.fill(form.service);
    if (form.deviceName !== undefined) await this.byId('device-name').fill(form.deviceName);
  }

  /** Fills the connect form in Device mode: the thing name, the login, no token anywhere. */
  async fillDevice(form: DeviceForm): Promise<void> {
    await this.byId('mode-device').click();
    await expect(this.mode).toHaveAttribute('data-mode', 'device');
    await this.byId('thing').fill(form.thing);
    if (form.services !== undefined) await this.byId('services').fill(form.services);
    await this.username.fill(form.username);
    await this.password.fill(form.password);
    if (form.format !== undefined) await this.selectFormat(form.format);
  }

  /** Chooses the destination's message format; the option is found by its value or label. */
  async selectFormat(format: 'auto' | 'V2' | 'V1'): Promise<void> {
    const select = this.format;
    if (!(await select.isVisible())) {
      // Should the format sit in a folded <details>, open it by clicking its summary.
      const advanced = this.page.locator('details:has([data-testid="format"]) > summary');
      if ((await advanced.count()) > 0) await advanced.first().click();
    }
    const options = await select.locator('option').evaluateAll((nodes) =>
      nodes.map((n) => ({ value: (n as HTMLOptionElement).value, label: n.textContent ?? '' })),
    );
    const wanted = format === 'auto' ? /auto|V3/i : new RegExp(`\\b${format}\\b`, 'i');
    const option = options.find((o) => wanted.test(o.value) || wanted.test(o.label));
    if (!option) throw new Error(`no format option for ${format} among ${JSON.stringify(options)}`);
    await select.selectOption(option.value);
  }

  /** Clicks connect. */
  async connect(): Promise<void> {
    await this.connectButton.click();
  }

  /** Waits for the first-use host-key question, checks the fingerprint shown, and accepts it. */
  async acceptHostKey(expectedFingerprint?: string): Promise<string> {
    await expect(this.hostKeyAccept).toBeVisible();
    const shown = (await this.hostKeyFingerprint.innerText()).trim();
    if (expectedFingerprint !== undefined) expect(shown).toContain(expectedFingerprint);
    await this.hostKeyAccept.click();
    return shown;
  }

  /** Fills the form, connects, accepts the host key on first use and waits for the shell prompt. */
  async login(form: LoginForm, hostKeyFingerprint?: string): Promise<void> {
    await this.fill(form);
    await this.connect();
    await this.acceptHostKey(hostKeyFingerprint);
    await this.terminal.waitForPrompt(form.username);
  }

  /**
   * Opens the page and logs in to `device` through `tunnel` with `user`'s password, accepting
   * the device's host key (checked against its fingerprint) on first use.
   */
  async loginWithPassword(
    tunnel: { sourceAccessToken: string },
    user: { name: string; password: string },
    device: { hostKeyFingerprints: string[] },
  ): Promise<void> {
    await this.open();
    await this.login(passwordLogin(tunnel.sourceAccessToken, user), device.hostKeyFingerprints[0]);
  }

  /** The bytes received through the tunnel as the status line shows them (`↓ 1.4 MiB`), in bytes. */
  async bytesReceived(): Promise<number> {
    const text = await this.status.innerText();
    const match = text.match(/↓\s*([\d.]+)\s*(B|KiB|MiB|GiB)/);
    if (!match) throw new Error(`no received-bytes figure in the status line: ${text}`);
    const scale = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[match[2] as 'B' | 'KiB' | 'MiB' | 'GiB'];
    return Number(match[1]) * scale;
  }

  /** Waits until the error panel shows text matching `pattern`, and returns the whole text. */
  async expectError(pattern: RegExp): Promise<string> {
    await expect(this.error).toBeVisible();
    await expect(this.error).toContainText(pattern);
    return await this.error.innerText();
  }
}

/** The xterm.js terminal, read through its DOM (or its buffer when the renderer draws on a canvas). */
export class Terminal {
  constructor(readonly page: Page) {}

  get root(): Locator {
    return this.page.getByTestId('terminal');
  }

  /** The terminal's text, one line per row, trailing spaces trimmed. */
  async text(): Promise<string> {
    return await this.page.evaluate(() => {
      const normalise = (s: string) =>
        s
          .replace(/\u00a0/g, ' ')
          .split('\n')
          .map((l) => l.replace(/\s+$/, ''))
          .join('\n');
      const rows = document.querySelector('[data-testid="terminal"] .xterm-rows') as HTMLElement | null;
      const domText = rows ? rows.innerText : '';
      if (domText.trim() !== '') return normalise(domText);
      // The WebGL renderer draws on a canvas; then read the visible part of xterm's buffer.
      const term = (window as unknown as { __burrowTerm?: XtermLike }).__burrowTerm;
      if (!term) return '';
      const buffer = term.buffer.active;
      const lines: string[] = [];
      for (let i = buffer.viewportY; i < buffer.viewportY + term.rows; i++) {
        lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
      }
      return normalise(lines.join('\n'));

      interface XtermLike {
        rows: number;
        buffer: {
          active: {
            viewportY: number;
            length: number;
            getLine(i: number): { translateToString(trim: boolean): string } | undefined;
          };
        };
      }
    });
  }

  /** Waits until the terminal shows text matching `pattern`. */
  async expectText(pattern: string | RegExp, timeout = 20_000): Promise<void> {
    const matches = (text: string) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));
    await expect
      .poll(async () => matches(await this.text()), {
        message: `terminal text should match ${pattern}`,
        timeout,
      })
      .toBe(true);
  }

  /** Waits for the test user's bash prompt. */
  async waitForPrompt(user: string, timeout = 45_000): Promise<void> {
    await this.expectText(new RegExp(`${user}@[^\\n]*[$#]`), timeout);
  }

  /** Focuses the terminal so that keystrokes go to the shell. */
  async focus(): Promise<void> {
    await this.root.click();
  }

  /** Types `text` as keystrokes. */
  async type(text: string): Promise<void> {
    await this.focus();
    await this.page.keyboard.type(text);
  }

  /** Types a command line and presses Enter. */
  async run(command: string): Promise<void> {
    await this.type(command);
    await this.page.keyboard.press('Enter');
  }
}
