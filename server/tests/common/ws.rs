//! Raw data-plane clients for the `burrow serve` tests: a WebSocket upgrade built header by
//! header ([`Upgrade`]), the connected peer that sends and reads tunneling frames ([`Peer`]),
//! and a plain-TCP variant of the upgrade for refusals ([`Upgrade::refused`]) that reads the
//! whole answer, body included.
//!
//! Frames are built and read with `burrow_proto`'s codec; nothing here knows the service's
//! rules, so the tests state them. Every read has a deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use burrow_proto::codec::Decoded;
use burrow_proto::{Message as Frame, MessageType, decode_frame, encode_frame};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The newest subprotocol.
pub const V3: &str = "aws.iot.securetunneling-3.0";
/// The V2 subprotocol.
pub const V2: &str = "aws.iot.securetunneling-2.0";
/// The V1 subprotocol (no SERVICE_IDS, no service ids).
pub const V1: &str = "aws.iot.securetunneling-1.0";
/// How long any single read or handshake may take.
pub const IO: Duration = Duration::from_secs(10);

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The status line and headers of an HTTP answer (names lowercased), and its body.
#[derive(Debug, Clone)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The header lines, name lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text (empty for a 101).
    pub body: String,
}

impl Head {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A `/tunnel` (or any path) WebSocket upgrade request, built header by header.
#[derive(Debug, Clone)]
pub struct Upgrade {
    target: String,
    headers: Vec<(String, String)>,
}

impl Upgrade {
    /// An upgrade of `target` (path and query) with no extra headers and no subprotocol.
    pub fn new(target: &str) -> Upgrade {
        Upgrade {
            target: target.to_owned(),
            headers: Vec::new(),
        }
    }

    /// `/tunnel?local-proxy-mode=MODE` offering the 3.0 subprotocol.
    pub fn tunnel(mode: &str) -> Upgrade {
        Upgrade::new(&format!("/tunnel?local-proxy-mode={mode}"))
            .header("sec-websocket-protocol", V3)
    }

    /// Adds a header (repeatable).
    pub fn header(mut self, name: &str, value: &str) -> Upgrade {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the offered subprotocols with `protocols` (one header value).
    pub fn protocols(mut self, protocols: &str) -> Upgrade {
        self.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("sec-websocket-protocol"));
        self.header("sec-websocket-protocol", protocols)
    }

    /// Adds the `access-token` header.
    pub fn token(self, token: &str) -> Upgrade {
        self.header("access-token", token)
    }

    /// Adds a `client-token` header.
    pub fn client_token(self, token: &str) -> Upgrade {
        self.header("client-token", token)
    }

    /// Connects with tokio-tungstenite and returns the peer, or the refusal's head.
    pub async fn try_connect(&self, addr: SocketAddr) -> Result<Peer, Head> {
        let mut request = format!("ws://{addr}{}", self.target)
            .into_client_request()
            .expect("a valid WebSocket URL");
        for (name, value) in &self.headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
                HeaderValue::from_str(value).expect("a valid header value"),
            );
        }
        let connected = tokio::time::timeout(IO, tokio_tungstenite::connect_async(request))
            .await
            .expect("the handshake timed out");
        match connected {
            Ok((ws, response)) => Ok(Peer {
                head: Head {
                    status: response.status().as_u16(),
                    headers: header_pairs(response.headers()),
                    body: String::new(),
                },
                ws,
                pending: VecDeque::new(),
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(Head {
                status: response.status().as_u16(),
                headers: header_pairs(response.headers()),
                body: response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default(),
            }),
            Err(err) => panic!("the WebSocket handshake failed: {err}"),
        }
    }

    /// Connects and expects the upgrade to succeed.
    pub async fn connect(&self, addr: SocketAddr) -> Peer {
        match self.try_connect(addr).await {
            Ok(peer) => peer,
            Err(head) => panic!(
                "the upgrade of {} was refused: {} {:?}",
                self.target, head.status, head.body
            ),
        }
    }

    /// Sends the upgrade over plain TCP and reads the whole answer (head and body); for
    /// refusals, whose body tokio-tungstenite may cut short.
    pub async fn refused(&self, addr: SocketAddr) -> Head {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            self.target
        );
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let head = tokio::time::timeout(IO, exchange(addr, request.into_bytes()))
            .await
            .expect("the refused handshake timed out");
        assert_ne!(head.status, 101, "the upgrade of {} succeeded", self.target);
        head
    }
}

/// Sends one request and reads the answer's head and its `Content-Length` body (the
/// connection may stay open, so reading to the end is no option).
pub async fn exchange(addr: SocketAddr, request: Vec<u8>) -> Head {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&request).await.expect("send the request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut buf).await.expect("read the answer");
        assert!(n > 0, "the connection ended before the answer's head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.expect("read the body");
        assert!(n > 0, "the connection ended inside the body");
        body.extend_from_slice(&buf[..n]);
    }
    Head {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn header_pairs(
    headers: &tokio_tungstenite::tungstenite::http::HeaderMap,
) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// How a WebSocket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code (1005 when the close frame had none, 1006 when there was no close frame).
    pub code: u16,
    /// The close reason.
    pub reason: String,
    /// The frames received before the close.
    pub frames: Vec<Frame>,
}

/// A connected data-plane client.
pub struct Peer {
    /// The WebSocket.
    pub ws: Ws,
    /// The handshake answer.
    pub head: Head,
    pending: VecDeque<Frame>,
}

/// The frame bytes of `msg` (length prefix included).
pub fn frame(msg: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(msg, &mut out).expect("the test frame is valid");
    out
}

/// STREAM_START for `service` ("" for none) on `stream_id`, V3 connection 1.
pub fn stream_start(service: &str, stream_id: i32) -> Frame {
    Frame {
        stream_id,
        service_id: service.to_owned(),
        connection_id: 1,
        ..Frame::of(MessageType::StreamStart)
    }
}

/// DATA for `service` on `stream_id`, V3 connection 1.
pub fn data(service: &str, stream_id: i32, payload: &[u8]) -> Frame {
    Frame {
        stream_id,
        service_id: service.to_owned(),
        connection_id: 1,
        payload: payload.to_vec(),
        ..Frame::of(MessageType::Data)
    }
}

/// Splits a WebSocket message from the service into its frames (the service never splits one).
fn frames_of(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match decode_frame(bytes).expect("the service sent a valid frame") {
            Decoded::Frame { message, consumed } => {
                out.push(message);
                bytes = &bytes[consumed..];
            }
            Decoded::NeedMore { .. } => panic!("the service split a frame across messages"),
        }
    }
    out
}

impl Peer {
    /// Sends these frames in one WebSocket message.
    pub async fn send(&mut self, frames: &[Frame]) {
        let bytes: Vec<u8> = frames.iter().flat_map(frame).collect();
        self.send_bytes(bytes).await;
    }

    /// Sends raw bytes as one binary message.
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.send_message(WsMessage::binary(bytes)).await;
    }

    /// Sends any WebSocket message.
    pub async fn send_message(&mut self, message: WsMessage) {
        tokio::time::timeout(IO, self.ws.send(message))
            .await
            .expect("sending timed out")
            .expect("send a WebSocket message");
    }

    /// The next WebSocket message (pongs included), or `None` when the socket ended.
    async fn next_message(&mut self) -> Option<WsMessage> {
        match tokio::time::timeout(IO, self.ws.next()).await {
            Err(_) => panic!("nothing arrived within {IO:?}"),
            Ok(None) => None,
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(err))) => {
                eprintln!("WebSocket read ended: {err}");
                None
            }
        }
    }

    /// The next frame; fails the test on a close or a timeout.
    pub async fn frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return frame;
            }
            match self.next_message().await {
                Some(WsMessage::Binary(bytes)) => self.pending.extend(frames_of(&bytes)),
                Some(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// Reads the SERVICE_IDS the service sends first and returns the ids.
    pub async fn service_ids(&mut self) -> Vec<String> {
        let first = self.frame().await;
        assert_eq!(
            first.kind(),
            Some(MessageType::ServiceIds),
            "the first frame is not SERVICE_IDS: {first:?}"
        );
        first.available_service_ids
    }

    /// Reads until the WebSocket closes; returns the close and the frames before it.
    pub async fn closed(&mut self) -> Closed {
        let mut frames: Vec<Frame> = self.pending.drain(..).collect();
        loop {
            match self.next_message().await {
                Some(WsMessage::Binary(bytes)) => frames.extend(frames_of(&bytes)),
                Some(WsMessage::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    // Let tungstenite answer the close and see the end of the stream.
                    let _ = tokio::time::timeout(IO, self.ws.next()).await;
                    return Closed {
                        code,
                        reason,
                        frames,
                    };
                }
                Some(_) => {}
                None => {
                    return Closed {
                        code: 1006,
                        reason: String::new(),
                        frames,
                    };
                }
            }
        }
    }

    /// Sends a ping and returns the payload of the pong that answers it (frames in between are
    /// kept for [`Peer::frame`]).
    pub async fn ping(&mut self, payload: &[u8]) -> Vec<u8> {
        self.send_message(WsMessage::Ping(payload.to_vec().into()))
            .await;
        loop {
            match self.next_message().await {
                Some(WsMessage::Pong(bytes)) => return bytes.to_vec(),
                Some(WsMessage::Binary(bytes)) => self.pending.extend(frames_of(&bytes)),
                Some(WsMessage::Ping(_)) => {}
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    }

    /// Closes the WebSocket from this side and waits for the service's answer.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(IO, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// Waits until the service counts the tunnel's destination as connected. A WebSocket upgrade
/// is answered before the service attaches the peer, and frames sent to a peer not attached yet
/// are dropped (as AWS does), so a test that needs the destination to hear must wait first.
pub async fn destination_attached(serve: &super::Serve, tunnel_id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serve.describe(tunnel_id)["destinationConnectionState"]["status"] != "CONNECTED" {
        assert!(
            std::time::Instant::now() < deadline,
            "the destination never counted as connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
