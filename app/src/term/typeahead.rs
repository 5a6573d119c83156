//! Typeahead: predictive local echo for slow links, as a sans-IO state machine.
//!
//! The [`Predictor`] sits between the terminal and the device. It sees every key the operator
//! types ([`Predictor::input`]) and every byte the device sends back ([`Predictor::output`]),
//! and answers with the bytes the terminal must show: keys it can model are drawn at once, before
//! the device echoes them, and every output chunk is passed on *unchanged*, preceded by bytes that
//! take the drawn predictions off the screen again and followed by bytes that draw the ones still
//! waiting for their echo. So the terminal always shows exactly what the device sent, plus
//! predictions on top that are removed before anything else is written. It has no clock (times
//! are passed in, in milliseconds) and no terminal of its own: what it needs to know about the
//! screen comes in a [`Screen`].
//!
//! # What it predicts
//!
//! Printable ASCII typed at the end of the input line, backspace over characters it saw typed on
//! this line, and cursor left/right within them. The expected echoes are those of line editors
//! (readline, zsh's line editor, dash): the character itself; `BS ESC[K`, `BS SP BS` or
//! `BS ESC[P` for a backspace; `BS` or `ESC[D` for left; the character or `ESC[C` for right.
//! Everything else — other control keys, escape sequences, pastes, characters typed in the
//! middle of the line, a cursor near the right margin (a line that would wrap), the alternate
//! screen (full-screen programs), a device that saved the cursor (`ESC 7`, whose slot the drawing
//! uses) — is not predicted: the key goes to the device as usual and starts a new epoch.
//!
//! # Epochs: when predictions are shown
//!
//! Predictions belong to an *epoch*; a new one starts with every key that is not predicted
//! (Enter above all), every output the predictor did not expect and every wrong prediction. A
//! prediction is drawn only when an earlier prediction of the *same* epoch was confirmed by the
//! device's echo (the idea of mosh's epochs). A password prompt always begins a new epoch (its
//! text is output nobody predicted, and Enter came before it), and a device that does not echo
//! never confirms anything, so what is typed there is never drawn, not even for a frame. The one
//! case this cannot see is a program that turns echo off in the middle of a line it was echoing,
//! printing nothing; the keys typed then would show until the timeout takes them back.
//!
//! # Reconciling
//!
//! The device's output is matched byte by byte against the expected echoes, in order. A match
//! confirms the prediction (it becomes ordinary text: the device drew the same thing); anything
//! else throws every prediction away, and since all of them were taken off the screen before the
//! output was written, nothing wrong stays visible once the device answered, one round trip
//! after the key. Drawn predictions that see no echo at all are taken back after
//! [`Predictor::deadline`]. In [`Mode::Auto`] predictions are drawn only while the measured echo
//! delay is above [`AUTO_THRESHOLD_MS`].
//!
//! # Drawing
//!
//! A predicted character is written between `ESC 7` and `ESC 8` (save and restore cursor, which
//! keep the device's colours and attributes) in the [`Style`] chosen, followed by a cursor move
//! over it; taking it back is a cursor move and `ESC[X` (erase). A character is predicted only
//! where the rest of the row is blank, so erasing restores what was there.

use std::borrow::Cow;
use std::collections::VecDeque;

/// In [`Mode::Auto`], predictions are drawn only while the echo delay is above this.
pub const AUTO_THRESHOLD_MS: f64 = 30.0;
/// At most this many keys wait for their echo; more start a new epoch.
const MAX_PENDING: usize = 256;
/// Drawn predictions are taken back when no echo came after this long (at least).
const MIN_TIMEOUT_MS: f64 = 500.0;
/// Output that arrives this share of an echo delay after the last key the predictor did not
/// model (or gave up on) is taken as the device's answer to it.
const ANSWER_SHARE: f64 = 0.75;

/// When predictions are drawn (the page's `typeahead` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Only while the echo delay is above [`AUTO_THRESHOLD_MS`].
    #[default]
    Auto,
    /// Whenever an epoch is confirmed, however fast the link.
    Always,
    /// Never: the terminal shows only what the device sends.
    Off,
}

impl Mode {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Always => "always",
            Mode::Off => "off",
        }
    }

    /// Parses a setting's name.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "auto" => Some(Mode::Auto),
            "always" => Some(Mode::Always),
            "off" => Some(Mode::Off),
            _ => None,
        }
    }
}

/// How a predicted character looks until the device confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Underlined.
    #[default]
    Underline,
    /// Dim (faint).
    Dim,
    /// Like the echo will look (no marking).
    Plain,
}

impl Style {
    /// The setting's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Style::Underline => "underline",
            Style::Dim => "dim",
            Style::Plain => "plain",
        }
    }

    /// Parses a setting's name.
    pub fn parse(text: &str) -> Option<Style> {
        match text {
            "underline" => Some(Style::Underline),
            "dim" => Some(Style::Dim),
            "plain" => Some(Style::Plain),
            _ => None,
        }
    }

    /// The SGR sequence that starts a predicted run (after `ESC 7`), if any.
    fn sgr(self) -> Option<&'static [u8]> {
        match self {
            Style::Underline => Some(b"\x1b[0;4m"),
            Style::Dim => Some(b"\x1b[0;2m"),
            Style::Plain => None,
        }
    }
}

/// What the terminal shows right now, where the predictor needs it (predictions included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Screen {
    /// The cursor's column (0-based).
    pub col: u16,
    /// The terminal's width.
    pub cols: u16,
    /// Whether every cell right of the cursor on its row (and the cursor's own) is blank.
    pub blank_right: bool,
    /// Whether the alternate screen (a full-screen program) is active.
    pub alternate: bool,
}

/// One key the predictor modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A character added at the end of the line.
    Insert(char),
    /// Backspace over this character at the end of the line.
    Erase(char),
    /// Cursor left.
    Left,
    /// Cursor right, over this character.
    Right(char),
}

impl Kind {
    /// How far the cursor moves.
    fn advance(self) -> i32 {
        match self {
            Kind::Insert(_) | Kind::Right(_) => 1,
            Kind::Erase(_) | Kind::Left => -1,
        }
    }

    /// Whether `seen` (the output since the previous confirmation) is this key's whole echo
    /// (`Some(true)`), its beginning (`Some(false)`), or something else (`None`).
    fn matches(self, seen: &[u8]) -> Option<bool> {
        let mut own = [0u8; 4];
        let alternatives: &[&[u8]] = match self {
            Kind::Insert(c) => &[c.encode_utf8(&mut own).as_bytes()],
            Kind::Erase(_) => &[b"\x08\x1b[K", b"\x08 \x08", b"\x08\x1b[P", b"\x08\x1b[1P"],
            Kind::Left => &[b"\x08", b"\x1b[D", b"\x1b[1D"],
            Kind::Right(c) => &[c.encode_utf8(&mut own).as_bytes(), b"\x1b[C", b"\x1b[1C"],
        };
        let mut prefix = false;
        for alternative in alternatives {
            if *alternative == seen {
                return Some(true);
            }
            prefix |= alternative.starts_with(seen);
        }
        prefix.then_some(false)
    }
}

/// A key waiting for its echo.
#[derive(Debug, Clone, Copy)]
struct Prediction {
    kind: Kind,
    epoch: u64,
    /// When it was typed.
    at: f64,
    /// Whether it is drawn on the terminal now.
    shown: bool,
}

/// The predictor of one terminal; see the module documentation.
#[derive(Debug)]
pub struct Predictor {
    mode: Mode,
    style: Style,
    /// The smoothed echo delay (key → its echo), in milliseconds.
    echo_ms: Option<f64>,
    pending: VecDeque<Prediction>,
    epoch: u64,
    /// The epoch in which a prediction was confirmed (its later predictions may be drawn).
    confirmed: Option<u64>,
    /// The input line as the predictions leave it: the characters typed since the epoch's
    /// line began, and the cursor's index in them.
    line: Vec<char>,
    pos: usize,
    /// The cursor column after the last pending prediction (valid while some are pending).
    col: u16,
    cols: u16,
    /// Output matched against the front prediction so far.
    seen: Vec<u8>,
    /// Whether a key that was not modelled (or one whose prediction was given up) went out,
    /// so the screen may not show its effect yet.
    blocked: bool,
    /// When the last such key went out.
    unknown_at: f64,
    /// Whether output arrived long enough after it to be its answer ([`ANSWER_SHARE`]).
    answered: bool,
    /// Whether the device saved the cursor (`ESC 7`, `CSI s`) and did not restore it yet.
    slot_busy: bool,
    /// The escape-sequence scanner's state across chunks: 0 ground, 1 after ESC, 2 after CSI.
    scan: u8,
}

impl Predictor {
    /// A predictor in `mode`, drawing in `style`.
    pub fn new(mode: Mode, style: Style) -> Self {
        Self {
            mode,
            style,
            echo_ms: None,
            pending: VecDeque::new(),
            epoch: 0,
            confirmed: None,
            line: Vec::new(),
            pos: 0,
            col: 0,
            cols: 0,
            seen: Vec::new(),
            blocked: false,
            unknown_at: f64::NEG_INFINITY,
            answered: true,
            slot_busy: false,
            scan: 0,
        }
    }

    /// The mode in use.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes the mode; returns the bytes that take drawn predictions back (when they are no
    /// longer to be drawn).
    pub fn set_mode(&mut self, mode: Mode) -> Vec<u8> {
        self.mode = mode;
        let out = self.undraw();
        if mode == Mode::Off {
            self.reset();
        }
        out
    }

    /// The style predictions are drawn in.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Changes the style of predictions drawn from now on.
    pub fn set_style(&mut self, style: Style) {
        self.style = style;
    }

    /// A round trip measured elsewhere (keep-alives): used until echoes were measured.
    pub fn observe_rtt(&mut self, ms: f64) {
        if self.echo_ms.is_none() {
            self.echo_ms = Some(ms);
        }
    }

    /// The smoothed echo delay, once known.
    pub fn echo_ms(&self) -> Option<f64> {
        self.echo_ms
    }

    /// How many predictions are drawn now.
    pub fn shown(&self) -> usize {
        self.pending.iter().filter(|p| p.shown).count()
    }

    /// When drawn predictions without an echo are to be taken back ([`Predictor::tick`]).
    pub fn deadline(&self) -> Option<f64> {
        let first = self.pending.iter().find(|p| p.shown)?;
        Some(first.at + self.timeout())
    }

    fn timeout(&self) -> f64 {
        (self.echo_ms.unwrap_or(0.0) * 3.0).max(MIN_TIMEOUT_MS)
    }

    /// The operator typed `bytes` (one key, as the terminal sends it) at `now`; `screen` is the
    /// terminal's state, or `None` when it is not known (output not yet processed). Returns the
    /// bytes to show at once (empty when nothing is drawn).
    pub fn input(&mut self, bytes: &[u8], screen: Option<Screen>, now: f64) -> Vec<u8> {
        if self.mode == Mode::Off {
            return Vec::new();
        }
        match self.model(bytes, screen) {
            Some(kind) => {
                self.pending.push_back(Prediction {
                    kind,
                    epoch: self.epoch,
                    at: now,
                    shown: false,
                });
                self.apply(kind);
                if self.seen.is_empty() {
                    self.draw()
                } else {
                    Vec::new()
                }
            }
            None => {
                // Keys already predicted keep waiting for their echo; this one starts anew.
                self.block(now);
                self.new_epoch();
                Vec::new()
            }
        }
    }

    /// Which prediction `bytes` makes, if the predictor can model it now.
    fn model(&mut self, bytes: &[u8], screen: Option<Screen>) -> Option<Kind> {
        if self.pending.len() >= MAX_PENDING {
            return None;
        }
        if self.pending.is_empty() && self.answered {
            self.blocked = false;
        }
        if self.pending.is_empty() && !self.blocked {
            let screen = screen?;
            if screen.alternate || !screen.blank_right || self.slot_busy {
                return None;
            }
            self.col = screen.col;
            self.cols = screen.cols;
        }
        // After a key it could not model, the cursor is where the device puts it: nothing is
        // predicted until every earlier prediction was answered, output came late enough after
        // the last such key to be its answer, and the screen is read again. Every key typed
        // meanwhile is one more such key, so steady typing after one stays unpredicted until a
        // pause: its echoes are still on the way, and a screen read then would not show them
        // (predicting from it would be thrown away by the first of those echoes, and so on
        // for every key after it).
        if self.blocked {
            return None;
        }
        let at_end = self.pos == self.line.len();
        let kind = match bytes {
            [c @ 0x20..=0x7e] if at_end => Kind::Insert(char::from(*c)),
            [0x7f | 0x08] if at_end && self.pos > 0 => Kind::Erase(self.line[self.pos - 1]),
            b"\x1b[D" | b"\x1bOD" if self.pos > 0 => Kind::Left,
            b"\x1b[C" | b"\x1bOC" if self.pos < self.line.len() => Kind::Right(self.line[self.pos]),
            _ => return None,
        };
        // Nothing is drawn into the last column: that is where a line wraps.
        let after = i32::from(self.col) + kind.advance();
        (after >= 0 && after < i32::from(self.cols)).then_some(kind)
    }

    /// Updates the line model and the cursor column with a new prediction.
    fn apply(&mut self, kind: Kind) {
        match kind {
            Kind::Insert(c) => {
                self.line.push(c);
                self.pos += 1;
            }
            Kind::Erase(_) => {
                self.line.pop();
                self.pos -= 1;
            }
            Kind::Left => self.pos -= 1,
            Kind::Right(_) => self.pos += 1,
        }
        self.col = u16::try_from(i32::from(self.col) + kind.advance()).unwrap_or(0);
    }

    /// The device sent `data` at `now`. Returns what the terminal must be given: `data` itself
    /// when nothing is drawn or waiting, else the bytes that take the drawn predictions back,
    /// `data`, and the bytes that draw those still waiting.
    pub fn output<'a>(&mut self, data: &'a [u8], now: f64) -> Cow<'a, [u8]> {
        if self.mode == Mode::Off || data.is_empty() {
            return Cow::Borrowed(data);
        }
        self.scan_slot(data);
        self.note_answer(now);
        if self.pending.is_empty() {
            // Output nobody predicted: whatever comes next is in a new epoch.
            self.new_epoch();
            self.line.clear();
            self.pos = 0;
            return Cow::Borrowed(data);
        }
        let mut out = self.undraw();
        let mut rest = data;
        while let Some((&byte, tail)) = rest.split_first() {
            let Some(front) = self.pending.front().copied() else {
                break;
            };
            self.seen.push(byte);
            rest = tail;
            match front.kind.matches(&self.seen) {
                Some(true) => {
                    self.seen.clear();
                    self.pending.pop_front();
                    self.confirmed = Some(front.epoch);
                    let sample = (now - front.at).max(0.0);
                    self.echo_ms = Some(match self.echo_ms {
                        Some(smoothed) => smoothed * 0.75 + sample * 0.25,
                        None => sample,
                    });
                }
                Some(false) => {}
                None => {
                    // The keys of the predictions given up may still be echoing: the screen
                    // is unknown until they were answered.
                    if let Some(last) = self.pending.back() {
                        self.block(last.at);
                    }
                    self.reset();
                    break;
                }
            }
        }
        // (Output given up on may itself be the answer to the keys of its predictions.)
        self.note_answer(now);
        if !rest.is_empty() && self.pending.is_empty() && self.seen.is_empty() {
            // More than the echoes came: the line may have changed under the model.
            self.reset();
        }
        out.extend_from_slice(data);
        if self.seen.is_empty() {
            out.extend(self.draw());
        }
        Cow::Owned(out)
    }

    /// Takes drawn predictions back once they waited longer than [`Predictor::deadline`].
    pub fn tick(&mut self, now: f64) -> Vec<u8> {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                let out = self.undraw();
                if let Some(last) = self.pending.back() {
                    self.block(last.at);
                }
                self.reset();
                out
            }
            _ => Vec::new(),
        }
    }

    /// Forgets every prediction (after taking drawn ones back) and starts a new epoch.
    fn reset(&mut self) {
        debug_assert_eq!(
            self.shown(),
            0,
            "drawn predictions must be taken back first"
        );
        self.pending.clear();
        self.seen.clear();
        self.line.clear();
        self.pos = 0;
        self.new_epoch();
    }

    /// A key went out at `at` whose effect on the screen the predictor does not know.
    fn block(&mut self, at: f64) {
        self.blocked = true;
        self.answered = false;
        self.unknown_at = self.unknown_at.max(at);
    }

    /// Output arrived at `now`: the answer to the last key of unknown effect, if late enough.
    fn note_answer(&mut self, now: f64) {
        if now >= self.unknown_at + self.echo_ms.unwrap_or(0.0) * ANSWER_SHARE {
            self.answered = true;
        }
    }

    fn new_epoch(&mut self) {
        self.epoch += 1;
        self.line.clear();
        self.pos = 0;
        if self.pending.is_empty() {
            self.seen.clear();
        }
    }

    /// Whether predictions may be drawn at all now.
    fn drawing(&self) -> bool {
        !self.slot_busy
            && match self.mode {
                Mode::Always => true,
                Mode::Auto => self.echo_ms.is_some_and(|ms| ms > AUTO_THRESHOLD_MS),
                Mode::Off => false,
            }
    }

    /// Draws the waiting predictions that may be shown and are not yet: the longest run from
    /// the front whose epoch is confirmed.
    fn draw(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.drawing() {
            return out;
        }
        let style = self.style.sgr();
        let mut run = String::new();
        for prediction in self.pending.iter_mut() {
            if self.confirmed != Some(prediction.epoch) {
                break;
            }
            if prediction.shown {
                continue;
            }
            prediction.shown = true;
            match prediction.kind {
                Kind::Insert(c) => run.push(c),
                other => {
                    flush_run(&mut out, &mut run, style);
                    match other {
                        Kind::Erase(_) => out.extend_from_slice(b"\x1b[D\x1b[X"),
                        Kind::Left => out.extend_from_slice(b"\x1b[D"),
                        Kind::Right(_) => out.extend_from_slice(b"\x1b[C"),
                        Kind::Insert(_) => {}
                    }
                }
            }
        }
        flush_run(&mut out, &mut run, style);
        out
    }

    /// Takes every drawn prediction back, last first.
    fn undraw(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        for prediction in self.pending.iter_mut().rev() {
            if !prediction.shown {
                continue;
            }
            prediction.shown = false;
            match prediction.kind {
                Kind::Insert(_) => out.extend_from_slice(b"\x1b[D\x1b[X"),
                Kind::Erase(c) => {
                    let mut own = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut own).as_bytes());
                }
                Kind::Left => out.extend_from_slice(b"\x1b[C"),
                Kind::Right(_) => out.extend_from_slice(b"\x1b[D"),
            }
        }
        out
    }

    /// Follows the device's own use of the saved-cursor slot (`ESC 7`/`ESC 8`, `CSI s`/`CSI u`
    /// without parameters): while it holds a position, predictions are not drawn.
    fn scan_slot(&mut self, data: &[u8]) {
        let mut rest = data;
        loop {
            if self.scan == 0 {
                match rest.iter().position(|&b| b == 0x1b) {
                    Some(at) => {
                        rest = &rest[at + 1..];
                        self.scan = 1;
                    }
                    None => return,
                }
            }
            let Some((&byte, tail)) = rest.split_first() else {
                return;
            };
            rest = tail;
            self.scan = match (self.scan, byte) {
                (1, b'7') => {
                    self.slot_busy = true;
                    0
                }
                (1, b'8' | b'c') => {
                    self.slot_busy = false;
                    0
                }
                (1, b'[') => 2,
                (2, b's') => {
                    self.slot_busy = true;
                    0
                }
                (2, b'u') => {
                    self.slot_busy = false;
                    0
                }
                (_, 0x1b) => 1,
                _ => 0,
            };
        }
    }
}

/// Writes a run of predicted characters: in `style` between save and restore cursor, then a
/// cursor move over them (or, unstyled, just the characters).
fn flush_run(out: &mut Vec<u8>, run: &mut String, style: Option<&[u8]>) {
    if run.is_empty() {
        return;
    }
    match style {
        Some(sgr) => {
            out.extend_from_slice(b"\x1b7");
            out.extend_from_slice(sgr);
            out.extend_from_slice(run.as_bytes());
            out.extend_from_slice(b"\x1b8");
            out.extend_from_slice(format!("\x1b[{}C", run.chars().count()).as_bytes());
        }
        None => out.extend_from_slice(run.as_bytes()),
    }
    run.clear();
}

#[cfg(test)]
mod tests;
