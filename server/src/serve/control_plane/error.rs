//! The control plane's errors in AWS's JSON protocol shape (`{"__type", "message"}` with
//! `x-amzn-ErrorType`), and how offending input is echoed in them: cut to [`ECHO_CHARS`]
//! characters with control characters escaped.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AMZ_JSON;
use crate::serve::tunnels::{RegistryError, new_uuid};

/// How many characters of an offending value an error message repeats.
pub(crate) const ECHO_CHARS: usize = 40;
/// The longest error message, whatever goes into it.
pub(super) const MAX_MESSAGE_CHARS: usize = 400;

/// `value` fit to be repeated in an error message: at most [`ECHO_CHARS`] characters (then
/// `…` and the full length), control characters escaped as `\u{1b}`.
pub(crate) fn echo(value: &str) -> String {
    cut(value, ECHO_CHARS)
}

pub(super) fn cut(value: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    for c in value.chars() {
        if count == max {
            out.push_str(&format!("…({} characters)", value.chars().count()));
            return out;
        }
        if c.is_control() {
            let escaped = format!("\\u{{{:x}}}", u32::from(c));
            // An escape counts as what it shows.
            count = (count + escaped.len()).min(max);
            out.push_str(&escaped);
        } else {
            out.push(c);
            count += 1;
        }
    }
    out
}

/// An error in AWS's JSON protocol shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) kind: &'static str,
    pub(super) message: String,
}

impl ApiError {
    /// The message is cut and escaped like any echoed value, only later (a safety net: values
    /// are cut to [`ECHO_CHARS`] where they go in).
    pub(super) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: cut(&message.into(), MAX_MESSAGE_CHARS),
        }
    }

    /// The AWS error type, e.g. `ResourceNotFoundException`.
    pub(crate) fn kind(&self) -> &'static str {
        self.kind
    }

    /// What went wrong, already cut and escaped.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(super) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// One failed constraint, worded as AWS words it.
    pub(super) fn constraint(value: impl std::fmt::Display, path: &str, constraint: &str) -> Self {
        let value = echo(&value.to_string());
        Self::validation(format!(
            "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: {constraint}"
        ))
    }

    pub(super) fn into_response(self) -> Response {
        let body = json!({ "__type": self.kind, "message": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        if let Ok(id) = HeaderValue::from_str(&new_uuid()) {
            h.insert("x-amzn-requestid", id);
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(err: RegistryError) -> Self {
        match &err {
            RegistryError::NotFound(id) => Self::new(
                StatusCode::BAD_REQUEST,
                "ResourceNotFoundException",
                format!("Tunnel {} not found", echo(id)),
            ),
            RegistryError::Closed(id) => Self::new(
                StatusCode::BAD_REQUEST,
                "ResourceNotFoundException",
                format!("Tunnel {} is closed", echo(id)),
            ),
            RegistryError::TooManyTags { .. } => Self::new(
                StatusCode::BAD_REQUEST,
                "LimitExceededException",
                capitalize(&err.to_string()),
            ),
            RegistryError::TooManyTunnels(_)
            | RegistryError::Services(burrow_proto::service::ServiceListError::TooMany(_)) => {
                Self::new(
                    StatusCode::BAD_REQUEST,
                    "LimitExceededException",
                    capitalize(&err.to_string()),
                )
            }
            RegistryError::Services(
                burrow_proto::service::ServiceListError::InvalidId(id)
                | burrow_proto::service::ServiceListError::Duplicate(id),
            ) if id.chars().count() > ECHO_CHARS || id.chars().any(char::is_control) => {
                Self::validation(format!("Invalid or duplicate service id {}", echo(id)))
            }
            RegistryError::Services(_) => Self::validation(capitalize(&err.to_string())),
        }
    }
}

pub(super) fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
