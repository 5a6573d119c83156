//! What the fuzz targets share: writing a frame without the codec's checks (so that broken
//! frames reach the parser under test), and cutting one WebSocket message in two at a point the
//! input chose (frames must survive any regrouping).

use burrow_proto::Message;

/// Appends `msg` as a frame (length prefix and body) even where the codec would refuse it;
/// `junk` appends an unknown protobuf field, which the strict decoder refuses. A body too long
/// for the length prefix is left out.
pub fn encode_unchecked(msg: &Message, junk: bool, out: &mut Vec<u8>) {
    let mut body = prost::Message::encode_to_vec(msg);
    if junk {
        // Field 15, varint 1: unknown to the schema.
        body.extend_from_slice(&[0x78, 0x01]);
    }
    if let Ok(len) = u16::try_from(body.len()) {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
    }
}

/// `bytes` cut in two at `split` (modulo its length + 1, so either part may be empty).
pub fn cut(bytes: &[u8], split: u16) -> [&[u8]; 2] {
    let (first, second) = bytes.split_at(usize::from(split) % (bytes.len() + 1));
    [first, second]
}
