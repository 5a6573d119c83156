//! The connection as the operator sees it: what the UI asks for ([`ConnectRequest`]), what it is
//! told ([`SessionHost`]), and what it can do while connected ([`SessionHandle`]).
//!
//! This module is the contract between the UI (`components`, `term`) and the session machinery
//! (`driver`, `ssh`). It holds no browser objects itself, so its logic is tested natively.
//! [`start`] (in `run`) spawns the session on the browser's executor; `error` holds
//! [`SessionError`] and its operator-facing words; `target` names where host keys are remembered.

use zeroize::Zeroizing;

pub use burrow_proto::endpoint::Format;

mod error;
pub mod run;
pub mod target;

pub use error::{ROTATE_COMMAND, SUPPORTED_KEY_FORMATS, SessionError, key_type_word};
pub use run::{preload, start};

pub use crate::endpoint::TunnelEndpoint;
pub use crate::ssh::vocab::{Credential, HostKeyQuestion, KbdQuestion, TabId, UserCommand};

/// Everything needed to connect once, parsed and checked once by the form
/// (`components::request::build_request`); the session trusts these values as they are.
pub struct ConnectRequest {
    /// The tunneling service.
    pub endpoint: TunnelEndpoint,
    /// The cookie helper's URL (used with [`TunnelEndpoint::SameSite`]).
    pub cookie_helper: String,
    /// The source access token: trimmed, not empty, no spaces.
    pub token: Zeroizing<String>,
    /// The service id to start, when the tunnel has several.
    pub service_id: Option<String>,
    /// The device's name (its thing), under which its host key is remembered; `None` when the
    /// page knows no name (then the tunnel's thing, if the service reports it, else this
    /// tunnel only).
    pub device: Option<String>,
    /// The message format the destination speaks.
    pub format: Format,
    /// The SSH user name: trimmed, not empty, no spaces.
    pub username: String,
    /// Password or key.
    pub credential: Credential,
    /// Terminal size in columns and rows.
    pub cols: u32,
    /// Terminal rows.
    pub rows: u32,
}

/// The steps of connecting, in order, as shown in the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Handing the token to the cookie helper.
    Cookie,
    /// Opening the tunnel WebSocket and waiting for the service.
    Tunnel,
    /// SSH key exchange and host key check.
    SshHandshake,
    /// SSH user authentication.
    Auth,
    /// Opening the session channel, pty and shell.
    Shell,
    /// The shell is running.
    Connected,
    /// The session ended (see [`SessionHost::ended`]).
    Closed,
}

/// Live figures for the status line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Last keep-alive round trip, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Bytes received from the tunnel WebSocket.
    pub bytes_in: u64,
    /// Bytes sent on the tunnel WebSocket.
    pub bytes_out: u64,
}

/// The UI side of a session. Every method is called on the browser's single thread.
pub trait SessionHost {
    /// The session moved to `phase`.
    fn phase(&self, phase: Phase);
    /// New figures for the status line.
    fn stats(&self, stats: Stats);
    /// The tunnel offers several services and none was chosen (or the chosen one is absent).
    fn services(&self, ids: Vec<String>);
    /// The tunnel offers several services and none was chosen: ask the operator while the
    /// tunnel waits (the token is already spent, so choosing now saves a new one). Answer the
    /// service id, or `None` to give up. The default cannot ask (`None`): the session then ends
    /// with [`SessionError::ServiceChoice`] after [`SessionHost::services`].
    fn choose_service(
        &self,
        ids: Vec<String>,
    ) -> Option<futures_channel::oneshot::Receiver<Option<String>>> {
        let _ = ids;
        None
    }
    /// Output for `tab`'s terminal. `parsed` must be called once the terminal has processed
    /// the bytes (xterm.js's write callback); the session withholds SSH window space until then.
    fn output(&self, tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>);
    /// Which device the session is on, as the operator would name it (`user@thing`), once
    /// known; the tabs show it.
    fn device(&self, name: String) {
        let _ = name;
    }
    /// `tab`'s shell ended while the session goes on with other tabs: its program exited
    /// (`Ok`), the operator closed it, or the device refused to open it (`Err`).
    fn tab_ended(&self, tab: TabId, outcome: Result<(), crate::session::SessionError>) {
        let _ = (tab, outcome);
    }
    /// First use of a host key: ask the operator. Answer `true` to trust and remember it.
    fn ask_host_key(&self, question: HostKeyQuestion) -> futures_channel::oneshot::Receiver<bool>;
    /// A keyboard-interactive round; answer `None` to cancel.
    fn ask_keyboard_interactive(
        &self,
        question: KbdQuestion,
    ) -> futures_channel::oneshot::Receiver<Option<Vec<Zeroizing<String>>>>;
    /// The login succeeded: features may open channels of their own on `link` (the Files
    /// panel's SFTP) while the session runs. Called again after each reconnection.
    fn linked(&self, link: crate::ssh::link::Link) {
        let _ = link;
    }
    /// The session is over: `Ok` when the shell exited or the operator disconnected.
    fn ended(&self, outcome: Result<(), crate::session::SessionError>);
}

/// The UI's handle on a running session; dropping it does not end the session
/// (call [`SessionHandle::disconnect`]).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    commands: futures_channel::mpsc::UnboundedSender<UserCommand>,
}

impl SessionHandle {
    /// A handle that feeds `commands`; the session machinery keeps the receiving end.
    pub fn new(commands: futures_channel::mpsc::UnboundedSender<UserCommand>) -> Self {
        Self { commands }
    }

    /// Sends terminal input to `tab`'s shell.
    pub fn input(&self, tab: TabId, data: &[u8]) {
        // A closed channel means the session is over; input then has nowhere to go.
        let _ = self
            .commands
            .unbounded_send(UserCommand::Input(tab, data.to_vec()));
    }

    /// Tells `tab`'s remote pty its new size.
    pub fn resize(&self, tab: TabId, cols: u32, rows: u32) {
        let _ = self
            .commands
            .unbounded_send(UserCommand::Resize { tab, cols, rows });
    }

    /// Opens another shell on the same connection as `tab`.
    pub fn new_tab(&self, tab: TabId, cols: u32, rows: u32) {
        let _ = self
            .commands
            .unbounded_send(UserCommand::NewTab { tab, cols, rows });
    }

    /// Ends `tab`'s shell channel (the session ends with its last tab).
    pub fn close_tab(&self, tab: TabId) {
        let _ = self.commands.unbounded_send(UserCommand::CloseTab(tab));
    }

    /// Ends the session.
    pub fn disconnect(&self) {
        let _ = self.commands.unbounded_send(UserCommand::Disconnect);
    }
}
