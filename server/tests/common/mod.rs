//! The harness of the agent integration tests: real processes on loopback ports.
//!
//! - [`Proc`]: a child process whose stdout and stderr are drained into a line log that tests can
//!   wait on (readiness lines instead of sleeps); killed when dropped.
//! - [`Serve`]: the real `burrow serve` on a free port, with control-plane calls over plain HTTP.
//! - [`source_agent`] / [`destination_agent`]: real `burrow agent`s, returned once connected.
//! - [`Sshd`]: a real OpenSSH `sshd` (as root) on a free loopback port with its own host key and
//!   configuration, a test user with a password and ed25519, ECDSA and RSA keys.
//! - [`ssh`], [`scp`], [`run`], [`aws`], [`mosquitto`]: native clients, the `aws` CLI, the broker.
//!
//! Every wait has a deadline; missing one fails the test with the process logs attached.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

pub mod aws;
pub mod mosquitto;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock, atomic::AtomicU32, atomic::Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single readiness wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);
/// The test user `sshd` lets in.
pub const USER: &str = "burrowtest";
/// The test user's password.
pub const PASSWORD: &str = "burrow-test-Pa55word";

/// The `burrow` binary under test.
pub fn burrow_bin() -> &'static str {
    env!("CARGO_BIN_EXE_burrow")
}

/// Lines a process printed (stdout and stderr interleaved), with a signal for new ones.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
    /// Streams that reached their end.
    closed: Mutex<u32>,
}

/// A child process with its output captured line by line.
pub struct Proc {
    name: String,
    child: Child,
    lines: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        let lines = Arc::new(Lines::default());
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        readers.push(drain(Box::new(stdout), Arc::clone(&lines)));
        readers.push(drain(Box::new(stderr), Arc::clone(&lines)));
        Proc {
            name: name.to_owned(),
            child,
            lines,
            readers,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed so far.
    pub fn log(&self) -> String {
        self.lines.lines.lock().expect("line log lock").join("\n")
    }

    /// Waits for a line matching `pred` (looking at every line so far) and returns it.
    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line_for(what, WAIT, pred)
    }

    /// [`Proc::wait_line`] with an explicit deadline.
    pub fn wait_line_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.wait_nth(what, 1, timeout, pred)
    }

    /// Waits for the `n`th line (from 1) matching `pred` and returns it.
    pub fn wait_line_nth(&mut self, what: &str, n: usize, pred: impl Fn(&str) -> bool) -> String {
        self.wait_nth(what, n, WAIT, pred)
    }

    fn wait_nth(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lines.lock().expect("line log lock");
        loop {
            if let Some(line) = lines
                .iter()
                .filter(|line| pred(line))
                .nth(n.saturating_sub(1))
            {
                return line.clone();
            }
            let both_closed = *self.lines.closed.lock().expect("closed lock") == 2;
            let now = Instant::now();
            if both_closed || now >= deadline {
                let log = lines.join("\n");
                drop(lines);
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "{}: no line {what} ({}; exit status {status:?}); its output:\n{log}",
                    self.name,
                    if both_closed { "it ended" } else { "timed out" },
                );
            }
            let (guard, _) = self
                .lines
                .changed
                .wait_timeout(lines, (deadline - now).min(Duration::from_millis(200)))
                .expect("line log lock");
            lines = guard;
        }
    }

    /// Waits for the process to exit (at most `timeout`) and for its output to be read.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for reader in self.readers.drain(..) {
                    reader.join().expect("output reader");
                }
                return status;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not exit within {timeout:?}; its output:\n{}",
                    self.name,
                    self.log()
                );
            }
            // Polling the exit status is the only portable way to wait with a deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _already_gone = self.child.kill();
        let _reaped = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies a stream into the line log until it ends.
fn drain(stream: Box<dyn Read + Send>, lines: Arc<Lines>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            lines.lines.lock().expect("line log lock").push(line);
            lines.changed.notify_all();
        }
        *lines.closed.lock().expect("closed lock") += 1;
        lines.changed.notify_all();
    })
}

/// Runs a command to completion with a deadline; fails the test when it is missed.
pub fn run(what: &str, mut cmd: Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {what}: {err}"));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _partial = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _partial = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _gone = child.kill();
            let _reaped = child.wait();
            let stderr = err.join().expect("stderr reader");
            panic!(
                "{what} did not finish within {timeout:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Makes a new, world-readable directory.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "burrow-{tag}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        set_mode(&path, 0o755);
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _best_effort = std::fs::remove_dir_all(&self.0);
    }
}

/// Sets a path's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|err| panic!("chmod {}: {err}", path.display()));
}

/// A free loopback port (bound and released; the caller binds it again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A running `burrow serve`.
pub struct Serve {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it speaks TLS (HTTPS and WSS with a self-signed certificate).
    pub tls: bool,
}

/// A tunnel opened through the control plane.
#[derive(Debug, Clone)]
pub struct Tunnel {
    /// The tunnel id.
    pub id: String,
    /// The source access token.
    pub source_token: String,
    /// The destination access token.
    pub destination_token: String,
}

impl Serve {
    /// Starts `burrow serve --listen 127.0.0.1:0` and waits until it listens.
    pub fn start() -> Serve {
        Self::start_with(&[])
    }

    /// Starts `burrow serve` with extra flags.
    pub fn start_with(extra: &[&str]) -> Serve {
        Self::start_with_env(extra, &[])
    }

    /// Starts `burrow serve` with extra flags and environment variables.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut cmd = Command::new(burrow_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(extra);
        cmd.env("NO_COLOR", "1");
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn("burrow serve", cmd);
        let line = proc.wait_line("'listening on'", |l| {
            l.starts_with("burrow serve: listening on ")
        });
        let tls = line.contains("https://");
        let addr = line
            .rsplit("://")
            .next()
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot parse the listening line {line:?}"));
        Serve { proc, addr, tls }
    }

    /// The data-plane endpoint for agents.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Calls a control-plane operation; returns the HTTP status and the body.
    pub fn call(&self, operation: &str, body: &str) -> (u16, String) {
        if self.tls {
            return self.call_with_curl(operation, body);
        }
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: IoTSecuredTunneling.{operation}\r\n\
             Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let (status, _headers, body) = http_exchange(self.addr, request.as_bytes());
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A control-plane call over HTTPS (curl, not verifying the self-signed certificate).
    fn call_with_curl(&self, operation: &str, body: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "-X", "POST", "-w", "\n%{http_code}", "-H"])
            .arg(format!("X-Amz-Target: IoTSecuredTunneling.{operation}"))
            .args([
                "-H",
                "Content-Type: application/x-amz-json-1.1",
                "--data-binary",
                body,
            ])
            .arg(format!("https://{}/", self.addr));
        let out = run("curl", cmd, WAIT);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        let status = status
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl gave no status: {text:?}"));
        (status, body.to_owned())
    }

    /// Opens a tunnel with these services.
    pub fn open_tunnel(&self, services: &[&str]) -> Tunnel {
        self.open_tunnel_with(&serde_json::json!({ "destinationConfig": { "services": services } }))
    }

    /// Opens a tunnel with this OpenTunnel request body (e.g. a thing name or a lifetime).
    pub fn open_tunnel_with(&self, request: &serde_json::Value) -> Tunnel {
        let (status, body) = self.call("OpenTunnel", &request.to_string());
        assert_eq!(status, 200, "OpenTunnel failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("OpenTunnel JSON");
        let field = |name: &str| {
            json[name]
                .as_str()
                .unwrap_or_else(|| panic!("OpenTunnel answer without {name}: {body}"))
                .to_owned()
        };
        Tunnel {
            id: field("tunnelId"),
            source_token: field("sourceAccessToken"),
            destination_token: field("destinationAccessToken"),
        }
    }

    /// DescribeTunnel's `tunnel` object.
    pub fn describe(&self, id: &str) -> serde_json::Value {
        let body = serde_json::json!({ "tunnelId": id });
        let (status, body) = self.call("DescribeTunnel", &body.to_string());
        assert_eq!(status, 200, "DescribeTunnel failed: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("DescribeTunnel JSON");
        json["tunnel"].clone()
    }

    /// Closes a tunnel.
    pub fn close_tunnel(&self, id: &str) {
        let body = serde_json::json!({ "tunnelId": id });
        let (status, body) = self.call("CloseTunnel", &body.to_string());
        assert_eq!(status, 200, "CloseTunnel failed: {body}");
    }

    /// Opens a WebSocket on `/tunnel` by hand without a client token (which spends the token)
    /// and returns the handshake status.
    pub fn handshake_without_client_token(&self, mode: &str, token: &str) -> u16 {
        let request = format!(
            "GET /tunnel?local-proxy-mode={mode} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: aws.iot.securetunneling-3.0\r\naccess-token: {token}\r\n\r\n",
            self.addr
        );
        let mut stream = TcpStream::connect(self.addr).expect("connect to burrow serve");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        stream
            .write_all(request.as_bytes())
            .expect("send handshake");
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .expect("read handshake status");
        parse_status(&status_line)
    }
}

/// Parses `HTTP/1.1 200 OK`.
fn parse_status(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad HTTP status line {line:?}"))
}

/// One HTTP/1.1 exchange with `Connection: close`: status, header lines and body (chunked
/// bodies decoded).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> (u16, Vec<String>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    stream.write_all(request).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of the response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = parse_status(lines.next().unwrap_or_default());
    let headers: Vec<String> = lines.map(str::to_owned).collect();
    let chunked = headers.iter().any(|h| {
        h.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    (status, headers, body)
}

/// Decodes a chunked body.
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// Starts `burrow agent` with these arguments (not waiting for anything).
pub fn agent(name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(burrow_bin());
    cmd.arg("agent").args(args);
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    Proc::spawn(name, cmd)
}

/// Waits for an agent's `connected` readiness line.
pub fn wait_connected(agent: &mut Proc) -> String {
    agent.wait_line("'burrow agent: connected'", |l| {
        l.starts_with("burrow agent: connected (")
    })
}

/// Waits for a source agent's `listening on ADDR` line and returns the port.
pub fn wait_listening(agent: &mut Proc) -> u16 {
    let line = agent.wait_line("'listening on'", |l| {
        l.starts_with("burrow agent: listening on ")
    });
    line.trim_start_matches("burrow agent: listening on ")
        .split_whitespace()
        .next()
        .and_then(|addr| addr.parse::<SocketAddr>().ok())
        .map(|addr| addr.port())
        .unwrap_or_else(|| panic!("cannot parse {line:?}"))
}

/// A destination agent for `tunnel` mapping to `target`, once connected.
pub fn destination_agent(serve: &Serve, tunnel: &Tunnel, mapping: &str, extra: &[&str]) -> Proc {
    let endpoint = serve.endpoint();
    let mut args = vec![
        "--mode",
        "destination",
        "--endpoint",
        &endpoint,
        "--token",
        &tunnel.destination_token,
        "-d",
        mapping,
    ];
    args.extend_from_slice(extra);
    let mut proc = agent("destination agent", &args);
    wait_connected(&mut proc);
    proc
}

/// A source agent for `tunnel` listening on a free port, once connected; returns the port.
pub fn source_agent(serve: &Serve, tunnel: &Tunnel, service: &str, extra: &[&str]) -> (Proc, u16) {
    let endpoint = serve.endpoint();
    let mapping = if service.is_empty() {
        "0".to_owned()
    } else {
        format!("{service}=0")
    };
    let mut args = vec![
        "--mode",
        "source",
        "--endpoint",
        &endpoint,
        "--token",
        &tunnel.source_token,
        "-s",
        &mapping,
    ];
    args.extend_from_slice(extra);
    let mut proc = agent("source agent", &args);
    let port = wait_listening(&mut proc);
    wait_connected(&mut proc);
    (proc, port)
}

/// Peak resident memory of a process in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// The test user exists with a known password (created once per process; tolerant of other
/// test processes doing the same).
fn ensure_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let exists = Command::new("id")
            .arg(USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !exists {
            let out = run(
                "useradd",
                {
                    let mut cmd = Command::new("useradd");
                    cmd.args(["-m", "-s", "/bin/bash", USER]);
                    cmd
                },
                WAIT,
            );
            // Exit code 9: another test process created it meanwhile.
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("start chpasswd");
        chpasswd
            .stdin
            .take()
            .expect("chpasswd stdin")
            .write_all(format!("{USER}:{PASSWORD}\n").as_bytes())
            .expect("write to chpasswd");
        assert!(
            chpasswd.wait().expect("chpasswd").success(),
            "chpasswd failed"
        );
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
    });
}

/// Generates a key pair with ssh-keygen; returns the private key's path.
pub fn keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    let out = run("ssh-keygen", cmd, WAIT);
    assert!(
        out.status.success(),
        "ssh-keygen {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// A real OpenSSH server on a loopback port.
pub struct Sshd {
    /// The sshd process (the listener; sessions are its children).
    pub proc: Proc,
    /// Its port.
    pub port: u16,
    /// Client private keys the test user accepts: ed25519, ECDSA, RSA.
    pub keys: Vec<PathBuf>,
    /// A directory the test user may write to.
    pub shared: PathBuf,
    dir: TempDir,
}

impl Sshd {
    /// Starts sshd (needs root) on a free port, retrying on a port taken meanwhile.
    pub fn start() -> Sshd {
        Self::start_on(None)
    }

    /// Starts sshd on `port` (one attempt), or on a free port (several attempts).
    pub fn start_on(port: Option<u16>) -> Sshd {
        ensure_user();
        let dir = TempDir::new("sshd");
        let host_key = keygen(dir.path(), "host_ed25519", "ed25519");
        let keys = vec![
            keygen(dir.path(), "id_ed25519", "ed25519"),
            keygen(dir.path(), "id_ecdsa", "ecdsa"),
            keygen(dir.path(), "id_rsa", "rsa"),
        ];
        let mut authorized = String::new();
        for key in &keys {
            let public =
                std::fs::read_to_string(key.with_extension("pub")).expect("read a public key");
            authorized.push_str(&public);
        }
        let authorized_path = dir.path().join("authorized_keys");
        std::fs::write(&authorized_path, authorized).expect("write authorized_keys");
        set_mode(&authorized_path, 0o644);
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("create the shared dir");
        set_mode(&shared, 0o777);

        let attempts = if port.is_some() { 1 } else { 5 };
        for _attempt in 0..attempts {
            let port = port.unwrap_or_else(free_port);
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
                 UsePAM no\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nAuthorizedKeysFile {auth}\nStrictModes no\n\
                 PermitRootLogin no\nAllowUsers {USER}\nSubsystem sftp internal-sftp\n\
                 LogLevel VERBOSE\n",
                host = host_key.display(),
                pid = dir.path().join("sshd.pid").display(),
                auth = authorized_path.display(),
            );
            let config_path = dir.path().join("sshd_config");
            std::fs::write(&config_path, config).expect("write sshd_config");
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.arg("-D").arg("-e").arg("-f").arg(&config_path);
            let mut proc = Proc::spawn("sshd", cmd);
            let wanted = format!("Server listening on 127.0.0.1 port {port}");
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                proc.wait_line(&wanted, |l| {
                    l.contains(&wanted) || l.contains("Bind to port")
                })
            }));
            match started {
                Ok(line) if line.contains(&wanted) => {
                    return Sshd {
                        proc,
                        port,
                        keys,
                        shared,
                        dir,
                    };
                }
                Ok(_) | Err(_) => eprintln!("sshd did not start on port {port}; retrying"),
            }
        }
        panic!("sshd did not start");
    }

    /// Kills sshd and every session process under it (SIGKILL).
    pub fn kill_all(&mut self) {
        let mut pids = descendants(self.proc.pid());
        pids.push(self.proc.pid());
        let out = run(
            "kill",
            {
                let mut cmd = Command::new("kill");
                cmd.arg("-KILL").args(pids.iter().map(u32::to_string));
                cmd
            },
            WAIT,
        );
        assert!(
            out.status.success(),
            "kill failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.proc.kill();
    }

    /// The temporary directory holding the server's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        // Session processes outlive the listener; do not leave them behind.
        let pids = descendants(self.proc.pid());
        if !pids.is_empty() {
            let _best_effort = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Every process below `root` in the process tree.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The parent id is the second field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for &(pid, ppid) in &parent_of {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// The client options every test uses: no host key prompts, no agent, no password prompts.
fn client_options(cmd: &mut Command) {
    cmd.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",
    ]);
}

/// `ssh` to the test user on `127.0.0.1:port` with `key`, running `remote`.
pub fn ssh(port: u16, key: &Path, remote: &str) -> Command {
    let mut cmd = Command::new("ssh");
    client_options(&mut cmd);
    cmd.arg("-p")
        .arg(port.to_string())
        .arg("-i")
        .arg(key)
        .arg(format!("{USER}@127.0.0.1"))
        .arg(remote);
    cmd
}

/// `scp` between `from` and `to` through `127.0.0.1:port` with `key` (remote paths are
/// `burrowtest@127.0.0.1:PATH`).
pub fn scp(port: u16, key: &Path, from: &str, to: &str) -> Command {
    let mut cmd = Command::new("scp");
    client_options(&mut cmd);
    cmd.arg("-q")
        .arg("-P")
        .arg(port.to_string())
        .arg("-i")
        .arg(key)
        .arg(from)
        .arg(to);
    cmd
}

/// `bytes` of deterministic pseudo-random data (xorshift), so corruption cannot hide.
pub fn pseudo_random(bytes: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(bytes + 8);
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(bytes);
    out
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
    hex::encode(sha2::Sha256::digest(&data))
}

/// A TCP relay in front of a server whose connections the test can cut or silence, to drop an
/// agent's WebSocket (or make it go quiet) without touching the service.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<RelayedConnection>>>,
}

/// One relayed connection: its two sockets and whether its bytes are being swallowed.
struct RelayedConnection {
    client: TcpStream,
    server: TcpStream,
    silenced: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    /// Starts relaying `127.0.0.1:0` to `upstream`.
    pub fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let addr = listener.local_addr().expect("relay address");
        let open: Arc<Mutex<Vec<RelayedConnection>>> = Arc::default();
        let registry = Arc::clone(&open);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let clones = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                );
                let (Ok(client2), Ok(server2), Ok(client3), Ok(server3)) = clones else {
                    continue;
                };
                let silenced = Arc::new(std::sync::atomic::AtomicBool::new(false));
                registry
                    .lock()
                    .expect("relay registry")
                    .push(RelayedConnection {
                        client: client3,
                        server: server3,
                        silenced: Arc::clone(&silenced),
                    });
                let silenced2 = Arc::clone(&silenced);
                std::thread::spawn(move || forward(client, server2, &silenced));
                std::thread::spawn(move || forward(server, client2, &silenced2));
            }
        });
        Relay { addr, open }
    }

    /// Cuts every connection relayed so far (both sides see the TCP connection end).
    pub fn cut(&self) {
        let mut open = self.open.lock().expect("relay registry");
        for conn in open.drain(..) {
            let _already_closed = conn.client.shutdown(std::net::Shutdown::Both);
            let _already_closed = conn.server.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Silences every connection relayed so far: they stay open but every byte either way is
    /// swallowed, like a dead network path. Later connections are relayed normally.
    pub fn silence(&self) {
        let mut open = self.open.lock().expect("relay registry");
        for conn in open.drain(..) {
            conn.silenced
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// Copies one direction until it ends (swallowing bytes once silenced), then ends both sides.
fn forward(mut from: TcpStream, mut to: TcpStream, silenced: &std::sync::atomic::AtomicBool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if silenced.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _already_closed = to.shutdown(std::net::Shutdown::Both);
    let _already_closed = from.shutdown(std::net::Shutdown::Both);
}
