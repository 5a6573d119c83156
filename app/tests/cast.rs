//! The asciicast v2 writer against the format: every line parses as JSON, the header has the
//! fields players need, events are `[time, "o"|"r", text]` with non-decreasing times, UTF-8
//! split across chunks comes out whole, and the concatenated output is exactly what was fed.

use burrow_app::record::cast::{CastWriter, Header, file_name};
use serde_json::Value;

fn header() -> Header {
    Header {
        width: 80,
        height: 24,
        timestamp: 1_764_655_200,
        term: "xterm-256color".to_owned(),
        title: Some("alice@pump-7 — shell 1".to_owned()),
    }
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .expect("a cast file is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

/// Feeds `chunks` at 10 ms intervals and returns the whole file.
fn record(chunks: &[&[u8]]) -> Vec<u8> {
    let (mut writer, mut file) = CastWriter::start(&header(), 1000.0);
    for (i, chunk) in chunks.iter().enumerate() {
        if let Some(line) = writer.output(chunk, 1000.0 + 10.0 * (i as f64 + 1.0)) {
            file.extend(line);
        }
    }
    if let Some(line) = writer.finish(2000.0) {
        file.extend(line);
    }
    file
}

fn output_of(file: &[u8]) -> String {
    lines(file)[1..]
        .iter()
        .filter(|event| event[1] == "o")
        .map(|event| event[2].as_str().expect("text").to_owned())
        .collect()
}

#[test]
fn the_header_has_what_players_need() {
    let (_, line) = CastWriter::start(&header(), 0.0);
    assert_eq!(line.last(), Some(&b'\n'));
    let header = &lines(&line)[0];
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 80);
    assert_eq!(header["height"], 24);
    assert_eq!(header["timestamp"], 1_764_655_200_u64);
    assert_eq!(header["env"]["TERM"], "xterm-256color");
    assert_eq!(header["title"], "alice@pump-7 — shell 1");
}

#[test]
fn output_and_resize_events_have_times_kinds_and_text() {
    let (mut writer, mut file) = CastWriter::start(&header(), 5000.0);
    file.extend(writer.output(b"$ ls\r\n", 5250.0).expect("an event"));
    file.extend(writer.resize(120, 40, 6000.0));
    // A clock that steps back does not make time run backwards in the file.
    file.extend(
        writer
            .output(b"\x1b[1mbold\x1b[0m \"quoted\"\\", 5900.0)
            .expect("an event"),
    );
    let events = lines(&file);
    assert_eq!(events.len(), 4);
    assert_eq!(events[1][0].as_f64(), Some(0.25));
    assert_eq!(events[1][1], "o");
    assert_eq!(events[1][2], "$ ls\r\n");
    assert_eq!(events[2][0].as_f64(), Some(1.0));
    assert_eq!(events[2][1], "r");
    assert_eq!(events[2][2], "120x40");
    assert_eq!(events[3][0].as_f64(), Some(1.0));
    assert_eq!(events[3][2], "\u{1b}[1mbold\u{1b}[0m \"quoted\"\\");
}

#[test]
fn utf8_cut_between_chunks_comes_out_whole() {
    let text = "héllo → ✓ 🦀 done";
    let bytes = text.as_bytes();
    // Every split point, including those inside multi-byte characters.
    for cut in 0..=bytes.len() {
        let file = record(&[&bytes[..cut], &bytes[cut..]]);
        assert_eq!(output_of(&file), text, "cut at {cut}");
        for event in &lines(&file)[1..] {
            assert!(!event[2].as_str().unwrap_or_default().contains('\u{fffd}'));
        }
    }
    // One byte at a time.
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(output_of(&record(&singles)), text);
}

#[test]
fn bytes_that_are_not_utf8_become_replacement_characters() {
    let file = record(&[b"ok \xff\xfe end", b" \xe2\x82"]);
    assert_eq!(output_of(&file), "ok \u{fffd}\u{fffd} end \u{fffd}");
}

#[test]
fn a_chunk_holding_only_the_start_of_a_character_makes_no_event() {
    let (mut writer, _) = CastWriter::start(&header(), 0.0);
    assert_eq!(writer.output(b"\xf0\x9f", 1.0), None);
    let line = writer
        .output(b"\xa6\x80!", 2.0)
        .expect("the character completes");
    assert_eq!(lines(&line)[0][2], "🦀!");
    assert_eq!(writer.finish(3.0), None);
}

#[test]
fn file_names_carry_the_device_and_the_utc_time() {
    assert_eq!(
        file_name("alice@pump-7", 1_764_655_200),
        "alice@pump-7-20251202-060000.cast"
    );
    assert_eq!(
        file_name("ops@thing/with spaces", 951_782_400 + 86_399),
        "ops@thing_with_spaces-20000229-235959.cast"
    );
    assert_eq!(file_name("", 0), "device-19700101-000000.cast");
}
