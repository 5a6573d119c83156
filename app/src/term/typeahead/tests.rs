//! Unit tests of the predictor: single keys and echoes, epochs, and what it refuses to model.

use super::*;

fn screen(col: u16) -> Option<Screen> {
    Some(Screen {
        col,
        cols: 80,
        blank_right: true,
        alternate: false,
    })
}

#[test]
fn the_first_key_of_an_epoch_waits_and_the_next_ones_are_drawn() {
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    assert!(p.input(b"l", screen(2), 0.0).is_empty());
    // Its echo confirms the epoch; the next key is drawn at once.
    assert_eq!(&*p.output(b"l", 100.0), b"l");
    assert_eq!(p.input(b"s", screen(3), 110.0), b"s");
    assert_eq!(p.shown(), 1);
    // The echo: the prediction is taken back and the device's byte written in its place.
    assert_eq!(&*p.output(b"s", 210.0), b"\x1b[D\x1b[Xs");
    assert_eq!(p.shown(), 0);
}

#[test]
fn a_wrong_echo_takes_every_prediction_back() {
    let mut p = Predictor::new(Mode::Always, Style::Underline);
    p.input(b"a", screen(0), 0.0);
    p.output(b"a", 50.0);
    let drawn = p.input(b"b", screen(1), 60.0);
    assert_eq!(drawn, b"\x1b7\x1b[0;4mb\x1b8\x1b[1C");
    p.input(b"c", screen(2), 70.0);
    assert_eq!(p.shown(), 2);
    let out = p.output(b"\x07", 110.0);
    assert_eq!(&*out, b"\x1b[D\x1b[X\x1b[D\x1b[X\x07");
    assert_eq!(p.shown(), 0);
    // The next key starts a new epoch: not drawn.
    assert!(p.input(b"d", screen(1), 120.0).is_empty());
}

#[test]
fn nothing_is_drawn_in_full_screen_programs_near_the_margin_or_when_off() {
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    p.input(b"a", screen(0), 0.0);
    p.output(b"a", 10.0);
    let alternate = Some(Screen {
        alternate: true,
        ..screen(1).expect("a screen")
    });
    assert!(p.input(b"b", alternate, 20.0).is_empty());
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    p.input(b"a", screen(77), 0.0);
    p.output(b"a", 10.0);
    assert_eq!(p.input(b"b", screen(78), 20.0), b"b");
    // Column 79 is the last: a character there would wrap the next one.
    assert!(p.input(b"c", screen(79), 30.0).is_empty());
    let mut off = Predictor::new(Mode::Off, Style::Plain);
    assert!(off.input(b"a", screen(0), 0.0).is_empty());
    assert!(matches!(off.output(b"a", 1.0), Cow::Borrowed(_)));
}

#[test]
fn auto_draws_only_on_a_slow_link() {
    let mut fast = Predictor::new(Mode::Auto, Style::Plain);
    fast.input(b"a", screen(0), 0.0);
    fast.output(b"a", 5.0);
    assert!(fast.input(b"b", screen(1), 6.0).is_empty());
    let mut slow = Predictor::new(Mode::Auto, Style::Plain);
    slow.input(b"a", screen(0), 0.0);
    slow.output(b"a", 120.0);
    assert_eq!(slow.input(b"b", screen(1), 130.0), b"b");
}

#[test]
fn overdue_predictions_are_taken_back_and_a_saved_cursor_stops_drawing() {
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    p.input(b"a", screen(0), 0.0);
    p.output(b"a", 100.0);
    p.input(b"b", screen(1), 200.0);
    let deadline = p.deadline().expect("a drawn prediction");
    assert!(p.tick(deadline - 1.0).is_empty());
    assert_eq!(p.tick(deadline), b"\x1b[D\x1b[X");
    assert_eq!(p.shown(), 0);
    // The device saves the cursor: its slot is in use, so nothing is drawn until restored.
    p.output(b"\x1b7", 2000.0);
    p.input(b"c", screen(1), 2100.0);
    p.output(b"c", 2200.0);
    assert!(p.input(b"d", screen(2), 2300.0).is_empty());
}

#[test]
fn a_key_typed_once_the_prompt_came_back_is_predicted_at_once() {
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    p.input(b"a", screen(2), 0.0);
    p.output(b"a", 100.0);
    // Enter; the device's answer (a new prompt) one round trip later.
    assert!(p.input(b"\r", screen(3), 200.0).is_empty());
    p.output(b"\r\n$ ", 300.0);
    // Typed right away: predicted (the first of its epoch waits for its echo, the next is drawn).
    assert!(p.input(b"l", screen(2), 310.0).is_empty());
    p.output(b"l", 410.0);
    assert_eq!(p.input(b"s", screen(3), 420.0), b"s");
}

#[test]
fn keys_typed_before_an_answer_arrived_are_not_predicted_until_a_pause() {
    let mut p = Predictor::new(Mode::Always, Style::Plain);
    p.input(b"a", screen(2), 0.0);
    p.output(b"a", 100.0);
    assert!(p.input(b"\r", screen(3), 200.0).is_empty());
    // Typed before the prompt came back, then on through its arrival: the screen read at 320
    // does not show the echoes of `x` yet, so none of these keys is predicted.
    assert!(p.input(b"x", screen(3), 250.0).is_empty());
    p.output(b"\r\n$ ", 300.0);
    assert!(p.input(b"y", screen(2), 320.0).is_empty());
    assert!(matches!(p.output(b"x", 350.0), Cow::Borrowed(_)));
    assert!(p.input(b"z", screen(3), 380.0).is_empty());
    p.output(b"y", 420.0);
    p.output(b"z", 480.0);
    // After the pause the echoes all came: predicting starts again.
    assert!(p.input(b"w", screen(5), 600.0).is_empty());
    p.output(b"w", 700.0);
    assert_eq!(p.input(b"v", screen(6), 710.0), b"v");
}
