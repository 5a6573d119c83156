//! The tunnel API's relay-mode backend: AWS IoT Secure Tunneling's own control plane, through
//! AWS's SDK (`aws-sdk-iotsecuretunneling`), SigV4-signed with the server's credentials from
//! AWS's standard chain (`aws-config`: environment, shared config and credentials files with
//! profiles, web identity, ECS container and EC2 instance roles). The endpoint is
//! `https://api.tunneling.iot.<region>.amazonaws.com` unless `--control-plane-endpoint` names
//! another. The SDK's HTTP client runs on rustls with ring, like the rest of the server.
//!
//! AWS holds the tunnels: this backend keeps no state, so several relays can serve one fleet.

use std::time::Duration;

use aws_sdk_iotsecuretunneling::Client;
use aws_sdk_iotsecuretunneling::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_iotsecuretunneling::types::{
    ClientMode, ConnectionState, ConnectionStatus, DestinationConfig, TimeoutConfig, TunnelStatus,
    TunnelSummary,
};
use futures_util::StreamExt as _;

use super::core::{BackendError, Opened, Rotation, Tunnel};

/// How long one call may take, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
/// The most tunnels a list describes (one DescribeTunnel each, for the connection states).
const LIST_LIMIT: usize = 50;
/// The most tunnel summaries a list reads (ListTunnels pages of 100).
const SUMMARY_LIMIT: usize = 500;
/// DescribeTunnel calls in flight at once during a list.
const DESCRIBES_AT_ONCE: usize = 4;

/// The client of AWS's control plane.
#[derive(Debug, Clone)]
pub(crate) struct Aws {
    client: Client,
    region: String,
}

impl Aws {
    /// Loads the credential chain's configuration; credentials themselves are fetched (and
    /// refreshed) when a call needs them.
    pub(crate) async fn new(region: &str, endpoint: Option<&str>) -> Self {
        use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .http_client(http)
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(OPERATION_TIMEOUT)
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
            region: region.to_owned(),
        }
    }

    pub(super) async fn open(
        &self,
        thing: &str,
        services: &[String],
        timeout_minutes: u32,
    ) -> Result<Opened, BackendError> {
        let destination = DestinationConfig::builder()
            .thing_name(thing)
            .set_services(Some(services.to_vec()))
            .build()
            .map_err(|err| BackendError::Invalid(err.to_string()))?;
        let out = self
            .client
            .open_tunnel()
            .destination_config(destination)
            .timeout_config(
                TimeoutConfig::builder()
                    .max_lifetime_timeout_minutes(i32::try_from(timeout_minutes).unwrap_or(720))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_error)?;
        let field = |value: Option<&str>, name: &str| {
            value
                .map(str::to_owned)
                .ok_or_else(|| BackendError::Upstream(format!("OpenTunnel answered no {name}")))
        };
        Ok(Opened {
            tunnel_id: field(out.tunnel_id(), "tunnelId")?,
            tunnel_arn: field(out.tunnel_arn(), "tunnelArn")?,
            source_token: field(out.source_access_token(), "sourceAccessToken")?,
            region: self.region.clone(),
        })
    }

    /// ListTunnels (up to [`SUMMARY_LIMIT`] summaries, open and newest first), then one
    /// DescribeTunnel each for the first [`LIST_LIMIT`], a few at a time (AWS throttles).
    pub(super) async fn list(&self, thing: Option<&str>) -> Result<Vec<Tunnel>, BackendError> {
        let mut summaries = Vec::new();
        let mut next_token = None;
        loop {
            let out = self
                .client
                .list_tunnels()
                .set_thing_name(thing.map(str::to_owned))
                .max_results(100)
                .set_next_token(next_token)
                .send()
                .await
                .map_err(sdk_error)?;
            summaries.extend(out.tunnel_summaries().iter().cloned());
            next_token = out.next_token().map(str::to_owned);
            if next_token.is_none() || summaries.len() >= SUMMARY_LIMIT {
                break;
            }
        }
        let key = |s: &TunnelSummary| {
            (
                s.status() == Some(&TunnelStatus::Open),
                s.created_at().map_or(0.0, |d| d.as_secs_f64()),
            )
        };
        summaries.sort_by(|a, b| {
            let (a, b) = (key(a), key(b));
            b.0.cmp(&a.0).then(b.1.total_cmp(&a.1))
        });
        let ids: Vec<String> = summaries
            .iter()
            .filter_map(|s| s.tunnel_id().map(str::to_owned))
            .take(LIST_LIMIT)
            .collect();
        let described: Vec<Result<Tunnel, BackendError>> = futures_util::stream::iter(
            ids.into_iter()
                .map(|id| async move { self.describe(&id).await }),
        )
        .buffered(DESCRIBES_AT_ONCE)
        .collect()
        .await;
        let mut tunnels = Vec::with_capacity(described.len());
        for tunnel in described {
            match tunnel {
                Ok(tunnel) => tunnels.push(tunnel),
                // Deleted since the list was made.
                Err(BackendError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(tunnels)
    }

    pub(super) async fn describe(&self, tunnel_id: &str) -> Result<Tunnel, BackendError> {
        let out = self
            .client
            .describe_tunnel()
            .tunnel_id(tunnel_id)
            .send()
            .await
            .map_err(sdk_error)?;
        let t = out
            .tunnel()
            .ok_or_else(|| BackendError::Upstream("DescribeTunnel answered no tunnel".into()))?;
        let connected = |state: Option<&ConnectionState>| {
            state.and_then(ConnectionState::status) == Some(&ConnectionStatus::Connected)
        };
        let created_at = t.created_at().map_or(0.0, |d| d.as_secs_f64());
        let lifetime = t
            .timeout_config()
            .and_then(TimeoutConfig::max_lifetime_timeout_minutes)
            .unwrap_or(720);
        let destination = t.destination_config();
        Ok(Tunnel {
            tunnel_id: t.tunnel_id().unwrap_or(tunnel_id).to_owned(),
            tunnel_arn: t.tunnel_arn().unwrap_or_default().to_owned(),
            open: t.status() == Some(&TunnelStatus::Open),
            thing_name: destination
                .and_then(DestinationConfig::thing_name)
                .map(str::to_owned),
            services: destination.map_or_else(Vec::new, |d| d.services().to_vec()),
            source_connected: connected(t.source_connection_state()),
            destination_connected: connected(t.destination_connection_state()),
            created_at,
            expires_at: created_at + f64::from(lifetime) * 60.0,
        })
    }

    /// With ALL, the tunnel's destination configuration goes with the call, so that AWS
    /// notifies the thing of its new token.
    pub(super) async fn rotate(
        &self,
        tunnel: &Tunnel,
        mode: Rotation,
    ) -> Result<String, BackendError> {
        let mut call = self
            .client
            .rotate_tunnel_access_token()
            .tunnel_id(&tunnel.tunnel_id);
        call = match mode {
            Rotation::Source => call.client_mode(ClientMode::Source),
            Rotation::All => call.client_mode(ClientMode::All),
        };
        if let (Rotation::All, Some(thing)) = (mode, &tunnel.thing_name)
            && !tunnel.services.is_empty()
        {
            let destination = DestinationConfig::builder()
                .thing_name(thing)
                .set_services(Some(tunnel.services.clone()))
                .build()
                .map_err(|err| BackendError::Invalid(err.to_string()))?;
            call = call.destination_config(destination);
        }
        let out = call.send().await.map_err(sdk_error)?;
        out.source_access_token().map(str::to_owned).ok_or_else(|| {
            BackendError::Upstream("RotateTunnelAccessToken answered no source token".into())
        })
    }

    pub(super) async fn close(&self, tunnel_id: &str) -> Result<(), BackendError> {
        self.client
            .close_tunnel()
            .tunnel_id(tunnel_id)
            .send()
            .await
            .map(drop)
            .map_err(sdk_error)
    }
}

/// AWS's refusal (its error type and message), or why the call did not get through.
fn sdk_error<E, R>(err: SdkError<E, R>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err.code() {
        Some(code) => BackendError::from_aws(code, err.message().unwrap_or_default()),
        None => BackendError::Upstream(super::core::echo_long(
            &DisplayErrorContext(&err).to_string(),
        )),
    }
}
