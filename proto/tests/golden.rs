//! Golden frames: bytes produced by Google's reference protobuf implementation
//! (`tests/golden/gen_golden.py` → `tests/golden/frames.json`) must be exactly what our codec
//! writes for the same message, and must decode back to it, or be refused with the same typed
//! error on both the encoding and the decoding side.

use burrow_proto::codec::{DataHeader, Decoded, FrameError, encode_data_frame};
use burrow_proto::{FrameDecoder, Message, MessageType, decode_frame, encode_frame};
use serde_json::Value;

/// One case of `frames.json`.
struct Case {
    name: String,
    message: Message,
    /// Whether the fields include one our schema lacks (so prost cannot re-create the bytes).
    has_unknown_field: bool,
    expect: String,
    strict_expect: Option<String>,
    frame: Vec<u8>,
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 256) as u8).collect()
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "even number of hex digits");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit pair"))
        .collect()
}

fn load() -> Vec<Case> {
    let text = include_str!("golden/frames.json");
    let root: Value = serde_json::from_str(text).expect("frames.json is JSON");
    let cases = root["cases"].as_array().expect("cases array");
    cases
        .iter()
        .map(|case| {
            let fields = case["fields"].as_object().expect("fields object");
            let mut message = Message::default();
            let mut has_unknown_field = false;
            for (key, value) in fields {
                match key.as_str() {
                    "type" => message.r#type = value.as_i64().expect("int") as i32,
                    "streamId" => message.stream_id = value.as_i64().expect("int") as i32,
                    "ignorable" => message.ignorable = value.as_bool().expect("bool"),
                    "payload" => {
                        let len = value[0].as_u64().expect("len") as usize;
                        let seed = value[1].as_u64().expect("seed") as usize;
                        message.payload = pattern(len, seed);
                    }
                    "serviceId" => message.service_id = value.as_str().expect("str").to_owned(),
                    "availableServiceIds" => {
                        message.available_service_ids = value
                            .as_array()
                            .expect("list")
                            .iter()
                            .map(|v| v.as_str().expect("str").to_owned())
                            .collect();
                    }
                    "connectionId" => {
                        message.connection_id = value.as_u64().expect("uint") as u32;
                    }
                    _ => has_unknown_field = true,
                }
            }
            Case {
                name: case["name"].as_str().expect("name").to_owned(),
                message,
                has_unknown_field,
                expect: case["expect"].as_str().expect("expect").to_owned(),
                strict_expect: case["strict_expect"].as_str().map(str::to_owned),
                frame: hex(case["frame"].as_str().expect("frame hex")),
            }
        })
        .collect()
}

fn variant(err: &FrameError) -> String {
    let debug = format!("{err:?}");
    debug.split('(').next().unwrap_or_default().to_owned()
}

fn decode_with(mut decoder: FrameDecoder, frame: &[u8]) -> Result<Message, FrameError> {
    let mut input = frame;
    let msg = decoder.decode(&mut input)?.expect("a whole frame decodes");
    assert!(input.is_empty(), "the frame is consumed whole");
    Ok(msg)
}

#[test]
fn golden_file_covers_every_type_and_field() {
    let cases = load();
    let valid: Vec<&Case> = cases.iter().filter(|c| c.expect == "ok").collect();
    for kind in 1..=7 {
        assert!(
            valid.iter().any(|c| c.message.r#type == kind),
            "no valid case of type {kind}"
        );
    }
    assert!(
        cases.iter().any(|c| c.message.r#type == 0),
        "no UNKNOWN case"
    );
    let m = |f: fn(&Message) -> bool| valid.iter().any(|c| f(&c.message));
    assert!(m(|m| m.stream_id < 0) && m(|m| m.stream_id == i32::MAX));
    assert!(m(|m| m.ignorable));
    assert!(m(
        |m| m.payload.len() == burrow_proto::codec::MAX_PAYLOAD_LEN
    ));
    assert!(m(|m| !m.service_id.is_empty()));
    assert!(m(|m| m.available_service_ids.len() == 3));
    assert!(m(|m| m.connection_id == u32::MAX));
}

#[test]
fn valid_frames_encode_byte_for_byte_and_decode_back() {
    for case in load()
        .iter()
        .filter(|c| c.expect == "ok" && !c.has_unknown_field)
    {
        let mut ours = Vec::new();
        encode_frame(&case.message, &mut ours).expect("valid case encodes");
        assert_eq!(ours, case.frame, "{}: encode_frame bytes", case.name);
        assert_eq!(
            decode_frame(&case.frame),
            Ok(Decoded::Frame {
                message: case.message.clone(),
                consumed: case.frame.len()
            }),
            "{}",
            case.name
        );
        assert_eq!(
            decode_with(FrameDecoder::strict(), &case.frame).as_ref(),
            Ok(&case.message)
        );
        assert_eq!(
            decode_with(FrameDecoder::new(), &case.frame).as_ref(),
            Ok(&case.message)
        );
        if case.message.kind() == Some(MessageType::Data) && !case.message.ignorable {
            let header = DataHeader {
                stream_id: case.message.stream_id,
                service_id: &case.message.service_id,
                connection_id: case.message.connection_id,
            };
            let mut direct = Vec::new();
            encode_data_frame(&header, &case.message.payload, &mut direct).expect("encodes");
            assert_eq!(direct, case.frame, "{}: encode_data_frame bytes", case.name);
            assert_eq!(
                header.frame_len(case.message.payload.len()),
                case.frame.len()
            );
        }
    }
}

#[test]
fn invalid_frames_are_refused_alike_by_encoder_and_decoder() {
    for case in load().iter().filter(|c| c.expect != "ok") {
        let decoded = decode_with(FrameDecoder::new(), &case.frame).expect_err(&case.name);
        assert_eq!(
            variant(&decoded),
            case.expect,
            "{}: decode error",
            case.name
        );
        let strict = decode_with(FrameDecoder::strict(), &case.frame).expect_err(&case.name);
        assert_eq!(strict, decoded, "{}: strict decode error", case.name);
        let mut out = vec![0xAA];
        let encoded = encode_frame(&case.message, &mut out).expect_err(&case.name);
        assert_eq!(encoded, decoded, "{}: encode error", case.name);
        assert_eq!(out, vec![0xAA], "{}: output untouched on error", case.name);
        if case.message.kind() == Some(MessageType::Data) {
            let header = DataHeader {
                stream_id: case.message.stream_id,
                service_id: &case.message.service_id,
                connection_id: case.message.connection_id,
            };
            let direct = encode_data_frame(&header, &case.message.payload, &mut out);
            assert_eq!(
                direct,
                Err(decoded),
                "{}: encode_data_frame error",
                case.name
            );
        }
    }
}

#[test]
fn unknown_fields_are_skipped_leniently_and_refused_strictly() {
    let cases = load();
    let with_unknown: Vec<&Case> = cases.iter().filter(|c| c.has_unknown_field).collect();
    assert!(
        !with_unknown.is_empty(),
        "the golden file has an unknown-field case"
    );
    for case in with_unknown {
        assert_eq!(
            decode_with(FrameDecoder::new(), &case.frame).as_ref(),
            Ok(&case.message),
            "{}",
            case.name
        );
        let strict = decode_with(FrameDecoder::strict(), &case.frame).expect_err(&case.name);
        assert_eq!(Some(variant(&strict)), case.strict_expect, "{}", case.name);
    }
}
