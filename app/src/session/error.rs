//! Everything that can end a session early, and the words the page shows for it.
//!
//! [`SessionError`] is split by where the fault lies (the form, the cookie helper, the token,
//! the tunnel, the device, SSH, the browser). The variants carry facts only; sentences for the
//! operator are made in one place, [`SessionError::user_message`], so tests can check each one.
//! This module does no IO.

/// The AWS CLI command that issues a fresh source token for a tunnel.
pub const ROTATE_COMMAND: &str = "aws iotsecuretunneling rotate-tunnel-access-token \
     --tunnel-id <tunnel-id> --client-mode SOURCE";

/// The AWS CLI command that issues fresh source and destination tokens (a device with a thing
/// name gets its new token by notification).
pub const ROTATE_ALL: &str = "aws iotsecuretunneling rotate-tunnel-access-token \
     --tunnel-id <tunnel-id> --client-mode ALL";

/// The private key formats the app reads, for error messages.
pub const SUPPORTED_KEY_FORMATS: &str = "OpenSSH (\"BEGIN OPENSSH PRIVATE KEY\"), PEM RSA \
     (\"BEGIN RSA PRIVATE KEY\"), PKCS#8 (\"BEGIN PRIVATE KEY\" or \"BEGIN ENCRYPTED PRIVATE \
     KEY\") and PuTTY (.ppk); key types ed25519, ecdsa and rsa";

/// Everything that can end a session early, split by where the fault lies; each variant maps to
/// words an operator can act on in [`SessionError::user_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The form is incomplete or inconsistent (a message says what to fix).
    #[error("invalid input: {0}")]
    Input(String),

    // --- The cookie helper ---
    /// The cookie helper could not be reached, or the browser withheld its answer because the
    /// helper's CORS headers do not allow this page (the browser reports both the same way).
    #[error("cookie helper {url} unreachable or refused by CORS")]
    CookieHelperUnreachable {
        /// The helper's URL.
        url: String,
    },
    /// The cookie helper refused the request (400: the token; 403: this page's origin).
    #[error("cookie helper answered HTTP {status}: {message}")]
    CookieHelperRefused {
        /// The HTTP status.
        status: u16,
        /// The helper's own explanation, if it gave one.
        message: String,
    },

    // --- The token and the tunnel ---
    /// The token was used before (tokens are single use).
    #[error("the access token was already used")]
    TokenSpent,
    /// The token is unknown or malformed.
    #[error("the access token is invalid: {detail}")]
    TokenInvalid {
        /// What the service said, if known.
        detail: String,
    },
    /// The token is a destination token (or otherwise not for source mode).
    #[error("the access token is not a source token")]
    TokenWrongMode,
    /// The tunnel is closed or expired.
    #[error("the tunnel is closed")]
    TunnelClosed,
    /// The WebSocket handshake failed and the reason could not be learnt (browsers hide the
    /// HTTP status of a failed upgrade). `aws` tells whether the endpoint is AWS directly.
    #[error("the tunneling service refused the WebSocket handshake")]
    HandshakeRefused {
        /// Whether the endpoint is AWS IoT Secure Tunneling in a region.
        aws: bool,
        /// What is known beyond that (a probe's answer), possibly empty.
        detail: String,
    },
    /// The service chose a WebSocket subprotocol this app does not speak.
    #[error("the service chose the unsupported subprotocol {0:?}")]
    Subprotocol(String),
    /// The service did not list the tunnel's services in time.
    #[error("no SERVICE_IDS from the service within {seconds} s")]
    ServiceIdsTimeout {
        /// How long the app waited.
        seconds: u32,
    },
    /// The tunnel has several services and none was chosen.
    #[error("the tunnel has several services ({available:?}); choose one")]
    ServiceChoice {
        /// The tunnel's service ids.
        available: Vec<String>,
    },
    /// The chosen service is not one of the tunnel's.
    #[error("service {requested:?} is not one of the tunnel's ({available:?})")]
    UnknownService {
        /// What the form asked for.
        requested: String,
        /// The tunnel's service ids.
        available: Vec<String>,
    },
    /// The stream was reset: no destination is connected, or the device side could not reach
    /// its SSH server, or it closed the session.
    #[error("the stream was reset by the destination side")]
    DestinationUnreachable,
    /// Nothing came back through the tunnel: no destination seems to be connected.
    #[error("no answer from the destination side within {seconds} s")]
    DestinationSilent {
        /// How long the app waited.
        seconds: u32,
    },
    /// The stream opened in V2/V3 but not a byte came back within `seconds`, though an SSH
    /// server speaks first: most likely the device runs an agent that never answers this
    /// format (the AWS IoT Device Client and Greengrass speak V1 only).
    #[error("no SSH banner within {seconds} s in the {format:?} format")]
    NoBanner {
        /// The format the stream was opened in.
        format: super::Format,
        /// How long the app waited.
        seconds: u32,
    },
    /// The service reset every stream (SESSION_RESET).
    #[error("the tunneling service reset the session")]
    SessionReset,
    /// The tunnel WebSocket closed.
    #[error("the tunnel WebSocket closed with code {code} {reason:?}")]
    WebSocketClosed {
        /// The close code (1006: closed without a close frame).
        code: u16,
        /// The close reason, possibly empty.
        reason: String,
    },
    /// The service or the peer broke the tunneling protocol.
    #[error("tunneling protocol error: {0}")]
    Protocol(String),

    // --- SSH ---
    /// A step took too long (`what` names it).
    #[error("timed out after {seconds} s: {what}")]
    Timeout {
        /// The step, in words.
        what: String,
        /// How long the app waited.
        seconds: u32,
    },
    /// The SSH transport failed (key exchange, disconnect, bad data).
    #[error("ssh: {0}")]
    Ssh(String),
    /// The device presented a host key other than the remembered one.
    #[error("host key mismatch for {target}")]
    HostKeyMismatch {
        /// Where the key is remembered.
        target: String,
        /// The presented key's algorithm, e.g. `ssh-ed25519`.
        algorithm: String,
        /// The presented key's `SHA256:` fingerprint.
        presented: String,
        /// The remembered keys, as `algorithm SHA256:…`.
        remembered: Vec<String>,
    },
    /// The operator did not trust the host key.
    #[error("host key {fingerprint} not trusted")]
    HostKeyRejected {
        /// The key's `SHA256:` fingerprint.
        fingerprint: String,
    },
    /// Authentication failed.
    #[error("authentication failed (tried {tried:?}, server offers {offered:?})")]
    AuthFailed {
        /// The methods the server still offers.
        offered: Vec<String>,
        /// The methods this app tried.
        tried: Vec<String>,
    },
    /// The operator cancelled a keyboard-interactive prompt.
    #[error("authentication cancelled")]
    AuthCancelled,
    /// The private key could not be read.
    #[error("cannot read the private key: {0}")]
    KeyParse(String),
    /// The private key is encrypted and no passphrase was given.
    #[error("the private key needs a passphrase")]
    KeyPassphraseNeeded,
    /// The passphrase does not decrypt the private key.
    #[error("wrong passphrase for the private key")]
    KeyWrongPassphrase,
    /// The server refused the session channel, the pty or the shell.
    #[error("the server refused {0}")]
    ChannelRefused(String),

    // --- The browser ---
    /// A browser API failed unexpectedly.
    #[error("browser error: {0}")]
    Browser(String),
    /// Burrow misused one of its own parts (a bug, never the device's or the service's fault).
    #[error("a bug in Burrow: {0}")]
    Bug(String),
}

impl From<crate::driver::error::TunnelError> for SessionError {
    fn from(err: crate::driver::error::TunnelError) -> Self {
        use crate::driver::error::TunnelError as T;
        match err {
            T::Local(local) => SessionError::Bug(format!(
                "the page asked its tunnel endpoint for something it cannot do ({local})"
            )),
            T::Browser(what) => SessionError::Browser(what),
            T::Timeout { what, seconds } => SessionError::Timeout { what, seconds },
            T::CookieHelperUnreachable { url } => SessionError::CookieHelperUnreachable { url },
            T::CookieHelperRefused { status, message } => {
                SessionError::CookieHelperRefused { status, message }
            }
            T::TokenSpent => SessionError::TokenSpent,
            T::TokenInvalid { detail } => SessionError::TokenInvalid { detail },
            T::TokenWrongMode => SessionError::TokenWrongMode,
            T::TunnelClosed => SessionError::TunnelClosed,
            T::HandshakeRefused { aws, detail } => SessionError::HandshakeRefused { aws, detail },
            T::Subprotocol(name) => SessionError::Subprotocol(name),
            T::ServiceIdsTimeout { seconds } => SessionError::ServiceIdsTimeout { seconds },
            T::ServiceChoice { available } => SessionError::ServiceChoice { available },
            T::UnknownService {
                requested,
                available,
            } => SessionError::UnknownService {
                requested,
                available,
            },
            T::DestinationUnreachable => SessionError::DestinationUnreachable,
            T::NoBanner { format, seconds } => SessionError::NoBanner { format, seconds },
            T::SessionReset => SessionError::SessionReset,
            T::WebSocketClosed { code, reason } => SessionError::WebSocketClosed { code, reason },
            T::Peer(what) => SessionError::Protocol(what),
        }
    }
}

impl From<crate::ssh::error::SshError> for SessionError {
    fn from(err: crate::ssh::error::SshError) -> Self {
        use crate::ssh::error::SshError as S;
        match err {
            S::Closed => SessionError::Ssh(S::Closed.to_string()),
            S::Transport(what) => SessionError::Ssh(what),
            S::Timeout { what, seconds } => SessionError::Timeout { what, seconds },
            S::HostKeyMismatch {
                target,
                algorithm,
                presented,
                remembered,
            } => SessionError::HostKeyMismatch {
                target,
                algorithm,
                presented,
                remembered,
            },
            S::HostKeyRejected { fingerprint } => SessionError::HostKeyRejected { fingerprint },
            S::AuthFailed { offered, tried } => SessionError::AuthFailed { offered, tried },
            S::ChannelRefused(what) => SessionError::ChannelRefused(what),
            S::AuthCancelled => SessionError::AuthCancelled,
            S::KeyParse(why) => SessionError::KeyParse(why),
            S::KeyPassphraseNeeded => SessionError::KeyPassphraseNeeded,
            S::KeyWrongPassphrase => SessionError::KeyWrongPassphrase,
            S::AnswerCount => SessionError::Bug(S::AnswerCount.to_string()),
        }
    }
}

impl SessionError {
    /// The text shown in the page's error panel.
    pub fn user_message(&self) -> String {
        match self {
            SessionError::Input(what) => format!("Please check the form: {what}."),
            SessionError::CookieHelperUnreachable { url } => format!(
                "The cookie helper at {url} could not be reached, or it does not allow this page \
                 (CORS). Check the cookie helper URL, that the service is running, and that its \
                 allowed origins include this page's origin."
            ),
            SessionError::CookieHelperRefused { status, message } => {
                let why = match status {
                    400 => "it rejected the token (check that the whole token was pasted)",
                    403 => "this page's origin is not on its allowlist",
                    _ => "it answered with an error",
                };
                let detail = if message.is_empty() {
                    String::new()
                } else {
                    format!(" It said: {message}")
                };
                format!("The cookie helper refused the token (HTTP {status}): {why}.{detail}")
            }
            SessionError::TokenSpent => format!(
                "This access token was already used; tunnel tokens work only once. Get a new \
                 source token — rotate it: {ROTATE_COMMAND}"
            ),
            SessionError::TokenInvalid { detail } => {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                format!(
                    "The access token is not valid{detail}. Paste the tunnel's source access \
                     token (not the destination token), or issue a new one: {ROTATE_COMMAND}"
                )
            }
            SessionError::TokenWrongMode => format!(
                "This is not a source access token (it is probably the destination token, which \
                 belongs on the device). Use the tunnel's source token, or issue a new one: \
                 {ROTATE_COMMAND}"
            ),
            SessionError::TunnelClosed => "The tunnel is closed or has expired. Open a new \
                 tunnel (aws iotsecuretunneling open-tunnel …) and use its source token."
                .to_owned(),
            SessionError::HandshakeRefused { aws, detail } => {
                let detail = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                };
                if *aws {
                    format!(
                        "AWS IoT Secure Tunneling refused the connection{detail}. The browser \
                         hides the reason; most likely the source token was already used \
                         (tokens work once — rotate it: {ROTATE_COMMAND}), it is a destination \
                         token, or the tunnel is closed or expired."
                    )
                } else {
                    format!(
                        "The tunneling service refused the connection{detail}. The token may be \
                         spent, invalid or a destination token, or the tunnel may be closed; \
                         rotate the token ({ROTATE_COMMAND}) and try again."
                    )
                }
            }
            SessionError::Subprotocol(name) => format!(
                "The tunneling service chose the protocol {name:?}, which this app does not \
                 speak (it offers aws.iot.securetunneling-3.0 and -2.0)."
            ),
            SessionError::ServiceIdsTimeout { seconds } => format!(
                "The tunneling service did not list the tunnel's services within {seconds} \
                 seconds. If the device runs the AWS IoT Device Client or Greengrass, choose \
                 \"AWS IoT Device Client or Greengrass → V1\" under \"What runs on the device\"; \
                 otherwise try again."
            ),
            SessionError::ServiceChoice { available } => format!(
                "This tunnel offers several services ({}) and none was chosen; choose one in the \
                 \"Service id\" field and connect again with a new source token.",
                available.join(", ")
            ),
            SessionError::UnknownService {
                requested,
                available,
            } => format!(
                "The tunnel has no service {requested:?}; it offers {}.",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
            SessionError::DestinationUnreachable => "The device side could not reach its SSH \
                 server (or closed the session): the stream was reset. Check that the device's \
                 agent (localproxy, burrow agent, Device Client) is connected to this tunnel and \
                 that its SSH server is running."
                .to_owned(),
            SessionError::DestinationSilent { seconds } => format!(
                "Nothing answered from the device side within {seconds} seconds: no destination \
                 seems to be connected to this tunnel. Start the device's agent (localproxy, \
                 burrow agent, Device Client) with the tunnel's destination token, check that it \
                 can reach its SSH server, and connect again with a new source token."
            ),
            SessionError::NoBanner { format, seconds } => format!(
                "Nothing came back from the device within {seconds} seconds of opening the \
                 stream, though an SSH server speaks first. Either no destination seems to be \
                 connected to this tunnel (start the device's agent with the tunnel's \
                 destination token), or the message format is wrong: this connection used \
                 {format:?}, which the AWS IoT Device Client and Greengrass never answer (they \
                 speak V1; localproxy 3.x and burrow agent answer V3). If the device runs one of \
                 those, choose \"AWS IoT Device Client or Greengrass → V1\" under \"What runs on \
                 the device\" and connect again with a new source token; the Device Client drops its tunnel after a wrong \
                 format, so it needs a new destination token too ({ROTATE_ALL})."
            ),
            SessionError::SessionReset => "The tunneling service reset the session (the device \
                 side disconnected or was replaced). Connect again with a new token."
                .to_owned(),
            SessionError::WebSocketClosed { code, reason } => {
                let reason = if reason.is_empty() {
                    "no reason given".to_owned()
                } else {
                    format!("reason: {reason}")
                };
                let hint = match code {
                    1006 => {
                        " The connection dropped without a goodbye (network loss, or the \
                              service went away)."
                    }
                    1002 => " Another client probably took over this tunnel's source side.",
                    _ => "",
                };
                format!("The tunnel connection closed (code {code}, {reason}).{hint}")
            }
            SessionError::Protocol(what) => {
                format!("The tunneling service sent something unexpected ({what}); connect again.")
            }
            SessionError::Timeout { what, seconds } => {
                format!("Gave up after {seconds} seconds waiting for {what}.")
            }
            SessionError::Ssh(what) => format!("The SSH connection failed: {what}."),
            SessionError::HostKeyMismatch {
                target,
                algorithm,
                presented,
                remembered,
            } => format!(
                "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
                 @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
                 IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
                 Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
                 It is also possible that the device's host key has just been changed.\n\
                 The fingerprint of the {} key sent by the device is\n{presented}\n\
                 The key remembered for {target} is\n{}\n\
                 The connection was refused. If you know the key changed legitimately, remove \
                 the old entry (export the known hosts, delete its line, import) and connect \
                 again.",
                key_type_word(algorithm),
                remembered.join("\n"),
            ),
            SessionError::HostKeyRejected { fingerprint } => format!(
                "The device's host key ({fingerprint}) was not trusted, so the connection was \
                 closed before logging in."
            ),
            SessionError::AuthFailed { offered, tried } => {
                let offered = if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(", ")
                };
                let tried = if tried.is_empty() {
                    "nothing the server accepts".to_owned()
                } else {
                    tried.join(", ")
                };
                format!(
                    "Authentication failed. Tried: {tried}. The server offers: {offered}. Check \
                     the user name and the password or key."
                )
            }
            SessionError::AuthCancelled => "Authentication was cancelled.".to_owned(),
            SessionError::KeyParse(what) => format!(
                "The private key could not be read ({what}). Supported: {SUPPORTED_KEY_FORMATS}."
            ),
            SessionError::KeyPassphraseNeeded => {
                "The private key is encrypted: enter its passphrase.".to_owned()
            }
            SessionError::KeyWrongPassphrase => {
                "The passphrase does not decrypt the private key.".to_owned()
            }
            SessionError::ChannelRefused(what) => {
                format!("The SSH server refused {what}.")
            }
            SessionError::Browser(what) => {
                format!("The browser reported an error: {what}. Reload the page and try again.")
            }
            SessionError::Bug(what) => format!(
                "This is a bug in Burrow, not a problem of the device or the service: {what}. \
                 Reload the page and connect again, and please report it."
            ),
        }
    }
}

/// The key type as OpenSSH names it in its warnings (`ED25519`, `ECDSA`, `RSA`).
pub fn key_type_word(algorithm: &str) -> String {
    match algorithm {
        "ssh-ed25519" => "ED25519".to_owned(),
        "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512" => "RSA".to_owned(),
        a if a.starts_with("ecdsa-sha2-") => "ECDSA".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: SessionError, expect: &[&str]) {
        let text = error.user_message();
        for part in expect {
            assert!(text.contains(part), "{text:?} should contain {part:?}");
        }
    }

    #[test]
    fn token_spent_says_how_to_rotate() {
        check(
            SessionError::TokenSpent,
            &[
                "already used",
                "aws iotsecuretunneling rotate-tunnel-access-token",
                "--client-mode SOURCE",
            ],
        );
    }

    #[test]
    fn token_problems_name_the_cause() {
        check(
            SessionError::TokenInvalid {
                detail: "unknown token".into(),
            },
            &["not valid (unknown token)", "source access token"],
        );
        check(SessionError::TokenWrongMode, &["destination token"]);
        check(SessionError::TunnelClosed, &["closed or has expired"]);
    }

    #[test]
    fn cookie_helper_failures_distinguish_cors_token_and_origin() {
        check(
            SessionError::CookieHelperUnreachable {
                url: "https://h.example/cookie".into(),
            },
            &["https://h.example/cookie", "CORS"],
        );
        check(
            SessionError::CookieHelperRefused {
                status: 403,
                message: String::new(),
            },
            &["HTTP 403", "allowlist"],
        );
        check(
            SessionError::CookieHelperRefused {
                status: 400,
                message: "token has bad characters".into(),
            },
            &["HTTP 400", "rejected the token", "token has bad characters"],
        );
    }

    #[test]
    fn handshake_refusal_differs_for_aws_and_local() {
        check(
            SessionError::HandshakeRefused {
                aws: true,
                detail: String::new(),
            },
            &["AWS IoT Secure Tunneling", "hides the reason", "rotate"],
        );
        check(
            SessionError::HandshakeRefused {
                aws: false,
                detail: "status probe failed".into(),
            },
            &["tunneling service refused", "(status probe failed)"],
        );
    }

    #[test]
    fn reset_and_close_messages() {
        check(
            SessionError::DestinationUnreachable,
            &["could not reach its SSH server (or closed the session)"],
        );
        check(
            SessionError::WebSocketClosed {
                code: 1000,
                reason: "Tunnel is closed".into(),
            },
            &["code 1000", "reason: Tunnel is closed"],
        );
        check(
            SessionError::WebSocketClosed {
                code: 1006,
                reason: String::new(),
            },
            &["code 1006", "no reason given", "without a goodbye"],
        );
        check(
            SessionError::DestinationSilent { seconds: 20 },
            &["20 seconds", "no destination", "destination token"],
        );
        check(
            SessionError::NoBanner {
                format: super::super::Format::V3,
                seconds: 2,
            },
            &[
                "2 seconds",
                "no destination seems to be connected",
                "used V3",
                "AWS IoT Device Client",
                "Greengrass",
                "AWS IoT Device Client or Greengrass → V1",
                "new source token",
                "--client-mode ALL",
            ],
        );
        check(
            SessionError::ServiceIdsTimeout { seconds: 10 },
            &["10 seconds", "V1"],
        );
        check(
            SessionError::ServiceChoice {
                available: vec!["SSH".into(), "RDP".into()],
            },
            &["SSH, RDP", "choose one"],
        );
    }

    #[test]
    fn a_local_misuse_is_a_bug_of_burrow_not_the_service_s_fault() {
        use crate::driver::error::TunnelError;
        let err = SessionError::from(TunnelError::Local(burrow_proto::LocalError::NeedsV3));
        assert!(matches!(err, SessionError::Bug(_)), "{err:?}");
        let text = err.user_message();
        for words in [
            "bug in Burrow",
            "not a problem of the device or the service",
            "V3",
        ] {
            assert!(text.contains(words), "{words:?} in {text:?}");
        }
        // The service's and the peer's faults keep their own words.
        assert_eq!(
            SessionError::from(TunnelError::Peer("a frame too long".into())),
            SessionError::Protocol("a frame too long".into())
        );
        assert_eq!(
            SessionError::from(TunnelError::TokenSpent),
            SessionError::TokenSpent
        );
    }

    #[test]
    fn auth_failure_lists_offered_methods() {
        check(
            SessionError::AuthFailed {
                offered: vec!["publickey".into(), "keyboard-interactive".into()],
                tried: vec!["password".into()],
            },
            &[
                "Tried: password",
                "server offers: publickey, keyboard-interactive",
            ],
        );
    }

    #[test]
    fn host_key_mismatch_is_loud_and_shows_both_fingerprints() {
        check(
            SessionError::HostKeyMismatch {
                target: "ws://127.0.0.1:8080/tunnel-1/SSH".into(),
                algorithm: "ssh-ed25519".into(),
                presented: "SHA256:new".into(),
                remembered: vec!["ssh-ed25519 SHA256:old".into()],
            },
            &[
                "REMOTE HOST IDENTIFICATION HAS CHANGED",
                "ED25519 key",
                "SHA256:new",
                "SHA256:old",
                "ws://127.0.0.1:8080/tunnel-1/SSH",
            ],
        );
    }

    #[test]
    fn key_errors_name_supported_formats() {
        check(
            SessionError::KeyParse("unknown format".into()),
            &["OpenSSH", "PKCS#8", "PuTTY", "ed25519"],
        );
        check(SessionError::KeyWrongPassphrase, &["passphrase"]);
        check(SessionError::KeyPassphraseNeeded, &["encrypted"]);
    }

    #[test]
    fn key_type_words_follow_openssh() {
        assert_eq!(key_type_word("ssh-ed25519"), "ED25519");
        assert_eq!(key_type_word("ecdsa-sha2-nistp256"), "ECDSA");
        assert_eq!(key_type_word("rsa-sha2-512"), "RSA");
        assert_eq!(
            key_type_word("sk-ssh-ed25519@openssh.com"),
            "sk-ssh-ed25519@openssh.com"
        );
    }
}
