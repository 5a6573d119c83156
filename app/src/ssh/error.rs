//! The SSH layer's errors: what ended the SSH connection, the login or a channel, by whose
//! fault (the connection under it, the device's server, the operator's key or answers, a bug of
//! the page).
//!
//! They name causes, not remedies: the session turns each into its [`crate::session::SessionError`]
//! (`From`, in `session/error.rs`), where the operator's words live.

/// Why SSH failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    // --- The connection under SSH ---
    /// The connection closed (the stream under SSH ended).
    #[error("the connection closed")]
    Closed,
    /// russh failed for another reason.
    #[error("ssh: {0}")]
    Transport(String),
    /// A step took too long.
    #[error("timed out after {seconds} s: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        seconds: u32,
    },

    // --- The device's SSH server ---
    /// Its host key is not the one remembered for it.
    #[error("host key mismatch for {target}")]
    HostKeyMismatch {
        /// Where the key is remembered.
        target: String,
        /// The presented key's algorithm.
        algorithm: String,
        /// The presented key's fingerprint.
        presented: String,
        /// The remembered fingerprints.
        remembered: Vec<String>,
    },
    /// The operator did not trust its new host key.
    #[error("host key {fingerprint} not trusted")]
    HostKeyRejected {
        /// The key's fingerprint.
        fingerprint: String,
    },
    /// No method was accepted.
    #[error("authentication failed (tried {tried:?}, server offers {offered:?})")]
    AuthFailed {
        /// What the server offers.
        offered: Vec<String>,
        /// What was tried.
        tried: Vec<String>,
    },
    /// The server refused a channel or a request on one.
    #[error("the server refused {0}")]
    ChannelRefused(String),

    // --- The operator ---
    /// The keyboard-interactive questions were cancelled.
    #[error("authentication cancelled")]
    AuthCancelled,
    /// The private key cannot be read.
    #[error("cannot read the private key: {0}")]
    KeyParse(String),
    /// The key is encrypted and no passphrase was given.
    #[error("the private key needs a passphrase")]
    KeyPassphraseNeeded,
    /// The passphrase does not decrypt the key.
    #[error("wrong passphrase for the private key")]
    KeyWrongPassphrase,

    // --- The page ---
    /// The page's dialog answered a keyboard-interactive round with another number of answers
    /// than prompts (a bug of the page, never the device's).
    #[error("the keyboard-interactive answers do not match the prompts")]
    AnswerCount,
}
