//! Fuzzes `service::PeerChecker`, the parser every client of `burrow serve` talks to: a source
//! and a destination checker share one tunnel's `TunnelRules` and get arbitrary WebSocket
//! messages (raw bytes, or well-formed and deliberately broken frames cut at arbitrary points),
//! text/oversize failures, peer replacement and `take_resets`.
//!
//! Invariants checked after every message:
//! - what a checker relays is exactly the input bytes it has consumed so far, byte for byte, in
//!   whole frames that the strict decoder accepts; the rest is what `buffered` reports, and that
//!   is always less than one whole frame;
//! - no relayed frame is SERVICE_IDS or SESSION_RESET, a destination relays no STREAM_START, and
//!   every relayed service id is one of the tunnel's (or none);
//! - once a checker reports a violation it reports the same one for every later message, relays
//!   nothing more and holds no bytes; close codes are 1002, 1003 or 1009 and close reasons fit a
//!   close frame;
//! - cutting every message into two smaller ones (a second run of the same input) relays the same
//!   bytes and ends with the same violation, and leaves the rules in the same state.

#![no_main]

use arbitrary::Arbitrary;
use burrow_proto::codec::{MAX_FRAME_LEN, MAX_WS_MESSAGE_LEN, decode_body};
use burrow_proto::service::{MAX_CLOSE_REASON_LEN, PeerChecker, TunnelRules, Violation};
use burrow_proto::{Message, MessageType, Role};
use libfuzzer_sys::fuzz_target;
use shared::{cut, encode_unchecked};

mod shared;

const SERVICES: [&str; 6] = ["SSH", "RDP", "HTTP", "", "bad id", "x"];

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which of SSH, RDP and HTTP the tunnel has (bit mask).
    services: u8,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// A WebSocket message of raw bytes from the source (`true`) or the destination.
    Raw {
        source: bool,
        bytes: Vec<u8>,
        split: u16,
    },
    /// A WebSocket message of encoded frames (valid or not), cut at `split` for the second run.
    Frames {
        source: bool,
        frames: Vec<Frame>,
        split: u16,
    },
    /// A message the WebSocket layer refused: text, or over the size limit.
    Fail { source: bool, text: bool },
    /// The peer in that mode is replaced by a new connection (a fresh checker).
    Replace { source: bool },
    /// The service resets every active stream (a peer was replaced or went away).
    TakeResets,
}

#[derive(Debug, Arbitrary)]
struct Frame {
    kind: u8,
    stream: u8,
    service: u8,
    conn: u8,
    ignorable: bool,
    payload_len: u16,
    ids: Vec<u8>,
    /// Appended unknown protobuf field (the strict decoder refuses it).
    junk: bool,
}

fn encode(f: &Frame, out: &mut Vec<u8>) {
    let stream_id = match f.stream % 6 {
        0 => 0,
        1 => -1,
        n => i32::from(n),
    };
    let kind = i32::from(f.kind % 10);
    let len = match f.payload_len {
        n @ 0..=64_999 => usize::from(n) % 300,
        n => 64_511 + usize::from(n - 65_000) % 3,
    };
    let msg = Message {
        r#type: kind,
        stream_id,
        ignorable: f.ignorable,
        payload: vec![0x5A; len],
        service_id: SERVICES[usize::from(f.service) % SERVICES.len()].to_owned(),
        available_service_ids: f
            .ids
            .iter()
            .take(4)
            .map(|i| SERVICES[usize::from(*i) % SERVICES.len()].to_owned())
            .collect(),
        connection_id: u32::from(f.conn % 3),
    };
    encode_unchecked(&msg, f.junk, out);
}

/// One peer connection and what the harness knows about it.
struct Peer {
    role: Role,
    checker: PeerChecker,
    /// Every byte fed to this checker (up to its violation).
    fed: Vec<u8>,
    /// Every byte it relayed.
    relayed: Vec<u8>,
    failed: Option<Violation>,
}

impl Peer {
    fn new(role: Role) -> Self {
        Self {
            role,
            checker: PeerChecker::new(role),
            fed: Vec::new(),
            relayed: Vec::new(),
            failed: None,
        }
    }

    fn feed(&mut self, message: &[u8], rules: &mut TunnelRules, services: &[String]) {
        let verdict = self.checker.feed(message, rules);
        if let Some(before) = &self.failed {
            assert_eq!(
                verdict.close.as_ref(),
                Some(before),
                "a failed checker stays failed"
            );
            assert!(verdict.relay.is_empty(), "a failed checker relays nothing");
            assert_eq!(self.checker.buffered(), 0);
            return;
        }
        check_relayed(self.role, &verdict.relay, services);
        self.relayed.extend_from_slice(&verdict.relay);
        match verdict.close {
            Some(violation) => {
                check_violation(&violation);
                assert_eq!(
                    self.checker.buffered(),
                    0,
                    "a failed checker holds no bytes"
                );
                if message.len() <= MAX_WS_MESSAGE_LEN {
                    self.fed.extend_from_slice(message);
                }
                assert!(
                    self.fed.starts_with(&self.relayed),
                    "relayed bytes are the input's"
                );
                self.failed = Some(violation);
            }
            None => {
                self.fed.extend_from_slice(message);
                assert_eq!(
                    self.fed.len(),
                    self.relayed.len() + self.checker.buffered(),
                    "input = relayed + held back"
                );
                assert_eq!(&self.fed[..self.relayed.len()], &self.relayed[..]);
                assert!(
                    self.checker.buffered() < MAX_FRAME_LEN,
                    "less than a frame held"
                );
            }
        }
    }

    fn fail(&mut self, text: bool) {
        let violation = if text {
            Violation::TextMessage
        } else {
            Violation::MessageTooLarge(MAX_WS_MESSAGE_LEN + 1)
        };
        let got = self.checker.fail(violation.clone());
        match &self.failed {
            Some(before) => assert_eq!(&got, before, "the first violation is kept"),
            None => {
                assert_eq!(got, violation);
                check_violation(&got);
                self.failed = Some(got);
            }
        }
        assert_eq!(self.checker.buffered(), 0);
    }
}

fn check_violation(violation: &Violation) {
    assert!(matches!(violation.close_code(), 1002 | 1003 | 1009));
    assert!(violation.close_reason().len() <= MAX_CLOSE_REASON_LEN);
}

/// Every relayed frame is whole, decodes strictly, and is allowed from this role.
fn check_relayed(role: Role, mut relay: &[u8], services: &[String]) {
    while !relay.is_empty() {
        assert!(relay.len() >= 2, "a whole length prefix");
        let len = usize::from(u16::from_be_bytes([relay[0], relay[1]]));
        assert!(relay.len() >= 2 + len, "a whole frame");
        let msg = decode_body(&relay[2..2 + len], true).expect("a relayed frame decodes strictly");
        match msg.kind() {
            Some(MessageType::ServiceIds | MessageType::SessionReset) => {
                panic!("a service-only message was relayed")
            }
            Some(MessageType::StreamStart) => {
                assert_eq!(role, Role::Source, "STREAM_START only from a source");
            }
            _ => {}
        }
        if msg.kind().is_some_and(MessageType::is_stream_message) && !msg.service_id.is_empty() {
            assert!(
                services.contains(&msg.service_id),
                "a service of the tunnel"
            );
        }
        relay = &relay[2 + len..];
    }
}

/// What one run of the input ended with: per peer connection, the bytes relayed and the violation.
type Outcome = (Vec<(Vec<u8>, Option<Violation>)>, TunnelRules);

fn run(input: &Input, split: bool) -> Option<Outcome> {
    let services: Vec<String> = ["SSH", "RDP", "HTTP"]
        .iter()
        .enumerate()
        .filter(|(i, _)| input.services & (1 << i) != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect();
    let mut rules = TunnelRules::new(services.clone()).expect("valid services");
    let mut source = Peer::new(Role::Source);
    let mut destination = Peer::new(Role::Destination);
    let mut done = Vec::new();
    let mut bytes = Vec::new();
    for op in &input.ops {
        let (is_source, at) = match op {
            Op::Raw {
                source: s,
                bytes: raw,
                split,
            } => {
                bytes.clear();
                bytes.extend_from_slice(raw);
                (*s, *split)
            }
            Op::Frames {
                source: s,
                frames,
                split,
            } => {
                bytes.clear();
                for f in frames.iter().take(64) {
                    encode(f, &mut bytes);
                }
                (*s, *split)
            }
            Op::Fail { source: s, text } => {
                let peer = if *s { &mut source } else { &mut destination };
                peer.fail(*text);
                continue;
            }
            Op::Replace { source: s } => {
                let role = if *s { Role::Source } else { Role::Destination };
                let old = std::mem::replace(
                    if *s { &mut source } else { &mut destination },
                    Peer::new(role),
                );
                done.push((old.relayed, old.failed));
                continue;
            }
            Op::TakeResets => {
                let resets = rules.take_resets();
                check_relayed(Role::Destination, &resets, &services);
                assert!(rules.active_streams().is_empty());
                continue;
            }
        };
        if split && bytes.len() > MAX_WS_MESSAGE_LEN {
            // One too-large message is not the same as two smaller ones.
            return None;
        }
        let peer = if is_source {
            &mut source
        } else {
            &mut destination
        };
        if split && !bytes.is_empty() {
            for part in cut(&bytes, at) {
                peer.feed(part, &mut rules, &services);
            }
        } else {
            peer.feed(&bytes, &mut rules, &services);
        }
    }
    done.push((source.relayed, source.failed));
    done.push((destination.relayed, destination.failed));
    Some((done, rules))
}

fuzz_target!(|input: Input| {
    let whole = run(&input, false).expect("the whole run always completes");
    if let Some(halves) = run(&input, true) {
        assert_eq!(whole.1, halves.1, "the rules end in the same state");
        assert_eq!(whole.0.len(), halves.0.len());
        for ((a_relay, a_fail), (b_relay, b_fail)) in whole.0.iter().zip(&halves.0) {
            assert_eq!(a_relay, b_relay, "cutting messages changes nothing relayed");
            assert_eq!(a_fail, b_fail, "cutting messages changes no verdict");
        }
    }
});
