//! The frame codec: `u16` big-endian length, then that many bytes of a protobuf [`Message`].
//!
//! WebSocket message boundaries are not frame boundaries: one WebSocket message may carry several
//! frames or a part of one. [`FrameDecoder`] therefore works on a byte stream fed in arbitrary
//! chunks, borrowing the caller's buffer and keeping only the unfinished tail of one frame
//! (at most [`MAX_FRAME_LEN`] bytes) between calls. "Need more bytes" (`Ok(None)`) is kept apart
//! from "invalid" (`Err`). Hostile input can neither panic the decoder nor make it allocate more
//! than one maximal frame.
//!
//! Encoding appends to a caller's `Vec`: [`encode_frame`] for any message, and
//! [`encode_data_frame`] for DATA straight from a borrowed payload (one copy, byte-identical
//! output), which is what the endpoint uses on its hot path.
//!
//! The codec checks what every frame must satisfy on its own (type set, stream id for stream
//! messages, payload size, unknown fields in strict mode). Rules that depend on the session
//! (which stream is current, who may send what) belong to [`crate::endpoint`] and the service.

use prost::Message as _;
use prost::bytes::Buf;
use prost::encoding::{
    WireType, decode_key, encode_key, encode_varint, encoded_len_varint, key_len, skip_field,
};

use crate::message::{Message, MessageType};

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_LEN: usize = 2;
/// Largest encoded `Message` a frame can carry (the length prefix is a `u16`).
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// Largest whole frame: the prefix plus the largest message.
pub const MAX_FRAME_LEN: usize = LENGTH_PREFIX_LEN + MAX_MESSAGE_LEN;
/// Largest `payload` the protocol allows in one message (63 KiB).
pub const MAX_PAYLOAD_LEN: usize = 64_512;
/// Largest WebSocket message either side may send (a frame's worth of headroom over 128 KiB).
pub const MAX_WS_MESSAGE_LEN: usize = 131_076;
/// Highest field number in the schema (`connectionId = 7`).
const MAX_FIELD_NUMBER: u32 = 7;

/// Why a frame was refused. Every variant means the peer (or, when encoding, the caller)
/// broke the protocol; none of them is recoverable on the same byte stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame body is not a decodable protobuf `Message`.
    #[error("frame is not a valid protobuf message: {0}")]
    Undecodable(String),
    /// Strict mode: the message carries a field the schema does not have.
    #[error("frame carries unknown protobuf field {0}")]
    UnknownField(u32),
    /// `type` is 0 (`UNKNOWN`) or absent.
    #[error("message type is missing (0)")]
    TypeMissing,
    /// The type number is not one of the known types and the message is not `ignorable`.
    #[error("message type {0} is unknown and not ignorable")]
    UnknownType(i32),
    /// A stream message (DATA, STREAM_START, STREAM_RESET, CONNECTION_START, CONNECTION_RESET)
    /// with stream id 0.
    #[error("{0:?} message has stream id 0")]
    StreamIdZero(MessageType),
    /// The payload is over [`MAX_PAYLOAD_LEN`].
    #[error("payload of {0} bytes exceeds the limit of 64512")]
    PayloadTooLarge(usize),
    /// The encoded message does not fit behind a `u16` length prefix.
    #[error("encoded message of {0} bytes exceeds the frame limit of 65535")]
    MessageTooLarge(usize),
}

/// Checks the rules every single frame must satisfy, whoever sends it.
///
/// Unknown types pass when `ignorable` is set: the receiver is expected to skip them.
pub fn validate(msg: &Message) -> Result<(), FrameError> {
    if msg.payload.len() > MAX_PAYLOAD_LEN {
        return Err(FrameError::PayloadTooLarge(msg.payload.len()));
    }
    match msg.kind() {
        Some(MessageType::Unknown) => Err(FrameError::TypeMissing),
        Some(kind) if kind.is_stream_message() && msg.stream_id == 0 => {
            Err(FrameError::StreamIdZero(kind))
        }
        Some(_) => Ok(()),
        None if msg.ignorable => Ok(()),
        None => Err(FrameError::UnknownType(msg.r#type)),
    }
}

/// Appends `msg` as one frame (length prefix + body) to `out`.
///
/// Refuses exactly what [`decode_frame`] would refuse, and leaves `out` untouched on error.
pub fn encode_frame(msg: &Message, out: &mut Vec<u8>) -> Result<(), FrameError> {
    validate(msg)?;
    let len = msg.encoded_len();
    let prefix = u16::try_from(len).map_err(|_| FrameError::MessageTooLarge(len))?;
    out.reserve(LENGTH_PREFIX_LEN + len);
    out.extend_from_slice(&prefix.to_be_bytes());
    msg.encode_raw(out);
    Ok(())
}

/// The fields of a DATA message, borrowed, for [`encode_data_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader<'a> {
    /// The stream the data belongs to (must not be 0).
    pub stream_id: i32,
    /// The service id ("" writes none).
    pub service_id: &'a str,
    /// The connection id (0 writes none).
    pub connection_id: u32,
}

impl DataHeader<'_> {
    /// The length of the whole frame (prefix included) carrying `payload_len` bytes of payload.
    pub fn frame_len(&self, payload_len: usize) -> usize {
        LENGTH_PREFIX_LEN + self.body_len(payload_len)
    }

    fn body_len(&self, payload_len: usize) -> usize {
        let mut len = key_len(1) + encoded_len_varint(MessageType::Data as u64);
        if self.stream_id != 0 {
            len += key_len(2) + encoded_len_varint(i64::from(self.stream_id) as u64);
        }
        if payload_len != 0 {
            len += key_len(4) + encoded_len_varint(payload_len as u64) + payload_len;
        }
        if !self.service_id.is_empty() {
            len += key_len(5)
                + encoded_len_varint(self.service_id.len() as u64)
                + self.service_id.len();
        }
        if self.connection_id != 0 {
            len += key_len(7) + encoded_len_varint(u64::from(self.connection_id));
        }
        len
    }
}

/// Appends one DATA frame to `out`, copying `payload` once, straight from the caller's slice.
///
/// The bytes are exactly those [`encode_frame`] writes for the equivalent [`Message`] (fields in
/// number order, proto3 defaults omitted), without first copying the payload into a `Message`.
/// Refuses what [`encode_frame`] refuses and leaves `out` untouched on error.
pub fn encode_data_frame(
    header: &DataHeader<'_>,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    if header.stream_id == 0 {
        return Err(FrameError::StreamIdZero(MessageType::Data));
    }
    let len = header.body_len(payload.len());
    let prefix = u16::try_from(len).map_err(|_| FrameError::MessageTooLarge(len))?;
    out.reserve(LENGTH_PREFIX_LEN + len);
    out.extend_from_slice(&prefix.to_be_bytes());
    encode_key(1, WireType::Varint, out);
    encode_varint(MessageType::Data as u64, out);
    encode_key(2, WireType::Varint, out);
    // Negative int32 values are sign-extended to ten bytes, as protobuf requires.
    encode_varint(i64::from(header.stream_id) as u64, out);
    if !payload.is_empty() {
        encode_key(4, WireType::LengthDelimited, out);
        encode_varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }
    if !header.service_id.is_empty() {
        encode_key(5, WireType::LengthDelimited, out);
        encode_varint(header.service_id.len() as u64, out);
        out.extend_from_slice(header.service_id.as_bytes());
    }
    if header.connection_id != 0 {
        encode_key(7, WireType::Varint, out);
        encode_varint(u64::from(header.connection_id), out);
    }
    Ok(())
}

/// What [`decode_frame`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// The buffer holds no whole frame yet; at least `needed` more bytes must arrive.
    NeedMore {
        /// How many more bytes complete the frame (or the length prefix).
        needed: usize,
    },
    /// A whole frame: the message and how many bytes of the buffer it took.
    Frame {
        /// The decoded, validated message.
        message: Message,
        /// Bytes consumed, prefix included.
        consumed: usize,
    },
}

/// Decodes the first frame of `buf`, if it is whole. Lenient about unknown fields.
pub fn decode_frame(buf: &[u8]) -> Result<Decoded, FrameError> {
    decode_frame_with(buf, false)
}

fn decode_frame_with(buf: &[u8], strict: bool) -> Result<Decoded, FrameError> {
    let Some(prefix) = buf.first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(Decoded::NeedMore {
            needed: LENGTH_PREFIX_LEN - buf.len(),
        });
    };
    let len = usize::from(u16::from_be_bytes(*prefix));
    let total = LENGTH_PREFIX_LEN + len;
    if buf.len() < total {
        return Ok(Decoded::NeedMore {
            needed: total - buf.len(),
        });
    }
    let message = decode_body(&buf[LENGTH_PREFIX_LEN..total], strict)?;
    Ok(Decoded::Frame {
        message,
        consumed: total,
    })
}

/// Decodes and validates one frame body (the bytes after the length prefix).
pub fn decode_body(body: &[u8], strict: bool) -> Result<Message, FrameError> {
    if strict {
        check_known_fields(body)?;
    }
    let message = Message::decode(body).map_err(|e| FrameError::Undecodable(e.to_string()))?;
    validate(&message)?;
    Ok(message)
}

/// Walks the protobuf wire format and refuses field numbers outside the schema.
fn check_known_fields(mut body: &[u8]) -> Result<(), FrameError> {
    let ctx = prost::encoding::DecodeContext::default();
    while body.has_remaining() {
        let (tag, wire_type): (u32, WireType) =
            decode_key(&mut body).map_err(|e| FrameError::Undecodable(e.to_string()))?;
        if tag > MAX_FIELD_NUMBER {
            return Err(FrameError::UnknownField(tag));
        }
        skip_field(wire_type, tag, &mut body, ctx.clone())
            .map_err(|e| FrameError::Undecodable(e.to_string()))?;
    }
    Ok(())
}

/// A streaming frame decoder for one direction of one WebSocket.
///
/// Feed it each binary WebSocket message as it arrives:
///
/// ```
/// # use burrow_proto::{FrameDecoder, Message, MessageType, encode_frame};
/// let mut wire = Vec::new();
/// encode_frame(&Message::of(MessageType::SessionReset), &mut wire).unwrap();
/// let mut decoder = FrameDecoder::new();
/// let (first, second) = wire.split_at(1);
/// let mut input: &[u8] = first;
/// assert_eq!(decoder.decode(&mut input), Ok(None)); // need more
/// let mut input: &[u8] = second;
/// let msg = decoder.decode(&mut input).unwrap().unwrap();
/// assert_eq!(msg.kind(), Some(MessageType::SessionReset));
/// ```
///
/// After an error the decoder stays failed (the byte stream cannot be trusted any more) and
/// returns the same error on every call.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// The unfinished tail of a frame that spans calls; never longer than [`MAX_FRAME_LEN`].
    partial: Vec<u8>,
    strict: bool,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that ignores unknown protobuf fields (what a client should do).
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses unknown protobuf fields (what the tunneling service does).
    pub fn strict() -> Self {
        Self {
            strict: true,
            ..Self::default()
        }
    }

    /// Bytes held back from earlier calls (an unfinished frame).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Decodes the next frame, consuming bytes from the front of `input`.
    ///
    /// Returns `Ok(None)` once `input` is used up without completing a frame; the unfinished part
    /// is kept for the next call. Call it in a loop until it returns `Ok(None)` or an error.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_inner(input);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.partial = Vec::new();
        }
        result
    }

    fn decode_inner(&mut self, input: &mut &[u8]) -> Result<Option<Message>, FrameError> {
        if self.partial.is_empty() {
            // Fast path: decode straight from the caller's buffer.
            match decode_frame_with(input, self.strict)? {
                Decoded::Frame { message, consumed } => {
                    *input = &input[consumed..];
                    return Ok(Some(message));
                }
                Decoded::NeedMore { needed } => {
                    // Allocate once for the whole declared frame (or for the prefix).
                    self.partial.reserve_exact(input.len() + needed);
                    self.take(input, input.len());
                    return Ok(None);
                }
            }
        }
        // Slow path: complete the length prefix, then the body, in the held-back buffer.
        if self.partial.len() < LENGTH_PREFIX_LEN {
            let want = LENGTH_PREFIX_LEN - self.partial.len();
            self.take(input, want);
            if self.partial.len() < LENGTH_PREFIX_LEN {
                return Ok(None);
            }
        }
        let len = usize::from(u16::from_be_bytes([self.partial[0], self.partial[1]]));
        let total = LENGTH_PREFIX_LEN + len;
        let want = total - self.partial.len();
        // Never more than one maximal frame: `total` is at most MAX_FRAME_LEN.
        self.partial.reserve_exact(want);
        self.take(input, want);
        if self.partial.len() < total {
            return Ok(None);
        }
        let partial = std::mem::take(&mut self.partial);
        let message = decode_body(&partial[LENGTH_PREFIX_LEN..], self.strict)?;
        // Keep the allocation for the next spanning frame.
        self.partial = partial;
        self.partial.clear();
        Ok(Some(message))
    }

    /// Moves up to `want` bytes from the front of `input` into the held-back buffer.
    fn take(&mut self, input: &mut &[u8], want: usize) {
        let n = want.min(input.len());
        self.partial.extend_from_slice(&input[..n]);
        *input = &input[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(msg, &mut out).expect("valid message encodes");
        out
    }

    fn data(stream_id: i32, payload: &[u8]) -> Message {
        Message {
            stream_id,
            payload: payload.to_vec(),
            ..Message::of(MessageType::Data)
        }
    }

    #[test]
    fn round_trip_across_every_split() {
        let msgs = [
            data(1, b"hello"),
            data(7, &[0u8; 300]),
            Message::of(MessageType::SessionReset),
        ];
        let wire: Vec<u8> = msgs.iter().flat_map(frame).collect();
        for split in 0..=wire.len() {
            let mut dec = FrameDecoder::strict();
            let mut got = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                let mut input = chunk;
                while let Some(m) = dec.decode(&mut input).expect("valid stream") {
                    got.push(m);
                }
                assert!(input.is_empty());
            }
            assert_eq!(got, msgs, "split at {split}");
        }
    }

    #[test]
    fn refuses_protocol_violations() {
        assert_eq!(
            encode_frame(&Message::default(), &mut Vec::new()),
            Err(FrameError::TypeMissing)
        );
        assert_eq!(
            encode_frame(&data(0, b"x"), &mut Vec::new()),
            Err(FrameError::StreamIdZero(MessageType::Data))
        );
        assert_eq!(
            encode_frame(&data(1, &vec![0; MAX_PAYLOAD_LEN + 1]), &mut Vec::new()),
            Err(FrameError::PayloadTooLarge(MAX_PAYLOAD_LEN + 1))
        );
        assert!(encode_frame(&data(1, &vec![0; MAX_PAYLOAD_LEN]), &mut Vec::new()).is_ok());
    }

    #[test]
    fn strict_mode_refuses_unknown_fields() {
        // type = DATA (field 1), stream id 1 (field 2), then field 9 varint 1.
        let body = [0x08, 0x01, 0x10, 0x01, 0x48, 0x01];
        let mut wire = vec![0, body.len() as u8];
        wire.extend_from_slice(&body);
        let mut input: &[u8] = &wire;
        assert_eq!(
            FrameDecoder::strict().decode(&mut input),
            Err(FrameError::UnknownField(9))
        );
        let mut input: &[u8] = &wire;
        assert_eq!(
            FrameDecoder::new().decode(&mut input),
            Ok(Some(data(1, b"")))
        );
    }

    #[test]
    fn held_back_allocation_never_exceeds_one_frame() {
        // A maximal frame fed in uneven pieces, then a small one: the buffer is allocated for
        // the declared frame only.
        let big = data(1, &vec![7; MAX_PAYLOAD_LEN]);
        let mut wire = frame(&big);
        wire.extend(frame(&data(2, b"x")));
        for piece in [1, 2, 3, 1000, 40_000] {
            let mut dec = FrameDecoder::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                let mut input = chunk;
                while let Some(m) = dec.decode(&mut input).expect("valid stream") {
                    got.push(m);
                }
                assert!(dec.partial.capacity() <= MAX_FRAME_LEN, "piece {piece}");
            }
            assert_eq!(got.len(), 2, "piece {piece}");
        }
    }

    #[test]
    fn stays_failed_after_an_error() {
        let mut dec = FrameDecoder::new();
        let mut input: &[u8] = &[0, 1, 0xff];
        assert!(matches!(
            dec.decode(&mut input),
            Err(FrameError::Undecodable(_))
        ));
        let mut good: &[u8] = &frame(&data(1, b"x"));
        assert!(dec.decode(&mut good).is_err());
    }
}
