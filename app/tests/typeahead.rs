//! The typeahead predictor on recorded sessions (`tests/typeahead/*.json`, made by `record.py`
//! from real bash, zsh and vi on a pty), replayed with a simulated round trip.
//!
//! Each recording is a list of keys and what the program wrote back after each. The replay types
//! the keys at a steady pace and delivers each key's answer one round trip later, so several
//! keys are on the way at once, as on a slow link. Two terminals (the `vt100` emulator) are fed
//! side by side: the *reference* gets the program's output only, the *predicted* one gets what
//! the predictor makes of the keys and the output. The tests check that:
//!
//! - whenever no prediction is drawn, both screens are identical (text, attributes, cursor), so
//!   every rollback restores exactly what the device drew, and the final screens are equal;
//! - while a password is typed (`read -s`, `stty -echo`), nothing is ever drawn;
//! - keys at a shell prompt are shown before their echo once an epoch is confirmed, and in a
//!   full-screen program (vi) nothing is predicted.

use std::collections::VecDeque;

use burrow_app::term::typeahead::{Mode, Predictor, Screen, Style};

const ROWS: u16 = 24;
const COLS: u16 = 80;
/// Milliseconds between two keys.
const KEY_GAP: f64 = 40.0;

/// One step of a recording.
enum Step {
    Key(Vec<u8>),
    Output(Vec<u8>),
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn recording(json: &str) -> Vec<Step> {
    let events: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(json).expect("recording");
    events
        .into_iter()
        .map(|event| {
            let (kind, value) = event.into_iter().next().expect("one field");
            let bytes = hex(value.as_str().expect("hex string"));
            match kind.as_str() {
                "in" => Step::Key(bytes),
                _ => Step::Output(bytes),
            }
        })
        .collect()
}

fn screen_of(parser: &vt100::Parser) -> Screen {
    let screen = parser.screen();
    let (row, col) = screen.cursor_position();
    let blank_right =
        (col..COLS).all(|c| screen.cell(row, c).is_none_or(|cell| !cell.has_contents()));
    Screen {
        col,
        cols: COLS,
        blank_right,
        alternate: screen.alternate_screen(),
    }
}

/// The cursor and the character left of it.
type Echo = ((u16, u16), String);

fn echo_of(parser: &vt100::Parser) -> Echo {
    let screen = parser.screen();
    let (row, col) = screen.cursor_position();
    let left = match col.checked_sub(1) {
        Some(c) => screen
            .cell(row, c)
            .map(|cell| cell.contents().to_owned())
            .unwrap_or_default(),
        None => String::new(),
    };
    ((row, col), left)
}

fn snapshot(parser: &vt100::Parser) -> (Vec<u8>, (u16, u16)) {
    let screen = parser.screen();
    (screen.contents_formatted(), screen.cursor_position())
}

/// What a replay saw.
#[derive(Default)]
struct Replay {
    /// For each printable key typed at the prompt (main screen): how long until the predicted
    /// terminal showed a change after it (0: drawn at once), in milliseconds.
    shown_after: Vec<f64>,
    /// Keys after which a prediction was drawn.
    drawn: usize,
    /// Keys drawn while the alternate screen (a full-screen program) was active.
    drawn_in_alternate: usize,
    /// Password keys drawn, and moments a password (its first two characters or more) was on
    /// the screen.
    drawn_in_password: usize,
    /// Moments where nothing was drawn and the screens differed.
    differences: Vec<String>,
    final_equal: bool,
    final_text: String,
}

/// Replays `steps` with round trip `rtt` (ms); `passwords` are typed without echo somewhere in
/// the recording (each followed by Enter) and watched for being drawn.
///
/// With `pauses`, the operator waits after each key that is not printable (Enter, Ctrl-U, a
/// cursor key) until well after its answer is in (one and a half round trips and 100 ms), as
/// people read what a command printed;
/// without, every key follows the last after [`KEY_GAP`].
fn replay(steps: &[Step], mode: Mode, rtt: f64, passwords: &[&str], pauses: bool) -> Replay {
    let mut reference = vt100::Parser::new(ROWS, COLS, 0);
    let mut predicted = vt100::Parser::new(ROWS, COLS, 0);
    let mut predictor = Predictor::new(mode, Style::Underline);
    let mut result = Replay::default();

    // The timeline: key i at i × KEY_GAP, its answer one round trip later.
    let mut keys: Vec<(f64, Vec<u8>)> = Vec::new();
    let mut answers: VecDeque<(f64, Vec<u8>)> = VecDeque::new();
    let mut initial = Vec::new();
    let mut clock = 0.0;
    for step in steps {
        match step {
            Step::Key(bytes) => {
                keys.push((clock, bytes.clone()));
                let printable = bytes.len() == 1 && (0x20..0x7f).contains(&bytes[0]);
                clock += if pauses && !printable {
                    rtt * 1.5 + 100.0
                } else {
                    KEY_GAP
                };
            }
            Step::Output(bytes) => match keys.last() {
                Some((at, _)) => answers.push_back((at + rtt, bytes.clone())),
                None => initial.extend_from_slice(bytes),
            },
        }
    }
    // Which keys belong to a password.
    let typed: Vec<u8> = keys
        .iter()
        .map(|(_, key)| if key.len() == 1 { key[0] } else { 0 })
        .collect();
    let mut secret = vec![false; keys.len()];
    for password in passwords {
        let spelled = format!("{password}\r");
        let at = typed
            .windows(spelled.len())
            .position(|window| window == spelled.as_bytes())
            .expect("the password is typed in the recording");
        secret[at..at + password.len()].fill(true);
    }
    // What each key's echo makes of the screen (cursor, and the character left of it), when
    // everything arrives in order.
    let mut targets = Vec::new();
    {
        let mut alone = vt100::Parser::new(ROWS, COLS, 0);
        for step in steps {
            match step {
                Step::Key(_) => targets.push(echo_of(&alone)),
                Step::Output(bytes) => {
                    alone.process(bytes);
                    if let Some(last) = targets.last_mut() {
                        *last = echo_of(&alone);
                    }
                }
            }
        }
    }
    reference.process(&initial);
    predicted.process(&predictor.output(&initial, 0.0));

    // The beginnings of the passwords (two characters or more), which must never be on screen.
    let secrets: Vec<String> = passwords
        .iter()
        .flat_map(|password| (2..=password.len()).map(|n| password[..n].to_owned()))
        .collect();
    let mut watch: Vec<(f64, Echo)> = Vec::new();
    let mut keys = keys.into_iter().peekable();
    let check = |reference: &vt100::Parser,
                 predicted: &vt100::Parser,
                 predictor: &Predictor,
                 result: &mut Replay,
                 at: f64| {
        if predictor.shown() == 0 && snapshot(reference) != snapshot(predicted) {
            result.differences.push(format!(
                "at {at} ms:\n--- reference\n{}\n--- predicted\n{}",
                reference.screen().contents(),
                predicted.screen().contents()
            ));
        }
    };
    loop {
        let next_key = keys.peek().map(|(at, _)| *at);
        let next_answer = answers.front().map(|(at, _)| *at);
        let output_first = match (next_key, next_answer) {
            (None, None) => break,
            (Some(key), Some(answer)) => answer < key,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        let now;
        if output_first {
            let (at, bytes) = answers.pop_front().expect("answer");
            now = at;
            reference.process(&bytes);
            predicted.process(&predictor.output(&bytes, at));
        } else {
            let index = typed.len() - keys.len();
            let (at, key) = keys.next().expect("key");
            now = at;
            let in_password = secret[index];
            let screen = screen_of(&predicted);
            let drawn = predictor.input(&key, Some(screen), at);
            predicted.process(&drawn);
            if predictor.shown() > 0 && !drawn.is_empty() {
                result.drawn += 1;
                if screen.alternate {
                    result.drawn_in_alternate += 1;
                }
            }
            if in_password && !drawn.is_empty() {
                result.drawn_in_password += 1;
            }
            let printable = key.len() == 1 && (0x20..0x7f).contains(&key[0]);
            if printable && !screen.alternate && !in_password {
                watch.push((at, targets[index].clone()));
            }
        }
        // A key is shown once the terminal looks as its echo will make it look.
        let current = echo_of(&predicted);
        watch.retain(|(at, target)| {
            if *target == current {
                result.shown_after.push(now - at);
                false
            } else {
                true
            }
        });
        predicted.process(&predictor.tick(now));
        check(&reference, &predicted, &predictor, &mut result, now);
        let text = predicted.screen().contents();
        if secrets.iter().any(|secret| text.contains(secret.as_str())) {
            result.drawn_in_password += 1;
        }
    }
    // Whatever is still drawn times out.
    predicted.process(&predictor.tick(f64::MAX));
    result.final_equal = snapshot(&reference) == snapshot(&predicted);
    result.final_text = predicted.screen().contents();
    result
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

const BASH: &str = include_str!("typeahead/bash.json");
const PASSWORD: &str = include_str!("typeahead/password.json");
const ZSH: &str = include_str!("typeahead/zsh.json");
const VI: &str = include_str!("typeahead/vi.json");

fn assert_faithful(replay: &Replay) {
    assert!(
        replay.differences.is_empty(),
        "screens differed with nothing drawn:\n{}",
        replay.differences.join("\n")
    );
    assert!(
        replay.final_equal,
        "final screens differ:\n{}",
        replay.final_text
    );
}

#[test]
fn bash_keys_show_at_once_and_the_screen_ends_as_without_typeahead() {
    for rtt in [50.0, 150.0, 300.0] {
        let mut replay = replay(&recording(BASH), Mode::Always, rtt, &[], true);
        assert_faithful(&replay);
        assert!(
            replay.drawn > 20,
            "only {} keys drawn at {rtt} ms",
            replay.drawn
        );
        let p50 = median(&mut replay.shown_after);
        assert_eq!(
            p50, 0.0,
            "median key shown after {p50} ms at {rtt} ms round trip"
        );
    }
    assert!(recording_text(BASH).contains("hello world"));
}

#[test]
fn typing_straight_through_every_answer_still_ends_as_without_typeahead() {
    for steps in [BASH, PASSWORD, ZSH, VI].map(recording) {
        for rtt in [0.0, 50.0, 150.0, 300.0] {
            assert_faithful(&replay(&steps, Mode::Always, rtt, &[], false));
        }
    }
}

fn recording_text(json: &str) -> String {
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    for step in recording(json) {
        if let Step::Output(bytes) = step {
            parser.process(&bytes);
        }
    }
    parser.screen().contents()
}

#[test]
fn auto_draws_nothing_on_a_fast_link_and_off_passes_output_through() {
    let fast = replay(&recording(BASH), Mode::Auto, 5.0, &[], true);
    assert_faithful(&fast);
    assert_eq!(fast.drawn, 0);
    let slow = replay(&recording(BASH), Mode::Auto, 150.0, &[], true);
    assert_faithful(&slow);
    assert!(slow.drawn > 20);
    let off = replay(&recording(BASH), Mode::Off, 150.0, &[], true);
    assert_faithful(&off);
    assert_eq!(off.drawn, 0);
}

#[test]
fn a_password_is_never_drawn() {
    for (rtt, pauses) in [0.0, 50.0, 150.0, 300.0]
        .into_iter()
        .flat_map(|rtt| [(rtt, true), (rtt, false)])
    {
        let replay = replay(
            &recording(PASSWORD),
            Mode::Always,
            rtt,
            &["hunter2", "kumquat9"],
            pauses,
        );
        assert_faithful(&replay);
        assert_eq!(
            replay.drawn_in_password, 0,
            "drawn while typing a password at {rtt} ms"
        );
        assert!(
            replay.final_text.contains("length 7"),
            "{}",
            replay.final_text
        );
        assert!(!replay.final_text.contains("hunter2"));
        // Keys at the prompt were still predicted.
        assert!(
            replay.drawn > 10,
            "only {} keys drawn at {rtt} ms",
            replay.drawn
        );
        assert!(replay.final_text.contains("got 8"), "{}", replay.final_text);
    }
}

#[test]
fn zsh_with_a_right_prompt_ends_as_without_typeahead() {
    for rtt in [50.0, 150.0, 300.0] {
        let replay = replay(&recording(ZSH), Mode::Always, rtt, &[], true);
        assert_faithful(&replay);
        assert!(replay.final_text.contains("hello there"));
    }
}

#[test]
fn vi_is_not_predicted_and_the_shell_after_it_is() {
    let replay = replay(&recording(VI), Mode::Always, 150.0, &[], true);
    assert_faithful(&replay);
    assert_eq!(replay.drawn_in_alternate, 0);
    assert!(replay.drawn > 10, "only {} keys drawn", replay.drawn);
    assert!(replay.final_text.contains("after"));
}
