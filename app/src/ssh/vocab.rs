//! What the SSH layer shares with the session above it: the operator's credential, the
//! questions it asks (a new host key, keyboard-interactive rounds), the tabs' ids and the
//! commands routed to them. The session re-exports them; nothing here imports the session.

use zeroize::Zeroizing;

/// How the operator proves who they are to the device's sshd.
pub enum Credential {
    /// Password (also used to answer a keyboard-interactive password prompt).
    Password(Zeroizing<String>),
    /// A private key as pasted or read from a file (OpenSSH, PEM, PKCS#8 or PuTTY).
    PrivateKey {
        /// The key file's text.
        text: Zeroizing<String>,
        /// Its passphrase, when encrypted.
        passphrase: Option<Zeroizing<String>>,
    },
    /// Neither: the device's keyboard-interactive prompts are asked in the page.
    None,
}

/// The host key the device presented, and what we already knew about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyQuestion {
    /// The key's algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// `SHA256:…` as OpenSSH prints it.
    pub fingerprint: String,
    /// Where it is remembered (endpoint + tunnel destination + service), for display.
    pub target: String,
}

/// One keyboard-interactive round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbdQuestion {
    /// The server's name for the round (may be empty).
    pub name: String,
    /// Its instructions (may be empty).
    pub instructions: String,
    /// Each prompt and whether the answer may be echoed.
    pub prompts: Vec<(String, bool)>,
}

/// One terminal tab of a session: a shell channel of its SSH connection. The UI picks the
/// ids; the session's first shell is [`TabId::FIRST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TabId(pub u32);

impl TabId {
    /// The tab the session starts with.
    pub const FIRST: TabId = TabId(1);
}

/// What the UI can ask of a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Keystrokes or pasted text from a tab's terminal.
    Input(TabId, Vec<u8>),
    /// A tab's terminal size changed.
    Resize {
        /// The tab.
        tab: TabId,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// Open another shell channel on the same connection, as `tab`.
    NewTab {
        /// The new tab's id (not in use yet).
        tab: TabId,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// End one tab's channel; the session ends with its last tab.
    CloseTab(TabId),
    /// Close the session.
    Disconnect,
}
