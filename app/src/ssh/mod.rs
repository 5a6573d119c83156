//! The SSH client glue on top of russh: everything between "a byte stream to the device's sshd"
//! and "a running shell in the terminal".
//!
//! - [`client`]: russh configuration (ChaCha20 first, no russh timers), the handler that
//!   forwards host key and banner questions to the session task, and the key exchange.
//! - [`known_hosts`]: fingerprints, the per-target known-hosts store (localStorage), its
//!   OpenSSH-format export and import.
//! - [`keys`]: reading private keys (OpenSSH, PEM, PKCS#8, PuTTY) with operator-facing errors.
//! - [`auth`]: publickey, password and keyboard-interactive authentication.
//! - [`link`]: the authenticated connection, shared by the channels features open on it.
//! - [`pacing`]: how much of a transfer may be in flight (a delay-based limit, sans-IO).
//! - [`sftp`]: the Files panel's SFTP channel: listing, changes, and pipelined transfers.
//! - [`shell`]: pty + shell (or exec), output with the SSH window as backpressure, input,
//!   resize.
//! - [`error`]: [`error::SshError`], the layer's errors by fault; the session turns them into
//!   its own.
//! - [`vocab`]: what it shares with the session (credential, questions, tab ids, commands).
//! - [`tabs`]: the shell channels of one connection run together (the page's terminal tabs),
//!   with the connection's keep-alive round trips.
//!
//! It knows nothing of WebSockets or tunnels: it runs over any `AsyncRead + AsyncWrite`, which
//! is how the native tests drive it against a real OpenSSH server. It never logs secrets.

pub mod auth;
pub mod client;
pub mod error;
pub mod keys;
pub mod known_hosts;
pub mod link;
pub mod pacing;
pub mod sftp;
pub mod shell;
pub mod tabs;
pub mod vocab;
