//! `--device-client-rules`: a V1 destination that keeps the rules of AWS's IoT Device Client
//! (v1.10.1, `aws-c-iot`), the device most fleets run, so that the page and the agent's source
//! role can be tested against its behaviour with real processes. The rules are the ones
//! `proto/tests/harness/device_client.rs` models, read from the Device Client's source:
//!
//! - it offers the 3.0 subprotocol but speaks V1 (the agent already does so with `--format V1`);
//! - the first STREAM_START of a WebSocket session fixes the session's format (V1: no service
//!   id; V2: a service id; V3: a connection id too); its library refuses to send V1 messages in
//!   a V2/V3 session, so such a session is never answered ([`Verdict::Ignore`]);
//! - a later STREAM_START of another format makes it drop the WebSocket and dial again
//!   ([`Verdict::Redial`]); it sends no client token, so that dial is refused once its token was
//!   used, and the device waits for a new token by notification;
//! - its varint encoder writes at most 2^28−1, so a stream with a larger id never gets an
//!   answer ([`Verdict::Ignore`] for that STREAM_START).
//!
//! Sans-IO: [`Rules::filter`] takes each WebSocket message before the session feeds it to its
//! endpoint and gives back the whole frames the Device Client would act on.

use burrow_proto::codec::{LENGTH_PREFIX_LEN, decode_body};
use burrow_proto::frames;
use burrow_proto::{Format, MAX_ID, Message, MessageType};

/// What became of one WebSocket message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// The whole frames to feed to the endpoint, in order.
    pub feed: Vec<u8>,
    /// Why frames were dropped, if some were (the Device Client would not answer them).
    pub ignored: Option<&'static str>,
    /// A STREAM_START of another format than the session's came: drop the WebSocket.
    pub redial: Option<Redial>,
}

/// A STREAM_START of another format than the session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redial {
    /// The session's format.
    pub session: Format,
    /// The format of the STREAM_START that came.
    pub came: Format,
}

/// The rules for one WebSocket session.
#[derive(Debug, Default)]
pub struct Rules {
    /// The start of a frame whose end is in a later message.
    carry: Vec<u8>,
    session: Option<Format>,
    /// The stream the session answers (its last accepted STREAM_START).
    active: Option<i32>,
}

impl Rules {
    /// A new session's rules (no format fixed yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// The frames of `bytes` (one WebSocket message) the Device Client acts on. A frame that
    /// does not decode is fed on: the endpoint reports it.
    pub fn filter(&mut self, bytes: &[u8]) -> Filtered {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(bytes);
        let mut out = Filtered::default();
        let mut whole = frames::split(&buf);
        for frame in whole.by_ref() {
            let Ok(msg) = decode_body(&frame[LENGTH_PREFIX_LEN..], false) else {
                out.feed.extend_from_slice(frame);
                continue;
            };
            match self.judge(&msg) {
                Ok(()) => out.feed.extend_from_slice(frame),
                Err(Judged::Ignore(why)) => out.ignored = Some(why),
                Err(Judged::Redial(redial)) => {
                    out.redial = Some(redial);
                    return out;
                }
            }
        }
        self.carry = whole.rest().to_vec();
        out
    }

    fn judge(&mut self, msg: &Message) -> Result<(), Judged> {
        if msg.r#type() == MessageType::StreamStart {
            let came = Format::of_message(msg);
            match self.session {
                None => self.session = Some(came),
                Some(session) if session != came => {
                    return Err(Judged::Redial(Redial { session, came }));
                }
                Some(_) => {}
            }
            if came != Format::V1 {
                return Err(Judged::Ignore(MIXED_SESSION));
            }
            if !(1..=MAX_ID).contains(&msg.stream_id) {
                self.active = None;
                return Err(Judged::Ignore(UNENCODABLE_ID));
            }
            self.active = Some(msg.stream_id);
            return Ok(());
        }
        match self.session {
            Some(Format::V2 | Format::V3) => Err(Judged::Ignore(MIXED_SESSION)),
            // A stream it could not answer stays unanswered.
            Some(Format::V1)
                if msg.stream_id != 0
                    && self.active.is_none()
                    && msg.r#type() != MessageType::ServiceIds =>
            {
                Err(Judged::Ignore(UNENCODABLE_ID))
            }
            _ => Ok(()),
        }
    }
}

/// Why a V2/V3 session gets no answer.
const MIXED_SESSION: &str = "its library sends no V1 message in a V2/V3 session";
/// Why a stream with an id above 2^28−1 gets no answer.
const UNENCODABLE_ID: &str = "its varints cannot encode the stream id";

/// The session's use of the rules: off (every message is fed on), or on.
#[derive(Debug)]
pub struct Gate {
    rules: Option<Rules>,
    /// The last reason logged for not answering (logged once per reason and session).
    ignored: Option<&'static str>,
}

impl Gate {
    /// The rules when `on`.
    pub fn new(on: bool) -> Self {
        Self {
            rules: on.then(Rules::new),
            ignored: None,
        }
    }

    /// What of `bytes` (one WebSocket message) to feed to the endpoint, or why the WebSocket is
    /// dropped.
    pub fn pass<'a>(&mut self, bytes: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, String> {
        let Some(rules) = self.rules.as_mut() else {
            return Ok(bytes.into());
        };
        let out = rules.filter(bytes);
        if let Some(Redial { session, came }) = out.redial {
            return Err(format!(
                "a {came:?} STREAM_START in a {session:?} session (the AWS IoT Device Client \
                 drops its WebSocket here)"
            ));
        }
        if let Some(why) = out.ignored
            && self.ignored != Some(why)
        {
            tracing::warn!(why, "Device Client rules: not answering");
            self.ignored = Some(why);
        }
        Ok(out.feed.into())
    }
}

/// Why a frame is not fed on.
enum Judged {
    Ignore(&'static str),
    Redial(Redial),
}

#[cfg(test)]
mod tests {
    use burrow_proto::codec::encode_frame;

    use super::*;

    fn frame(kind: MessageType, stream_id: i32, service: &str, conn: u32) -> Vec<u8> {
        let msg = Message {
            r#type: kind as i32,
            stream_id,
            service_id: service.to_owned(),
            connection_id: conn,
            ..Message::default()
        };
        let mut out = Vec::new();
        encode_frame(&msg, &mut out).expect("encodes");
        out
    }

    fn data(stream_id: i32) -> Vec<u8> {
        let msg = Message {
            r#type: MessageType::Data as i32,
            stream_id,
            payload: b"SSH-2.0-x\r\n".to_vec(),
            ..Message::default()
        };
        let mut out = Vec::new();
        encode_frame(&msg, &mut out).expect("encodes");
        out
    }

    #[test]
    fn a_v1_session_is_fed_and_new_v1_streams_replace_the_old() {
        let mut rules = Rules::new();
        let ids = {
            let msg = Message {
                r#type: MessageType::ServiceIds as i32,
                available_service_ids: vec!["SSH".into()],
                ..Message::default()
            };
            let mut out = Vec::new();
            encode_frame(&msg, &mut out).expect("encodes");
            out
        };
        assert_eq!(rules.filter(&ids).feed, ids);
        let start = frame(MessageType::StreamStart, 7, "", 0);
        assert_eq!(rules.filter(&start).feed, start);
        assert_eq!(rules.filter(&data(7)).feed, data(7));
        let again = frame(MessageType::StreamStart, 9, "", 0);
        let both = [again.clone(), data(9)].concat();
        let out = rules.filter(&both);
        assert_eq!(out.feed, both);
        assert_eq!((out.ignored, out.redial), (None, None));
    }

    #[test]
    fn a_v3_session_is_never_answered_and_a_v1_start_then_redials() {
        let mut rules = Rules::new();
        let out = rules.filter(&frame(MessageType::StreamStart, 7, "SSH", 1));
        assert!(out.feed.is_empty() && out.ignored.is_some());
        assert!(rules.filter(&data(7)).feed.is_empty());
        assert_eq!(
            rules
                .filter(&frame(MessageType::StreamStart, 8, "", 0))
                .redial,
            Some(Redial {
                session: Format::V3,
                came: Format::V1
            })
        );
        // V2 (a service id, no connection id) is not answered either.
        let mut rules = Rules::new();
        assert!(
            rules
                .filter(&frame(MessageType::StreamStart, 7, "SSH", 0))
                .feed
                .is_empty()
        );
    }

    #[test]
    fn a_stream_id_above_its_varints_is_not_answered() {
        let mut rules = Rules::new();
        let out = rules.filter(&frame(MessageType::StreamStart, MAX_ID + 1, "", 0));
        assert!(out.feed.is_empty() && out.ignored.is_some());
        assert!(rules.filter(&data(MAX_ID + 1)).feed.is_empty());
        let start = frame(MessageType::StreamStart, MAX_ID, "", 0);
        assert_eq!(rules.filter(&start).feed, start);
    }

    #[test]
    fn a_frame_split_across_messages_is_judged_when_complete() {
        let mut rules = Rules::new();
        let start = frame(MessageType::StreamStart, 5, "", 0);
        let (head, tail) = start.split_at(3);
        assert!(rules.filter(head).feed.is_empty());
        assert_eq!(rules.filter(tail).feed, start);
    }
}
