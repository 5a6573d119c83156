//! `burrow agent --mode destination --thing NAME --mqtt URL`: a device agent that gets its
//! tokens by itself, as AWS's device client does.
//!
//! It subscribes (QoS 1, persistent session: `clean_session = false`, client id the thing name
//! unless `--client-id`) to `$aws/things/NAME/tunnels/notify`. Each notification with
//! `clientMode` destination starts one destination session with its token, through the same
//! reconnect loop and session code as a `-t` agent ([`super::serve_tunnel`]), to `--endpoint`
//! when given, else to AWS's data plane of the notification's region. The notified services go
//! to the `-d` mappings; `SSH` defaults to `127.0.0.1:22`; a service with no mapping is logged
//! and refused.
//!
//! Several tunnels are served at once, each with its own session. The payload names no tunnel,
//! so a rotated token replaces its tunnel's connection through the service: the new session
//! takes the destination side over, the old one is closed and its token refused, and that
//! session ends. A closed tunnel ends its session the same way; the agent keeps waiting. The
//! same token notified twice (QoS 1 may redeliver) is served once. A lost broker is reconnected
//! with back-off and the subscription renewed; the broker keeps what was published meanwhile
//! for the persistent session. Malformed or foreign payloads are logged and ignored; tokens are
//! never logged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use burrow_proto::{Format, Role, StreamIdPlan};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::mapping::DestinationMapping;
use super::session::Setup;
use super::{
    BACKOFF_CAP, BACKOFF_START, HANDSHAKE_TIMEOUT, LOCAL_CONNECT_TIMEOUT, Plan, jittered,
    random_client_token, ready_line,
};
use crate::mqtt::{Broker, Notification, data_plane_endpoint, notify_topic};
use crate::wsclient::ConnectOptions;

/// The local service `SSH` goes to without a `-d SSH=…` mapping (AWS's device client's default).
const DEFAULT_SSH: &str = "127.0.0.1:22";
/// The largest notification payload looked at.
const MAX_PAYLOAD: usize = 16 * 1024;

/// The thing the agent waits for.
#[derive(Debug)]
pub(super) struct Thing {
    /// Its name (the topic's).
    pub name: String,
    /// The MQTT client id.
    pub client_id: String,
    /// The broker.
    pub broker: Broker,
}

/// What every tunnel's session needs from the flags, owned so that sessions run as tasks.
#[derive(Debug)]
struct Settings {
    format: Format,
    endpoint: Option<String>,
    client_token: Option<String>,
    destinations: Vec<DestinationMapping>,
    insecure: bool,
    ping_interval: Duration,
    max_connections_per_stream: usize,
    max_connections: usize,
    /// `--device-client-rules`.
    device_client: bool,
}

/// The mappings for a tunnel's notified services, and the services nothing serves.
fn mappings_for(
    services: &[String],
    given: &[DestinationMapping],
    format: Format,
) -> (Vec<DestinationMapping>, Vec<String>) {
    let mut mapped = Vec::new();
    let mut refused = Vec::new();
    for service in services {
        let target = given
            .iter()
            .find(|m| m.service.as_deref() == Some(service.as_str()))
            .or_else(|| match given {
                [only] if only.service.is_none() && services.len() == 1 => Some(only),
                _ => None,
            })
            .map(|m| m.target.clone())
            .or_else(|| (service == "SSH").then(|| DEFAULT_SSH.to_owned()));
        match target {
            Some(target) => mapped.push(DestinationMapping {
                service: Some(service.clone()),
                target,
            }),
            None => refused.push(service.clone()),
        }
    }
    if format == Format::V1 {
        // V1 carries one service and no service ids.
        mapped.truncate(1);
        for m in &mut mapped {
            m.service = None;
        }
    }
    (mapped, refused)
}

/// Why a payload is not served.
#[derive(Debug, thiserror::Error)]
enum Ignored {
    #[error("not a tunnel notification ({0})")]
    Malformed(String),
    #[error("client mode {0:?} is not destination")]
    Mode(String),
    #[error("the access token is empty")]
    EmptyToken,
    #[error("region {0:?} has no data plane (and no --endpoint was given)")]
    Region(String),
    #[error("none of the services {0:?} is mapped (give -d SVC=HOST:PORT)")]
    NoService(Vec<String>),
}

/// Runs until interrupted.
pub(super) async fn run(
    plan: &Plan,
    thing: &Thing,
    mut subscribed: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let settings = Arc::new(Settings {
        format: plan.format,
        endpoint: plan.endpoint.clone(),
        client_token: None,
        destinations: plan.destinations.clone(),
        insecure: plan.insecure,
        ping_interval: plan.ping_interval,
        max_connections_per_stream: plan.max_connections_per_stream,
        max_connections: plan.max_connections,
        device_client: plan.device_client,
    });
    let topic = notify_topic(&thing.name);
    let (mut options, _bridge) = thing.broker.options(&thing.client_id)?;
    options.set_clean_session(false);
    let (client, mut events) = AsyncClient::new(options, 16);
    tracing::info!(thing = %thing.name, broker = %thing.broker, "waiting for tunnel notifications");
    let mut sessions: JoinSet<[u8; 32]> = JoinSet::new();
    let mut serving: HashMap<[u8; 32], u64> = HashMap::new();
    let mut count = 0u64;
    let mut delay = BACKOFF_START;
    let mut down = false;
    loop {
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(broker = %thing.broker, session_present = ack.session_present, "connected to the MQTT broker");
                    down = false;
                    delay = BACKOFF_START;
                    if let Err(err) = client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(%err, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        tracing::error!(%topic, "the broker refused the subscription (check the thing's policy)");
                    } else {
                        ready_line(&format!("waiting for tunnels of {} on {}", thing.name, thing.broker));
                        if let Some(tell) = subscribed.take() {
                            let _ = tell.send(());
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if publish.topic != topic {
                        tracing::warn!(topic = %crate::mqtt::shown(&publish.topic), "message on a foreign topic ignored");
                        continue;
                    }
                    match accept(&settings, &publish.payload) {
                        Err(why) => tracing::warn!(%why, "notification ignored"),
                        Ok((notification, endpoint, mapped, refused)) => {
                            let hash: [u8; 32] = Sha256::digest(notification.client_access_token.as_bytes()).into();
                            if let Some(n) = serving.get(&hash) {
                                tracing::info!(tunnel = n, "notification repeated; already serving its token");
                                continue;
                            }
                            count += 1;
                            if !refused.is_empty() {
                                tracing::warn!(services = ?refused, "no mapping for these services; their connections will be refused (give -d SVC=HOST:PORT)");
                            }
                            let services: Vec<String> = notification.services.clone();
                            ready_line(&format!("tunnel #{count} notified (services: {})", services.join(",")));
                            tracing::info!(tunnel = count, %endpoint, ?services, "tunnel notification received");
                            serving.insert(hash, count);
                            sessions.spawn(serve_notified(settings.clone(), count, endpoint, notification, mapped, hash));
                        }
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    if !down {
                        tracing::warn!(broker = %thing.broker, %err, "MQTT broker lost; reconnecting");
                        down = true;
                    } else {
                        tracing::debug!(%err, "MQTT broker still unreachable");
                    }
                    tokio::time::sleep(jittered(delay)).await;
                    delay = (delay * 2).min(BACKOFF_CAP);
                }
            },
            Some(ended) = sessions.join_next() => {
                if let Ok(hash) = ended {
                    serving.remove(&hash);
                }
            }
        }
    }
}

/// Checks a payload and works out where its session goes.
#[allow(clippy::type_complexity)]
fn accept(
    settings: &Settings,
    payload: &[u8],
) -> Result<(Notification, String, Vec<DestinationMapping>, Vec<String>), Ignored> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Ignored::Malformed(format!("{} bytes", payload.len())));
    }
    let notification: Notification = serde_json::from_slice(payload)
        .map_err(|err| Ignored::Malformed(crate::mqtt::shown(&err.to_string())))?;
    if !notification.client_mode.eq_ignore_ascii_case("destination") {
        return Err(Ignored::Mode(crate::mqtt::shown(&notification.client_mode)));
    }
    if notification.client_access_token.trim().is_empty() {
        return Err(Ignored::EmptyToken);
    }
    let endpoint = match &settings.endpoint {
        Some(endpoint) => endpoint.clone(),
        None => data_plane_endpoint(&notification.region)
            .ok_or_else(|| Ignored::Region(crate::mqtt::shown(&notification.region)))?,
    };
    let (mapped, refused) = mappings_for(
        &notification.services,
        &settings.destinations,
        settings.format,
    );
    if mapped.is_empty() {
        return Err(Ignored::NoService(
            refused.iter().map(|s| crate::mqtt::shown(s)).collect(),
        ));
    }
    Ok((notification, endpoint, mapped, refused))
}

/// One notified tunnel: the usual reconnect loop until its token is refused for good.
async fn serve_notified(
    settings: Arc<Settings>,
    number: u64,
    endpoint: String,
    notification: Notification,
    destinations: Vec<DestinationMapping>,
    hash: [u8; 32],
) -> [u8; 32] {
    let setup = Setup {
        role: Role::Destination,
        format: settings.format,
        destinations: &destinations,
        sources: &[],
        ping_interval: settings.ping_interval,
        connect_timeout: LOCAL_CONNECT_TIMEOUT,
        max_connections_per_stream: settings.max_connections_per_stream,
        max_connections: settings.max_connections,
        device_client: settings.device_client,
    };
    let client_token = settings
        .client_token
        .clone()
        .unwrap_or_else(random_client_token);
    let options = ConnectOptions {
        endpoint: &endpoint,
        role: Role::Destination,
        token: &notification.client_access_token,
        // The Device Client redials without one: a used token is then refused.
        client_token: (!settings.device_client).then_some(client_token.as_str()),
        insecure: settings.insecure,
        timeout: HANDSHAKE_TIMEOUT,
    };
    // A destination accepts no local sockets: nobody sends on this channel.
    let (_, mut accepted) = mpsc::channel(1);
    let mut stream_ids = StreamIdPlan::new(rand::random());
    let end = super::serve_tunnel(&options, &setup, &mut accepted, &mut stream_ids).await;
    tracing::info!(tunnel = number, reason = %end, "the tunnel's session ended; still waiting for notifications");
    ready_line(&format!("tunnel #{number} ended"));
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(service: Option<&str>, target: &str) -> DestinationMapping {
        DestinationMapping {
            service: service.map(str::to_owned),
            target: target.to_owned(),
        }
    }

    #[test]
    fn notified_services_find_their_mappings() {
        let services = vec!["SSH".to_owned(), "WEB".to_owned(), "VNC".to_owned()];
        let given = [m(Some("WEB"), "127.0.0.1:8080")];
        let (mapped, refused) = mappings_for(&services, &given, Format::V3);
        assert_eq!(
            mapped,
            vec![
                m(Some("SSH"), DEFAULT_SSH),
                m(Some("WEB"), "127.0.0.1:8080")
            ]
        );
        assert_eq!(refused, vec!["VNC".to_owned()]);
        let (mapped, _) =
            mappings_for(&["SSH".to_owned()], &[m(None, "10.0.0.2:2222")], Format::V3);
        assert_eq!(mapped, vec![m(Some("SSH"), "10.0.0.2:2222")]);
        let (mapped, _) = mappings_for(&["SSH".to_owned()], &[], Format::V1);
        assert_eq!(mapped, vec![m(None, DEFAULT_SSH)]);
    }

    #[test]
    fn payloads_are_checked() {
        let settings = Settings {
            format: Format::V3,
            endpoint: None,
            client_token: None,
            destinations: Vec::new(),
            insecure: false,
            ping_interval: Duration::from_secs(20),
            max_connections_per_stream: 1,
            max_connections: 1,
            device_client: false,
        };
        let good = br#"{"clientAccessToken":"tok","clientMode":"destination","region":"eu-west-1","services":["SSH"]}"#;
        let (_, endpoint, mapped, _) = accept(&settings, good).expect("served");
        assert_eq!(endpoint, "wss://data.tunneling.iot.eu-west-1.amazonaws.com");
        assert_eq!(mapped.len(), 1);
        for bad in [
            &b"not json"[..],
            br#"{"clientAccessToken":"tok","clientMode":"source","region":"eu-west-1","services":["SSH"]}"#,
            br#"{"clientAccessToken":" ","clientMode":"destination","region":"eu-west-1","services":["SSH"]}"#,
            br#"{"clientAccessToken":"tok","clientMode":"destination","region":"x.evil/","services":["SSH"]}"#,
            br#"{"clientAccessToken":"tok","clientMode":"destination","region":"eu-west-1","services":["VNC"]}"#,
        ] {
            assert!(accept(&settings, bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
