//! The MQTT side shared by `burrow serve --mqtt` (which publishes tunnel notifications) and
//! `burrow agent --thing` (which waits for them): the broker flags, the notification payload
//! AWS IoT Secure Tunneling sends on `$aws/things/<thing>/tunnels/notify`, and the client
//! options for `rumqttc`.
//!
//! `mqtt://HOST:PORT` is plain MQTT. `mqtts://HOST:PORT` is MQTT over TLS with our own rustls
//! client configuration (the CA of `--mqtt-ca`, or the public web roots, which include Amazon's;
//! the client certificate and key of `--mqtt-cert`/`--mqtt-key`, as AWS IoT Core requires).
//! `rumqttc` is built without its own TLS (that feature pulls in an old `rustls-webpki` with
//! open advisories), so a [`TlsBridge`] carries its bytes: `rumqttc` connects to a Unix socket
//! in a private directory (mode 0700) that only this process knows, and every connection there
//! is dialled on to the broker through TLS. The bridge logs why a TLS connection failed (an
//! unknown CA, a refused client certificate), which MQTT alone would only see as a closed
//! socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::{TcpStream, UnixListener};

/// How long dialling the broker (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// MQTT keep-alive: AWS IoT Core allows 30 to 1200 seconds.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The largest MQTT packet either side accepts (a notification is well under 2 KiB).
const MAX_PACKET: usize = 64 * 1024;

/// The broker flags, shared by `serve` and `agent`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MqttArgs {
    /// The MQTT broker: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (e.g. AWS IoT Core's
    /// mqtts://PREFIX-ats.iot.REGION.amazonaws.com:8883).
    #[arg(long = "mqtt", value_name = "URL")]
    pub url: Option<String>,
    /// mqtts: the CA certificate(s) (PEM file) that signed the broker's certificate (e.g.
    /// AmazonRootCA1.pem); without it the public web roots are trusted.
    #[arg(long, value_name = "PEM", requires = "url")]
    pub mqtt_ca: Option<PathBuf>,
    /// mqtts: this client's certificate chain (PEM file), for brokers that require client
    /// certificates (AWS IoT Core does); needs --mqtt-key.
    #[arg(long, value_name = "PEM", requires = "mqtt_key")]
    pub mqtt_cert: Option<PathBuf>,
    /// mqtts: the private key (PEM file) of --mqtt-cert.
    #[arg(long, value_name = "PEM", requires = "mqtt_cert")]
    pub mqtt_key: Option<PathBuf>,
}

/// Why the broker flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The URL is not mqtt:// or mqtts:// with a host and port.
    #[error("--mqtt {0:?}: expected mqtt://HOST:PORT or mqtts://HOST:PORT")]
    Url(String),
    /// TLS files were given for plain MQTT.
    #[error("--mqtt-ca, --mqtt-cert and --mqtt-key need an mqtts:// broker")]
    TlsFilesWithoutTls,
    /// A PEM file cannot be read or holds nothing usable.
    #[error("cannot use {path}: {why}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the material.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The bridge's socket cannot be made.
    #[error("cannot set up the TLS bridge: {0}")]
    Bridge(#[from] std::io::Error),
}

/// A checked broker.
#[derive(Clone)]
pub(crate) struct Broker {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|err| MqttError::Pem {
        path: path.display().to_string(),
        why: err.to_string(),
    })
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, MqttError> {
    use rustls::pki_types::pem::PemObject as _;
    let pem = read_pem(path)?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| MqttError::Pem {
            path: path.display().to_string(),
            why: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(MqttError::Pem {
            path: path.display().to_string(),
            why: "no CERTIFICATE in it".into(),
        });
    }
    Ok(certs)
}

impl Broker {
    /// The broker of the flags, `None` without `--mqtt`.
    pub(crate) fn from_args(args: &MqttArgs) -> Result<Option<Self>, MqttError> {
        let Some(url) = &args.url else {
            return Ok(None);
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(MqttError::Url(url.clone()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().ok()),
            None => (rest, Some(if tls { 8883 } else { 1883 })),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.filter(|p| *p != 0);
        let (Some(port), false) = (port, host.is_empty() || host.contains('/')) else {
            return Err(MqttError::Url(url.clone()));
        };
        if !tls && (args.mqtt_ca.is_some() || args.mqtt_cert.is_some()) {
            return Err(MqttError::TlsFilesWithoutTls);
        }
        let tls = if tls {
            Some(Arc::new(client_config(args)?))
        } else {
            None
        };
        Ok(Some(Self {
            host: host.to_owned(),
            port,
            tls,
        }))
    }

    /// `rumqttc` options for `client_id`, and the bridge they need (for mqtts), which must live
    /// as long as the client.
    pub(crate) fn options(
        &self,
        client_id: &str,
    ) -> Result<(rumqttc::MqttOptions, Option<TlsBridge>), MqttError> {
        let (mut options, bridge) = match &self.tls {
            None => (
                rumqttc::MqttOptions::new(client_id, self.host.clone(), self.port),
                None,
            ),
            Some(config) => {
                let bridge = TlsBridge::start(self.host.clone(), self.port, config.clone())?;
                let mut options =
                    rumqttc::MqttOptions::new(client_id, bridge.socket.display().to_string(), 0);
                options.set_transport(rumqttc::Transport::Unix);
                (options, Some(bridge))
            }
        };
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        Ok((options, bridge))
    }
}

fn client_config(args: &MqttArgs) -> Result<rustls::ClientConfig, MqttError> {
    let mut roots = rustls::RootCertStore::empty();
    match &args.mqtt_ca {
        Some(path) => {
            for cert in certs(path)? {
                roots.add(cert)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&args.mqtt_cert, &args.mqtt_key) {
        (Some(cert), Some(key)) => {
            use rustls::pki_types::pem::PemObject as _;
            let chain = certs(cert)?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&read_pem(key)?).map_err(
                |err| MqttError::Pem {
                    path: key.display().to_string(),
                    why: format!("no usable private key: {err}"),
                },
            )?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Carries `rumqttc`'s connections from a private Unix socket to the broker through TLS (see
/// the module documentation). Dropping it stops it and removes its directory.
pub(crate) struct TlsBridge {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::AbortHandle,
}

impl Drop for TlsBridge {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl TlsBridge {
    fn start(
        host: String,
        port: u16,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Self, MqttError> {
        use std::os::unix::fs::DirBuilderExt as _;
        let name = format!(
            "burrow-mqtt-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let socket = dir.join("broker.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(listener) => listener,
            Err(err) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(err.into());
            }
        };
        let server_name = match rustls::pki_types::ServerName::try_from(host.clone()) {
            Ok(name) => name,
            Err(_) => {
                let _ = std::fs::remove_file(&socket);
                let _ = std::fs::remove_dir(&dir);
                return Err(MqttError::Url(format!("mqtts://{host}:{port}")));
            }
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut local, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let connector = connector.clone();
                let server_name = server_name.clone();
                let host = host.clone();
                tokio::spawn(async move {
                    let dial = async {
                        let tcp = TcpStream::connect((host.as_str(), port)).await?;
                        let _ = tcp.set_nodelay(true);
                        connector.connect(server_name, tcp).await
                    };
                    match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
                        Ok(Ok(mut remote)) => {
                            let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(broker = %format!("{host}:{port}"), %err, "cannot connect to the MQTT broker over TLS");
                        }
                        Err(_) => {
                            tracing::warn!(broker = %format!("{host}:{port}"), "connecting to the MQTT broker over TLS timed out");
                        }
                    }
                });
            }
        })
        .abort_handle();
        Ok(Self { dir, socket, task })
    }
}

/// `value` fit for a log line: at most 60 characters, control characters escaped (a payload
/// from the broker is anybody's input).
pub(crate) fn shown(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(60)
        .flat_map(|c| {
            if c.is_control() {
                format!("\\u{{{:x}}}", u32::from(c))
                    .chars()
                    .collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if value.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// The topic AWS IoT Secure Tunneling notifies a thing on.
pub(crate) fn notify_topic(thing: &str) -> String {
    format!("$aws/things/{thing}/tunnels/notify")
}

/// Whether `name` is a valid AWS IoT thing name (`[a-zA-Z0-9:_-]+`, 1 to 128 characters), and
/// so also safe as an MQTT client id and in a topic.
pub(crate) fn is_valid_thing_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-'))
}

/// A tunnel notification, as AWS publishes it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Notification {
    /// The access token for `client_mode`.
    pub client_access_token: String,
    /// `destination` (the only mode AWS notifies).
    pub client_mode: String,
    /// The tunnel's region.
    pub region: String,
    /// The tunnel's services.
    pub services: Vec<String>,
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("client_access_token", &"<redacted>")
            .field("client_mode", &self.client_mode)
            .field("region", &self.region)
            .field("services", &self.services)
            .finish()
    }
}

/// The data plane of a region: `wss://data.tunneling.iot.REGION.amazonaws.com` (`.com.cn` for
/// the China regions), or `None` for a region name that cannot be one.
pub(crate) fn data_plane_endpoint(region: &str) -> Option<String> {
    let valid = (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-');
    if !valid {
        return None;
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Some(format!("wss://data.tunneling.iot.{region}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: &str) -> MqttArgs {
        MqttArgs {
            url: Some(url.to_owned()),
            ..MqttArgs::default()
        }
    }

    #[test]
    fn broker_urls() {
        let b = Broker::from_args(&args("mqtt://127.0.0.1:1883")).expect("valid");
        assert_eq!(b.expect("some").to_string(), "mqtt://127.0.0.1:1883");
        let b = Broker::from_args(&args("mqtt://broker.local")).expect("valid");
        assert_eq!(b.expect("some").to_string(), "mqtt://broker.local:1883");
        let b = Broker::from_args(&args("mqtts://a-ats.iot.eu-west-1.amazonaws.com:8883"))
            .expect("valid")
            .expect("some");
        assert!(b.tls.is_some());
        for bad in [
            "http://x:1",
            "mqtt://:1883",
            "mqtt://x:0",
            "mqtt://x:port",
            "x:1883",
        ] {
            assert!(Broker::from_args(&args(bad)).is_err(), "{bad}");
        }
        let mut plain_with_ca = args("mqtt://x:1");
        plain_with_ca.mqtt_ca = Some("/nonexistent".into());
        assert!(matches!(
            Broker::from_args(&plain_with_ca),
            Err(MqttError::TlsFilesWithoutTls)
        ));
        assert!(
            Broker::from_args(&MqttArgs::default())
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn endpoints_per_region() {
        assert_eq!(
            data_plane_endpoint("eu-central-1").as_deref(),
            Some("wss://data.tunneling.iot.eu-central-1.amazonaws.com")
        );
        assert_eq!(
            data_plane_endpoint("cn-north-1").as_deref(),
            Some("wss://data.tunneling.iot.cn-north-1.amazonaws.com.cn")
        );
        assert_eq!(data_plane_endpoint("evil.example/x"), None);
        assert_eq!(data_plane_endpoint(""), None);
    }

    #[test]
    fn notifications_are_aws_shaped_and_hide_their_token() {
        let n = Notification {
            client_access_token: "secret-token".into(),
            client_mode: "destination".into(),
            region: "us-east-1".into(),
            services: vec!["SSH".into()],
        };
        let json = serde_json::to_string(&n).expect("json");
        assert_eq!(
            json,
            r#"{"clientAccessToken":"secret-token","clientMode":"destination","region":"us-east-1","services":["SSH"]}"#
        );
        assert!(!format!("{n:?}").contains("secret-token"));
        assert!(is_valid_thing_name("pump-7:a_b"));
        assert!(
            !is_valid_thing_name("a/b") && !is_valid_thing_name("#") && !is_valid_thing_name("")
        );
    }
}
