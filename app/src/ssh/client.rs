//! The russh client over any byte stream: configuration, the connection handler, and the key
//! exchange with its host key check.
//!
//! russh runs its protocol loop in a task of its own and calls [`Handler`] methods from there,
//! so the handler must be `Send`; the page's objects are not. The handler therefore only
//! forwards questions (host key, banner) over a channel, and the session task answers them
//! through a [`Prompter`] while it awaits russh ([`serve`]). Everything here is generic over
//! the stream, so the native tests run it against a real OpenSSH server over TCP.
//!
//! Timers: russh's own timers use tokio's clock, which does not run in the browser. The
//! configuration turns off every timer russh has (inactivity timeout, keep-alive interval;
//! russh skips time-based rekeying on wasm32 by itself). Keep-alive and timeouts are the
//! session's business, on browser timers.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_channel::oneshot;
use futures_util::future::LocalBoxFuture;
use futures_util::{FutureExt, StreamExt, pin_mut, select};
use russh::client::{self, Handle};
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use russh::{Preferred, cipher};
use tokio::io::{AsyncRead, AsyncWrite};
use zeroize::Zeroizing;

use super::error::SshError;
use super::vocab::KbdQuestion;

/// The SSH channel window this client grants (bytes the server may send before we adjust).
/// It bounds how much output can be in flight between the device and the page, and so how
/// much of it a keystroke's echo can queue behind: every channel of the connection shares one
/// stream, and once a busy tab's terminal falls behind, the page drains that stream at the
/// terminal's parse rate. With 2 MiB, a key typed beside two tabs printing 30 MB each waited
/// 205–370 ms (p99) for its echo; with 256 KiB, 56–80 ms.
///
/// It also bounds a download on a long round trip: russh tops the window up once half of it is
/// used, so one channel carries about `0.75 × window / rtt`. Through AWS's 800 KB/s per tunnel
/// and a 300 ms round trip, 256 KiB gave an SFTP download 0.47 MB/s (0.58× the limit) and
/// 512 KiB 0.77 (0.96×, native `sftp` 0.97×); measured side by side, keys beside two busy tabs
/// had the same p99 with either (two sets of runs each: 68 and 62 ms against 63 and 64) and the
/// tabs finished sooner (BENCHMARKS.md, figures 6 and 8). So 512 KiB: enough for AWS's limit up
/// to a round trip of about 0.75 × 512 KiB / 800 KB/s ≈ 490 ms.
pub const WINDOW_SIZE: u32 = 512 * 1024;
/// The largest SSH packet we accept.
pub const MAX_PACKET_SIZE: u32 = 32 * 1024;
/// How many channel messages russh buffers for us before its loop waits (backpressure).
pub const CHANNEL_BUFFER: usize = 8;

/// Ciphers in order of preference: ChaCha20-Poly1305 first, since WASM has no AES hardware.
const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_128_CTR,
];

/// What the session must answer while russh runs. Implemented by the browser session
/// (known-hosts store + the page's questions) and by tests.
pub trait Prompter {
    /// Decides on the server's host key: `Ok` to go on, or the error that ends the session.
    fn check_host_key(&self, key: &PublicKey) -> LocalBoxFuture<'_, Result<(), SshError>>;
    /// Asks a keyboard-interactive round; `None` cancels.
    fn keyboard_interactive(
        &self,
        question: KbdQuestion,
    ) -> LocalBoxFuture<'_, Option<Vec<Zeroizing<String>>>>;
    /// Shows the server's pre-login banner.
    fn banner(&self, text: &str);
}

/// A question from russh's task to the session task.
#[derive(Debug)]
pub enum HandlerEvent {
    /// The host key to check; answer `true` to accept.
    HostKey {
        /// The key the server proved it holds.
        key: PublicKey,
        /// Where the answer goes.
        reply: oneshot::Sender<bool>,
    },
    /// The server's authentication banner.
    Banner(String),
}

/// The russh handler: forwards questions to the session task.
#[derive(Debug)]
pub struct Client {
    events: UnboundedSender<HandlerEvent>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // No certificate algorithms are advertised, so servers present plain keys; a
        // certificate would be judged by the key inside it, like a plain key.
        let key = server_public_key.public_key();
        let (reply, answer) = oneshot::channel();
        if self
            .events
            .unbounded_send(HandlerEvent::HostKey { key, reply })
            .is_err()
        {
            return Ok(false);
        }
        Ok(answer.await.unwrap_or(false))
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        // Nobody listening means the session is ending; the banner does not matter then.
        let _ = self
            .events
            .unbounded_send(HandlerEvent::Banner(banner.to_owned()));
        Ok(())
    }
}

/// The client configuration: our window and packet sizes, cipher preference, no timers.
pub fn config() -> client::Config {
    client::Config {
        client_id: russh::SshId::Standard(Cow::Borrowed(concat!(
            "SSH-2.0-Burrow_",
            env!("CARGO_PKG_VERSION")
        ))),
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        channel_buffer_size: CHANNEL_BUFFER,
        inactivity_timeout: None,
        keepalive_interval: None,
        preferred: Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        ..client::Config::default()
    }
}

/// An SSH connection after key exchange and host key check.
pub struct Connection {
    /// russh's handle on the connection.
    pub handle: Handle<Client>,
    /// Questions russh's task still asks (banners during authentication).
    pub events: UnboundedReceiver<HandlerEvent>,
}

/// Runs `work` while answering the handler's questions with `prompter`.
///
/// A host key refusal is recorded in `refusal`, so the caller can report it instead of
/// russh's generic "unknown key" error.
pub async fn serve<F: Future>(
    work: F,
    events: &mut UnboundedReceiver<HandlerEvent>,
    prompter: &dyn Prompter,
    refusal: &mut Option<SshError>,
) -> F::Output {
    let work = work.fuse();
    pin_mut!(work);
    loop {
        select! {
            output = work => return output,
            event = events.next() => match event {
                Some(HandlerEvent::HostKey { key, reply }) => {
                    let verdict = prompter.check_host_key(&key).await;
                    let accepted = verdict.is_ok();
                    if let Err(error) = verdict {
                        *refusal = Some(error);
                    }
                    // russh may have given up meanwhile; then nobody needs the answer.
                    let _ = reply.send(accepted);
                }
                Some(HandlerEvent::Banner(text)) => prompter.banner(&text),
                None => return work.await,
            },
        }
    }
}

/// Performs the SSH handshake over `stream`: version exchange, key exchange, and the host key
/// check through `prompter`.
pub async fn connect<S>(stream: S, prompter: &dyn Prompter) -> Result<Connection, SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, mut events) = unbounded();
    let handler = Client { events: sender };
    let mut refusal = None;
    let result = serve(
        client::connect_stream(Arc::new(config()), stream, handler),
        &mut events,
        prompter,
        &mut refusal,
    )
    .await;
    match result {
        Ok(handle) => Ok(Connection { handle, events }),
        Err(err) => Err(refusal.unwrap_or_else(|| ssh_error(&err))),
    }
}

/// Words for a russh error (the session replaces them with the tunnel's reason when the
/// tunnel ended first).
pub fn ssh_error(err: &russh::Error) -> SshError {
    use russh::Error;
    match err {
        Error::Disconnect | Error::HUP | Error::SendError | Error::RecvError => SshError::Closed,
        Error::IO(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => SshError::Closed,
        Error::NoCommonAlgo { .. } => {
            SshError::Transport(format!("no common algorithm with the server ({err})"))
        }
        Error::Version => SshError::Transport(
            "the device side did not answer with SSH (is the service an SSH server?)".to_owned(),
        ),
        other => SshError::Transport(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_prefers_chacha_and_runs_no_timers() {
        let config = config();
        assert_eq!(config.preferred.cipher[0], cipher::CHACHA20_POLY1305);
        assert_eq!(config.inactivity_timeout, None);
        assert_eq!(config.keepalive_interval, None);
        assert_eq!(config.window_size, WINDOW_SIZE);
        assert_eq!(config.channel_buffer_size, CHANNEL_BUFFER);
    }

    #[test]
    fn closed_connections_read_as_closed() {
        assert_eq!(ssh_error(&russh::Error::Disconnect), SshError::Closed);
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert_eq!(ssh_error(&russh::Error::IO(eof)), SshError::Closed);
    }
}
