// A real OpenSSH server on a loopback port, with a test user, as the device behind the agent.
//
// The fixtures run as root (CI does): they create the user `burrowtest` if it is missing, set
// its password, generate client keys of every type the app supports (one encrypted), and start
// `/usr/sbin/sshd -D -e` with a configuration and host keys of its own in a temporary folder.
// Nothing on the machine's own sshd configuration is read or changed.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Proc, freePort, runQuiet, start } from './process';

export const TEST_USER = 'burrowtest';
/** The test user's password (a throwaway account on a test machine). */
export const TEST_PASSWORD = 'burrow-e2e-Passw0rd';
/** The passphrase of the encrypted ed25519 key. */
export const KEY_PASSPHRASE = 'burrow-e2e-key-passphrase';

export const SSHD = '/usr/sbin/sshd';
/** Debian's OpenSSH SFTP server (package openssh-sftp-server, a dependency of openssh-server). */
export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

/** A client key pair for the test user. */
export interface ClientKey {
  /** `ed25519`, `ecdsa`, `rsa` or `ed25519-encrypted`. */
  name: string;
  /** The private key file's text (OpenSSH format). */
  privateKey: string;
  /** Path of the private key file. */
  privateKeyPath: string;
  /** Its passphrase, for the encrypted one. */
  passphrase?: string;
  /** The public key line. */
  publicKey: string;
}

/** The test user and its keys. */
export interface TestUser {
  name: string;
  password: string;
  keys: Record<'ed25519' | 'ecdsa' | 'rsa' | 'ed25519-encrypted', ClientKey>;
  /** Folder holding the keys and authorized_keys (readable by the test user). */
  dir: string;
}

/** Fails with a clear message when the suite cannot do what it needs as a normal user. */
export function requireRoot(): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(
      'the end-to-end suite must run as root: it creates the test user and starts sshd ' +
        '(run `cargo xtask test` as root, as CI does)',
    );
  }
  if (!fs.existsSync(SSHD)) {
    throw new Error(`${SSHD} is missing: install openssh-server (cargo xtask test does so as root)`);
  }
}

/** Removes the folder of keys made by `prepareTestUser` (the account itself stays). */
export function removeTestUserFiles(user: TestUser): void {
  fs.rmSync(user.dir, { recursive: true, force: true });
}

/** Creates (or refreshes) the test user and generates its keys in a new folder. */
export function prepareTestUser(): TestUser {
  requireRoot();
  try {
    runQuiet('id', [TEST_USER]);
  } catch {
    runQuiet('useradd', ['--create-home', '--shell', '/bin/bash', TEST_USER]);
  }
  runQuiet('chpasswd', [], `${TEST_USER}:${TEST_PASSWORD}\n`);
  // Make sure the account is usable for password logins (not locked, not expired).
  runQuiet('usermod', ['--unlock', '--expiredate', '', '--shell', '/bin/bash', TEST_USER]);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-user-'));
  fs.chmodSync(dir, 0o755);
  const keys = {} as TestUser['keys'];
  const specs: Array<[keyof TestUser['keys'], string[], string | undefined]> = [
    ['ed25519', ['-t', 'ed25519'], undefined],
    ['ecdsa', ['-t', 'ecdsa', '-b', '256'], undefined],
    ['rsa', ['-t', 'rsa', '-b', '3072'], undefined],
    ['ed25519-encrypted', ['-t', 'ed25519'], KEY_PASSPHRASE],
  ];
  for (const [name, typeArgs, passphrase] of specs) {
    const keyPath = path.join(dir, `id_${name}`);
    runQuiet('ssh-keygen', [...typeArgs, '-q', '-N', passphrase ?? '', '-C', `${TEST_USER}-${name}`, '-f', keyPath]);
    keys[name] = {
      name,
      privateKey: fs.readFileSync(keyPath, 'utf8'),
      privateKeyPath: keyPath,
      passphrase,
      publicKey: fs.readFileSync(`${keyPath}.pub`, 'utf8').trim(),
    };
  }
  const authorized = Object.values(keys)
    .map((k) => k.publicKey)
    .join('\n');
  fs.writeFileSync(path.join(dir, 'authorized_keys'), `${authorized}\n`, { mode: 0o644 });
  return { name: TEST_USER, password: TEST_PASSWORD, keys, dir };
}

export interface SshdOptions {
  /**
   * Use PAM (for keyboard-interactive logins: OpenSSH on Linux offers keyboard-interactive only
   * through PAM). Password authentication is then switched off so that the password must be
   * typed into the keyboard-interactive prompt.
   */
  pam?: boolean;
  /**
   * Offer the `sftp` subsystem (OpenSSH's sftp-server), as stock sshd does. `false` gives a
   * device without SFTP (a Dropbear box without openssh-sftp-server behaves alike).
   */
  sftp?: boolean;
}

/** A running sshd with its own host keys. */
export class Sshd {
  private constructor(
    readonly port: number,
    readonly dir: string,
    readonly proc: Proc,
    readonly hostKeyFingerprints: string[],
  ) {}

  /** `127.0.0.1:PORT`, as the agent's `-d SSH=…` target. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts sshd for `user` on a free loopback port. */
  static async start(user: TestUser, options: SshdOptions = {}): Promise<Sshd> {
    requireRoot();
    fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'burrow-e2e-sshd-'));
    const hostKey = path.join(dir, 'ssh_host_ed25519_key');
    runQuiet('ssh-keygen', ['-t', 'ed25519', '-q', '-N', '', '-f', hostKey]);
    const fingerprint = runQuiet('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`]).split(/\s+/)[1];
    const port = await freePort();
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(user.dir, 'authorized_keys')}`,
      // The authorized_keys file lives in a temporary folder, not in the user's home.
      'StrictModes no',
      `AllowUsers ${user.name}`,
      'PermitRootLogin no',
      'PubkeyAuthentication yes',
      options.pam ? 'UsePAM yes' : 'UsePAM no',
      options.pam ? 'PasswordAuthentication no' : 'PasswordAuthentication yes',
      'KbdInteractiveAuthentication yes',
      'PermitEmptyPasswords no',
      'PrintMotd no',
      'PrintLastLog no',
      'SetEnv LANG=C.UTF-8',
      'LogLevel VERBOSE',
      ...(options.sftp === false ? [] : [`Subsystem sftp ${SFTP_SERVER}`]),
      '',
    ].join('\n');
    const configPath = path.join(dir, 'sshd_config');
    fs.writeFileSync(configPath, config);
    runQuiet(SSHD, ['-t', '-f', configPath]);
    const proc = start(SSHD, ['-D', '-e', '-f', configPath], { name: `sshd :${port}` });
    await proc.waitForLine(/Server listening on 127\.0\.0\.1 port \d+/, 15_000);
    return new Sshd(port, dir, proc, [fingerprint]);
  }

  /** Stops sshd and removes its folder. */
  async stop(): Promise<void> {
    await this.proc.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
