//! The client side of the tunneling service's data plane: opening the WebSocket.
//!
//! It builds the `/tunnel?local-proxy-mode=…` request with the `access-token` (and
//! `client-token`) headers and the tunneling subprotocols (3.0, then 2.0, then 1.0), connects over
//! `ws://` or `wss://` (rustls with ring, Mozilla's roots, or no verification at all with
//! `insecure` for a local service's self-signed certificate), and sorts handshake failures into
//! the ones worth retrying (5xx, network) and the ones that are final (4xx).
//!
//! It deliberately knows nothing of the tunneling protocol's frames: the caller gets the
//! WebSocket and drives a `burrow_proto::Endpoint` over it. It never logs the tokens.

use std::sync::Arc;
use std::time::Duration;

use burrow_proto::Role;
use burrow_proto::codec::MAX_WS_MESSAGE_LEN;
use burrow_proto::handshake::{
    ACCESS_TOKEN_HEADER, CHANNEL_ID_HEADER, CLIENT_TOKEN_HEADER, STATUS_REASON_HEADER,
    SUBPROTOCOLS, refusal_reason, tunnel_path,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// A connected data-plane WebSocket.
pub type TunnelSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What to connect to and as whom.
pub struct ConnectOptions<'a> {
    /// `wss://host[:port]`, `ws://host:port`, `https://…`/`http://…` (same as wss/ws), or a bare
    /// `host[:port]` (wss). A path ending in `/tunnel` is kept; any other gets `/tunnel` added.
    pub endpoint: &'a str,
    /// The `local-proxy-mode`.
    pub role: Role,
    /// The tunnel access token (sent in the `access-token` header only).
    pub token: &'a str,
    /// The client token that lets the same access token reconnect.
    pub client_token: Option<&'a str>,
    /// Skip certificate verification (a local service with a self-signed certificate only).
    pub insecure: bool,
    /// How long the TCP connect, TLS and WebSocket handshakes may take together.
    pub timeout: Duration,
}

/// A successful handshake.
pub struct Connected {
    /// The WebSocket, ready for binary messages.
    pub socket: TunnelSocket,
    /// The subprotocol the service chose.
    pub subprotocol: String,
    /// The service's `channel-id` response header, if any (it names the session in logs).
    pub channel_id: Option<String>,
}

/// Why the WebSocket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not a usable URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// What the user gave.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A token cannot be sent in an HTTP header.
    #[error("the {0} contains characters that cannot be sent in an HTTP header")]
    InvalidToken(&'static str),
    /// The service refused the handshake with a 4xx status: retrying the same request is
    /// pointless.
    #[error("the tunneling service refused the connection (HTTP {status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The service's reason (`X-Status-Reason`, else the body, else the status text).
        reason: String,
    },
    /// The service failed with a 5xx status (or an unexpected one): worth retrying later.
    #[error("the tunneling service failed (HTTP {status}): {reason}")]
    ServiceFailed {
        /// The HTTP status.
        status: u16,
        /// The service's reason.
        reason: String,
    },
    /// The service accepted the WebSocket without choosing a tunneling subprotocol.
    #[error("the tunneling service chose no tunneling subprotocol")]
    NoSubprotocol,
    /// The service's TLS certificate is not trusted.
    #[error(
        "the tunneling service's certificate is not trusted ({0}); for a local service with a \
         self-signed certificate, pass --insecure"
    )]
    Certificate(String),
    /// TCP, TLS or WebSocket failure before a response.
    #[error("cannot reach the tunneling service: {0}")]
    Transport(String),
    /// The whole handshake took longer than allowed.
    #[error("the connection to the tunneling service timed out after {0:?}")]
    Timeout(Duration),
}

impl ConnectError {
    /// Whether retrying later may succeed (network trouble, 5xx); 4xx and bad input are final.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::ServiceFailed { .. } | Self::Transport(_) | Self::Timeout(_)
        )
    }
}

/// The `/tunnel` URL for an endpoint and mode.
pub fn tunnel_url(endpoint: &str, role: Role) -> Result<String, ConnectError> {
    let invalid = |reason: &str| ConnectError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = endpoint.trim();
    let (scheme, rest) = match trimmed.split_once("://") {
        Some(("ws" | "http", rest)) => ("ws", rest),
        Some(("wss" | "https", rest)) => ("wss", rest),
        Some((other, _)) => {
            return Err(invalid(&format!(
                "scheme {other:?} is not one of ws, wss, http, https"
            )));
        }
        None => ("wss", trimmed),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(invalid("no host"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("the endpoint must not carry a query or a fragment"));
    }
    let url = format!("{scheme}://{authority}{}", tunnel_path(path, role));
    url.parse::<Uri>()
        .map_err(|err| invalid(&err.to_string()))?;
    Ok(url)
}

/// Opens the data-plane WebSocket.
pub async fn connect(options: &ConnectOptions<'_>) -> Result<Connected, ConnectError> {
    let url = tunnel_url(options.endpoint, options.role)?;
    let mut request =
        url.as_str()
            .into_client_request()
            .map_err(|err| ConnectError::InvalidEndpoint {
                endpoint: options.endpoint.to_owned(),
                reason: err.to_string(),
            })?;
    let headers = request.headers_mut();
    let mut token = HeaderValue::from_str(options.token)
        .map_err(|_| ConnectError::InvalidToken("access token"))?;
    token.set_sensitive(true);
    headers.insert(ACCESS_TOKEN_HEADER, token);
    if let Some(client_token) = options.client_token {
        let mut value = HeaderValue::from_str(client_token)
            .map_err(|_| ConnectError::InvalidToken("client token"))?;
        value.set_sensitive(true);
        headers.insert(CLIENT_TOKEN_HEADER, value);
    }
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&SUBPROTOCOLS.join(", "))
            .map_err(|err| ConnectError::Transport(err.to_string()))?,
    );

    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_LEN))
        .max_frame_size(Some(MAX_WS_MESSAGE_LEN));
    let connector = Connector::Rustls(tls_config(options.insecure)?);
    let attempt = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    let (socket, response) = match tokio::time::timeout(options.timeout, attempt).await {
        Err(_elapsed) => return Err(ConnectError::Timeout(options.timeout)),
        Ok(Err(err)) => return Err(classify(err)),
        Ok(Ok(connected)) => connected,
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let subprotocol = header("sec-websocket-protocol").ok_or(ConnectError::NoSubprotocol)?;
    Ok(Connected {
        socket,
        subprotocol,
        channel_id: header(CHANNEL_ID_HEADER),
    })
}

/// Sorts a handshake error: HTTP responses by status, everything else as transport trouble.
fn classify(err: tokio_tungstenite::tungstenite::Error) -> ConnectError {
    use tokio_tungstenite::tungstenite::Error;
    match err {
        Error::Http(response) => {
            let status = response.status();
            let reason = refusal_reason(
                response
                    .headers()
                    .get(STATUS_REASON_HEADER)
                    .and_then(|value| value.to_str().ok()),
                response.body().as_deref(),
                status.canonical_reason().unwrap_or("no reason"),
            );
            if status.is_client_error() {
                ConnectError::Refused {
                    status: status.as_u16(),
                    reason,
                }
            } else {
                ConnectError::ServiceFailed {
                    status: status.as_u16(),
                    reason,
                }
            }
        }
        other => match certificate_failure(&other) {
            Some(why) => ConnectError::Certificate(why),
            None => ConnectError::Transport(other.to_string()),
        },
    }
}

/// The reason when the service's certificate was not trusted (retrying cannot help).
fn certificate_failure(err: &tokio_tungstenite::tungstenite::Error) -> Option<String> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::TlsError;
    let rustls_error = match err {
        Error::Tls(TlsError::Rustls(inner)) => Some(inner.as_ref()),
        Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }?;
    match rustls_error {
        rustls::Error::InvalidCertificate(why) => Some(format!("{why:?}")),
        _ => None,
    }
}

/// The TLS client configuration: Mozilla's roots, or no verification when `insecure`.
fn tls_config(insecure: bool) -> Result<Arc<ClientConfig>, ConnectError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| ConnectError::Transport(format!("TLS setup: {err}")))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// A certificate verifier that accepts any certificate (for `--insecure` only) but still checks
/// that the handshake signatures are made with the presented certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(endpoint: &str, role: Role, expect: Result<&str, ()>) {
        let got = tunnel_url(endpoint, role);
        match (got, expect) {
            (Ok(url), Ok(want)) => assert_eq!(url, want, "endpoint {endpoint:?}"),
            (Err(_), Err(())) => {}
            (got, want) => panic!("endpoint {endpoint:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn tunnel_urls() {
        check(
            "ws://127.0.0.1:8080",
            Role::Source,
            Ok("ws://127.0.0.1:8080/tunnel?local-proxy-mode=source"),
        );
        check(
            "http://127.0.0.1:8080/",
            Role::Destination,
            Ok("ws://127.0.0.1:8080/tunnel?local-proxy-mode=destination"),
        );
        check(
            "data.tunneling.iot.eu-west-1.amazonaws.com",
            Role::Destination,
            Ok(
                "wss://data.tunneling.iot.eu-west-1.amazonaws.com/tunnel?local-proxy-mode=destination",
            ),
        );
        check(
            "https://example.com/prefix/tunnel",
            Role::Source,
            Ok("wss://example.com/prefix/tunnel?local-proxy-mode=source"),
        );
        check("ftp://example.com", Role::Source, Err(()));
        check("ws://", Role::Source, Err(()));
        check("ws://host/tunnel?x=1", Role::Source, Err(()));
    }

    #[test]
    fn retryable_errors() {
        let refused = ConnectError::Refused {
            status: 400,
            reason: "spent".to_owned(),
        };
        assert!(!refused.is_retryable());
        let failed = ConnectError::ServiceFailed {
            status: 503,
            reason: "busy".to_owned(),
        };
        assert!(failed.is_retryable());
        assert!(ConnectError::Transport("refused".to_owned()).is_retryable());
    }
}
