//! `burrow-bench-load`: the service-scale benchmark's load client, run by `cargo xtask bench`.
//!
//! It opens N tunnels through a running `burrow serve`'s control plane, connects both ends of
//! every tunnel itself (a destination and a source WebSocket, each driving a
//! `burrow_proto::Endpoint`, V3 format), opens one stream per tunnel, and then measures:
//!
//! - **memory per idle tunnel**: `VmRSS` of the service (`--serve-pid`) before the tunnels and
//!   after all of them are connected with their stream open and no traffic;
//! - **relay latency**: every source sends a small message every `--interval-ms` (an
//!   interactive session's keystrokes); the destination stamps its arrival and echoes it, and the
//!   source stamps the echo's arrival. Both ends live in this process, so each hop through the
//!   service is timed on one clock (one-way, sender's write to receiver's read);
//! - **the service's share**: when the service runs with `BURROW_RELAY_TIMING=1`, its own
//!   histogram of receive → forward times (`GET /bench/relay-timing`) is read before and after
//!   the latency window, and the difference is reported beside the end-to-end figures;
//! - **aggregate relay throughput**: for each `--bulk` count K, the first K tunnels' sources send
//!   as fast as the service takes it for `--bulk-secs`, and the destinations count what arrives.
//!
//! Progress goes to stderr; the result is one line on stdout, `RESULT {json}`. Nothing here
//! asserts a timing: the numbers are reported, and the benchmark report judges them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use burrow_proto::handshake::{ACCESS_TOKEN_HEADER, tunnel_path};
use burrow_proto::{Config, ConnId, Endpoint, Event, Format, Output, Role};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The one service every tunnel has.
const SERVICE: &str = "SSH";
/// Bytes per bulk send (a large SSH channel packet's worth).
const BULK_CHUNK: usize = 32 * 1024;
/// How long opening one WebSocket, or waiting for the destination to be attached, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Message kinds, the first payload byte.
const KIND_ECHO: u8 = b'E';
const KIND_BULK: u8 = b'B';

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Sink = SplitSink<Ws, Message>;
type Source = SplitStream<Ws>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A small deterministic generator (SplitMix64) for the send schedule: each source has its own
/// seed, so runs are repeatable and sources independent.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An exponentially distributed gap with this mean (a Poisson process's inter-arrival time).
    fn exponential(&mut self, mean: Duration) -> Duration {
        // Uniform in (0, 1]: never ln(0).
        let u = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        mean.mul_f64(-u.ln())
    }
}

/// The clock every timestamp is measured from.
fn clock() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    u64::try_from(clock().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Command-line options.
#[derive(Debug, Clone)]
struct Args {
    endpoint: String,
    tunnels: usize,
    interval_ms: u64,
    payload: usize,
    warmup_secs: f64,
    measure_secs: f64,
    bulk: Vec<usize>,
    bulk_secs: f64,
    serve_pid: Option<u32>,
    connect_concurrency: usize,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self {
            endpoint: String::new(),
            tunnels: 10,
            interval_ms: 200,
            payload: 64,
            warmup_secs: 2.0,
            measure_secs: 8.0,
            bulk: Vec::new(),
            bulk_secs: 4.0,
            serve_pid: None,
            connect_concurrency: 32,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            let bad = |e: &dyn std::fmt::Display| format!("bad value for {flag}: {e}");
            match flag.as_str() {
                "--endpoint" => args.endpoint = value()?,
                "--tunnels" => args.tunnels = value()?.parse().map_err(|e| bad(&e))?,
                "--interval-ms" => args.interval_ms = value()?.parse().map_err(|e| bad(&e))?,
                "--payload" => args.payload = value()?.parse().map_err(|e| bad(&e))?,
                "--warmup-secs" => args.warmup_secs = value()?.parse().map_err(|e| bad(&e))?,
                "--measure-secs" => args.measure_secs = value()?.parse().map_err(|e| bad(&e))?,
                "--bulk" => {
                    for part in value()?.split(',').filter(|p| !p.is_empty()) {
                        args.bulk.push(part.parse().map_err(|e| bad(&e))?);
                    }
                }
                "--bulk-secs" => args.bulk_secs = value()?.parse().map_err(|e| bad(&e))?,
                "--serve-pid" => args.serve_pid = Some(value()?.parse().map_err(|e| bad(&e))?),
                "--connect-concurrency" => {
                    args.connect_concurrency = value()?.parse().map_err(|e| bad(&e))?;
                }
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if args.endpoint.is_empty() {
            return Err("--endpoint http://127.0.0.1:PORT is required".to_owned());
        }
        if args.payload < 10 {
            return Err("--payload must be at least 10 bytes".to_owned());
        }
        Ok(args)
    }

    /// `127.0.0.1:PORT` from `http://127.0.0.1:PORT`.
    fn host(&self) -> &str {
        self.endpoint
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/')
    }
}

/// What every tunnel task is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected, no traffic.
    Idle,
    /// Sources send echo messages; `measure` says whether latencies are recorded.
    Echo { measure: bool },
    /// The first `tunnels` sources send bulk data.
    Bulk { tunnels: usize },
    /// Close and end.
    Stop,
}

/// Figures shared by all tunnel tasks.
#[derive(Default)]
struct Shared {
    /// Tunnels whose stream is open at both ends.
    ready: AtomicUsize,
    /// Tunnels whose task failed.
    failed: AtomicUsize,
    /// Bulk bytes received by destinations.
    bulk_bytes: AtomicU64,
    /// Echo messages received (both directions), recorded or not.
    echoes: AtomicU64,
    /// One-way latencies in microseconds while measuring.
    latencies: Mutex<Vec<u32>>,
    /// The first failure, for the report.
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn record(&self, sent_ns: u64) {
        let micros = now_ns().saturating_sub(sent_ns) / 1000;
        let micros = u32::try_from(micros).unwrap_or(u32::MAX);
        if let Ok(mut latencies) = self.latencies.lock() {
            latencies.push(micros);
        }
    }

    fn fail(&self, error: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock()
            && first.is_none()
        {
            *first = Some(error);
        }
    }
}

/// Tokens of one tunnel.
struct Tokens {
    source: String,
    destination: String,
}

/// POST to the control plane with a hand-written HTTP/1.1 request (one per connection).
async fn control(host: &str, action: &str, body: &str) -> Result<serde_json::Value, BoxError> {
    let mut tcp = TcpStream::connect(host).await?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: IoTSecuredTunneling.{action}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the control plane's answer has no header end")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{action} answered {status}: {body}").into());
    }
    // A chunked body would need decoding; the service answers with a Content-Length.
    Ok(serde_json::from_str(body.trim())?)
}

/// `GET /bench/relay-timing`: the service's own histogram of relay times (receive → forward), or
/// `None` when the service was started without `BURROW_RELAY_TIMING=1`.
async fn relay_timing(host: &str) -> Result<Option<ServiceTiming>, BoxError> {
    let mut tcp = TcpStream::connect(host).await?;
    let request =
        format!("GET /bench/relay-timing HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the timing answer has no header end")?;
    match head.split_whitespace().nth(1) {
        Some("200") => {}
        Some("404") => return Ok(None),
        other => return Err(format!("GET /bench/relay-timing answered {other:?}").into()),
    }
    let json: serde_json::Value = serde_json::from_str(body.trim())?;
    let mut buckets = std::collections::BTreeMap::new();
    for bucket in json["buckets"]
        .as_array()
        .ok_or("the timing has no buckets")?
    {
        let field = |i: usize| bucket[i].as_u64().ok_or("a bad timing bucket");
        buckets.insert(field(0)?, (field(1)?, field(2)?));
    }
    Ok(Some(ServiceTiming { buckets }))
}

/// A snapshot of the service's relay-time histogram: lower bound (ns) → (upper bound, count).
struct ServiceTiming {
    buckets: std::collections::BTreeMap<u64, (u64, u64)>,
}

impl ServiceTiming {
    /// What was recorded between `earlier` and `self`: its count and its percentiles in ms
    /// (each the upper bound of the bucket the rank falls in, so at most ~3 % high).
    fn since(&self, earlier: &ServiceTiming) -> serde_json::Value {
        let window: Vec<(u64, u64)> = self
            .buckets
            .iter()
            .filter_map(|(lower, &(upper, count))| {
                let before = earlier.buckets.get(lower).map_or(0, |&(_, c)| c);
                (count > before).then_some((upper, count - before))
            })
            .collect();
        let total: u64 = window.iter().map(|&(_, c)| c).sum();
        let at = |p: f64| {
            if total == 0 {
                return serde_json::Value::Null;
            }
            let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for &(upper, count) in &window {
                seen += count;
                if seen >= rank {
                    return serde_json::Value::from(upper as f64 / 1e6);
                }
            }
            serde_json::Value::Null
        };
        serde_json::json!({
            "count": total,
            "p50": at(50.0),
            "p90": at(90.0),
            "p99": at(99.0),
            "p999": at(99.9),
            "max": at(100.0),
        })
    }
}

async fn open_tunnel(host: &str) -> Result<Tokens, BoxError> {
    let answer = control(
        host,
        "OpenTunnel",
        &format!(r#"{{"destinationConfig":{{"services":["{SERVICE}"]}}}}"#),
    )
    .await?;
    let token = |field: &str| {
        answer[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("OpenTunnel's answer lacks {field}"))
    };
    Ok(Tokens {
        source: token("sourceAccessToken")?,
        destination: token("destinationAccessToken")?,
    })
}

async fn connect(host: &str, role: Role, token: &str) -> Result<Ws, BoxError> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect_once(host, role, token))
        .await
        .map_err(|_| format!("no WebSocket within {CONNECT_TIMEOUT:?}"))?
}

async fn connect_once(host: &str, role: Role, token: &str) -> Result<Ws, BoxError> {
    let mut request = format!("ws://{host}{}", tunnel_path("", role)).into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(ACCESS_TOKEN_HEADER, HeaderValue::from_str(token)?);
    // Both ends speak V3, the format every load tunnel uses.
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(Format::V3.subprotocol()),
    );
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    Ok(ws)
}

/// Sends everything the endpoint has to send and hands its events to `on_event`.
async fn drain(
    endpoint: &mut Endpoint,
    sink: &mut Sink,
    on_event: &mut impl FnMut(&mut Endpoint, Event),
) -> Result<(), BoxError> {
    while let Some(output) = endpoint.poll_output() {
        match output {
            Output::Transmit(bytes) => sink.send(Message::Binary(bytes.into())).await?,
            Output::Event(event) => on_event(endpoint, event),
            Output::Ping => {}
        }
    }
    Ok(())
}

/// Reads the next binary message into the endpoint; `Ok(false)` when the socket ended.
fn feed(
    endpoint: &mut Endpoint,
    message: Option<Result<Message, impl std::fmt::Display>>,
) -> Result<bool, BoxError> {
    match message {
        None | Some(Ok(Message::Close(_))) => Ok(false),
        Some(Ok(Message::Binary(bytes))) => {
            endpoint.handle_bytes(&bytes)?;
            Ok(true)
        }
        Some(Ok(_)) => Ok(true),
        Some(Err(error)) => Err(error.to_string().into()),
    }
}

fn echo_payload(size: usize, direction: u8) -> Vec<u8> {
    let mut payload = vec![b'.'; size];
    payload[0] = KIND_ECHO;
    payload[1] = direction;
    payload[2..10].copy_from_slice(&now_ns().to_be_bytes());
    payload
}

fn sent_at(data: &[u8]) -> Option<u64> {
    let stamp: [u8; 8] = data.get(2..10)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}

/// The destination end of one tunnel: accepts the stream, echoes echo messages, counts bulk.
async fn destination(
    mut ws_in: Source,
    mut sink: Sink,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    attached: oneshot::Sender<()>,
) -> Result<(), BoxError> {
    let mut attached = Some(attached);
    let mut config = Config::new(Role::Destination, Format::V3);
    config.services = vec![SERVICE.to_owned()];
    let mut endpoint = Endpoint::new(config, Duration::ZERO);
    let view = phase.clone();
    let mut on_event = |endpoint: &mut Endpoint, event: Event| match event {
        Event::ConnectionRequested(_) => {
            shared.ready.fetch_add(1, Ordering::Relaxed);
        }
        Event::Data { conn, data } => match data.first() {
            Some(&KIND_ECHO) => {
                shared.echoes.fetch_add(1, Ordering::Relaxed);
                if *view.borrow() == (Phase::Echo { measure: true })
                    && let Some(sent) = sent_at(&data)
                {
                    shared.record(sent);
                }
                // The echo back carries its own send time.
                let _ = endpoint.send(&conn, &echo_payload(data.len(), 1));
            }
            Some(&KIND_BULK) => {
                shared
                    .bulk_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            _ => {}
        },
        Event::ServiceIds(_) => {
            // The service sends SERVICE_IDS once this peer is attached to its tunnel: from now
            // on a STREAM_START from the source reaches it.
            if let Some(attached) = attached.take() {
                let _ = attached.send(());
            }
        }
        Event::ConnectionClosed { .. } | Event::ConnectionRefused { .. } => {}
    };
    loop {
        tokio::select! {
            message = ws_in.next() => {
                if !feed(&mut endpoint, message)? {
                    return Ok(());
                }
                drain(&mut endpoint, &mut sink, &mut on_event).await?;
            }
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow_and_update() == Phase::Stop {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
        }
    }
}

/// The source end of one tunnel: opens the stream, sends echo or bulk messages by phase.
async fn source(
    index: usize,
    mut ws_in: Source,
    mut sink: Sink,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    args: Arc<Args>,
) -> Result<(), BoxError> {
    let mut endpoint = Endpoint::new(Config::new(Role::Source, Format::V3), Duration::ZERO);
    let mut services_known = false;
    let view = phase.clone();
    let mut record = |_: &mut Endpoint, event: Event| match event {
        Event::Data { data, .. } if data.first() == Some(&KIND_ECHO) => {
            shared.echoes.fetch_add(1, Ordering::Relaxed);
            if *view.borrow() == (Phase::Echo { measure: true })
                && let Some(sent) = sent_at(&data)
            {
                shared.record(sent);
            }
        }
        _ => {}
    };
    // Wait for SERVICE_IDS, then open the stream.
    while !services_known {
        let message = ws_in.next().await;
        if !feed(&mut endpoint, message)? {
            return Err("the service closed the source before SERVICE_IDS".into());
        }
        while let Some(output) = endpoint.poll_output() {
            match output {
                Output::Event(Event::ServiceIds(_)) => services_known = true,
                Output::Transmit(bytes) => sink.send(Message::Binary(bytes.into())).await?,
                _ => {}
            }
        }
    }
    let conn: ConnId = endpoint.open_stream(Some(SERVICE))?;
    drain(&mut endpoint, &mut sink, &mut record).await?;

    // Open-loop Poisson arrivals: the next send is due an exponential gap after the previous
    // one was *due* (not after it went), so lateness never thins the offered load.
    let mean = Duration::from_millis(args.interval_ms.max(1));
    let mut rng =
        SplitMix64(0x9E37_79B9_7F4A_7C15 ^ (index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut due = tokio::time::Instant::now() + rng.exponential(mean);
    let bulk_chunk = {
        let mut chunk = vec![b'x'; BULK_CHUNK];
        chunk[0] = KIND_BULK;
        chunk
    };
    let mut current = *phase.borrow();
    loop {
        let echoing = matches!(current, Phase::Echo { .. });
        let bulking = matches!(current, Phase::Bulk { tunnels } if index < tunnels);
        tokio::select! {
            message = ws_in.next() => {
                if !feed(&mut endpoint, message)? {
                    return Ok(());
                }
                drain(&mut endpoint, &mut sink, &mut record).await?;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                current = *phase.borrow_and_update();
                if current == Phase::Stop {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ok(());
                }
            }
            () = tokio::time::sleep_until(due), if echoing => {
                due += rng.exponential(mean);
                endpoint.send(&conn, &echo_payload(args.payload, 0))?;
                drain(&mut endpoint, &mut sink, &mut record).await?;
            }
            () = std::future::ready(()), if bulking => {
                endpoint.send(&conn, &bulk_chunk)?;
                drain(&mut endpoint, &mut sink, &mut record).await?;
                // Always-ready senders would otherwise keep this client's destinations, which
                // must read what the service relays, from running.
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Connects both ends of one tunnel and runs them until the phase says stop.
async fn tunnel(
    index: usize,
    tokens: Tokens,
    shared: Arc<Shared>,
    phase: watch::Receiver<Phase>,
    args: Arc<Args>,
    gate: Arc<Semaphore>,
) {
    let dst = async {
        let _permit = gate.acquire().await?;
        connect(args.host(), Role::Destination, &tokens.destination).await
    }
    .await;
    let dst = match dst {
        Ok(dst) => dst,
        Err(error) => {
            shared.fail(format!("tunnel {index}: destination connect: {error}"));
            return;
        }
    };
    let (dst_sink, dst_in) = dst.split();
    let (attached_tx, attached_rx) = oneshot::channel();
    let dst_task = destination(dst_in, dst_sink, shared.clone(), phase.clone(), attached_tx);
    let src_shared = shared.clone();
    let src_task = async move {
        // The source opens its stream at once, so it connects only once the destination is
        // attached (a STREAM_START before that would find no peer and be dropped).
        tokio::time::timeout(CONNECT_TIMEOUT, attached_rx)
            .await
            .map_err(|_| "the destination got no SERVICE_IDS")?
            .map_err(|_| "the destination ended before SERVICE_IDS")?;
        let src = {
            let _permit = gate.acquire().await?;
            connect(args.host(), Role::Source, &tokens.source).await?
        };
        let (src_sink, src_in) = src.split();
        source(index, src_in, src_sink, src_shared, phase, args).await
    };
    let (dst_result, src_result) = tokio::join!(dst_task, src_task);
    for (end, result) in [("destination", dst_result), ("source", src_result)] {
        if let Err(error) = result {
            shared.fail(format!("tunnel {index} {end}: {error}"));
        }
    }
}

/// `VmRSS` of a process in KiB.
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// CPU time (user + system) a process has used, in seconds (`/proc/PID/stat`, 100 ticks/s).
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// CPU seconds used by the service and by this client over a window.
#[derive(Clone, Copy)]
struct CpuMark {
    serve: Option<f64>,
    client: Option<f64>,
}

impl CpuMark {
    fn now(serve_pid: Option<u32>) -> Self {
        Self {
            serve: cpu_secs(serve_pid),
            client: cpu_secs(None),
        }
    }

    /// `{serve_cpu_secs, client_cpu_secs}` since `self`.
    fn since(self, serve_pid: Option<u32>) -> serde_json::Value {
        let later = Self::now(serve_pid);
        let diff = |a: Option<f64>, b: Option<f64>| json_opt(a.zip(b).map(|(a, b)| b - a));
        serde_json::json!({
            "serve_cpu_secs": diff(self.serve, later.serve),
            "client_cpu_secs": diff(self.client, later.client),
        })
    }
}

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0)
}

fn json_opt(value: Option<f64>) -> serde_json::Value {
    value.map_or(serde_json::Value::Null, serde_json::Value::from)
}

async fn run(args: Args) -> Result<serde_json::Value, BoxError> {
    let args = Arc::new(args);
    let shared = Arc::new(Shared::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Idle);
    let _ = clock();
    let rss_before = rss_kib(args.serve_pid);

    eprintln!("load: opening {} tunnels", args.tunnels);
    let opened_at = Instant::now();
    let mut all_tokens = Vec::with_capacity(args.tunnels);
    for _ in 0..args.tunnels {
        all_tokens.push(open_tunnel(args.host()).await?);
    }
    let open_secs = opened_at.elapsed().as_secs_f64();

    eprintln!(
        "load: connecting {} tunnels (2 WebSockets each)",
        args.tunnels
    );
    let connect_started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut tasks = Vec::with_capacity(args.tunnels);
    for (index, tokens) in all_tokens.into_iter().enumerate() {
        tasks.push(tokio::spawn(tunnel(
            index,
            tokens,
            shared.clone(),
            phase_rx.clone(),
            args.clone(),
            gate.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while shared.ready.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < args.tunnels
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let ready = shared.ready.load(Ordering::Relaxed);
    eprintln!("load: {ready} tunnels ready in {connect_secs:.1} s");

    // Idle: let allocations settle, then read the service's memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(args.serve_pid);

    eprintln!(
        "load: echo every {} ms per tunnel, {} s warm-up, {} s measured",
        args.interval_ms, args.warmup_secs, args.measure_secs
    );
    phase_tx.send_replace(Phase::Echo { measure: false });
    tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    let echoes_before = shared.echoes.load(Ordering::Relaxed);
    let timing_before = relay_timing(args.host()).await?;
    phase_tx.send_replace(Phase::Echo { measure: true });
    let echo_cpu = CpuMark::now(args.serve_pid);
    let measured_at = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.measure_secs)).await;
    phase_tx.send_replace(Phase::Echo { measure: false });
    let measured_secs = measured_at.elapsed().as_secs_f64();
    let echo_cpu = echo_cpu.since(args.serve_pid);
    // The service's share over the same window (a few messages in flight at either edge count
    // on one side and not the other; the window holds thousands).
    let service_timing = match (timing_before, relay_timing(args.host()).await?) {
        (Some(before), Some(after)) => after.since(&before),
        _ => serde_json::Value::Null,
    };
    let echoes = shared.echoes.load(Ordering::Relaxed) - echoes_before;
    let rss_active = rss_kib(args.serve_pid);
    let mut latencies = shared
        .latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    latencies.sort_unstable();
    phase_tx.send_replace(Phase::Idle);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut bulk_results = Vec::new();
    for &count in &args.bulk {
        let count = count.min(ready);
        eprintln!("load: bulk from {count} tunnels for {} s", args.bulk_secs);
        phase_tx.send_replace(Phase::Bulk { tunnels: count });
        // Let the senders fill the pipes before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start_bytes = shared.bulk_bytes.load(Ordering::Relaxed);
        let bulk_cpu = CpuMark::now(args.serve_pid);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(args.bulk_secs)).await;
        let bytes = shared.bulk_bytes.load(Ordering::Relaxed) - start_bytes;
        let secs = started.elapsed().as_secs_f64();
        let bulk_cpu = bulk_cpu.since(args.serve_pid);
        phase_tx.send_replace(Phase::Idle);
        // Let queued bulk data drain before the next round.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        bulk_results.push(serde_json::json!({
            "tunnels": count,
            "bytes": bytes,
            "secs": secs,
            "mb_per_s": bytes as f64 / secs / 1e6,
            "cpu": bulk_cpu,
        }));
    }

    phase_tx.send_replace(Phase::Stop);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    for task in tasks {
        tokio::select! {
            _ = task => {}
            () = &mut stop_deadline => break,
        }
    }
    let first_error = shared.first_error.lock().ok().and_then(|e| e.clone());
    let per_tunnel = match (rss_before, rss_idle) {
        (Some(before), Some(idle)) if ready > 0 => {
            Some((idle as f64 - before as f64) / ready as f64)
        }
        _ => None,
    };
    Ok(serde_json::json!({
        "tunnels": args.tunnels,
        "ready": ready,
        "failed": shared.failed.load(Ordering::Relaxed),
        "first_error": first_error,
        "open_secs": open_secs,
        "connect_secs": connect_secs,
        "interval_ms": args.interval_ms,
        "payload": args.payload,
        "echo_messages_per_s": echoes as f64 / measured_secs,
        "offered_messages_per_s": 2.0 * ready as f64 * 1000.0 / args.interval_ms.max(1) as f64,
        "measured_secs": measured_secs,
        "echo_cpu": echo_cpu,
        "latency_samples": latencies.len(),
        "latency_ms": {
            "p50": json_opt(percentile(&latencies, 50.0)),
            "p90": json_opt(percentile(&latencies, 90.0)),
            "p99": json_opt(percentile(&latencies, 99.0)),
            "p999": json_opt(percentile(&latencies, 99.9)),
            "max": json_opt(percentile(&latencies, 100.0)),
        },
        "service_ms": service_timing,
        "rss_kib": {
            "before": rss_before,
            "idle": rss_idle,
            "active": rss_active,
        },
        "rss_kib_per_idle_tunnel": json_opt(per_tunnel),
        "bulk": bulk_results,
    }))
}

fn main() -> std::process::ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("burrow-bench-load: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("burrow-bench-load: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(result) => {
            println!("RESULT {result}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("burrow-bench-load: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
