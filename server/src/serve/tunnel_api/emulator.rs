//! The tunnel API's emulator backend: the local registry. Opening, rotating and closing go
//! through the control plane's own operations (`control_plane::call`), so the new destination
//! tokens reach the things by notification exactly as for `aws iotsecuretunneling`; listing and
//! describing read the registry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::core::{BackendError, Opened, Rotation, Tunnel};
use crate::serve::AppState;
use crate::serve::control_plane;
use crate::serve::tunnels::{Status, TunnelView};

fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_millis() as f64 / 1000.0)
}

fn tunnel(view: TunnelView) -> Tunnel {
    let lifetime = Duration::from_secs(u64::from(view.lifetime_minutes) * 60);
    Tunnel {
        open: view.status == Status::Open,
        thing_name: view.thing_name,
        services: view.services,
        source_connected: view.source.connected,
        destination_connected: view.destination.connected,
        created_at: epoch(view.created_at),
        expires_at: epoch(view.created_at + lifetime),
        tunnel_id: view.tunnel_id,
        tunnel_arn: view.tunnel_arn,
    }
}

/// One control-plane operation on the emulator.
fn call(state: &AppState, op: &str, body: &Value) -> Result<Value, BackendError> {
    control_plane::call(state, op, body.to_string().as_bytes(), state.region.clone())
        .map_err(|err| BackendError::from_aws(err.kind(), err.message()))
}

fn text(value: &Value, field: &str) -> Result<String, BackendError> {
    value[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BackendError::Upstream(format!("the answer has no {field}")))
}

pub(super) fn open(
    state: &AppState,
    thing: &str,
    services: &[String],
    timeout_minutes: u32,
) -> Result<Opened, BackendError> {
    let out = call(
        state,
        "OpenTunnel",
        &json!({
            "destinationConfig": { "thingName": thing, "services": services },
            "timeoutConfig": { "maxLifetimeTimeoutMinutes": timeout_minutes },
        }),
    )?;
    Ok(Opened {
        tunnel_id: text(&out, "tunnelId")?,
        tunnel_arn: text(&out, "tunnelArn")?,
        source_token: text(&out, "sourceAccessToken")?,
        region: state.region.clone(),
    })
}

pub(super) fn list(state: &AppState, thing: Option<&str>) -> Vec<Tunnel> {
    state.registry.list(thing).into_iter().map(tunnel).collect()
}

pub(super) fn describe(state: &AppState, tunnel_id: &str) -> Result<Tunnel, BackendError> {
    state
        .registry
        .describe(tunnel_id)
        .map(tunnel)
        .map_err(|err| BackendError::NotFound(super::core::echo_long(&err.to_string())))
}

/// Rotates `tunnel`'s tokens; with ALL, the destination configuration it has goes with the call,
/// as AWS's rotation guide does, so that the thing is notified.
pub(super) fn rotate(
    state: &AppState,
    tunnel: &Tunnel,
    mode: Rotation,
) -> Result<String, BackendError> {
    let mut body = json!({
        "tunnelId": tunnel.tunnel_id,
        "clientMode": match mode { Rotation::Source => "SOURCE", Rotation::All => "ALL" },
    });
    if mode == Rotation::All && tunnel.thing_name.is_some() && !tunnel.services.is_empty() {
        body["destinationConfig"] =
            json!({ "thingName": tunnel.thing_name, "services": tunnel.services });
    }
    let out = call(state, "RotateTunnelAccessToken", &body)?;
    text(&out, "sourceAccessToken")
}

pub(super) fn close(state: &AppState, tunnel_id: &str) -> Result<(), BackendError> {
    call(state, "CloseTunnel", &json!({ "tunnelId": tunnel_id })).map(drop)
}
