//! The driver's errors: why a tunnel could not be opened or ended, by whose fault (the page, the
//! cookie helper, the service's refusal, the tunnel once open, a peer breaking the protocol).
//!
//! They name causes, not remedies: the session turns each into its [`crate::session::SessionError`]
//! (`From`, in `session/error.rs`), where the operator's words live. The driver imports nothing
//! of the session.

use burrow_proto::{Format, LocalError};

/// Why the driver failed or the tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    // --- The page itself ---
    /// Burrow asked its own tunnel endpoint for something it cannot do (a bug in Burrow, never
    /// the service's fault).
    #[error("the page misused its tunnel endpoint: {0}")]
    Local(LocalError),
    /// The browser failed or refused (an API call, a request it could not build).
    #[error("browser error: {0}")]
    Browser(String),
    /// A step of the driver's own took too long.
    #[error("timed out after {seconds} s: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        seconds: u32,
    },

    // --- The cookie helper ---
    /// Not reachable, or it does not allow this page (CORS): a page cannot tell which.
    #[error("cookie helper {url} unreachable or refused by CORS")]
    CookieHelperUnreachable {
        /// Its URL.
        url: String,
    },
    /// It answered with an HTTP error.
    #[error("cookie helper answered HTTP {status}: {message}")]
    CookieHelperRefused {
        /// The HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },

    // --- The service refused the handshake ---
    /// The token was used already.
    #[error("the access token was already used")]
    TokenSpent,
    /// The token is not one of the service's.
    #[error("the access token is invalid: {detail}")]
    TokenInvalid {
        /// The service's words.
        detail: String,
    },
    /// A destination token was given where a source token belongs.
    #[error("the access token is not a source token")]
    TokenWrongMode,
    /// The tunnel is closed or expired.
    #[error("the tunnel is closed")]
    TunnelClosed,
    /// Refused for another reason (or one the page cannot learn).
    #[error("the tunneling service refused the WebSocket handshake")]
    HandshakeRefused {
        /// Whether the service is AWS's (it says nothing about why).
        aws: bool,
        /// What is known.
        detail: String,
    },
    /// The service chose a subprotocol the page did not offer.
    #[error("the service chose the unsupported subprotocol {0:?}")]
    Subprotocol(String),

    // --- The tunnel, once open ---
    /// SERVICE_IDS did not come.
    #[error("no SERVICE_IDS from the service within {seconds} s")]
    ServiceIdsTimeout {
        /// How long the page waited.
        seconds: u32,
    },
    /// Several services and none chosen.
    #[error("the tunnel has several services ({available:?}); choose one")]
    ServiceChoice {
        /// The tunnel's services.
        available: Vec<String>,
    },
    /// The chosen service is not one of the tunnel's.
    #[error("service {requested:?} is not one of the tunnel's ({available:?})")]
    UnknownService {
        /// The one asked for.
        requested: String,
        /// The tunnel's services.
        available: Vec<String>,
    },
    /// The stream was reset from the destination side.
    #[error("the stream was reset by the destination side")]
    DestinationUnreachable,
    /// A V2/V3 stream stayed silent (an SSH server speaks first).
    #[error("no SSH banner within {seconds} s in the {format:?} format")]
    NoBanner {
        /// The format the page wrote.
        format: Format,
        /// How long it waited.
        seconds: u32,
    },
    /// The service reset the whole session.
    #[error("the tunneling service reset the session")]
    SessionReset,
    /// The WebSocket closed.
    #[error("the tunnel WebSocket closed with code {code} {reason:?}")]
    WebSocketClosed {
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The service, or the peer behind it, broke the tunneling protocol.
    #[error("tunneling protocol error: {0}")]
    Peer(String),
}
