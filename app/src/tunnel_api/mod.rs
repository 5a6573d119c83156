//! The page's side of the service's tunnel API (`docs/tunnel-api.md`): the typed requests and
//! answers of `/api/tunnels/{open,list,describe,rotate,close}`, the API's errors in operator
//! words, and the wait for a device to connect.
//!
//! Sans-IO: this module builds request bodies and reads answers (status + body text), and
//! decides when to poll again; the HTTP calls themselves are `driver::api` (browser only).
//! Answers are hostile input: unknown fields are ignored and shown text is bounded. A source
//! token read from an answer lives in a [`Zeroizing`] string and is never part of a `Debug`
//! output, an error or a log.

pub mod formats;
pub mod wait;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Longest service-provided text shown to the operator.
const MAX_SHOWN: usize = 300;

/// The API's paths, relative to the page's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /api/tunnels/open`.
    Open,
    /// `POST /api/tunnels/list`.
    List,
    /// `POST /api/tunnels/describe`.
    Describe,
    /// `POST /api/tunnels/rotate`.
    Rotate,
    /// `POST /api/tunnels/close`.
    Close,
}

impl Op {
    /// The path of the operation.
    pub fn path(self) -> &'static str {
        match self {
            Op::Open => "/api/tunnels/open",
            Op::List => "/api/tunnels/list",
            Op::Describe => "/api/tunnels/describe",
            Op::Rotate => "/api/tunnels/rotate",
            Op::Close => "/api/tunnels/close",
        }
    }
}

/// `open`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenRequest {
    /// The device's thing name.
    pub thing_name: String,
    /// Services to open (e.g. `["SSH"]`).
    pub services: Vec<String>,
}

/// `list`'s body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListRequest {
    /// Only this thing's tunnels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thing_name: Option<String>,
}

/// `describe`'s and `close`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelRef {
    /// The tunnel's id.
    pub tunnel_id: String,
}

/// Which ends get new tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClientMode {
    /// Only the page's end (joining a tunnel another page or the CLI opened).
    Source,
    /// Both ends: the device gets its new token by notification.
    All,
}

/// `rotate`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateRequest {
    /// The tunnel's id.
    pub tunnel_id: String,
    /// Which ends get new tokens.
    pub client_mode: ClientMode,
}

/// `open`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Opened {
    /// The new tunnel's id.
    pub tunnel_id: String,
    /// The page's token (never shown, never stored).
    pub source_access_token: Zeroizing<String>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("tunnel_id", &self.tunnel_id)
            .finish_non_exhaustive()
    }
}

/// `rotate`'s answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotated {
    /// The page's new token.
    pub source_access_token: Zeroizing<String>,
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotated").finish_non_exhaustive()
    }
}

/// Whether a tunnel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TunnelStatus {
    /// Open: tokens can connect.
    Open,
    /// Closed for good.
    Closed,
}

/// A tunnel as `list` and `describe` report it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tunnel {
    /// Its id.
    pub tunnel_id: String,
    /// Open or closed.
    pub status: TunnelStatus,
    /// The destination's thing, when it has one.
    #[serde(default)]
    pub thing_name: Option<String>,
    /// Its services.
    #[serde(default)]
    pub services: Vec<String>,
    /// Whether a source is connected.
    #[serde(default)]
    pub source_connected: bool,
    /// Whether the device is connected.
    #[serde(default)]
    pub destination_connected: bool,
    /// When it was opened (seconds since the Unix epoch).
    #[serde(default)]
    pub created_at: f64,
    /// When it expires (seconds since the Unix epoch).
    #[serde(default)]
    pub expires_at: f64,
}

/// `list`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tunnels {
    /// Open tunnels first, newest first.
    pub tunnels: Vec<Tunnel>,
}

/// `describe`'s answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Described {
    /// The tunnel.
    pub tunnel: Tunnel,
}

/// What went wrong with a call, split by who can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The service has no tunnel API (404 `ApiOff`, or no such path at all).
    #[error("this service offers no tunnel API")]
    Off,
    /// The API wants a signed-in operator (401).
    #[error("the service refused the request: not signed in (401)")]
    Unauthenticated,
    /// The thing matches none of the service's allowed things (403 `ThingNotAllowed`).
    #[error("the service does not allow this thing: {0}")]
    ThingNotAllowed(String),
    /// The service refused the page itself (403 `Forbidden`, 415).
    #[error("the service refused the page's request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The service's words.
        message: String,
    },
    /// The request was malformed (400): the thing name, a service.
    #[error("{0}")]
    BadRequest(String),
    /// The tunnel is unknown (404 `NotFound`).
    #[error("the tunnel is unknown to the service")]
    NotFound,
    /// The tunnel is closed (409).
    #[error("the tunnel is closed")]
    TunnelClosed,
    /// Too many open tunnels (429).
    #[error("too many open tunnels: {0}")]
    LimitExceeded(String),
    /// AWS's control plane failed or refused (502), or another server error.
    #[error("the tunneling service failed ({status}): {message}")]
    Upstream {
        /// HTTP status.
        status: u16,
        /// The service's words.
        message: String,
    },
    /// The service could not be reached.
    #[error("the service could not be reached")]
    Unreachable,
    /// The answer was not what the contract says.
    #[error("the service's answer could not be read ({0})")]
    Malformed(String),
}

impl ApiError {
    /// Words for the error panel, saying what to do.
    pub fn user_message(&self) -> String {
        match self {
            ApiError::Off => "This service offers no tunnel API: use Token mode with a token \
                 made by `aws iotsecuretunneling open-tunnel`."
                .to_owned(),
            ApiError::Unauthenticated => "The service refused the request: you are not signed \
                 in (401 Unauthorized). Sign in through the service's login, then try again."
                .to_owned(),
            ApiError::ThingNotAllowed(message) => format!(
                "The service does not allow tunnels to this thing (403): {message}. Check the \
                 thing name, or ask the service's operator to allow it."
            ),
            ApiError::Refused { status, message } => format!(
                "The service refused the page's request ({status}): {message}. Open the page \
                 from the service's own address."
            ),
            ApiError::BadRequest(message) => format!("The service refused the request: {message}."),
            ApiError::NotFound => "The tunnel is unknown to the service (it may have expired): \
                 open a new one."
                .to_owned(),
            ApiError::TunnelClosed => {
                "The tunnel is closed: connect again to open a new one.".to_owned()
            }
            ApiError::LimitExceeded(message) => format!(
                "Too many open tunnels ({message}): close one under Open tunnels, then try again."
            ),
            ApiError::Upstream { status, message } => format!(
                "The tunneling service failed ({status}): {message}. Try again in a moment."
            ),
            ApiError::Unreachable => "The service could not be reached: check the network and \
                 that the service is running, then try again."
                .to_owned(),
            ApiError::Malformed(what) => format!(
                "The service's answer could not be read ({what}): is the page served by a \
                 matching burrow serve?"
            ),
        }
    }
}

/// Cuts service-provided text to a bounded, single-line length.
fn shown(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_SHOWN)
        .collect();
    line.trim().to_owned()
}

/// Reads an answer: a 2xx body as `T`, anything else as the [`ApiError`] it stands for.
pub fn read_answer<T: for<'de> Deserialize<'de>>(status: u16, body: &str) -> Result<T, ApiError> {
    if (200..300).contains(&status) {
        return serde_json::from_str(body)
            .map_err(|err| ApiError::Malformed(shown(&err.to_string())));
    }
    Err(error_of(status, body))
}

/// The error an unsuccessful answer stands for.
pub fn error_of(status: u16, body: &str) -> ApiError {
    #[derive(Deserialize, Default)]
    struct ErrorBody {
        #[serde(default)]
        error: String,
        #[serde(default)]
        message: String,
    }
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let (code, message) = match parsed {
        Some(body) => (body.error, shown(&body.message)),
        None => (String::new(), shown(body)),
    };
    let message = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message
    };
    match (status, code.as_str()) {
        (404, "ApiOff") => ApiError::Off,
        (404, "NotFound") => ApiError::NotFound,
        // A path the service does not know: an older service, or another server.
        (404, _) => ApiError::Off,
        (401, _) => ApiError::Unauthenticated,
        (403, "ThingNotAllowed") => ApiError::ThingNotAllowed(message),
        (403 | 415, _) => ApiError::Refused { status, message },
        (409, _) => ApiError::TunnelClosed,
        (429, _) => ApiError::LimitExceeded(message),
        (400..=499, _) => ApiError::BadRequest(message),
        _ => ApiError::Upstream { status, message },
    }
}

/// What the service's answer to a first `list` says about the page's way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The API is there: the page starts in Device mode.
    Offered,
    /// The API is there but wants a signed-in operator: Device mode, with the refusal shown.
    SignInNeeded,
    /// No API (off, another server, unreachable): the page starts in Token mode.
    NotOffered,
}

/// The offer a probe's outcome stands for.
pub fn offer_of<T>(probe: &Result<T, ApiError>) -> Offer {
    match probe {
        Ok(_) => Offer::Offered,
        Err(ApiError::Unauthenticated) => Offer::SignInNeeded,
        // The API answered but refused this request for a reason of its own: it is there.
        Err(ApiError::Refused { .. } | ApiError::Upstream { .. }) => Offer::Offered,
        Err(_) => Offer::NotOffered,
    }
}

/// A request body as JSON (the request types cannot fail to serialize).
pub fn body<T: Serialize>(request: &T) -> String {
    serde_json::to_string(request).unwrap_or_else(|_| "{}".to_owned())
}

/// Whether `name` can be a thing name (AWS IoT: 1 to 128 of `[a-zA-Z0-9:_-]`).
pub fn check_thing_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("enter the device's thing name".to_owned());
    }
    if name.len() > 128 {
        return Err("the thing name is longer than 128 characters".to_owned());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
    {
        return Err("the thing name may hold only letters, digits, “:”, “_” and “-”".to_owned());
    }
    Ok(())
}

/// The services field (`SSH`, or `SSH, VNC`) as a list; empty means `SSH`.
pub fn parse_services(text: &str) -> Result<Vec<String>, String> {
    let services: Vec<String> = text
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if services.len() > 3 {
        return Err("a tunnel offers at most 3 services".to_owned());
    }
    if services.iter().any(|s| {
        s.len() > 127
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    }) {
        return Err("a service id holds only letters, digits, “_” and “-”".to_owned());
    }
    if services.is_empty() {
        return Ok(vec!["SSH".to_owned()]);
    }
    Ok(services)
}

/// A duration for the tunnels list: `45 s`, `12 min`, `3 h 05 min`, `2 d 4 h`.
pub fn format_span(seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        return "0 s".to_owned();
    }
    // Display only: whole seconds.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests;
