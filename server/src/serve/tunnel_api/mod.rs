//! The page's tunnel API, `POST /api/tunnels/{open,list,describe,rotate,close}`: the page opens,
//! watches, rotates and closes tunnels without holding AWS credentials. The contract (paths,
//! JSON shapes, error codes, the audit line) is `docs/tunnel-api.md`.
//!
//! - Emulator mode: always on, on the local registry; opening and rotating go through the
//!   control plane's operations, so the thing gets its destination token by notification
//!   (`--mqtt`) and the page only ever sees the source token ([`emulator`]).
//!   With `--verify-sigv4` it is off unless `--tunnel-api`, since it checks no signature.
//! - Relay mode (`--upstream`): off unless `--tunnel-api`; then AWS's control plane, signed
//!   with the server's own credentials ([`aws`]). Every path answers 404 `ApiOff` while off.
//!
//! Same origin only: each request needs an allowlisted `Origin` (403 otherwise) and
//! `Content-Type: application/json` (415 otherwise), and no CORS header is ever sent, so a
//! cross-origin page's preflight fails. With `--operator-header NAME` a request without that
//! header (set by an authenticating proxy in front) gets 401, and its value is the audit line's
//! operator. `--allow-thing GLOB` limits the things whose tunnels may be opened, listed,
//! described, rotated and closed (403 `ThingNotAllowed`). Every call logs one audit line (target
//! `burrow::audit`, see [`core::Audit`]), never a token. The checks and shapes live in the
//! sans-IO [`core`]; this module is the HTTP handler and the choice of backend.

mod aws;
mod core;
mod emulator;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::core::{ApiError, Audit, BackendError, Op, Opened, Request, ThingGlobs, Tunnel};
use super::AppState;

/// The route, for the router.
pub(crate) const ROUTE: &str = "/api/tunnels/{op}";

/// The tunnel API's flags of `burrow serve`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TunnelApiArgs {
    /// Relay mode: offer the page's tunnel API (/api/tunnels/…) on AWS's control plane, signed
    /// with this server's AWS credentials (standard chain). Always on in emulator mode, unless
    /// --verify-sigv4 (the API checks no signature).
    #[arg(long)]
    pub tunnel_api: bool,
    /// The request header in which an authenticating proxy in front (a load balancer's OIDC,
    /// oauth2-proxy) puts the operator's identity: tunnel API requests without it get 401, and
    /// its value goes into the audit log.
    #[arg(long, value_name = "NAME")]
    pub operator_header: Option<String>,
    /// Let the tunnel API serve only things whose name matches this glob (`*` any characters,
    /// `?` one). Repeatable; without it, every thing.
    #[arg(long = "allow-thing", value_name = "GLOB")]
    pub allow_thing: Vec<String>,
    /// Relay mode: the control plane the tunnel API calls, instead of
    /// https://api.tunneling.iot.<region>.amazonaws.com.
    #[arg(long, value_name = "URL", requires = "tunnel_api")]
    pub control_plane_endpoint: Option<String>,
}

/// Where the API's operations go.
#[derive(Debug)]
enum Backend {
    /// The local registry.
    Emulator,
    /// AWS's control plane.
    Aws(aws::Aws),
}

/// The API, when it is on.
#[derive(Debug)]
pub(crate) struct TunnelApi {
    backend: Backend,
    operator_header: Option<HeaderName>,
    things: ThingGlobs,
}

impl TunnelApi {
    /// The API the flags ask for; `None` when it is off (relay mode without `--tunnel-api`).
    pub(crate) async fn from_args(
        args: &TunnelApiArgs,
        relay: bool,
        verify_sigv4: bool,
        region: &str,
    ) -> anyhow::Result<Option<Self>> {
        let operator_header = args
            .operator_header
            .as_deref()
            .map(|name| {
                HeaderName::try_from(name).map_err(|_| {
                    anyhow::anyhow!("--operator-header {name:?} is not a valid HTTP header name")
                })
            })
            .transpose()?;
        let things = ThingGlobs::new(&args.allow_thing)?;
        if let Some(url) = &args.control_plane_endpoint
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            anyhow::bail!("--control-plane-endpoint {url:?} must be an http:// or https:// URL");
        }
        let backend = match (relay, args.tunnel_api) {
            // The API checks no signature: on by itself it would bypass --verify-sigv4.
            (false, false) if verify_sigv4 => return Ok(None),
            (false, _) => Backend::Emulator,
            (true, false) => return Ok(None),
            (true, true) => {
                Backend::Aws(aws::Aws::new(region, args.control_plane_endpoint.as_deref()).await)
            }
        };
        Ok(Some(Self {
            backend,
            operator_header,
            things,
        }))
    }

    /// Whether the API calls AWS (relay mode).
    pub(crate) fn is_relay(&self) -> bool {
        matches!(self.backend, Backend::Aws(_))
    }

    /// Whether requests must name their operator.
    pub(crate) fn has_operator_header(&self) -> bool {
        self.operator_header.is_some()
    }
}

/// `POST /api/tunnels/{op}`.
pub(crate) async fn handle(
    State(state): State<AppState>,
    Path(op): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut audit = Audit {
        op: Op::from_path(&op),
        ..Audit::default()
    };
    let result = serve(&state, &op, &method, &headers, &body, &mut audit).await;
    let line = audit.line(result.as_ref().map(drop).map_err(|e| e.code));
    tracing::info!(target: "burrow::audit", "{line}");
    let (status, body) = match result {
        Ok(value) => (StatusCode::OK, value),
        Err(err) => (err.status, err.body()),
    };
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Answers carry access tokens: never kept by a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The checks in the contract's order, then the operation.
async fn serve(
    state: &AppState,
    op: &str,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    let Some(api) = &state.tunnel_api else {
        return Err(ApiError::api_off());
    };
    if let Some(name) = &api.operator_header {
        audit.operator = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    if method != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "Use POST with a JSON body",
        ));
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !origin.is_some_and(|o| state.origins.allows(o)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Origin missing or not allowed: use the page this server serves (or add its origin with --allow-origin)",
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Send Content-Type: application/json",
        ));
    }
    if let Some(name) = &api.operator_header
        && audit
            .operator
            .as_deref()
            .is_none_or(|v| v.trim().is_empty())
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthenticated",
            format!(
                "No operator identity (header {name}): sign in through the proxy in front of this server"
            ),
        ));
    }
    let Some(op) = audit.op else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "No operation {}: use open, list, describe, rotate or close",
                super::control_plane::echo(op)
            ),
        ));
    };
    let request = core::parse(op, body)?;
    execute(state, api, request, audit).await
}

async fn execute(
    state: &AppState,
    api: &TunnelApi,
    request: Request,
    audit: &mut Audit,
) -> Result<Value, ApiError> {
    match request {
        Request::Open {
            thing,
            services,
            timeout_minutes,
        } => {
            audit.thing = Some(thing.clone());
            if !api.things.allows(Some(&thing)) {
                return Err(ApiError::thing_not_allowed(Some(&thing)));
            }
            let opened = match &api.backend {
                Backend::Emulator => emulator::open(state, &thing, &services, timeout_minutes),
                Backend::Aws(aws) => aws.open(&thing, &services, timeout_minutes).await,
            }?;
            audit.tunnel = Some(opened.tunnel_id.clone());
            let Opened {
                tunnel_id,
                tunnel_arn,
                source_token,
                region,
            } = opened;
            Ok(json!({
                "tunnelId": tunnel_id,
                "tunnelArn": tunnel_arn,
                "sourceAccessToken": source_token,
                "region": region,
            }))
        }
        Request::List { thing } => {
            audit.thing.clone_from(&thing);
            let mut tunnels = match &api.backend {
                Backend::Emulator => Ok(emulator::list(state, thing.as_deref())),
                Backend::Aws(aws) => aws.list(thing.as_deref()).await,
            }?;
            tunnels.retain(|t| api.things.allows(t.thing_name.as_deref()));
            core::sort(&mut tunnels);
            let tunnels: Vec<Value> = tunnels.iter().map(Tunnel::to_json).collect();
            Ok(json!({ "tunnels": tunnels }))
        }
        Request::Describe { tunnel_id } => {
            let tunnel = allowed_tunnel(state, api, &tunnel_id, audit).await?;
            Ok(json!({ "tunnel": tunnel.to_json() }))
        }
        Request::Rotate { tunnel_id, mode } => {
            let tunnel = allowed_tunnel(state, api, &tunnel_id, audit).await?;
            if !tunnel.open {
                return Err(ApiError::closed(&tunnel_id));
            }
            let token = match &api.backend {
                Backend::Emulator => emulator::rotate(state, &tunnel, mode),
                Backend::Aws(aws) => aws.rotate(&tunnel, mode).await,
            }?;
            Ok(json!({ "sourceAccessToken": token }))
        }
        Request::Close { tunnel_id } => {
            allowed_tunnel(state, api, &tunnel_id, audit).await?;
            match &api.backend {
                Backend::Emulator => emulator::close(state, &tunnel_id),
                Backend::Aws(aws) => aws.close(&tunnel_id).await,
            }?;
            Ok(json!({}))
        }
    }
}

/// The tunnel, if its thing is one this server may serve.
async fn allowed_tunnel(
    state: &AppState,
    api: &TunnelApi,
    tunnel_id: &str,
    audit: &mut Audit,
) -> Result<Tunnel, ApiError> {
    audit.tunnel = Some(tunnel_id.to_owned());
    let tunnel: Result<Tunnel, BackendError> = match &api.backend {
        Backend::Emulator => emulator::describe(state, tunnel_id),
        Backend::Aws(aws) => aws.describe(tunnel_id).await,
    };
    let tunnel = tunnel?;
    audit.thing.clone_from(&tunnel.thing_name);
    if !api.things.allows(tunnel.thing_name.as_deref()) {
        return Err(ApiError::thing_not_allowed(tunnel.thing_name.as_deref()));
    }
    Ok(tunnel)
}
