//! Property tests of the frame codec: any valid message sequence survives any cutting of the
//! byte stream into WebSocket messages; arbitrary bytes never panic the decoder nor make it
//! hold more than one frame; the encoder refuses exactly what the decoder refuses.

use burrow_proto::codec::{
    DataHeader, Decoded, FrameError, LENGTH_PREFIX_LEN, MAX_FRAME_LEN, MAX_PAYLOAD_LEN,
    decode_body, encode_data_frame,
};
use burrow_proto::{FrameDecoder, Message, MessageType, decode_frame, encode_frame};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message as _;

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..64),
        3 => vec(any::<u8>(), 64..3000),
        1 => (MAX_PAYLOAD_LEN - 8..=MAX_PAYLOAD_LEN).prop_map(|n| vec![0x5A; n]),
    ]
}

fn service_id() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[A-Za-z0-9_:-]{1,12}"]
}

/// Messages the codec accepts: known non-zero types (stream messages with a stream id), or
/// unknown types marked ignorable.
fn valid_message() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        8 => 1..=7i32,
        1 => 8..1000i32,
    ];
    (
        kind,
        any::<i32>().prop_filter("stream id", |id| *id != 0),
        any::<bool>(),
        payload(),
        service_id(),
        vec("[A-Z]{1,5}", 0..4),
        prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
    )
        .prop_map(
            |(r#type, stream_id, ignorable, payload, service_id, ids, connection_id)| Message {
                r#type,
                stream_id,
                ignorable: ignorable || r#type > 7,
                payload,
                service_id,
                available_service_ids: ids,
                connection_id,
            },
        )
}

/// Any message, valid or not, with values near the codec's limits.
fn any_message() -> impl Strategy<Value = Message> {
    (
        -2..12i32,
        prop_oneof![Just(0i32), any::<i32>()],
        any::<bool>(),
        prop_oneof![
            3 => vec(any::<u8>(), 0..16),
            1 => (MAX_PAYLOAD_LEN - 2..=MAX_PAYLOAD_LEN + 2).prop_map(|n| vec![1; n]),
        ],
        prop_oneof![
            4 => service_id(),
            1 => (900..1100usize).prop_map(|n| "s".repeat(n)),
        ],
        prop_oneof![Just(0u32), any::<u32>()],
    )
        .prop_map(
            |(r#type, stream_id, ignorable, payload, service_id, connection_id)| Message {
                r#type,
                stream_id,
                ignorable,
                payload,
                service_id,
                available_service_ids: Vec::new(),
                connection_id,
            },
        )
}

/// Cuts `wire` at the given fractions (each in 0..=1000 per mille), sorted.
fn cut(wire: &[u8], cuts: &[u16]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| wire.len() * usize::from(*c) / 1000)
        .collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points
        .windows(2)
        .map(|w| wire[w[0]..w[1]].to_vec())
        .collect()
}

fn decode_all(decoder: &mut FrameDecoder, chunks: &[Vec<u8>]) -> Result<Vec<Message>, FrameError> {
    let mut got = Vec::new();
    for chunk in chunks {
        let mut input: &[u8] = chunk;
        while let Some(msg) = decoder.decode(&mut input)? {
            got.push(msg);
        }
        assert!(input.is_empty(), "Ok(None) means the chunk is used up");
        assert!(decoder.buffered() <= MAX_FRAME_LEN);
    }
    Ok(got)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_cutting_of_a_valid_stream_decodes_the_same_messages(
        msgs in vec(valid_message(), 0..8),
        cuts in vec(0u16..=1000, 0..12),
    ) {
        let mut wire = Vec::new();
        for msg in &msgs {
            encode_frame(msg, &mut wire).expect("valid message encodes");
        }
        let chunks = cut(&wire, &cuts);
        for mut decoder in [FrameDecoder::new(), FrameDecoder::strict()] {
            let got = decode_all(&mut decoder, &chunks).expect("valid stream decodes");
            prop_assert_eq!(&got, &msgs);
            prop_assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn one_byte_at_a_time_decodes_the_same_messages(msgs in vec(valid_message(), 1..3)) {
        let mut wire = Vec::new();
        for msg in &msgs {
            encode_frame(msg, &mut wire).expect("valid message encodes");
        }
        let chunks: Vec<Vec<u8>> = wire.iter().map(|b| vec![*b]).collect();
        let got = decode_all(&mut FrameDecoder::strict(), &chunks).expect("valid stream decodes");
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        bytes in vec(any::<u8>(), 0..4096),
        cuts in vec(0u16..=1000, 0..8),
        strict in any::<bool>(),
    ) {
        let mut decoder = if strict { FrameDecoder::strict() } else { FrameDecoder::new() };
        let chunks = cut(&bytes, &cuts);
        if let Err(err) = decode_all(&mut decoder, &chunks) {
            // A failed decoder keeps failing with the same error, whatever comes next.
            let mut more: &[u8] = &[0, 2, 8, 4];
            prop_assert_eq!(decoder.decode(&mut more), Err(err));
            prop_assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_declared_maximal_frame_is_held_without_growing_past_the_limit(
        fill in vec(any::<u8>(), 0..200),
        rounds in 1usize..40,
    ) {
        // Prefix 0xFFFF announces a 65535-byte body; feed it slowly.
        let mut decoder = FrameDecoder::new();
        let mut input: &[u8] = &[0xFF, 0xFF];
        prop_assert_eq!(decoder.decode(&mut input), Ok(None));
        for _ in 0..rounds {
            let mut input: &[u8] = &fill;
            let _ = decoder.decode(&mut input);
            prop_assert!(decoder.buffered() <= MAX_FRAME_LEN);
        }
    }

    #[test]
    fn encode_refuses_exactly_what_decode_refuses(msg in any_message()) {
        let mut out = Vec::new();
        let encoded = encode_frame(&msg, &mut out);
        let body = msg.encode_to_vec();
        match encoded {
            Ok(()) => {
                prop_assert_eq!(out.len(), LENGTH_PREFIX_LEN + body.len());
                prop_assert_eq!(
                    decode_frame(&out),
                    Ok(Decoded::Frame { message: msg.clone(), consumed: out.len() })
                );
            }
            Err(FrameError::MessageTooLarge(len)) => {
                // Such a message cannot be put behind a u16 prefix at all.
                prop_assert_eq!(len, body.len());
                prop_assert!(body.len() > usize::from(u16::MAX));
                prop_assert!(out.is_empty());
            }
            Err(err) => {
                prop_assert!(out.is_empty());
                prop_assert_eq!(decode_body(&body, false), Err(err.clone()));
                prop_assert_eq!(decode_body(&body, true), Err(err));
            }
        }
    }

    #[test]
    fn direct_data_encoding_matches_encode_frame(
        stream_id in any::<i32>(),
        data in payload(),
        service_id in service_id(),
        connection_id in prop_oneof![Just(0u32), any::<u32>()],
    ) {
        let msg = Message {
            stream_id,
            payload: data.clone(),
            service_id: service_id.clone(),
            connection_id,
            ..Message::of(MessageType::Data)
        };
        let header = DataHeader { stream_id, service_id: &service_id, connection_id };
        let mut via_message = Vec::new();
        let mut direct = Vec::new();
        let a = encode_frame(&msg, &mut via_message);
        let b = encode_data_frame(&header, &data, &mut direct);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&via_message, &direct);
        if a.is_ok() {
            prop_assert_eq!(header.frame_len(data.len()), direct.len());
        }
    }
}
