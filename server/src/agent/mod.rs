//! `burrow agent`: a local proxy like AWS's localproxy, in source or destination mode.
//!
//! - Destination mode connects each connection the tunnel's source opens (STREAM_START, V3
//!   CONNECTION_START) to the mapped local TCP service (`-d [SVC=][HOST:]PORT`) and pumps bytes
//!   both ways; an unreachable service is refused with a reset.
//! - Source mode listens on local ports (`-s [SVC=][ADDR:]PORT`, port 0 picks one) and carries
//!   every accepted socket into the tunnel as AWS's localproxy does: with V3 a CONNECTION_START
//!   on the service's live stream (a STREAM_START only when it has none), with V1/V2 a new
//!   stream per connection (one at a time: a second simultaneous socket is refused with a log
//!   line).
//! - Connections are capped per stream and per agent (`--max-connections-per-stream`,
//!   `--max-connections`): a destination answers a start over the cap with CONNECTION_RESET
//!   and logs it; a source refuses the socket.
//!
//! This module parses the flags, binds the source listeners, and runs the reconnect loop: it
//! opens the WebSocket ([`crate::wsclient`]), runs a [`session`] until it ends, and reconnects
//! with exponential back-off (the access token plus a client token, generated per run when none
//! is given, lets the same token reconnect). A 4xx handshake answer is final: the agent prints
//! the service's reason and exits non-zero.
//!
//! It prints parseable lines on stdout for harnesses (`burrow agent: listening on ADDR for SVC`,
//! `burrow agent: connected (MODE, FORMAT, services: A,B)`); everything else is logged with
//! `tracing` on stderr. Tokens are never printed or logged.
//!
//! With `--device-client-rules` a V1 destination keeps the AWS IoT Device Client's rules
//! ([`device_client`]), so that sources can be tested against the device most fleets run.
//!
//! The protocol itself lives in `burrow_proto::Endpoint`; nothing here parses frames except
//! [`device_client`]'s look at STREAM_STARTs.

mod conn;
mod device_client;
mod formats;
mod mapping;
mod notified;
mod session;

use std::time::Duration;

use anyhow::Context;
use burrow_proto::endpoint::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_STREAM};
use burrow_proto::{Format, Role, StreamIdPlan};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::wsclient::{self, ConnectOptions};
use mapping::{DestinationMapping, SourceMapping};
use session::{Accepted, Setup};

/// The first reconnect delay.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// A session that lasted this long resets the back-off.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// How long opening the WebSocket may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a destination waits for its local service to accept.
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which end of the tunnel the agent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The operator side: listen on local ports and carry their connections into the tunnel.
    Source,
    /// The device side: connect the tunnel's connections to local services.
    Destination,
}

/// The message format the agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// No service ids, no connection ids (like the AWS IoT Device Client).
    #[value(name = "V1")]
    V1,
    /// Service ids, one connection per stream.
    #[value(name = "V2")]
    V2,
    /// Service ids and several connections per stream.
    #[value(name = "V3")]
    V3,
}

/// A secret flag value (an access or client token) that never shows in `Debug` output.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

/// Flags of `burrow agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Which end of the tunnel this agent is.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// The tunneling service's data plane: ws://HOST:PORT, wss://HOST[:PORT] (http:// and
    /// https:// work too; a bare HOST[:PORT] means wss). `/tunnel` is added. With --thing it
    /// defaults to AWS's data plane of the region each notification names.
    #[arg(short = 'e', long, required_unless_present = "thing")]
    pub endpoint: Option<String>,
    /// The tunnel access token for this mode (single use unless a client token is set).
    /// Prefer the AWSIOT_TUNNEL_ACCESS_TOKEN environment variable: a value given with -t is
    /// visible to every user of the machine in `ps`.
    #[arg(
        short = 't',
        long,
        env = "AWSIOT_TUNNEL_ACCESS_TOKEN",
        hide_env_values = true,
        required_unless_present = "thing"
    )]
    pub token: Option<Secret>,
    /// Destination mode without a token: wait for this thing's tunnels, whose tokens arrive
    /// by MQTT on `$aws/things/NAME/tunnels/notify` (needs --mqtt), and serve each of them.
    #[arg(long, value_name = "NAME", conflicts_with = "token", requires = "url")]
    pub thing: Option<String>,
    /// With --thing: the MQTT client id (default: the thing name, as AWS IoT policies expect).
    #[arg(long, value_name = "ID", requires = "thing")]
    pub client_id: Option<String>,
    /// With --thing: the broker the notifications come from.
    #[command(flatten)]
    pub mqtt: crate::mqtt::MqttArgs,
    /// The client token (32 to 128 of A-Z, a-z, 0-9 and '-') that lets the same access token
    /// reconnect; a random one is made for each run when it is not given.
    #[arg(short = 'i', long)]
    pub client_token: Option<Secret>,
    /// Source mode: listen on [ADDR:]PORT (loopback by default; port 0 picks a free one) for
    /// service SVC. Repeat or separate with commas for several services.
    #[arg(
        short = 's',
        long = "source",
        value_name = "[SVC=][ADDR:]PORT",
        value_parser = mapping::parse_source,
        value_delimiter = ','
    )]
    pub sources: Vec<SourceMapping>,
    /// Destination mode: connect service SVC to [HOST:]PORT (host defaults to 127.0.0.1). Without
    /// SVC= the mapping serves the tunnel's only service (or a V1 peer). Repeat or separate with
    /// commas for several services.
    #[arg(
        short = 'd',
        long = "destination",
        value_name = "[SVC=][HOST:]PORT",
        value_parser = mapping::parse_destination,
        value_delimiter = ','
    )]
    pub destinations: Vec<DestinationMapping>,
    /// The message format to write: V3 (several connections per service), V2, or V1 (to act
    /// as, or talk to, a V1 device client).
    #[arg(long, value_enum, ignore_case = true, default_value = "V3")]
    pub format: FormatArg,
    /// Skip TLS certificate verification (only for a local service's self-signed certificate).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Seconds between WebSocket pings to the service.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ping_interval: u64,
    /// Most connections one stream (one service) may have open at once; a destination answers
    /// a further CONNECTION_START with CONNECTION_RESET, a source refuses the socket.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS_PER_STREAM as u64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_connections_per_stream: u64,
    /// Most connections the agent may have open at once, all services together.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=16384))]
    pub max_connections: u64,
    /// Destination with --format V1: behave as AWS's IoT Device Client does (for testing
    /// sources against it): a session whose first STREAM_START is V2/V3 is never answered, a
    /// STREAM_START of another format drops the WebSocket, redials carry no client token (so a
    /// used token is refused), and a stream id above 2^28-1 gets no answer.
    #[arg(long)]
    pub device_client_rules: bool,
}

/// Why the flags cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A mapping problem.
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    /// Flags of the other mode were given.
    #[error("{0} mode does not take {1} mappings")]
    WrongMappings(&'static str, &'static str),
    /// The access token is empty.
    #[error("the access token is empty")]
    EmptyToken,
    /// The client token breaks AWS's rule.
    #[error("the client token must be 32 to 128 characters of A-Z, a-z, 0-9 and '-'")]
    InvalidClientToken,
    /// V1 has no service ids, so it carries one service.
    #[error("the V1 format carries a single service; give one mapping")]
    V1SingleService,
    /// The Device Client's rules are a V1 destination's.
    #[error("--device-client-rules needs --mode destination and --format V1")]
    DeviceClientRules,
    /// Waiting for notifications is what a device does.
    #[error("--thing needs --mode destination")]
    ThingNeedsDestination,
    /// The thing name or client id breaks AWS's rule.
    #[error("{0} must be 1 to 128 of A-Z, a-z, 0-9, ':', '_' and '-'")]
    InvalidThingName(&'static str),
    /// The broker flags are wrong.
    #[error(transparent)]
    Mqtt(#[from] crate::mqtt::MqttError),
}

/// Prints one line for harnesses and users on stdout.
pub(crate) fn ready_line(line: &str) {
    println!("burrow agent: {line}");
}

/// Runs the agent until interrupted or refused.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    run_with(args, None).await
}

/// [`run`]; with --thing, `subscribed` is told once the agent waits for notifications (the demo
/// opens its tunnel only then).
pub async fn run_with(
    args: AgentArgs,
    subscribed: Option<tokio::sync::oneshot::Sender<()>>,
) -> anyhow::Result<()> {
    let plan = Plan::from_args(args)?;
    tokio::select! {
        result = plan.run(subscribed) => result,
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.context("cannot wait for Ctrl-C")?;
            tracing::info!("interrupted; stopping");
            Ok(())
        }
    }
}

/// Checked flags.
#[derive(Debug)]
struct Plan {
    role: Role,
    format: Format,
    /// `-e`; with --thing only an override.
    endpoint: Option<String>,
    /// `-t`; `None` with --thing.
    token: Option<Secret>,
    /// --thing: the thing, its client id and the broker.
    thing: Option<notified::Thing>,
    client_token: Secret,
    sources: Vec<SourceMapping>,
    destinations: Vec<DestinationMapping>,
    insecure: bool,
    ping_interval: Duration,
    max_connections_per_stream: usize,
    max_connections: usize,
    /// `--device-client-rules`.
    device_client: bool,
}

impl Plan {
    fn from_args(args: AgentArgs) -> Result<Self, ArgsError> {
        let role = match args.mode {
            Mode::Source => {
                if !args.destinations.is_empty() {
                    return Err(ArgsError::WrongMappings("source", "-d"));
                }
                mapping::check_services(
                    args.sources.iter().map(|m| m.service.as_deref()),
                    "source mode needs -s [SVC=][ADDR:]PORT",
                )?;
                Role::Source
            }
            Mode::Destination => {
                if !args.sources.is_empty() {
                    return Err(ArgsError::WrongMappings("destination", "-s"));
                }
                // With --thing, SSH has a default mapping (127.0.0.1:22, as AWS's device client).
                if args.thing.is_none() || !args.destinations.is_empty() {
                    mapping::check_services(
                        args.destinations.iter().map(|m| m.service.as_deref()),
                        "destination mode needs -d [SVC=][HOST:]PORT",
                    )?;
                }
                Role::Destination
            }
        };
        let thing = match &args.thing {
            None => None,
            Some(_) if role != Role::Destination => return Err(ArgsError::ThingNeedsDestination),
            Some(name) => {
                if !crate::mqtt::is_valid_thing_name(name) {
                    return Err(ArgsError::InvalidThingName("--thing"));
                }
                let client_id = args.client_id.clone().unwrap_or_else(|| name.clone());
                if !crate::mqtt::is_valid_thing_name(&client_id) {
                    return Err(ArgsError::InvalidThingName("--client-id"));
                }
                let broker = crate::mqtt::Broker::from_args(&args.mqtt)?
                    .ok_or(crate::mqtt::MqttError::Url(String::new()))?;
                Some(notified::Thing {
                    name: name.clone(),
                    client_id,
                    broker,
                })
            }
        };
        let format = match args.format {
            FormatArg::V1 => Format::V1,
            FormatArg::V2 => Format::V2,
            FormatArg::V3 => Format::V3,
        };
        if format == Format::V1 && args.sources.len() + args.destinations.len() > 1 {
            return Err(ArgsError::V1SingleService);
        }
        if args.device_client_rules && (role != Role::Destination || format != Format::V1) {
            return Err(ArgsError::DeviceClientRules);
        }
        if args.token.as_ref().is_some_and(|t| t.0.trim().is_empty()) {
            return Err(ArgsError::EmptyToken);
        }
        let client_token = match args.client_token {
            Some(token) => {
                let valid = (32..=128).contains(&token.0.len())
                    && token
                        .0
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(ArgsError::InvalidClientToken);
                }
                token
            }
            None => Secret(random_client_token()),
        };
        Ok(Self {
            role,
            format,
            endpoint: args.endpoint,
            token: args.token,
            thing,
            client_token,
            sources: args.sources,
            destinations: args.destinations,
            insecure: args.insecure,
            ping_interval: Duration::from_secs(args.ping_interval),
            max_connections_per_stream: usize::try_from(args.max_connections_per_stream)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_STREAM),
            max_connections: usize::try_from(args.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            device_client: args.device_client_rules,
        })
    }

    async fn run(self, subscribed: Option<tokio::sync::oneshot::Sender<()>>) -> anyhow::Result<()> {
        if let Some(thing) = &self.thing {
            return notified::run(&self, thing, subscribed).await;
        }
        // Source listeners live across sessions, so local clients keep their port.
        let (accept_tx, mut accepted) = mpsc::channel::<Accepted>(16);
        let mut listeners = JoinSet::new();
        for (index, mapping) in self.sources.iter().enumerate() {
            let listener = TcpListener::bind(mapping.bind)
                .await
                .with_context(|| format!("cannot listen on {}", mapping.bind))?;
            let addr = listener.local_addr().context("listener address")?;
            let service = mapping.service.as_deref().unwrap_or("the tunnel's service");
            ready_line(&format!("listening on {addr} for {service}"));
            listeners.spawn(accept_loop(index, listener, accept_tx.clone()));
        }
        drop(accept_tx);
        let (Some(endpoint), Some(token)) = (&self.endpoint, &self.token) else {
            anyhow::bail!("an access token and an endpoint are needed (or --thing)");
        };
        let setup = self.setup(&self.destinations);
        let options = ConnectOptions {
            endpoint,
            role: self.role,
            token: &token.0,
            // The Device Client redials without one: a used token is then refused.
            client_token: (!self.device_client).then_some(self.client_token.0.as_str()),
            insecure: self.insecure,
            timeout: HANDSHAKE_TIMEOUT,
        };
        let mut stream_ids = StreamIdPlan::new(rand::random());
        Err(serve_tunnel(&options, &setup, &mut accepted, &mut stream_ids).await)
    }

    /// The session settings, with these destination mappings.
    fn setup<'a>(&'a self, destinations: &'a [DestinationMapping]) -> Setup<'a> {
        Setup {
            role: self.role,
            format: self.format,
            destinations,
            sources: &self.sources,
            ping_interval: self.ping_interval,
            connect_timeout: LOCAL_CONNECT_TIMEOUT,
            max_connections_per_stream: self.max_connections_per_stream,
            max_connections: self.max_connections,
            device_client: self.device_client,
        }
    }
}

/// One tunnel's reconnect loop: opens the WebSocket, runs a [`session`] until it ends, and
/// reconnects with exponential back-off, until the service refuses the handshake for good (a
/// 4xx: the token was revoked, the tunnel closed), which is returned.
async fn serve_tunnel(
    options: &ConnectOptions<'_>,
    setup: &Setup<'_>,
    accepted: &mut mpsc::Receiver<Accepted>,
    stream_ids: &mut StreamIdPlan,
) -> anyhow::Error {
    let mut delay = BACKOFF_START;
    loop {
        match wsclient::connect(options).await {
            Ok(connected) => {
                tracing::info!(
                    subprotocol = %connected.subprotocol,
                    channel_id = connected.channel_id.as_deref().unwrap_or("-"),
                    "connected to the tunneling service"
                );
                let started = tokio::time::Instant::now();
                let end = session::run(connected, setup, accepted, stream_ids).await;
                if started.elapsed() >= STABLE_SESSION {
                    delay = BACKOFF_START;
                }
                tracing::warn!(%end, "session ended; reconnecting");
            }
            Err(err) if err.is_retryable() => {
                tracing::warn!(%err, "cannot connect; retrying");
            }
            Err(err) => return err.into(),
        }
        let wait = jittered(delay);
        tracing::info!(?wait, "waiting before reconnecting");
        refuse_while_waiting(wait, accepted).await;
        delay = (delay * 2).min(BACKOFF_CAP);
    }
}

/// Accepts sockets on one source listener and hands them to the current session.
async fn accept_loop(mapping: usize, listener: TcpListener, sessions: mpsc::Sender<Accepted>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let accepted = Accepted {
                    mapping,
                    stream,
                    peer,
                };
                if sessions.send(accepted).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Waits out a reconnect delay, closing sockets accepted meanwhile (there is no tunnel to carry
/// them).
async fn refuse_while_waiting(wait: Duration, accepted: &mut mpsc::Receiver<Accepted>) {
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return,
            socket = accepted.recv() => match socket {
                Some(socket) => tracing::warn!(
                    peer = %socket.peer,
                    "not connected to the tunnel yet; closing the local connection"
                ),
                None => {
                    deadline.as_mut().await;
                    return;
                }
            },
        }
    }
}

/// `delay` give or take a fifth, so that many agents do not reconnect in step.
fn jittered(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.8..1.2))
}

/// A fresh client token: 32 random letters and digits (AWS wants 32 to 128).
fn random_client_token() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("agent").chain(args.iter().copied()))
            .map_err(|err| err.to_string())?;
        Plan::from_args(cli.agent).map_err(|err| err.to_string())
    }

    #[test]
    fn destination_flags() {
        let plan = plan(&[
            "--mode",
            "destination",
            "-e",
            "ws://127.0.0.1:1",
            "-t",
            "secret-token-value",
            "-d",
            "SSH=127.0.0.1:22,WEB=8080",
            "--format",
            "v2",
        ])
        .expect("valid flags");
        assert_eq!(plan.role, Role::Destination);
        assert_eq!(plan.format, Format::V2);
        assert_eq!(plan.destinations.len(), 2);
        assert_eq!(plan.client_token.0.len(), 32);
        assert!(!format!("{plan:?}").contains("secret-token-value"));
        assert_eq!(
            plan.max_connections_per_stream,
            DEFAULT_MAX_CONNECTIONS_PER_STREAM
        );
        assert_eq!(plan.max_connections, DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn connection_caps_are_flags() {
        let base = [
            "--mode",
            "destination",
            "-e",
            "ws://127.0.0.1:1",
            "-t",
            "tok",
            "-d",
            "22",
        ];
        let with = |extra: &[&str]| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend_from_slice(extra);
            plan(&args)
        };
        let capped = with(&[
            "--max-connections-per-stream",
            "3",
            "--max-connections",
            "5",
        ])
        .expect("valid caps");
        assert_eq!(
            (capped.max_connections_per_stream, capped.max_connections),
            (3, 5)
        );
        assert!(with(&["--max-connections-per-stream", "0"]).is_err());
        assert!(with(&["--max-connections", "0"]).is_err());
    }

    #[test]
    fn refused_flag_sets() {
        let base = ["-e", "ws://127.0.0.1:1", "-t", "tok"];
        let with = |extra: &[&str]| {
            let mut args: Vec<&str> = base.to_vec();
            args.extend_from_slice(extra);
            plan(&args).map(|_| ())
        };
        assert!(with(&["--mode", "source", "-d", "22"]).is_err());
        assert!(with(&["--mode", "source"]).is_err());
        assert!(with(&["--mode", "destination", "-s", "22"]).is_err());
        assert!(
            with(&[
                "--mode",
                "destination",
                "-d",
                "A=1",
                "-d",
                "B=2",
                "--format",
                "V1"
            ])
            .is_err()
        );
        assert!(with(&["--mode", "destination", "-d", "22", "-i", "short"]).is_err());
        assert!(with(&["--mode", "destination", "-d", "22", "-i", &"a".repeat(40)]).is_ok());
    }

    #[test]
    fn thing_mode_flags() {
        let ok = plan(&[
            "--mode",
            "destination",
            "--thing",
            "pump-7",
            "--mqtt",
            "mqtt://127.0.0.1:1883",
        ])
        .expect("valid flags");
        let thing = ok.thing.expect("thing mode");
        assert_eq!(
            (thing.name.as_str(), thing.client_id.as_str()),
            ("pump-7", "pump-7")
        );
        assert!(ok.token.is_none() && ok.endpoint.is_none());
        let with_id = plan(&[
            "--mode",
            "destination",
            "--thing",
            "pump-7",
            "--client-id",
            "pump-7-agent",
            "--mqtt",
            "mqtt://127.0.0.1:1883",
            "-d",
            "SSH=2222",
        ])
        .expect("valid flags");
        assert_eq!(with_id.thing.expect("thing").client_id, "pump-7-agent");
        // No broker, a source, a token as well, a bad name: refused.
        assert!(plan(&["--mode", "destination", "--thing", "pump-7"]).is_err());
        assert!(
            plan(&[
                "--mode",
                "source",
                "--thing",
                "p",
                "--mqtt",
                "mqtt://h:1",
                "-s",
                "22"
            ])
            .is_err()
        );
        assert!(
            plan(&[
                "--mode",
                "destination",
                "--thing",
                "p",
                "--mqtt",
                "mqtt://h:1",
                "-t",
                "x"
            ])
            .is_err()
        );
        assert!(
            plan(&[
                "--mode",
                "destination",
                "--thing",
                "a/#",
                "--mqtt",
                "mqtt://h:1"
            ])
            .is_err()
        );
        // Without --thing, -e and -t are still needed.
        assert!(plan(&["--mode", "destination", "-d", "22", "-t", "x"]).is_err());
    }

    #[test]
    fn secrets_do_not_show() {
        let secret = Secret("very-secret".to_owned());
        assert!(!format!("{secret:?}").contains("very-secret"));
    }
}
