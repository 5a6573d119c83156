//! The accept loop of `burrow serve` and the limits every connection lives under, whatever
//! route it asks for: a cap on open connections, a TLS handshake deadline, a header-read
//! deadline, a body deadline and an idle timeout.
//!
//! - **Connection cap** (`--max-connections`, by default what the file-descriptor limit
//!   leaves room for): a connection past the cap is closed at once, before any TLS or HTTP, and
//!   the first refusal of a burst is logged (one line, then one when connections are accepted
//!   again). The slot is held until the socket closes, WebSocket or not, so the cap really
//!   bounds open sockets and the server never runs out of descriptors for a real client.
//! - **Header deadline** (`--header-timeout`): hyper's header-read timer, which runs from the
//!   moment the connection waits for a request (new, or after the previous response on a
//!   keep-alive connection) until the whole request head is in. So it is also how long an idle
//!   keep-alive connection may stay open.
//! - **Body deadline** (`--body-timeout`): a request whose body has not fully arrived this long
//!   after its head gets 408 and the connection is closed. It is a layer around the whole
//!   router ([`with_body_deadline`]), so every route, including ones added later, has it.
//! - **Idle timeout** (`--idle-timeout`): an HTTP connection that moves no byte in either
//!   direction for this long is closed (a client that stops reading its response, a handler
//!   stuck).
//!
//! A connection upgraded to a WebSocket leaves hyper's hands: from then on only the cap applies
//! (it still holds its slot) and the WebSocket's own rules (pings, tunnel lifetimes, close
//! handshakes) take over. Each request carries its peer address as axum's `ConnectInfo`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::Sessions;

/// File descriptors kept free for everything that is not a client connection (the listener,
/// log output, static files being read, the runtime's own).
const RESERVED_FDS: usize = 64;
/// The cap when the file-descriptor limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 1024 - RESERVED_FDS;
/// The smallest default cap, however low the descriptor limit.
const MIN_DEFAULT_MAX_CONNECTIONS: usize = 16;
/// How long connections may take to finish when the server shuts down.
const DRAIN_GRACE: Duration = Duration::from_secs(3);
/// The cap's warning is repeated at most this often during a long attack.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// How long a request head may take (and an idle keep-alive connection may wait).
    pub header_timeout: Duration,
    /// How long a request body may take after its head.
    pub body_timeout: Duration,
    /// How long an HTTP connection may move no byte at all.
    pub idle_timeout: Duration,
    /// Open connections at most (WebSockets included).
    pub max_connections: usize,
}

/// A duration flag that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: use a positive number of seconds (30, 2.5s) or milliseconds (500ms)"
)]
pub(crate) struct DurationError(String);

/// Parses `30`, `30s`, `2.5s` or `500ms` (at most a day).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let t = text.trim();
    let (number, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1e-3)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| err())?;
    let secs = value * scale;
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The default connection cap: what the soft file-descriptor limit leaves room for. A relayed
/// WebSocket needs two descriptors (the page's and the upstream's).
pub(crate) fn default_max_connections(relay: bool) -> usize {
    let per_connection = if relay { 2 } else { 1 };
    let limit = soft_fd_limit()
        .map(|n| n.saturating_sub(RESERVED_FDS))
        .unwrap_or(FALLBACK_MAX_CONNECTIONS);
    (limit / per_connection).max(MIN_DEFAULT_MAX_CONNECTIONS)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux); `None` elsewhere or when
/// unlimited.
fn soft_fd_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_fd_limit(&text)
}

fn parse_fd_limit(limits: &str) -> Option<usize> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Wraps `router` so that every route's request body has to arrive within `timeout`.
pub(crate) fn with_body_deadline(router: Router, timeout: Duration) -> Router {
    router.layer(middleware::from_fn_with_state(timeout, body_deadline))
}

async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let done = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(
        request.body(),
    )));
    let watched = done.clone();
    let request = request.map(|inner| {
        Body::new(WatchedBody {
            inner,
            done: watched,
        })
    });
    let run = next.run(request);
    tokio::pin!(run);
    tokio::select! {
        response = &mut run => response,
        () = tokio::time::sleep(timeout) => {
            if done.load(Ordering::Acquire) {
                // The body is in; the handler is just still working.
                run.await
            } else {
                tracing::debug!(?timeout, "request body too slow: closing the connection");
                let mut response = (
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "Request Timeout: the request body did not arrive within {} s\n",
                        timeout.as_secs_f64()
                    ),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        }
    }
}

/// A request body that says when it has been read to its end.
struct WatchedBody {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Decides about connections past the cap and logs them without flooding.
struct Gate {
    permits: Arc<Semaphore>,
    max: usize,
    /// Connections refused since the last one accepted.
    refused: u64,
    /// When the warning was last written.
    warned: Option<Instant>,
}

impl Gate {
    fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            refused: 0,
            warned: None,
        }
    }

    /// A slot for a new connection, or `None` (logged) at the cap.
    fn admit(&mut self) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if self.refused > 0 {
                    tracing::info!(
                        refused = self.refused,
                        "accepting connections again after the connection cap"
                    );
                    self.refused = 0;
                }
                Some(permit)
            }
            Err(_) => {
                self.refused += 1;
                let now = Instant::now();
                if self.refused == 1 || self.warned.is_none_or(|t| now - t >= CAP_WARNING_EVERY) {
                    tracing::warn!(
                        max_connections = self.max,
                        refused = self.refused,
                        "connection cap reached: refusing new connections until open ones close \
                         (see --max-connections)"
                    );
                    self.warned = Some(now);
                }
                None
            }
        }
    }
}

/// Accepts connections on `tcp` (with TLS when `tls` is set) and serves `router` on them
/// under `limits` until `signal` completes; then lets open HTTP connections finish briefly.
pub(crate) async fn serve(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    signal: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Sessions::default();
    let mut gate = Gate::new(limits.max_connections);
    tokio::pin!(signal);
    loop {
        let accepted = tokio::select! {
            () = &mut signal => break,
            accepted = tcp.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(permit) = gate.admit() else {
            drop(stream);
            continue;
        };
        // Keystrokes and their echoes are small writes: no waiting for Nagle's algorithm.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%addr, %err, "cannot set TCP_NODELAY");
        }
        let conn = Connection {
            addr,
            router: router.clone(),
            limits,
            stop: stop_rx.clone(),
            activity: Arc::new(Activity::new()),
            _open: open.enter(),
        };
        let tls = tls.clone();
        tokio::spawn(conn.run(stream, permit, tls));
    }
    drop(tcp);
    stop_tx.send_replace(true);
    let _ = tokio::time::timeout(DRAIN_GRACE, open.idle()).await;
}

/// When a connection last moved a byte, as milliseconds since it opened.
struct Activity {
    origin: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = self.origin + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(last)
    }

    /// Completes once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// One accepted connection.
struct Connection {
    addr: SocketAddr,
    router: Router,
    limits: Limits,
    stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
    _open: super::SessionGuard,
}

impl Connection {
    async fn run(self, stream: TcpStream, permit: OwnedSemaphorePermit, tls: Option<TlsAcceptor>) {
        let addr = self.addr;
        let activity = self.activity.clone();
        match tls {
            None => self.http(Guarded::new(stream, permit, &activity)).await,
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, handshake).await {
                    Ok(Ok(tls)) => self.http(Guarded::new(tls, permit, &activity)).await,
                    Ok(Err(err)) => tracing::debug!(%addr, %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<I>(mut self, io: Guarded<I>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let addr = self.addr;
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(request)
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(conn);
        let activity = self.activity.clone();
        let idle = activity.idle(self.limits.idle_timeout);
        tokio::pin!(idle);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%addr, %err, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = &mut idle => {
                    tracing::debug!(%addr, timeout = ?self.limits.idle_timeout, "closing an idle HTTP connection");
                    return;
                }
                changed = self.stop.changed(), if !stopping => {
                    if changed.is_err() || *self.stop.borrow() {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// A connection's socket: records activity for the idle timeout and holds the connection's
/// slot under the cap until it is dropped (after a WebSocket upgrade, when the WebSocket ends).
struct Guarded<I> {
    io: I,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl<I> Guarded<I> {
    fn new(io: I, permit: OwnedSemaphorePermit, activity: &Arc<Activity>) -> Self {
        activity.touch();
        Self {
            io,
            activity: activity.clone(),
            _permit: permit,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guarded<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guarded<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "0", "-1", "abc", "1h", "1e9", "NaN"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fd_limit_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             63422                63422                processes \n\
                    Max open files            256                  524288               files     \n";
        assert_eq!(parse_fd_limit(text), Some(256));
        assert_eq!(
            parse_fd_limit("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(parse_fd_limit(""), None);
    }

    #[test]
    fn gate_refuses_past_the_cap_and_recovers() {
        let mut gate = Gate::new(2);
        let a = gate.admit().expect("first");
        let _b = gate.admit().expect("second");
        assert!(gate.admit().is_none());
        assert!(gate.admit().is_none());
        assert_eq!(gate.refused, 2);
        drop(a);
        assert!(gate.admit().is_some());
        assert_eq!(gate.refused, 0);
    }
}
