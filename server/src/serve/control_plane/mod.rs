//! The control plane: AWS IoT Secure Tunneling's JSON 1.1 API on `POST /`, so that
//! `aws iotsecuretunneling --endpoint-url http://127.0.0.1:PORT …` works unchanged.
//!
//! The operation comes from `X-Amz-Target: IoTSecuredTunneling.<Op>`. Supported: OpenTunnel,
//! RotateTunnelAccessToken, CloseTunnel, DescribeTunnel, ListTunnels, TagResource,
//! UntagResource and ListTagsForResource. Any SigV4 signature is accepted (and none), unless
//! `--verify-sigv4` ([`super::sigv4`]) requires the server's key; the region of the
//! signature's credential scope goes into new tunnels' ARNs. Inputs are checked
//! against the API model's constraints; errors are AWS-shaped: HTTP 400 with
//! `x-amzn-ErrorType` and `{"__type": …, "message": …}` (`ValidationException`,
//! `ResourceNotFoundException`, `LimitExceededException`, `SerializationException`,
//! `UnknownOperationException`). Timestamps are epoch seconds, as the JSON protocol wants.
//! A tunnel holds at most 50 tags, AWS's limit per resource (`LimitExceededException` past it).
//! Offending input is echoed in errors (and their log lines) cut to [`error::ECHO_CHARS`] characters,
//! with control characters escaped, so a huge or hostile value cannot flood a response or a log
//! or reach an operator's terminal as escape sequences.
//!
//! With `--mqtt`, OpenTunnel with a `destinationConfig.thingName` and RotateTunnelAccessToken
//! with DESTINATION or ALL hand the new destination token to the notifier
//! (`super::notify`), which publishes it to the thing; the call never waits for the broker.
//!
//! Requests from a browser (with an `Origin`) are served only for allowlisted origins. In relay
//! mode the control plane is off: the tunnels live in the upstream service.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::tunnels::{
    ClientMode, ConnectionView, LIFETIME_MINUTES, MAX_TAGS_PER_RESOURCE, OpenRequest,
    RegistryError, Status, TunnelView, new_uuid,
};

/// The JSON 1.1 content type.
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// The target prefix of every operation.
const TARGET_PREFIX: &str = "IoTSecuredTunneling.";

mod error;
mod tagging;

pub(crate) use error::ApiError;
use error::cut;
pub(crate) use error::echo;
use tagging::{TagIn, list_tags, tag, tags, tags_json, untag};

/// `POST /`.
pub(crate) async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(verifier) = &state.sigv4
        && let Err(refusal) = verifier.verify(&method, &uri, &headers, &body, SystemTime::now())
    {
        let err = ApiError::new(StatusCode::FORBIDDEN, refusal.kind, refusal.message);
        tracing::info!(error = %err, "control plane request refused");
        return err.into_response();
    }
    match dispatch(&state, &headers, &body) {
        Ok(value) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
            if let Ok(id) = HeaderValue::from_str(&new_uuid()) {
                h.insert("x-amzn-requestid", id);
            }
            response
        }
        Err(err) => {
            tracing::info!(error = %err, "control plane request refused");
            err.into_response()
        }
    }
}

fn dispatch(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin.to_str().is_ok_and(|o| state.origins.allows(o))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Origin not allowed",
        ));
    }
    if state.upstream.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "The control plane is disabled in relay mode; use the upstream service's",
        ));
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation target \"{}\"", echo(target)),
        ));
    };
    let region = signing_region(headers).unwrap_or_else(|| state.region.clone());
    call(state, op, body, region)
}

/// One operation (`OpenTunnel`, …) on the emulator, with its JSON body, as if it came signed
/// for `region`: what `POST /` does after its checks, and what the page's tunnel API
/// (`super::tunnel_api`) runs in emulator mode, notifications included.
pub(crate) fn call(
    state: &AppState,
    op: &str,
    body: &[u8],
    region: String,
) -> Result<Value, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    match op {
        "OpenTunnel" => open_tunnel(state, parse(body)?, region),
        "RotateTunnelAccessToken" => rotate(state, parse(body)?),
        "CloseTunnel" => close(state, parse(body)?),
        "DescribeTunnel" => describe(state, parse(body)?),
        "ListTunnels" => list(state, parse(body)?),
        "TagResource" => tag(state, parse(body)?),
        "UntagResource" => untag(state, parse(body)?),
        "ListTagsForResource" => list_tags(state, parse(body)?),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation {}", echo(op)),
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            // serde's messages quote the offending value whole.
            format!(
                "Cannot read the request body: {}",
                cut(&err.to_string(), 120)
            ),
        )
    })
}

/// The region of a SigV4 `Authorization` header's credential scope.
fn signing_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?;
    let region = scope.split('/').nth(2)?;
    let valid = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| region.to_owned())
}

fn epoch(t: SystemTime) -> f64 {
    let ms = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    ms as f64 / 1000.0
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationConfigIn {
    thing_name: Option<String>,
    services: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeoutConfigIn {
    max_lifetime_timeout_minutes: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenTunnelIn {
    description: Option<String>,
    tags: Option<Vec<TagIn>>,
    destination_config: Option<DestinationConfigIn>,
    timeout_config: Option<TimeoutConfigIn>,
}

/// Whether `id` has the shape AWS allows for a tunnel id (`[a-zA-Z0-9_\-+=:]{1,128}`).
pub(crate) fn is_tunnel_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'=' | b':'))
}

fn check_tunnel_id(id: Option<String>) -> Result<String, ApiError> {
    let Some(id) = id else {
        return Err(ApiError::constraint(
            "null",
            "tunnelId",
            "Member must not be null",
        ));
    };
    if is_tunnel_id(&id) {
        Ok(id)
    } else {
        Err(ApiError::constraint(
            &id,
            "tunnelId",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9_\\-+=:]{1,128}",
        ))
    }
}

fn check_thing_name(name: &str, path: &str) -> Result<(), ApiError> {
    if burrow_proto::service::is_valid_service_id(name) {
        Ok(())
    } else {
        Err(ApiError::constraint(
            name,
            path,
            "Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+ and have length between 1 and 128",
        ))
    }
}

/// Checks a `destinationConfig` and returns its thing name and services.
fn destination(config: DestinationConfigIn) -> Result<(Option<String>, Vec<String>), ApiError> {
    if let Some(name) = &config.thing_name {
        check_thing_name(name, "destinationConfig.thingName")?;
    }
    let Some(services) = config.services else {
        return Err(ApiError::constraint(
            "null",
            "destinationConfig.services",
            "Member must not be null",
        ));
    };
    if services.is_empty() {
        return Err(ApiError::constraint(
            "[]",
            "destinationConfig.services",
            "Member must have length greater than or equal to 1",
        ));
    }
    for service in &services {
        if !burrow_proto::service::is_valid_service_id(service) {
            return Err(ApiError::constraint(
                service,
                "destinationConfig.services.member",
                "Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+ and have length between 1 and 128",
            ));
        }
    }
    Ok((config.thing_name, services))
}

fn open_tunnel(state: &AppState, input: OpenTunnelIn, region: String) -> Result<Value, ApiError> {
    if let Some(description) = &input.description {
        let length = description.chars().count();
        if !(1..=2048).contains(&length) || description.chars().any(char::is_control) {
            return Err(ApiError::constraint(
                description,
                "description",
                "Member must satisfy regular expression pattern: [^\\p{C}]{1,2048}",
            ));
        }
    }
    let lifetime = match input
        .timeout_config
        .and_then(|t| t.max_lifetime_timeout_minutes)
    {
        None => *LIFETIME_MINUTES.end(),
        Some(minutes) => {
            let valid = u32::try_from(minutes)
                .ok()
                .filter(|m| LIFETIME_MINUTES.contains(m));
            valid.ok_or_else(|| {
                ApiError::constraint(
                    minutes,
                    "timeoutConfig.maxLifetimeTimeoutMinutes",
                    if minutes < 1 {
                        "Member must have value greater than or equal to 1"
                    } else {
                        "Member must have value less than or equal to 720"
                    },
                )
            })?
        }
    };
    let (thing_name, services) = match input.destination_config {
        Some(config) => destination(config)?,
        None => (None, Vec::new()),
    };
    let tags = tags(input.tags, "tags")?;
    let distinct = tags
        .iter()
        .map(|t| t.key.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if distinct > MAX_TAGS_PER_RESOURCE {
        return Err(RegistryError::TooManyTags {
            limit: MAX_TAGS_PER_RESOURCE,
            requested: distinct,
        }
        .into());
    }
    let notified = thing_name.clone().map(|thing| (thing, services.clone()));
    let opened = state.registry.open(OpenRequest {
        description: input.description,
        thing_name,
        services,
        lifetime_minutes: lifetime,
        tags,
        region: region.clone(),
    })?;
    tracing::info!(
        tunnel = opened.tunnel_id.get(..8).unwrap_or_default(),
        lifetime_minutes = lifetime,
        "tunnel opened"
    );
    if let (Some(notifier), Some((thing, services))) = (&state.notifier, notified) {
        notifier.notify(&thing, &opened.destination_token, &region, &services);
    }
    Ok(json!({
        "tunnelId": opened.tunnel_id,
        "tunnelArn": opened.tunnel_arn,
        "sourceAccessToken": opened.source_token,
        "destinationAccessToken": opened.destination_token,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RotateIn {
    tunnel_id: Option<String>,
    client_mode: Option<String>,
    destination_config: Option<DestinationConfigIn>,
}

fn rotate(state: &AppState, input: RotateIn) -> Result<Value, ApiError> {
    let id = check_tunnel_id(input.tunnel_id)?;
    let mode = match input.client_mode.as_deref() {
        Some("SOURCE") => ClientMode::Source,
        Some("DESTINATION") => ClientMode::Destination,
        Some("ALL") => ClientMode::All,
        Some(other) => {
            return Err(ApiError::constraint(
                other,
                "clientMode",
                "Member must satisfy enum value set: [SOURCE, DESTINATION, ALL]",
            ));
        }
        None => {
            return Err(ApiError::constraint(
                "null",
                "clientMode",
                "Member must not be null",
            ));
        }
    };
    let destination = match input.destination_config {
        Some(_) if mode == ClientMode::Source => {
            return Err(ApiError::validation(
                "You can not use DestinationConfig with source clientMode",
            ));
        }
        Some(config) => Some(destination(config)?),
        None => None,
    };
    let rotated = state.registry.rotate(&id, mode, destination)?;
    tracing::info!(
        tunnel = id.get(..8).unwrap_or_default(),
        ?mode,
        "access tokens rotated"
    );
    if let (Some(notifier), Some(token)) = (&state.notifier, &rotated.destination_token) {
        notify_rotation(state, notifier, &id, token);
    }
    let mut out = json!({ "tunnelArn": rotated.tunnel_arn });
    if let Some(token) = rotated.source_token {
        out["sourceAccessToken"] = Value::String(token);
    }
    if let Some(token) = rotated.destination_token {
        out["destinationAccessToken"] = Value::String(token);
    }
    Ok(out)
}

/// Tells the tunnel's thing (as the rotation set it, or as it was) about its new destination
/// token. A tunnel without a thing has nobody to notify.
fn notify_rotation(state: &AppState, notifier: &super::notify::Notifier, id: &str, token: &str) {
    let Ok(view) = state.registry.describe(id) else {
        return;
    };
    // The ARN is `arn:aws:iot:REGION:ACCOUNT:tunnel/ID`.
    let region = view.tunnel_arn.split(':').nth(3).unwrap_or(&state.region);
    if let Some(thing) = &view.thing_name {
        notifier.notify(thing, token, region, &view.services);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloseIn {
    tunnel_id: Option<String>,
    delete: Option<bool>,
}

fn close(state: &AppState, input: CloseIn) -> Result<Value, ApiError> {
    let id = check_tunnel_id(input.tunnel_id)?;
    let delete = input.delete.unwrap_or(false);
    state.registry.close(&id, delete)?;
    tracing::info!(
        tunnel = id.get(..8).unwrap_or_default(),
        delete,
        "tunnel closed"
    );
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeIn {
    tunnel_id: Option<String>,
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Open => "OPEN",
        Status::Closed => "CLOSED",
    }
}

fn connection(view: ConnectionView) -> Value {
    json!({
        "status": if view.connected { "CONNECTED" } else { "DISCONNECTED" },
        "lastUpdatedAt": epoch(view.updated_at),
    })
}

fn tunnel_json(view: &TunnelView) -> Value {
    let mut out = json!({
        "tunnelId": view.tunnel_id,
        "tunnelArn": view.tunnel_arn,
        "status": status_name(view.status),
        "sourceConnectionState": connection(view.source),
        "destinationConnectionState": connection(view.destination),
        "timeoutConfig": { "maxLifetimeTimeoutMinutes": view.lifetime_minutes },
        "createdAt": epoch(view.created_at),
        "lastUpdatedAt": epoch(view.updated_at),
    });
    if let Some(description) = &view.description {
        out["description"] = json!(description);
    }
    if view.thing_name.is_some() || !view.services.is_empty() {
        let mut config = json!({ "services": view.services });
        if let Some(thing) = &view.thing_name {
            config["thingName"] = json!(thing);
        }
        out["destinationConfig"] = config;
    }
    if !view.tags.is_empty() {
        out["tags"] = tags_json(&view.tags);
    }
    out
}

fn describe(state: &AppState, input: DescribeIn) -> Result<Value, ApiError> {
    let id = check_tunnel_id(input.tunnel_id)?;
    let view = state.registry.describe(&id)?;
    Ok(json!({ "tunnel": tunnel_json(&view) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListIn {
    thing_name: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

fn list(state: &AppState, input: ListIn) -> Result<Value, ApiError> {
    if let Some(name) = &input.thing_name {
        check_thing_name(name, "thingName")?;
    }
    let max = match input.max_results {
        None => usize::MAX,
        Some(n) if (1..=100).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::constraint(
                n,
                "maxResults",
                "Member must have value between 1 and 100",
            ));
        }
    };
    let start = match input.next_token.as_deref() {
        None => 0,
        Some(token) => token
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::validation("The nextToken is not valid"))?,
    };
    let all = state.registry.list(input.thing_name.as_deref());
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|v| {
            let mut s = json!({
                "tunnelId": v.tunnel_id,
                "tunnelArn": v.tunnel_arn,
                "status": status_name(v.status),
                "createdAt": epoch(v.created_at),
                "lastUpdatedAt": epoch(v.updated_at),
            });
            if let Some(description) = &v.description {
                s["description"] = json!(description);
            }
            s
        })
        .collect();
    let end = start.saturating_add(page.len());
    let mut out = json!({ "tunnelSummaries": page });
    if end < all.len() {
        out["nextToken"] = json!(format!("page-{end}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_credential_scope() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-3/iotsecuredtunneling/aws4_request, SignedHeaders=host, Signature=abc",
            ),
        );
        assert_eq!(signing_region(&h).as_deref(), Some("eu-west-3"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(signing_region(&h), None);
    }

    #[test]
    fn errors_have_the_aws_shape() {
        let r = ApiError::from(RegistryError::NotFound("abc".into())).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("ResourceNotFoundException")
        );
        let limit = ApiError::from(RegistryError::TooManyTunnels(100));
        assert_eq!(limit.kind, "LimitExceededException");
        assert_eq!(
            ApiError::constraint(
                0,
                "timeoutConfig.maxLifetimeTimeoutMinutes",
                "Member must have value greater than or equal to 1"
            )
            .to_string(),
            "ValidationException: 1 validation error detected: Value '0' at 'timeoutConfig.maxLifetimeTimeoutMinutes' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
    }

    #[test]
    fn echoed_values_are_cut_and_escaped() {
        assert_eq!(echo("SSH"), "SSH");
        assert_eq!(echo("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        let long = "é".repeat(5000);
        let shown = echo(&long);
        assert!(shown.starts_with(&"é".repeat(error::ECHO_CHARS)));
        assert!(shown.ends_with("…(5000 characters)"), "{shown}");
        let err = ApiError::constraint(format!("\u{1b}]0;pwned\u{7}{long}"), "description", "x");
        assert!(
            !err.message.chars().any(char::is_control),
            "{}",
            err.message
        );
        assert!(err.message.chars().count() < 200, "{}", err.message);
        let huge = ApiError::validation("\u{1b}".repeat(100_000));
        assert!(huge.message.chars().count() < error::MAX_MESSAGE_CHARS + 40);
        assert!(!huge.message.chars().any(char::is_control));
        let not_found = ApiError::from(RegistryError::NotFound("x".repeat(1000)));
        assert!(not_found.message.len() < 120, "{}", not_found.message);
    }
}
