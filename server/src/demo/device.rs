//! The demo device: a small SSH server embedded in `burrow` (russh's server side).
//!
//! It listens on a loopback port only, with a host key made at startup, and lets in exactly one
//! account: the user running `burrow demo`, with a password generated for this run. A session
//! gets that user's login shell (or `$SHELL -c COMMAND` for an exec request) in a pseudo-terminal
//! when the client asks for one (with window-change support), else on pipes (stdout as data,
//! stderr as extended data), and its exit status.
//!
//! It deliberately does nothing else: no port forwarding, no agent forwarding, no subsystems
//! (so no sftp/scp), no public-key login, no switching users. It is a stand-in for a device's
//! sshd that needs no root, not a general SSH server.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Handle, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

/// Bytes read from a program's output at once.
const READ_CHUNK: usize = 32 * 1024;
/// The terminal size used when a client asks for a PTY with a zero size.
const DEFAULT_SIZE: (u16, u16) = (24, 80);

/// Why the device cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The current user could not be looked up.
    #[error("cannot find the current user's account: {0}")]
    Account(String),
    /// The loopback port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The account sessions run as: whoever runs `burrow demo`.
#[derive(Debug, Clone)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The home directory (the session's working directory).
    pub home: PathBuf,
    /// The login shell.
    pub shell: PathBuf,
}

impl Account {
    /// Looks up the user this process runs as (uid from `/proc/self`, then `/etc/passwd`, then
    /// the environment).
    pub fn current() -> Result<Self, DeviceError> {
        let uid = std::fs::metadata("/proc/self")
            .map(|meta| meta.uid())
            .map_err(|err| DeviceError::Account(format!("/proc/self: {err}")))?;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let entry = passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            match fields.as_slice() {
                [name, _, id, _, _, home, shell, ..] if id.parse() == Ok(uid) => {
                    Some(((*name).to_owned(), (*home).to_owned(), (*shell).to_owned()))
                }
                _ => None,
            }
        });
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let (name, home, shell) = match entry {
            Some(found) => found,
            None => (
                env("USER").ok_or_else(|| {
                    DeviceError::Account(format!(
                        "uid {uid} is not in /etc/passwd and USER is unset"
                    ))
                })?,
                env("HOME").unwrap_or_else(|| "/".to_owned()),
                env("SHELL").unwrap_or_default(),
            ),
        };
        let shell = if shell.is_empty() || shell.ends_with("/nologin") || shell.ends_with("/false")
        {
            "/bin/sh".to_owned()
        } else {
            shell
        };
        Ok(Self {
            name,
            home: PathBuf::from(home),
            shell: PathBuf::from(shell),
        })
    }
}

/// A running demo device.
pub struct Device {
    /// Where it listens (loopback).
    pub addr: SocketAddr,
    /// The account it lets in.
    pub account: Account,
    /// The password of this run.
    pub password: Zeroizing<String>,
    /// The host key's SHA-256 fingerprint, for users to compare.
    pub fingerprint: String,
    listener: TcpListener,
    config: Arc<russh::server::Config>,
}

impl Device {
    /// Makes a host key and a password and binds `127.0.0.1:port` (0 picks one).
    pub async fn bind(port: u16) -> Result<Self, DeviceError> {
        let account = Account::current()?;
        let seed: [u8; 32] = rand::random();
        let host_key = PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
            &seed,
        ));
        let fingerprint = host_key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let password = Zeroizing::new(random_password());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DeviceError::Listen { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| DeviceError::Listen { addr, source })?;
        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: None,
            methods: russh::MethodSet::from(&[russh::MethodKind::Password][..]),
            ..Default::default()
        });
        Ok(Self {
            addr,
            account,
            password,
            fingerprint,
            listener,
            config,
        })
    }

    /// Serves connections until dropped (each session's programs are killed with it).
    pub async fn run(self) {
        let Device {
            account,
            password,
            listener,
            config,
            ..
        } = self;
        let account = Arc::new(account);
        let password = Arc::new(password);
        // russh runs each session in a task of its own, which outlives this one; its programs
        // watch this channel and die when this task (and so the sender) goes away.
        let (_alive, alive_rx) = tokio::sync::watch::channel(());
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let handler = Connection {
                            account: Arc::clone(&account),
                            password: Arc::clone(&password),
                            peer,
                            channels: HashMap::new(),
                            programs: JoinSet::new(),
                            alive: alive_rx.clone(),
                        };
                        let config = Arc::clone(&config);
                        connections.spawn(async move {
                            tracing::info!(%peer, "demo device: SSH connection");
                            match russh::server::run_stream(config, stream, handler).await {
                                Ok(session) => {
                                    if let Err(err) = session.await {
                                        tracing::info!(%peer, %err, "demo device: session ended");
                                    }
                                }
                                Err(err) => {
                                    tracing::info!(%peer, %err, "demo device: handshake failed");
                                }
                            }
                        });
                    }
                    Err(err) => {
                        tracing::warn!(%err, "demo device: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_finished) = connections.join_next() => {}
            }
        }
    }
}

/// 20 random letters and digits (about 119 bits).
fn random_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a session channel has asked for so far.
#[derive(Default)]
struct ChannelState {
    /// Terminal type and size, if a PTY was requested.
    pty: Option<(String, u16, u16)>,
    /// Environment variables the client sent (a small allowlist).
    env: Vec<(String, String)>,
    /// The running program's input.
    input: Option<Input>,
    /// The task running the program (aborting it kills the program).
    program: Option<tokio::task::AbortHandle>,
    /// Whether a program was started (one per channel).
    started: bool,
}

/// Where client data goes.
enum Input {
    Pty(pty_process::OwnedWritePty),
    Pipe(tokio::process::ChildStdin),
}

/// One SSH connection's handler.
struct Connection {
    account: Arc<Account>,
    password: Arc<Zeroizing<String>>,
    peer: SocketAddr,
    channels: HashMap<ChannelId, ChannelState>,
    /// The programs of this connection, killed when the connection ends.
    programs: JoinSet<()>,
    /// Closed when the device stops.
    alive: tokio::sync::watch::Receiver<()>,
}

impl Connection {
    /// Starts the login shell (no command) or `shell -c command` on a channel.
    fn start(
        &mut self,
        channel: ChannelId,
        command: Option<String>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        if state.started {
            // One program per channel.
            session.channel_failure(channel)?;
            return Ok(());
        }
        let account = &self.account;
        let shell_name = account
            .shell
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sh".to_owned());
        let term = state
            .pty
            .as_ref()
            .map_or_else(|| "dumb".to_owned(), |(term, _, _)| term.clone());
        let path =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned());
        let mut env: Vec<(String, String)> = vec![
            ("HOME".to_owned(), account.home.display().to_string()),
            ("USER".to_owned(), account.name.clone()),
            ("LOGNAME".to_owned(), account.name.clone()),
            ("SHELL".to_owned(), account.shell.display().to_string()),
            ("PATH".to_owned(), path),
            ("TERM".to_owned(), term),
            (
                "SSH_CONNECTION".to_owned(),
                format!("{} {} 127.0.0.1 0", self.peer.ip(), self.peer.port()),
            ),
        ];
        env.extend(state.env.iter().cloned());
        let handle = session.handle();
        let spawned = match &state.pty {
            Some((_, rows, cols)) => {
                spawn_on_pty(account, &shell_name, command, env, (*rows, *cols))
                    .map(|(input, output, child)| {
                        let pump = pump_pty(handle, channel, output, child);
                        let task = self.programs.spawn(until_stopped(self.alive.clone(), pump));
                        (Input::Pty(input), task)
                    })
                    .map_err(|err| err.to_string())
            }
            None => spawn_on_pipes(account, command, env)
                .map(|(input, child)| {
                    let pump = pump_pipes(handle, channel, child);
                    let task = self.programs.spawn(until_stopped(self.alive.clone(), pump));
                    (Input::Pipe(input), task)
                })
                .map_err(|err| err.to_string()),
        };
        match spawned {
            Ok((input, task)) => {
                state.input = Some(input);
                state.program = Some(task);
                state.started = true;
                session.channel_success(channel)?;
            }
            Err(err) => {
                tracing::warn!(%err, "demo device: cannot start the shell");
                session.channel_failure(channel)?;
            }
        }
        Ok(())
    }
}

/// Starts a program on a new PTY of `size` (rows, columns).
fn spawn_on_pty(
    account: &Account,
    shell_name: &str,
    command: Option<String>,
    env: Vec<(String, String)>,
    size: (u16, u16),
) -> Result<
    (
        pty_process::OwnedWritePty,
        pty_process::OwnedReadPty,
        tokio::process::Child,
    ),
    pty_process::Error,
> {
    let (pty, pts) = pty_process::open()?;
    pty.resize(pty_process::Size::new(size.0, size.1))?;
    let mut cmd = pty_process::Command::new(&account.shell)
        .env_clear()
        .envs(env)
        .current_dir(&account.home)
        .kill_on_drop(true);
    cmd = match command {
        // A login shell: argv[0] starting with '-'.
        None => cmd.arg0(format!("-{shell_name}")),
        Some(command) => cmd.arg("-c").arg(command),
    };
    let child = cmd.spawn(pts)?;
    let (output, input) = pty.into_split();
    Ok((input, output, child))
}

/// Starts a program with piped stdin, stdout and stderr.
fn spawn_on_pipes(
    account: &Account,
    command: Option<String>,
    env: Vec<(String, String)>,
) -> Result<(tokio::process::ChildStdin, tokio::process::Child), std::io::Error> {
    let mut cmd = tokio::process::Command::new(&account.shell);
    cmd.env_clear()
        .envs(env)
        .current_dir(&account.home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(command) = command {
        cmd.arg("-c").arg(command);
    }
    let mut child = cmd.spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
    Ok((stdin, child))
}

/// Copies a reader to the channel (as data, or as extended data `ext`) until it ends.
async fn copy_out(
    handle: &Handle,
    channel: ChannelId,
    mut from: impl AsyncRead + Unpin,
    ext: Option<u32>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        // A PTY whose program has exited reads as an error (EIO): that is its end too.
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let data = buf.get(..n).unwrap_or_default().to_vec();
        let sent = match ext {
            None => handle.data(channel, data).await.is_ok(),
            Some(code) => handle.extended_data(channel, code, data).await.is_ok(),
        };
        if !sent {
            return;
        }
    }
}

/// Reports a program's end: exit status, EOF, close.
async fn finish(
    handle: &Handle,
    channel: ChannelId,
    status: std::io::Result<std::process::ExitStatus>,
) {
    let code = match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|signal| 128 + signal))
            .unwrap_or(255),
        Err(_) => 255,
    };
    let code = u32::try_from(code).unwrap_or(255);
    let _client_gone = handle.exit_status_request(channel, code).await;
    let _client_gone = handle.eof(channel).await;
    let _client_gone = handle.close(channel).await;
}

/// Runs `work` until it ends or the device stops (dropping `work` kills its program).
async fn until_stopped(
    mut alive: tokio::sync::watch::Receiver<()>,
    work: impl Future<Output = ()>,
) {
    tokio::select! {
        () = work => {}
        // Nothing is ever sent: this completes only when the device's sender is dropped.
        _stopped = alive.changed() => {}
    }
}

async fn pump_pty(
    handle: Handle,
    channel: ChannelId,
    output: pty_process::OwnedReadPty,
    mut child: tokio::process::Child,
) {
    copy_out(&handle, channel, output, None).await;
    let status = child.wait().await;
    finish(&handle, channel, status).await;
}

async fn pump_pipes(handle: Handle, channel: ChannelId, mut child: tokio::process::Child) {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = async {
        if let Some(stdout) = stdout {
            copy_out(&handle, channel, stdout, None).await;
        }
    };
    let err = async {
        if let Some(stderr) = stderr {
            copy_out(&handle, channel, stderr, Some(1)).await;
        }
    };
    tokio::join!(out, err);
    let status = child.wait().await;
    finish(&handle, channel, status).await;
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let ok =
            user == self.account.name && same_secret(password.as_bytes(), self.password.as_bytes());
        if ok {
            tracing::info!(peer = %self.peer, user, "demo device: password accepted");
            Ok(Auth::Accept)
        } else {
            tracing::info!(peer = %self.peer, user, "demo device: password refused");
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Requests arrive through the handler's methods; the channel object is not needed.
        self.channels.insert(channel.id(), ChannelState::default());
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) => {
                let rows = u16::try_from(row_height)
                    .ok()
                    .filter(|&r| r > 0)
                    .unwrap_or(DEFAULT_SIZE.0);
                let cols = u16::try_from(col_width)
                    .ok()
                    .filter(|&c| c > 0)
                    .unwrap_or(DEFAULT_SIZE.1);
                let term: String = term
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(64)
                    .collect();
                state.pty = Some((term, rows, cols));
                session.channel_success(channel)?;
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Like sshd's default AcceptEnv: locale settings only.
        let allowed = variable_name == "LANG" || variable_name.starts_with("LC_");
        match self.channels.get_mut(&channel) {
            Some(state) if allowed && state.env.len() < 32 => {
                state
                    .env
                    .push((variable_name.to_owned(), variable_value.to_owned()));
                session.channel_success(channel)?;
            }
            _ => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, None, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        tracing::info!(peer = %self.peer, "demo device: exec request");
        self.start(channel, Some(command), session)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(ChannelState {
            input: Some(Input::Pty(pty)),
            ..
        }) = self.channels.get(&channel)
        {
            let rows = u16::try_from(row_height).unwrap_or(u16::MAX);
            let cols = u16::try_from(col_width).unwrap_or(u16::MAX);
            if let Err(err) = pty.resize(pty_process::Size::new(rows, cols)) {
                tracing::debug!(%err, "demo device: resize failed");
            }
        }
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let written = match self
            .channels
            .get_mut(&channel)
            .and_then(|s| s.input.as_mut())
        {
            Some(Input::Pty(pty)) => pty.write_all(data).await,
            Some(Input::Pipe(stdin)) => stdin.write_all(data).await,
            None => Ok(()),
        };
        if let Err(err) = written {
            tracing::debug!(%err, "demo device: the program stopped reading");
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel)
            && matches!(state.input, Some(Input::Pipe(_)))
        {
            // Closing the pipe is the program's end of input.
            state.input = None;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The client is gone from this channel: so is its program.
        if let Some(ChannelState {
            program: Some(task),
            ..
        }) = self.channels.remove(&channel)
        {
            task.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn passwords_are_fresh_and_long() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn the_current_account_is_found() {
        let account = Account::current().expect("an account");
        assert!(!account.name.is_empty());
        assert!(account.shell.is_absolute());
    }
}
