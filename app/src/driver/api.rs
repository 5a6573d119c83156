//! The HTTP calls of the tunnel API (`crate::tunnel_api`), through `gloo-net`, to the page's own
//! origin (browser only).
//!
//! Each call is a same-origin `POST` with a JSON body: the browser adds `Origin` and the
//! operator's cookies (an authenticating proxy's session), and no CORS is involved. Answers are
//! read by `tunnel_api::read_answer`; a body that may hold a token is wiped after reading.

use gloo_net::http::Request;
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::tunnel_api::{
    ApiError, ClientMode, Described, ListRequest, Op, OpenRequest, Opened, RotateRequest, Rotated,
    Tunnel, TunnelRef, Tunnels, body, read_answer,
};

/// One call: `POST <origin><op's path>` with `request` as JSON.
async fn call<Q: Serialize, A: DeserializeOwned>(
    origin: &str,
    op: Op,
    request: &Q,
) -> Result<A, ApiError> {
    let url = format!("{}{}", origin.trim_end_matches('/'), op.path());
    let response = Request::post(&url)
        .header("Content-Type", "application/json")
        .body(body(request))
        .map_err(|_| ApiError::Unreachable)?
        .send()
        .await
        .map_err(|_| ApiError::Unreachable)?;
    let status = response.status();
    let text = Zeroizing::new(response.text().await.unwrap_or_default());
    read_answer(status, &text)
}

/// Opens a tunnel for `thing` with `services`.
pub async fn open(origin: &str, thing: &str, services: Vec<String>) -> Result<Opened, ApiError> {
    let request = OpenRequest {
        thing_name: thing.to_owned(),
        services,
    };
    call(origin, Op::Open, &request).await
}

/// The tunnels the service knows, open ones first.
pub async fn list(origin: &str) -> Result<Vec<Tunnel>, ApiError> {
    let tunnels: Tunnels = call(origin, Op::List, &ListRequest::default()).await?;
    Ok(tunnels.tunnels)
}

/// One tunnel's state.
pub async fn describe(origin: &str, tunnel_id: &str) -> Result<Tunnel, ApiError> {
    let request = TunnelRef {
        tunnel_id: tunnel_id.to_owned(),
    };
    let described: Described = call(origin, Op::Describe, &request).await?;
    Ok(described.tunnel)
}

/// New tokens for `mode`; the page's new source token.
pub async fn rotate(origin: &str, tunnel_id: &str, mode: ClientMode) -> Result<Rotated, ApiError> {
    let request = RotateRequest {
        tunnel_id: tunnel_id.to_owned(),
        client_mode: mode,
    };
    call(origin, Op::Rotate, &request).await
}

/// Closes the tunnel (the device's session ends too).
pub async fn close(origin: &str, tunnel_id: &str) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Empty {}
    let request = TunnelRef {
        tunnel_id: tunnel_id.to_owned(),
    };
    let _: Empty = call(origin, Op::Close, &request).await?;
    Ok(())
}
