//! The tunnel under the SSH client: the only module that touches `web_sys::WebSocket`, plus the
//! cookie-helper call.
//!
//! - [`url`]: the tunnel WebSocket URL (same-site or AWS with the token as a query parameter),
//!   the handshake probe URL, the token-free endpoint label.
//! - [`tunnel`]: [`tunnel::TunnelCore`], the sans-IO source side of one SSH stream on top of
//!   `burrow_proto`'s endpoint (SERVICE_IDS, service choice, resets → reasons).
//! - [`stream`]: [`stream::TunnelStream`], the `AsyncRead + AsyncWrite` russh runs over.
//! - [`answers`]: parsing what the cookie helper and the probe answer into errors.
//! - [`error`]: [`error::TunnelError`], the driver's errors by fault; the session turns them
//!   into its own.
//! - `socket`, `cookie`, `browser` (wasm32 only): the owned WebSocket, the `gloo-net` calls,
//!   and the pump task that ties the socket, the core and the stream together.
//! - `api` (wasm32 only): the tunnel API's HTTP calls (Device mode), typed by `crate::tunnel_api`.
//!
//! It has no protocol logic of its own (framing and stream rules live in `burrow-proto`) and
//! knows nothing about SSH.

pub mod answers;
pub mod error;
pub mod stream;
pub mod tunnel;
pub mod url;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(target_arch = "wasm32")]
pub mod cookie;
#[cfg(target_arch = "wasm32")]
mod socket;
