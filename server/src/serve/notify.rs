//! Tunnel notifications: with `--mqtt`, the emulator tells a thing about its new destination
//! token as AWS IoT Secure Tunneling does, by publishing
//! `{"clientAccessToken","clientMode":"destination","region","services"}` to
//! `$aws/things/<thing>/tunnels/notify` with QoS 1.
//!
//! A broker that is down never fails the API call that caused a notification (AWS does not
//! fail it either): [`Notifier::notify`] only queues the message. The client's event loop keeps
//! reconnecting with back-off, logs the outage once and the recovery once, and sends what was
//! queued (and re-sends what was not acknowledged) when the broker is back. At most
//! [`PENDING_LIMIT`] notifications wait; past that a new one is dropped with a warning.
//! Tokens never appear in a log line: only the thing and the services do.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};

use crate::mqtt::{Broker, MqttError, Notification, TlsBridge, notify_topic};

/// Notifications queued at most while the broker is unreachable.
pub(crate) const PENDING_LIMIT: usize = 1000;
/// The first wait before reconnecting to the broker.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest wait before reconnecting.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// The publisher (see the module documentation).
pub(crate) struct Notifier {
    client: AsyncClient,
    broker: String,
    _bridge: Option<TlsBridge>,
}

impl Notifier {
    /// Starts the client and its event loop; it connects in the background.
    pub(crate) fn start(broker: &Broker) -> Result<Self, MqttError> {
        let client_id = format!("burrow-serve-{:08x}", rand::random::<u32>());
        let (mut options, bridge) = broker.options(&client_id)?;
        options
            .set_clean_session(true)
            .set_request_channel_capacity(PENDING_LIMIT);
        let (client, mut events) = AsyncClient::new(options, PENDING_LIMIT);
        let shown = broker.to_string();
        let name = shown.clone();
        tokio::spawn(async move {
            let mut delay = BACKOFF_START;
            let mut down = false;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!(broker = %name, "connected to the MQTT broker");
                        down = false;
                        delay = BACKOFF_START;
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        tracing::debug!(packet = ack.pkid, "notification acknowledged");
                    }
                    Ok(_) => {}
                    Err(err) => {
                        if !down {
                            tracing::warn!(broker = %name, %err, "MQTT broker unreachable; notifications wait until it is back");
                            down = true;
                        }
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(BACKOFF_CAP);
                    }
                }
            }
        });
        Ok(Self {
            client,
            broker: shown,
            _bridge: bridge,
        })
    }

    /// The broker, for the startup log.
    pub(crate) fn broker(&self) -> &str {
        &self.broker
    }

    /// Queues a destination-token notification for `thing`. Never blocks, never fails the
    /// caller: a full queue drops the message with a warning.
    pub(crate) fn notify(&self, thing: &str, token: &str, region: &str, services: &[String]) {
        let payload = Notification {
            client_access_token: token.to_owned(),
            client_mode: "destination".into(),
            region: region.to_owned(),
            services: services.to_vec(),
        };
        let Ok(bytes) = serde_json::to_vec(&payload) else {
            return;
        };
        match self
            .client
            .try_publish(notify_topic(thing), QoS::AtLeastOnce, false, bytes)
        {
            Ok(()) => tracing::info!(thing, ?services, "tunnel notification queued"),
            Err(_) => tracing::warn!(
                thing,
                "too many notifications waiting for the MQTT broker; this one is dropped"
            ),
        }
    }
}
