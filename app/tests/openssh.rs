//! The app's SSH glue against a real OpenSSH server, natively, before any browser is involved:
//! host key check, password / publickey (every key type, an encrypted key) /
//! keyboard-interactive authentication, pty + shell, exec, keep-alive round trips, and output
//! backpressure, and SFTP on a second channel of the same connection (listing, pipelined
//! transfers, cancel, errors, a server without the subsystem) — over a TCP stream instead of the tunnel (the glue is generic over the stream).
//!
//! Needs root and `/usr/sbin/sshd` (as CI and `cargo xtask test` have): each test starts its own
//! `sshd -D -e` on a free loopback port with a configuration and host key of its own, and the
//! suite creates the throwaway user `burrowapp` if it is missing. The machine's own sshd
//! configuration is neither read nor changed.

#![cfg(not(target_arch = "wasm32"))]

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::OnceLock;

use burrow_app::ssh::auth::{Credentials, authenticate};
use burrow_app::ssh::client::{Connection, Prompter, connect};
use burrow_app::ssh::error::SshError;
use burrow_app::ssh::known_hosts::{KnownHosts, Verdict, fingerprint};
use burrow_app::ssh::link::Link;
use burrow_app::ssh::sftp::{self, FilesError, Kind, Sftp, Sink, Source};
use burrow_app::ssh::shell::{
    MAX_PACKET_SIZE, Program, ShellEnd, Terminal, UNPARSED_LIMIT, open, open_on, run,
};
use burrow_app::ssh::vocab::{Credential, KbdQuestion, TabId, UserCommand};
use futures_channel::oneshot;
use futures_util::{FutureExt, StreamExt, future::LocalBoxFuture, stream};
use russh::keys::PublicKey;
use zeroize::Zeroizing;

#[path = "openssh/terminal.rs"]
mod terminal;
use terminal::{Collecting, Step, now_ms, script};

const USER: &str = "burrowapp";
/// The throwaway test account's password.
const PASSWORD: &str = "burrow-app-test-Passw0rd";
const PASSPHRASE: &str = "correct horse";
const TARGET: &str = "tcp://127.0.0.1/test/SSH";

fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn key_text(name: &str) -> String {
    std::fs::read_to_string(keys_dir().join(name)).expect("test key")
}

fn run_ok(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("stdin write");
    }
    let out = child.wait_with_output().expect("waits");
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates the test user once and writes its authorized_keys (every test key except the
/// P-384 one, which stays unauthorized on purpose).
fn test_user() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The effective user, as `id -u` prints it.
        let uid = run_ok("id", &["-u"], None);
        assert_eq!(
            uid.trim(),
            "0",
            "these tests must run as root (they create a user and start sshd)"
        );
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: install openssh-server"
        );
        let exists = Command::new("id")
            .arg(USER)
            .output()
            .is_ok_and(|o| o.status.success());
        if !exists {
            run_ok(
                "useradd",
                &["--create-home", "--shell", "/bin/sh", USER],
                None,
            );
        }
        run_ok("chpasswd", &[], Some(&format!("{USER}:{PASSWORD}\n")));
        run_ok("usermod", &["--unlock", "--expiredate", "", USER], None);
        let dir = std::env::temp_dir().join(format!("burrow-app-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut authorized = String::new();
        for name in [
            "ed25519",
            "ed25519_encrypted",
            "ecdsa_pem",
            "rsa_pem",
            "rsa_openssh",
        ] {
            authorized.push_str(&key_text(&format!("{name}.pub")));
        }
        std::fs::write(dir.join("authorized_keys"), authorized).expect("authorized_keys");
        dir
    })
}

/// A running sshd, killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    host_key: PublicKey,
    _dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start(pam: bool) -> Sshd {
        Self::start_with(pam, true)
    }

    /// `sftp`: whether the server offers the `sftp` subsystem (OpenSSH's sftp-server).
    fn start_with(pam: bool, sftp: bool) -> Sshd {
        let user_dir = test_user();
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = user_dir.join(format!("sshd-{port}"));
        std::fs::create_dir_all(&dir).expect("sshd dir");
        let host_key_path = dir.join("host_ed25519");
        let _ = std::fs::remove_file(&host_key_path);
        run_ok(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                host_key_path.to_str().expect("utf-8"),
            ],
            None,
        );
        let host_key = PublicKey::from_openssh(
            std::fs::read_to_string(host_key_path.with_extension("pub"))
                .expect("host key")
                .trim(),
        )
        .expect("host key parses");
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile {ak}\nStrictModes no\nAllowUsers {USER}\nPermitRootLogin no\n\
             PubkeyAuthentication yes\nUsePAM {pam}\nPasswordAuthentication {pw}\n\
             KbdInteractiveAuthentication yes\nPrintMotd no\nPrintLastLog no\n\
             Banner {banner}\nLogLevel INFO\n{subsystem}",
            hk = host_key_path.display(),
            pid = dir.join("sshd.pid").display(),
            ak = user_dir.join("authorized_keys").display(),
            pam = if pam { "yes" } else { "no" },
            pw = if pam { "no" } else { "yes" },
            banner = dir.join("banner").display(),
            subsystem = if sftp {
                "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            } else {
                ""
            },
        );
        std::fs::write(dir.join("banner"), "Burrow test device\n").expect("banner");
        let config_path = dir.join("sshd_config");
        std::fs::write(&config_path, config).expect("config");
        let mut child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sshd starts");
        // sshd says when it listens; until then connections would be refused.
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Server listening") => break,
                Some(Ok(_)) => {}
                other => panic!("sshd did not start: {other:?}"),
            }
        }
        // Keep draining its log so sshd never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Sshd {
            child,
            port,
            host_key,
            _dir: dir,
        }
    }

    async fn tcp(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("sshd accepts")
    }
}

/// A prompter with an in-memory known-hosts store.
struct TestPrompter {
    hosts: RefCell<KnownHosts>,
    trust_new: bool,
    kbd_answers: RefCell<VecDeque<Option<Vec<String>>>>,
    kbd_questions: RefCell<Vec<KbdQuestion>>,
    banners: RefCell<String>,
}

impl TestPrompter {
    fn new() -> Self {
        Self {
            hosts: RefCell::new(KnownHosts::default()),
            trust_new: true,
            kbd_answers: RefCell::new(VecDeque::new()),
            kbd_questions: RefCell::new(Vec::new()),
            banners: RefCell::new(String::new()),
        }
    }
}

impl Prompter for TestPrompter {
    fn check_host_key(&self, key: &PublicKey) -> LocalBoxFuture<'_, Result<(), SshError>> {
        let verdict = self.hosts.borrow().verdict(TARGET, key);
        let result = match verdict {
            Verdict::Known => Ok(()),
            Verdict::Unknown if self.trust_new => {
                self.hosts.borrow_mut().remember(TARGET, key);
                Ok(())
            }
            Verdict::Unknown => Err(SshError::HostKeyRejected {
                fingerprint: fingerprint(key),
            }),
            Verdict::Mismatch { remembered } => Err(SshError::HostKeyMismatch {
                target: TARGET.into(),
                algorithm: key.algorithm().as_str().into(),
                presented: fingerprint(key),
                remembered,
            }),
        };
        async move { result }.boxed_local()
    }

    fn keyboard_interactive(
        &self,
        question: KbdQuestion,
    ) -> LocalBoxFuture<'_, Option<Vec<Zeroizing<String>>>> {
        self.kbd_questions.borrow_mut().push(question);
        let answer = self
            .kbd_answers
            .borrow_mut()
            .pop_front()
            .flatten()
            .map(|answers| answers.into_iter().map(Zeroizing::new).collect());
        async move { answer }.boxed_local()
    }

    fn banner(&self, text: &str) {
        self.banners.borrow_mut().push_str(text);
    }
}

fn password(text: &str) -> Credentials {
    Credentials::prepare(Credential::Password(Zeroizing::new(text.into()))).expect("password")
}

fn key(name: &str, passphrase: Option<&str>) -> Credentials {
    Credentials::prepare(Credential::PrivateKey {
        text: Zeroizing::new(key_text(name)),
        passphrase: passphrase.map(|p| Zeroizing::new(p.to_owned())),
    })
    .expect("key parses")
}

async fn login(
    sshd: &Sshd,
    prompter: &TestPrompter,
    credentials: &Credentials,
) -> Result<Connection, SshError> {
    let mut conn = connect(sshd.tcp().await, prompter).await?;
    authenticate(&mut conn, USER, credentials, prompter).await?;
    Ok(conn)
}

/// Runs `command` without a pty and returns its output and end.
async fn exec(conn: Connection, command: &str) -> (Vec<u8>, Result<ShellEnd, SshError>) {
    let shell = open(conn, &Program::Exec(command.to_owned()))
        .await
        .expect("exec starts");
    let terminal = Collecting::default();
    let mut commands = stream::pending::<UserCommand>().fuse();
    let mut keepalive = stream::pending::<()>().fuse();
    let end = run(shell, &mut commands, &mut keepalive, 15, &terminal, &now_ms).await;
    (terminal.output.take(), end)
}

#[tokio::test]
async fn password_login_gets_a_pty_shell_with_size_term_and_keepalive_rtt() {
    let sshd = Sshd::start(false);
    let prompter = TestPrompter::new();
    let conn = login(&sshd, &prompter, &password(PASSWORD))
        .await
        .expect("password login");
    assert!(prompter.banners.borrow().contains("Burrow test device"));
    assert_eq!(
        prompter.hosts.borrow().verdict(TARGET, &sshd.host_key),
        Verdict::Known
    );
    let shell = open(
        conn,
        &Program::Shell {
            cols: 101,
            rows: 33,
        },
    )
    .await
    .expect("pty and shell");
    let terminal = Collecting::default();
    let (seen_tx, seen_rx) = oneshot::channel();
    *terminal.rtt_seen.borrow_mut() = Some(seen_tx);
    // Type a command, see its output, resize, see the new size, wait until a keep-alive came
    // back, then type `exit`.
    let mut commands = script(vec![
        Step::Send(UserCommand::Input(
            TabId::FIRST,
            b"stty size; echo term=$TERM\n".to_vec(),
        )),
        Step::WaitFor(terminal.when_shown("term=xterm-256color")),
        Step::Send(UserCommand::Resize {
            tab: TabId::FIRST,
            cols: 90,
            rows: 20,
        }),
        Step::Send(UserCommand::Input(TabId::FIRST, b"stty size\n".to_vec())),
        Step::WaitFor(terminal.when_shown("20 90")),
        Step::WaitFor(seen_rx),
        Step::Send(UserCommand::Input(TabId::FIRST, b"exit\n".to_vec())),
    ]);
    let mut keepalive = stream::iter([()]).chain(stream::pending()).fuse();
    let end = run(shell, &mut commands, &mut keepalive, 15, &terminal, &now_ms)
        .await
        .expect("the shell exits cleanly");
    assert_eq!(end.exit_status, Some(0));
    assert!(!end.by_operator);
    let output = String::from_utf8_lossy(&terminal.output.borrow()).into_owned();
    assert!(output.contains("33 101"), "{output:?}");
    assert!(output.contains("term=xterm-256color"), "{output}");
    assert!(output.contains("20 90"), "{output}");
    assert!(terminal.rtt.get().is_some_and(|ms| ms >= 0.0));
}

#[tokio::test]
async fn operator_disconnect_ends_the_session_cleanly() {
    let sshd = Sshd::start(false);
    let prompter = TestPrompter::new();
    let conn = login(&sshd, &prompter, &key("ed25519", None))
        .await
        .expect("login");
    let shell = open(conn, &Program::Shell { cols: 80, rows: 24 })
        .await
        .expect("shell");
    let terminal = Collecting::default();
    let mut commands = script(vec![
        Step::Send(UserCommand::Input(TabId::FIRST, b"echo ready\n".to_vec())),
        Step::WaitFor(terminal.when_shown("ready\r\n")),
        Step::Send(UserCommand::Disconnect),
    ]);
    let mut keepalive = stream::pending::<()>().fuse();
    let end = run(shell, &mut commands, &mut keepalive, 15, &terminal, &now_ms)
        .await
        .expect("a disconnect is a clean end");
    assert!(end.by_operator);
    assert_eq!(end.exit_status, None);
}

#[tokio::test]
async fn every_key_type_logs_in_and_exec_returns_output_and_status() {
    let sshd = Sshd::start(false);
    let cases = [
        ("ed25519", None),
        ("ed25519_encrypted", Some(PASSPHRASE)),
        ("ecdsa_pem", None),
        // OpenSSH 9 refuses SHA-1 `ssh-rsa`: these succeed only with rsa-sha2-256/512.
        ("rsa_pem", None),
        ("rsa_openssh", None),
    ];
    for (name, passphrase) in cases {
        let prompter = TestPrompter::new();
        let conn = login(&sshd, &prompter, &key(name, passphrase))
            .await
            .unwrap_or_else(|err| panic!("{name}: {err:?}"));
        let (output, end) = exec(conn, "echo key-ok; exit 3").await;
        assert_eq!(String::from_utf8_lossy(&output), "key-ok\n", "{name}");
        assert_eq!(end.expect("ends").exit_status, Some(3), "{name}");
    }
}

#[tokio::test]
async fn wrong_password_reports_what_was_tried_and_what_is_offered() {
    let sshd = Sshd::start(false);
    let prompter = TestPrompter::new();
    match login(&sshd, &prompter, &password("not the password")).await {
        Err(SshError::AuthFailed { offered, tried }) => {
            // Without PAM, OpenSSH still offers keyboard-interactive but has no prompts for it.
            assert_eq!(
                tried.first().map(String::as_str),
                Some("password"),
                "{tried:?}"
            );
            assert!(offered.contains(&"publickey".to_owned()), "{offered:?}");
            assert!(offered.contains(&"password".to_owned()), "{offered:?}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a wrong password logged in"),
    }
}

#[tokio::test]
async fn an_unauthorized_key_falls_back_to_nothing_and_says_so() {
    let sshd = Sshd::start(false);
    let prompter = TestPrompter::new();
    match login(&sshd, &prompter, &key("ecdsa384_pkcs8", None)).await {
        Err(SshError::AuthFailed { tried, offered }) => {
            assert_eq!(
                tried.first().map(String::as_str),
                Some("publickey"),
                "{tried:?}"
            );
            assert!(offered.contains(&"password".to_owned()), "{offered:?}");
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("an unauthorized key logged in"),
    }
}

#[tokio::test]
async fn keyboard_interactive_answers_the_password_prompt_by_itself() {
    let sshd = Sshd::start(true);
    let prompter = TestPrompter::new();
    let conn = login(&sshd, &prompter, &password(PASSWORD))
        .await
        .expect("PAM keyboard-interactive with the password credential");
    assert!(prompter.kbd_questions.borrow().is_empty());
    let (output, end) = exec(conn, "echo kbd-ok").await;
    assert_eq!(String::from_utf8_lossy(&output), "kbd-ok\n");
    assert_eq!(end.expect("ends").exit_status, Some(0));
}

#[tokio::test]
async fn keyboard_interactive_asks_the_operator_after_a_refused_key() {
    let sshd = Sshd::start(true);
    let prompter = TestPrompter::new();
    prompter
        .kbd_answers
        .borrow_mut()
        .push_back(Some(vec![PASSWORD.to_owned()]));
    let conn = login(&sshd, &prompter, &key("ecdsa384_pkcs8", None))
        .await
        .expect("the operator's answer logs in");
    {
        let questions = prompter.kbd_questions.borrow();
        assert_eq!(questions.len(), 1);
        assert_eq!(questions[0].prompts.len(), 1);
        assert!(
            !questions[0].prompts[0].1,
            "the password prompt is not echoed"
        );
    }
    let (output, _) = exec(conn, "echo asked-ok").await;
    assert_eq!(String::from_utf8_lossy(&output), "asked-ok\n");

    // Cancelling the round ends authentication with its own error.
    let prompter = TestPrompter::new();
    prompter.kbd_answers.borrow_mut().push_back(None);
    assert!(matches!(
        login(&sshd, &prompter, &key("ecdsa384_pkcs8", None)).await,
        Err(SshError::AuthCancelled)
    ));
}

#[tokio::test]
async fn host_key_mismatch_and_refusal_stop_before_authentication() {
    let sshd = Sshd::start(false);
    let other = PublicKey::from_openssh(key_text("ed25519.pub").trim()).expect("parses");
    let prompter = TestPrompter::new();
    prompter.hosts.borrow_mut().remember(TARGET, &other);
    match connect(sshd.tcp().await, &prompter).await {
        Err(SshError::HostKeyMismatch {
            presented,
            remembered,
            ..
        }) => {
            assert_eq!(presented, fingerprint(&sshd.host_key));
            assert_eq!(
                remembered,
                vec![format!("ssh-ed25519 {}", fingerprint(&other))]
            );
        }
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a changed host key was accepted"),
    }
    let declining = TestPrompter {
        trust_new: false,
        ..TestPrompter::new()
    };
    assert!(matches!(
        connect(sshd.tcp().await, &declining).await,
        Err(SshError::HostKeyRejected { .. })
    ));
}

/// A write the slow terminal has not reported as parsed yet: its size and its callback.
type HeldWrite = (usize, Box<dyn FnOnce()>);

/// A terminal that holds `parsed` callbacks, like a slow xterm.js.
#[derive(Default)]
struct Slow {
    held: RefCell<VecDeque<HeldWrite>>,
    outstanding: Cell<usize>,
    max_outstanding: Cell<usize>,
    total: Cell<usize>,
    saturated: Cell<u32>,
}

impl Terminal for Slow {
    fn output(&self, _tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
        self.total.set(self.total.get() + data.len());
        self.outstanding.set(self.outstanding.get() + data.len());
        self.max_outstanding
            .set(self.max_outstanding.get().max(self.outstanding.get()));
        self.held.borrow_mut().push_back((data.len(), parsed));
    }
    fn rtt(&self, _ms: f64) {}
}

impl Slow {
    /// Confirms everything held, as the terminal catching up.
    fn release_all(&self) {
        let held: Vec<_> = self.held.borrow_mut().drain(..).collect();
        for (len, parsed) in held {
            self.outstanding.set(self.outstanding.get() - len);
            parsed();
        }
    }
}

#[tokio::test]
async fn output_stops_at_the_unparsed_limit_and_no_byte_is_lost() {
    let sshd = Sshd::start(false);
    let prompter = TestPrompter::new();
    let conn = login(&sshd, &prompter, &key("ed25519", None))
        .await
        .expect("login");
    const TOTAL: usize = 24 * 1024 * 1024;
    let shell = open(conn, &Program::Exec(format!("head -c {TOTAL} /dev/zero")))
        .await
        .expect("exec");
    let terminal = Rc::new(Slow::default());
    let done = Rc::new(Cell::new(false));
    let mut commands = stream::pending::<UserCommand>().fuse();
    let mut keepalive = stream::pending::<()>().fuse();
    let running = {
        let terminal = Rc::clone(&terminal);
        let done = Rc::clone(&done);
        async move {
            let end = run(
                shell,
                &mut commands,
                &mut keepalive,
                15,
                &*terminal,
                &now_ms,
            )
            .await;
            done.set(true);
            end
        }
    };
    // The "terminal" parses only once the session has stopped feeding it at the limit.
    let catching_up = {
        let terminal = Rc::clone(&terminal);
        let done = Rc::clone(&done);
        async move {
            while !done.get() {
                if terminal.outstanding.get() >= UNPARSED_LIMIT {
                    terminal.saturated.set(terminal.saturated.get() + 1);
                    terminal.release_all();
                }
                tokio::task::yield_now().await;
            }
        }
    };
    let (end, ()) = futures_util::join!(running, catching_up);
    terminal.release_all();
    assert_eq!(end.expect("clean end").exit_status, Some(0));
    assert_eq!(terminal.total.get(), TOTAL, "every byte arrived");
    assert!(terminal.saturated.get() >= 1, "the limit was reached");
    assert!(
        terminal.max_outstanding.get() < UNPARSED_LIMIT + MAX_PACKET_SIZE as usize,
        "unparsed output stayed bounded: {}",
        terminal.max_outstanding.get()
    );
}

/// A download target in memory.
#[derive(Default)]
struct MemorySink {
    data: Vec<u8>,
    finished: bool,
    abandoned: Option<bool>,
}

impl Sink for MemorySink {
    fn write(&mut self, data: Vec<u8>) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        self.data.extend_from_slice(&data);
        async { Ok(()) }.boxed_local()
    }
    fn finish(&mut self) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        self.finished = true;
        async { Ok(()) }.boxed_local()
    }
    fn abandon(&mut self, keep: bool) -> LocalBoxFuture<'_, Option<String>> {
        self.abandoned = Some(keep);
        async { None }.boxed_local()
    }
}

/// An upload source in memory; counts how far it was read.
struct MemorySource {
    data: Vec<u8>,
    furthest: u64,
}

impl Source for MemorySource {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
    fn read(&mut self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>, FilesError>> {
        let start = (offset as usize).min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.furthest = self.furthest.max(end as u64);
        let chunk = self.data[start..end].to_vec();
        async move { Ok(chunk) }.boxed_local()
    }
}

/// Bytes that do not compress or repeat (a simple xorshift stream).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn home() -> PathBuf {
    PathBuf::from(format!("/home/{USER}"))
}

/// A new directory the test user owns, for files the tests move.
fn work_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burrow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    run_ok("chown", &[USER, dir.to_str().expect("utf-8")], None);
    dir
}

/// Logs in to `sshd` with the test user's password; the connection as features see it.
async fn password_link(sshd: &Sshd) -> Link {
    let prompter = TestPrompter::new();
    let conn = login(sshd, &prompter, &password(PASSWORD))
        .await
        .expect("login");
    Link::new(conn)
}

/// Logs in to `sshd` and opens SFTP on the connection.
async fn sftp_session(sshd: &Sshd) -> (Link, Sftp) {
    let link = password_link(sshd).await;
    let sftp = Sftp::open(&link, now_ms).await.expect("sftp subsystem");
    (link, sftp)
}

#[tokio::test]
async fn sftp_shares_the_shell_connection_and_moves_files_both_ways() {
    let sshd = Sshd::start(false);
    let (link, sftp) = sftp_session(&sshd).await;
    // The shell and SFTP on one connection: no second login.
    let shell = open_on(&link, &Program::Exec("echo shell-alive".into()))
        .await
        .expect("exec");
    assert_eq!(sftp.home, home().display().to_string());

    let work = work_dir("sftp");
    let dir = work.display().to_string();
    let name = "moved.bin".to_owned();
    let local = work.join(&name);
    let _ = std::fs::remove_file(&local);
    let data = noise(5 * 1024 * 1024 + 123, 7);
    let mut source = MemorySource {
        data: data.clone(),
        furthest: 0,
    };
    let reported = Cell::new(0u64);
    let mut never = futures_util::future::pending::<FilesError>().fuse();
    let sent = sftp
        .upload(
            &mut source,
            &dir,
            &name,
            false,
            &|done| reported.set(done),
            &mut never,
        )
        .await
        .expect("upload");
    assert_eq!(sent, data.len() as u64);
    assert_eq!(reported.get(), data.len() as u64);
    assert_eq!(std::fs::read(&local).expect("uploaded file"), data);
    assert!(!work.join(format!("{name}.partial")).exists());

    // Listed, directories first, with its size.
    std::fs::create_dir(work.join("sub")).expect("sub dir");
    let entries = sftp.list(&dir).await.expect("list");
    assert_eq!(entries[0].name, "sub");
    let row = entries
        .iter()
        .find(|entry| entry.name == name)
        .expect("listed");
    assert_eq!((row.kind, row.size), (Kind::File, data.len() as u64));
    let first_file = entries.iter().position(|e| e.kind != Kind::Dir);
    assert!(
        entries[first_file.unwrap_or(entries.len())..]
            .iter()
            .all(|e| e.kind != Kind::Dir)
    );

    // A second upload of the same name is refused unless replacing was confirmed.
    let mut again = MemorySource {
        data: b"new".to_vec(),
        furthest: 0,
    };
    let refused = sftp
        .upload(&mut again, &dir, &name, false, &|_| {}, &mut never)
        .await
        .expect_err("no silent overwrite");
    assert!(
        refused.error.user_message().contains("already exists"),
        "{refused:?}"
    );
    assert_eq!(again.furthest, 0, "nothing was read before asking");

    // Download: the same bytes, through the pipelined reads.
    let mut sink = MemorySink::default();
    let got = sftp
        .download(&sftp::join(&dir, &name), &mut sink, &|_| {}, &mut never)
        .await
        .expect("download");
    assert_eq!(got, data.len() as u64);
    assert!(sink.finished);
    assert!(sink.data == data, "downloaded bytes differ");

    // Rename and delete.
    let renamed = sftp::join(&dir, &format!("{name}.renamed"));
    sftp.rename(&sftp::join(&dir, &name), &renamed)
        .await
        .expect("rename");
    sftp.delete(&renamed, Kind::File).await.expect("delete");
    assert!(!local.exists() && !Path::new(&renamed).exists());

    // Operator words for the usual failures.
    assert_eq!(
        sftp.list("/root").await,
        Err(FilesError::PermissionDenied {
            path: "/root".into()
        })
    );
    assert_eq!(
        sftp.list("/no/such/dir").await,
        Err(FilesError::NotFound {
            path: "/no/such/dir".into()
        })
    );
    let mut small = MemorySource {
        data: b"x".to_vec(),
        furthest: 0,
    };
    let denied = sftp
        .upload(&mut small, "/root", "x", false, &|_| {}, &mut never)
        .await
        .expect_err("no write access");
    assert!(
        matches!(denied.error, FilesError::PermissionDenied { .. }),
        "{denied:?}"
    );

    // The shell channel was not disturbed.
    let terminal = Collecting::default();
    let mut commands = stream::pending::<UserCommand>().fuse();
    let mut keepalive = stream::pending::<()>().fuse();
    let end = run(shell, &mut commands, &mut keepalive, 15, &terminal, &now_ms).await;
    assert_eq!(end.expect("exec ends").exit_status, Some(0));
    assert!(String::from_utf8_lossy(&terminal.output.borrow()).contains("shell-alive"));
}

#[tokio::test]
async fn a_cancelled_transfer_leaves_nothing_that_looks_complete() {
    let sshd = Sshd::start(false);
    let (_link, sftp) = sftp_session(&sshd).await;
    let work = work_dir("cancel");
    let dir = work.display().to_string();
    let name = "cancelled.bin";
    let data = noise(8 * 1024 * 1024, 11);
    let mut source = MemorySource { data, furthest: 0 };
    // Cancel once a quarter is acknowledged.
    let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
    let cancel_tx = RefCell::new(Some(cancel_tx));
    let mut cancel = cancel_rx.map(|_| FilesError::Cancelled).fuse();
    let failure = sftp
        .upload(
            &mut source,
            &dir,
            name,
            false,
            &|done| {
                if done >= 2 * 1024 * 1024
                    && let Some(tx) = cancel_tx.borrow_mut().take()
                {
                    let _ = tx.send(());
                }
            },
            &mut cancel,
        )
        .await
        .expect_err("cancelled");
    assert_eq!(failure.error, FilesError::Cancelled);
    assert!(failure.done >= 2 * 1024 * 1024 && failure.done < 8 * 1024 * 1024);
    assert_eq!(failure.partial, None);
    assert_eq!(std::fs::read_dir(&work).expect("work dir").count(), 0);
    assert_eq!(failure.user_message(), "Cancelled. Nothing was kept.");
}

#[tokio::test]
async fn a_server_without_sftp_says_so_and_the_shell_keeps_working() {
    let sshd = Sshd::start_with(false, false);
    let link = password_link(&sshd).await;
    let err = Sftp::open(&link, now_ms).await.expect_err("no subsystem");
    assert!(matches!(err, FilesError::NoServer { .. }), "{err:?}");
    assert!(err.user_message().contains("openssh-sftp-server"));
    let shell = open_on(&link, &Program::Exec("echo still-here".into()))
        .await
        .expect("the connection still opens channels");
    let terminal = Collecting::default();
    let mut commands = stream::pending::<UserCommand>().fuse();
    let mut keepalive = stream::pending::<()>().fuse();
    let end = run(shell, &mut commands, &mut keepalive, 15, &terminal, &now_ms).await;
    assert_eq!(end.expect("exec ends").exit_status, Some(0));
    assert!(String::from_utf8_lossy(&terminal.output.borrow()).contains("still-here"));
}

/// A progress callback that cuts `sshd`'s connections ([`cut_connections`]) once, when a transfer
/// has moved `bytes`.
fn cut_once_past(sshd: &Sshd, bytes: u64) -> impl Fn(u64) + '_ {
    let cut = Cell::new(false);
    move |done| {
        if done >= bytes && !cut.replace(true) {
            cut_connections(sshd);
        }
    }
}

/// Drops every SSH connection `sshd` serves by killing its per-connection processes (the
/// listener's descendants: the privileged monitor and the user's session process, which holds
/// the socket too), as a device that reboots or a network that goes away would.
fn cut_connections(sshd: &Sshd) {
    let mut pending = vec![sshd.child.id().to_string()];
    let mut doomed = Vec::new();
    while let Some(parent) = pending.pop() {
        let children = Command::new("pgrep")
            .args(["-P", &parent])
            .output()
            .expect("pgrep");
        for pid in String::from_utf8_lossy(&children.stdout).split_whitespace() {
            pending.push(pid.to_owned());
            doomed.push(pid.to_owned());
        }
    }
    for pid in doomed {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
    }
}

#[tokio::test]
async fn a_connection_lost_mid_transfer_leaves_partial_names_only() {
    let sshd = Sshd::start(false);
    let (_link, sftp) = sftp_session(&sshd).await;
    let work = work_dir("lost-up");
    let dir = work.display().to_string();
    let size = 32 * 1024 * 1024;
    let mut source = MemorySource {
        data: noise(size, 5),
        furthest: 0,
    };
    let cut = cut_once_past(&sshd, 1024 * 1024);
    let mut never = futures_util::future::pending::<FilesError>().fuse();
    let failure = sftp
        .upload(&mut source, &dir, "lost.bin", false, &cut, &mut never)
        .await
        .expect_err("the connection went away");
    assert_eq!(failure.error, FilesError::ConnectionLost, "{failure:?}");
    let partial = format!("{dir}/lost.bin.partial");
    assert_eq!(failure.partial.as_deref(), Some(partial.as_str()));
    assert!(failure.done >= 1024 * 1024 && failure.done < size as u64);
    assert!(
        failure
            .user_message()
            .contains(&format!("The partial file is kept as {partial}")),
        "{}",
        failure.user_message()
    );
    // Nothing on the device looks complete.
    assert!(!work.join("lost.bin").exists());
    assert!(std::fs::metadata(&partial).expect("partial kept").len() < size as u64);

    // A download cut the same way hands what arrived to the sink to keep as partial.
    let sshd = Sshd::start(false);
    let (_link, sftp) = sftp_session(&sshd).await;
    let work = work_dir("lost-down");
    let remote = work.join("remote.bin");
    std::fs::write(&remote, noise(size, 6)).expect("remote file");
    run_ok("chown", &[USER, remote.to_str().expect("utf-8")], None);
    let mut sink = MemorySink::default();
    let cut = cut_once_past(&sshd, 1024 * 1024);
    let failure = sftp
        .download(remote.to_str().expect("utf-8"), &mut sink, &cut, &mut never)
        .await
        .expect_err("the connection went away");
    assert_eq!(failure.error, FilesError::ConnectionLost, "{failure:?}");
    assert!(!sink.finished);
    assert_eq!(
        sink.abandoned,
        Some(true),
        "what arrived may be kept as partial"
    );
    assert_eq!(sink.data.len() as u64, failure.done);
}

/// A small tmpfs mounted for a test and unmounted when dropped.
struct SmallFs(PathBuf);

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn a_full_file_system_is_no_space_left_and_the_partial_file_goes() {
    let sshd = Sshd::start(false);
    let (_link, sftp) = sftp_session(&sshd).await;
    let work = work_dir("full");
    run_ok(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size=1m,uid={USER},mode=0755"),
            "burrow-app-full",
            work.to_str().expect("utf-8"),
        ],
        None,
    );
    let _mounted = SmallFs(work.clone());
    let dir = work.display().to_string();
    let mut source = MemorySource {
        data: noise(3 * 1024 * 1024, 9),
        furthest: 0,
    };
    let mut never = futures_util::future::pending::<FilesError>().fuse();
    let failure = sftp
        .upload(&mut source, &dir, "big.bin", false, &|_| {}, &mut never)
        .await
        .expect_err("does not fit");
    let target = format!("{dir}/big.bin");
    assert_eq!(
        failure.error,
        FilesError::NoSpace {
            path: target.clone()
        }
    );
    assert_eq!(failure.partial, None);
    assert_eq!(
        failure.user_message(),
        format!(
            "No space left on the device's file system while writing {target}. The partial \
             file was removed."
        )
    );
    assert_eq!(std::fs::read_dir(&work).expect("dir").count(), 0);
}
