//! The authenticated SSH connection as features see it: the connection owns russh's handle,
//! and each feature (a shell, the Files panel's SFTP channel) opens channels of its own on it.
//!
//! A [`Link`] is a cheap, clonable reference to one connection. The session hands it to the UI
//! once the login succeeded ([`crate::session::SessionHost::linked`]), so features that start
//! later (opening the Files panel) share the login instead of dialling again. It does not
//! decide when the connection ends: that stays with the session, which disconnects when its
//! shell ends or the operator leaves; a feature holding a `Link` afterwards gets errors from
//! its channel, never a second connection.

use std::rc::Rc;

use russh::Channel;
use russh::client::{Handle, Msg};

use super::client::{Client, Connection};
use super::error::SshError;

/// One authenticated SSH connection, shared by every channel on it.
#[derive(Clone)]
pub struct Link {
    handle: Rc<Handle<Client>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("closed", &self.handle.is_closed())
            .finish()
    }
}

impl Link {
    /// Takes over an authenticated connection. No handler questions come after
    /// authentication, so the question channel is dropped here.
    pub fn new(conn: Connection) -> Self {
        drop(conn.events);
        Self {
            handle: Rc::new(conn.handle),
        }
    }

    /// A link on the connection `handle` belongs to.
    pub(super) fn from_handle(handle: Rc<Handle<Client>>) -> Self {
        Self { handle }
    }

    /// russh's handle (for requests on the connection itself, such as keep-alives).
    pub fn handle(&self) -> &Rc<Handle<Client>> {
        &self.handle
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Opens a session channel; `what` names its purpose in the error.
    pub async fn open_session(&self, what: &str) -> Result<Channel<Msg>, SshError> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|err| SshError::ChannelRefused(format!("{what} ({err})")))
    }
}
