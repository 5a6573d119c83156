//! The tunnel API's sans-IO core: the operations and their bodies, the checks on them, the
//! `--allow-thing` globs, the page's `Tunnel` shape, the error (status, code, message) and the
//! audit line. Nothing here does IO; the backends (`super::emulator`, `super::aws`) and the
//! handler (`super`) do.

use std::fmt;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::serve::control_plane::{echo, is_tunnel_id};

/// The longest tunnel lifetime AWS allows, and the default.
pub(crate) const MAX_TIMEOUT_MINUTES: u32 = 720;

/// One of the API's operations, named by the last path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `/api/tunnels/open`.
    Open,
    /// `/api/tunnels/list`.
    List,
    /// `/api/tunnels/describe`.
    Describe,
    /// `/api/tunnels/rotate`.
    Rotate,
    /// `/api/tunnels/close`.
    Close,
}

impl Op {
    /// The operation of a path segment.
    pub(crate) fn from_path(segment: &str) -> Option<Self> {
        Some(match segment {
            "open" => Op::Open,
            "list" => Op::List,
            "describe" => Op::Describe,
            "rotate" => Op::Rotate,
            "close" => Op::Close,
            _ => return None,
        })
    }

    /// Its name in the audit line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::List => "list",
            Op::Describe => "describe",
            Op::Rotate => "rotate",
            Op::Close => "close",
        }
    }
}

/// Which tokens a rotation renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rotation {
    /// The source token only (a new page rejoins the tunnel).
    Source,
    /// Both; the device gets its new one by notification.
    All,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Open a tunnel to a thing's services.
    Open {
        /// The thing.
        thing: String,
        /// Its services (`["SSH"]` unless given).
        services: Vec<String>,
        /// The tunnel's lifetime.
        timeout_minutes: u32,
    },
    /// List tunnels, optionally of one thing.
    List {
        /// Only this thing's.
        thing: Option<String>,
    },
    /// One tunnel.
    Describe {
        /// Its id.
        tunnel_id: String,
    },
    /// New tokens.
    Rotate {
        /// The tunnel.
        tunnel_id: String,
        /// Which ones.
        mode: Rotation,
    },
    /// Close a tunnel.
    Close {
        /// Its id.
        tunnel_id: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OpenIn {
    thing_name: Option<String>,
    services: Option<Vec<String>>,
    timeout_minutes: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListIn {
    thing_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TunnelIn {
    tunnel_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RotateIn {
    tunnel_id: Option<String>,
    client_mode: Option<String>,
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(format!(
            "Send a JSON object as docs/tunnel-api.md shows: {}",
            echo(&err.to_string())
        ))
    })
}

/// A thing name as AWS IoT allows it: `[a-zA-Z0-9:_-]{1,128}`.
pub(crate) fn check_thing(name: &str) -> Result<(), ApiError> {
    if burrow_proto::service::is_valid_service_id(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Thing name '{}' is not valid: use 1 to 128 of a-z, A-Z, 0-9, ':', '_' and '-'",
            echo(name)
        )))
    }
}

fn tunnel_id(id: Option<String>) -> Result<String, ApiError> {
    let id = id.ok_or_else(|| ApiError::bad_request("Give the tunnelId"))?;
    if is_tunnel_id(&id) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(format!(
            "Tunnel id '{}' is not valid: use the tunnelId that open or list gave",
            echo(&id)
        )))
    }
}

/// Parses and checks one operation's JSON body.
pub(crate) fn parse(op: Op, bytes: &[u8]) -> Result<Request, ApiError> {
    match op {
        Op::Open => {
            let input: OpenIn = body(bytes)?;
            let thing = input
                .thing_name
                .ok_or_else(|| ApiError::bad_request("Give the thingName of the device"))?;
            check_thing(&thing)?;
            let services = input.services.unwrap_or_else(|| vec!["SSH".to_owned()]);
            burrow_proto::service::check_service_list(&services).map_err(|err| {
                ApiError::bad_request(format!("Services not valid: {}", echo(&err.to_string())))
            })?;
            if services.is_empty() {
                return Err(ApiError::bad_request(
                    "Give at least one service (for example [\"SSH\"])",
                ));
            }
            let timeout_minutes = match input.timeout_minutes {
                None => MAX_TIMEOUT_MINUTES,
                Some(m) => u32::try_from(m)
                    .ok()
                    .filter(|m| (1..=MAX_TIMEOUT_MINUTES).contains(m))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "timeoutMinutes must be between 1 and {MAX_TIMEOUT_MINUTES}"
                        ))
                    })?,
            };
            Ok(Request::Open {
                thing,
                services,
                timeout_minutes,
            })
        }
        Op::List => {
            let input: ListIn = body(bytes)?;
            if let Some(thing) = &input.thing_name {
                check_thing(thing)?;
            }
            Ok(Request::List {
                thing: input.thing_name,
            })
        }
        Op::Describe => Ok(Request::Describe {
            tunnel_id: tunnel_id(body::<TunnelIn>(bytes)?.tunnel_id)?,
        }),
        Op::Close => Ok(Request::Close {
            tunnel_id: tunnel_id(body::<TunnelIn>(bytes)?.tunnel_id)?,
        }),
        Op::Rotate => {
            let input: RotateIn = body(bytes)?;
            let mode = match input.client_mode.as_deref() {
                Some("SOURCE") => Rotation::Source,
                Some("ALL") => Rotation::All,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "clientMode '{}' is not valid: use SOURCE or ALL",
                        echo(other)
                    )));
                }
                None => return Err(ApiError::bad_request("Give the clientMode: SOURCE or ALL")),
            };
            Ok(Request::Rotate {
                tunnel_id: tunnel_id(input.tunnel_id)?,
                mode,
            })
        }
    }
}

/// The `--allow-thing` globs: `*` matches any run of characters, `?` one. None: every thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ThingGlobs(Vec<String>);

/// An `--allow-thing` value that cannot match a thing name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid --allow-thing {0:?}: use thing-name characters (a-z, A-Z, 0-9, ':', '_', '-') and the wildcards * and ?"
)]
pub(crate) struct GlobError(String);

impl ThingGlobs {
    /// Checks the globs.
    pub(crate) fn new(globs: &[String]) -> Result<Self, GlobError> {
        for glob in globs {
            let valid = !glob.is_empty()
                && glob.len() <= 256
                && glob.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'*' | b'?')
                });
            if !valid {
                return Err(GlobError(glob.clone()));
            }
        }
        Ok(Self(globs.to_vec()))
    }

    /// Whether the thing may be used (a tunnel without a thing only when no glob is set).
    pub(crate) fn allows(&self, thing: Option<&str>) -> bool {
        match thing {
            _ if self.0.is_empty() => true,
            None => false,
            Some(thing) => self
                .0
                .iter()
                .any(|g| glob_match(g.as_bytes(), thing.as_bytes())),
        }
    }
}

/// Wildcard matching, linear in the text (the last `*` is retried, never a tree of them).
fn glob_match(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// A tunnel in the page's shape (docs/tunnel-api.md).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tunnel {
    /// Its id.
    pub tunnel_id: String,
    /// Its ARN.
    pub tunnel_arn: String,
    /// Open or not.
    pub open: bool,
    /// The destination thing.
    pub thing_name: Option<String>,
    /// The destination services.
    pub services: Vec<String>,
    /// Whether a source is connected.
    pub source_connected: bool,
    /// Whether a destination is connected.
    pub destination_connected: bool,
    /// Seconds since the epoch.
    pub created_at: f64,
    /// Seconds since the epoch.
    pub expires_at: f64,
}

impl Tunnel {
    /// Its JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "tunnelId": self.tunnel_id,
            "tunnelArn": self.tunnel_arn,
            "status": if self.open { "OPEN" } else { "CLOSED" },
            "thingName": self.thing_name,
            "services": self.services,
            "sourceConnected": self.source_connected,
            "destinationConnected": self.destination_connected,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
        })
    }
}

/// Open tunnels first, newest first.
pub(crate) fn sort(tunnels: &mut [Tunnel]) {
    tunnels.sort_by(|a, b| {
        b.open
            .cmp(&a.open)
            .then(b.created_at.total_cmp(&a.created_at))
    });
}

/// A new tunnel, as the backend opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    /// Its id.
    pub tunnel_id: String,
    /// Its ARN.
    pub tunnel_arn: String,
    /// The page's token (the device's went to it by notification).
    pub source_token: String,
    /// The region the data plane is in.
    pub region: String,
}

/// What a backend's control plane answered instead of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendError {
    /// The tunnel is unknown.
    NotFound(String),
    /// The open-tunnel quota is reached.
    Limit(String),
    /// The input was refused.
    Invalid(String),
    /// The control plane failed or refused otherwise (unreachable, credentials, …).
    Upstream(String),
}

impl BackendError {
    /// From an AWS error type and message (AWS's own or the emulator's).
    pub(crate) fn from_aws(kind: &str, message: &str) -> Self {
        // AWS may send `prefix#ResourceNotFoundException`.
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = echo_long(message);
        match kind {
            "ResourceNotFoundException" => Self::NotFound(message),
            "LimitExceededException" => Self::Limit(message),
            "ValidationException" => Self::Invalid(message),
            _ => Self::Upstream(format!("{}: {message}", echo(kind))),
        }
    }
}

/// An upstream message, cut (but longer than an echoed value).
pub(crate) fn echo_long(message: &str) -> String {
    let mut out: String = message
        .chars()
        .take(300)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if message.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// An answer other than 200: `{"error":CODE,"message":WORDS}` with its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The contract's code (`BadRequest`, `NotFound`, …).
    pub code: &'static str,
    /// What to do.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub(crate) fn api_off() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ApiOff",
            "The tunnel API is off on this server (it needs --tunnel-api in relay mode or with --verify-sigv4): paste an access token instead",
        )
    }

    pub(crate) fn thing_not_allowed(thing: Option<&str>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ThingNotAllowed",
            match thing {
                Some(thing) => format!(
                    "Thing '{}' is not one this server may open tunnels to (--allow-thing)",
                    echo(thing)
                ),
                None => "This tunnel has no thing, and this server only serves the things of its --allow-thing".to_owned(),
            },
        )
    }

    pub(crate) fn closed(tunnel_id: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "TunnelClosed",
            format!("Tunnel {} is closed: open a new one", echo(tunnel_id)),
        )
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        json!({ "error": self.code, "message": self.message })
    }
}

impl From<BackendError> for ApiError {
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::NotFound(m) => Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{m} (list the tunnels to see which exist)"),
            ),
            BackendError::Limit(m) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "LimitExceeded",
                format!("{m}: close a tunnel you no longer use"),
            ),
            BackendError::Invalid(m) => Self::bad_request(m),
            BackendError::Upstream(m) => Self::new(
                StatusCode::BAD_GATEWAY,
                "Upstream",
                format!("AWS IoT Secure Tunneling's control plane failed: {m}"),
            ),
        }
    }
}

/// The audit record of one call: who, what, on which thing and tunnel, and how it ended.
/// Never a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Audit {
    /// The operator (`--operator-header`'s value).
    pub operator: Option<String>,
    /// The operation, once known.
    pub op: Option<Op>,
    /// The thing, once known.
    pub thing: Option<String>,
    /// The tunnel, once known.
    pub tunnel: Option<String>,
}

impl Audit {
    /// `tunnel-api operator=… op=… thing=… tunnel=… result=…`, values escaped and cut, `-` for
    /// none.
    pub(crate) fn line(&self, result: Result<(), &str>) -> String {
        let field = |v: &Option<String>| match v {
            Some(v) if !v.is_empty() => echo(v).replace(' ', "\\u{20}"),
            _ => "-".to_owned(),
        };
        format!(
            "tunnel-api operator={} op={} thing={} tunnel={} result={}",
            field(&self.operator),
            self.op.map_or("-", Op::name),
            field(&self.thing),
            field(&self.tunnel),
            match result {
                Ok(()) => "ok",
                Err(code) => code,
            }
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_thing_names() {
        let globs =
            ThingGlobs::new(&["pump-*".into(), "valve-?".into(), "gw".into()]).expect("valid");
        assert!(globs.allows(Some("pump-7")));
        assert!(globs.allows(Some("pump-")));
        assert!(globs.allows(Some("valve-1")));
        assert!(!globs.allows(Some("valve-12")));
        assert!(globs.allows(Some("gw")));
        assert!(!globs.allows(Some("gw2")));
        assert!(!globs.allows(Some("xpump-7")));
        assert!(!globs.allows(None));
        assert!(ThingGlobs::default().allows(None));
        assert!(ThingGlobs::default().allows(Some("anything")));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxbc"));
        assert!(!glob_match(b"*a*b*c", b"xxaxxbxxb"));
        assert!(glob_match(b"**", b""));
        assert!(!glob_match(b"*a*a*a*b", &b"a".repeat(10_000)));
        assert!(ThingGlobs::new(&["pump/*".into()]).is_err());
        assert!(ThingGlobs::new(&[String::new()]).is_err());
    }

    #[test]
    fn requests_are_checked() {
        assert_eq!(
            parse(Op::Open, br#"{"thingName":"pump-7"}"#),
            Ok(Request::Open {
                thing: "pump-7".into(),
                services: vec!["SSH".into()],
                timeout_minutes: 720
            })
        );
        let code = |op, b: &[u8]| parse(op, b).err().map(|e| e.code);
        assert_eq!(code(Op::Open, b"{}"), Some("BadRequest"));
        assert_eq!(
            code(Op::Open, br#"{"thingName":"a b"}"#),
            Some("BadRequest")
        );
        assert_eq!(
            code(Op::Open, br#"{"thingName":"a","services":[]}"#),
            Some("BadRequest")
        );
        assert_eq!(
            code(Op::Open, br#"{"thingName":"a","timeoutMinutes":721}"#),
            Some("BadRequest")
        );
        assert_eq!(code(Op::Open, b"not json"), Some("BadRequest"));
        assert_eq!(parse(Op::List, b""), Ok(Request::List { thing: None }));
        assert_eq!(
            code(
                Op::Rotate,
                br#"{"tunnelId":"x","clientMode":"DESTINATION"}"#
            ),
            Some("BadRequest")
        );
        assert_eq!(
            parse(Op::Rotate, br#"{"tunnelId":"x","clientMode":"ALL"}"#),
            Ok(Request::Rotate {
                tunnel_id: "x".into(),
                mode: Rotation::All
            })
        );
        assert_eq!(
            code(Op::Describe, br#"{"tunnelId":"a/b"}"#),
            Some("BadRequest")
        );
    }

    #[test]
    fn the_audit_line_escapes_and_has_no_room_for_a_token() {
        let audit = Audit {
            operator: Some("alice@example.com x=1\n".into()),
            op: Some(Op::Open),
            thing: Some("pump-7".into()),
            tunnel: None,
        };
        assert_eq!(
            audit.line(Err("ThingNotAllowed")),
            "tunnel-api operator=alice@example.com\\u{20}x=1\\u{a} op=open thing=pump-7 tunnel=- result=ThingNotAllowed"
        );
        assert_eq!(
            Audit::default().line(Ok(())),
            "tunnel-api operator=- op=- thing=- tunnel=- result=ok"
        );
    }

    #[test]
    fn backend_errors_map_to_the_contract() {
        let e = ApiError::from(BackendError::from_aws(
            "com.amazonaws#ResourceNotFoundException",
            "Tunnel x not found",
        ));
        assert_eq!((e.status, e.code), (StatusCode::NOT_FOUND, "NotFound"));
        let e = ApiError::from(BackendError::from_aws("LimitExceededException", "too many"));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let e = ApiError::from(BackendError::from_aws("AccessDeniedException", "no"));
        assert_eq!((e.status, e.code), (StatusCode::BAD_GATEWAY, "Upstream"));
        assert!(
            e.message.contains("AccessDeniedException: no"),
            "{}",
            e.message
        );
    }
}
