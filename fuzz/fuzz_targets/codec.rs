//! Fuzzes the frame codec: arbitrary bytes, cut into arbitrary WebSocket messages, go into a
//! lenient and a strict [`FrameDecoder`]. Neither may panic or hold more than one frame; every
//! frame they accept must re-encode to a frame that decodes to the same message, and the strict
//! decoder must accept nothing the lenient one refuses.

#![no_main]

use burrow_proto::codec::{MAX_FRAME_LEN, decode_body};
use burrow_proto::{FrameDecoder, Message, encode_frame};
use libfuzzer_sys::fuzz_target;

/// Feeds every chunk, collecting messages until the first error.
fn run(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> (Vec<Message>, bool) {
    let mut got = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(msg)) => got.push(msg),
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) leaves no input behind");
                    break;
                }
                Err(_) => return (got, true),
            }
            assert!(decoder.buffered() <= MAX_FRAME_LEN);
        }
        assert!(decoder.buffered() <= MAX_FRAME_LEN);
    }
    (got, false)
}

fn check_round_trip(msg: &Message) {
    let mut wire = Vec::new();
    encode_frame(msg, &mut wire).expect("an accepted message re-encodes");
    let again = decode_body(&wire[2..], true).expect("a re-encoded message decodes strictly");
    assert_eq!(&again, msg, "re-encoding round trip");
}

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the cut points: chunk lengths cycle through a small table.
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let lengths = [1usize, 2, 3, 7, 64, 1000, 65537, usize::MAX];
    let mut chunks = Vec::new();
    let mut rest = bytes;
    let mut i = usize::from(selector);
    while !rest.is_empty() {
        let n = lengths[i % lengths.len()].min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        chunks.push(chunk);
        rest = tail;
        i = i.wrapping_mul(5).wrapping_add(3);
    }
    let (lenient, lenient_failed) = run(&mut FrameDecoder::new(), &chunks);
    let (strict, strict_failed) = run(&mut FrameDecoder::strict(), &chunks);
    // Strict accepts a subset: everything it decoded, the lenient decoder decoded too.
    assert!(strict.len() <= lenient.len());
    assert_eq!(&lenient[..strict.len()], &strict[..]);
    if lenient_failed {
        assert!(strict_failed, "strict must fail where lenient fails");
    }
    // Whole-buffer decoding agrees with chunked decoding.
    let (whole, whole_failed) = run(&mut FrameDecoder::new(), &[bytes]);
    assert_eq!(whole, lenient);
    assert_eq!(whole_failed, lenient_failed);
    for msg in &lenient {
        check_round_trip(msg);
    }
});
