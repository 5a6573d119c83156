//! `burrow-app`: the browser app. `main.rs` only mounts [`components::App`].
//!
//! - [`session`]: the connection's state machine, errors in operator words, and the
//!   [`session::SessionHost`] trait the UI implements (plain Rust, native tests).
//! - [`ssh`]: russh client glue (auth, host-key check, pty, resize, keep-alive).
//! - [`driver`]: the only module that touches `web_sys::WebSocket`, plus the cookie-helper call.
//! - [`term`]: the only module that touches xterm.js (typed `wasm-bindgen` bindings).
//! - [`endpoint`]: the tunnel endpoint, parsed once at the form into checked values.
//! - [`js`]: a thrown JavaScript value as text ([`js::JsError`]), shared by every layer.
//! - [`files`]: the browser's end of file transfers (reading picked files, saving downloads).
//! - [`tunnel_api`]: the service's tunnel API as the page calls it (typed, sans-IO; Device mode).
//! - [`record`]: session recording (asciicast v2), sans-IO writer and bounded spool.
//! - [`components`]: the Leptos UI; holds no session logic.

pub mod components;
pub mod driver;
pub mod endpoint;
pub mod files;
pub mod js;
pub mod record;
pub mod session;
pub mod ssh;
pub mod term;
pub mod tunnel_api;
