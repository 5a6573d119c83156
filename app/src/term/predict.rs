//! The typeahead hook: runs the sans-IO [`Predictor`] on the terminal's keys and output.
//!
//! Every write to xterm.js goes through [`Predict::write`], so drawn predictions are always
//! taken back before the device's bytes (or a note of the page) are written, in the same
//! `terminal.write` call: xterm.js parses one call as a whole before it renders, so no frame
//! shows the device's output mixed with stale predictions. Keys are handed to the predictor
//! before they are sent; what it draws is written at once (xterm.js parses the first write after
//! a keystroke synchronously, so the prediction is in the next frame).
//!
//! The predictor is told the cursor's column, whether the rest of its row is blank and whether
//! the alternate screen is on, read from xterm.js's buffer, but only while no write is waiting
//! to be parsed (the buffer would not show it yet); otherwise the key is not predicted. A
//! browser timer takes drawn predictions back when their echo is overdue.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::sys;
use super::typeahead::{Mode, Predictor, Screen, Style};

/// The clock the predictor runs on (the page's, in milliseconds).
fn now() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map_or(0.0, |performance| performance.now())
}

/// One terminal's predictor and the writes in flight.
pub(super) struct Predict {
    terminal: sys::Terminal,
    predictor: RefCell<Predictor>,
    /// Writes handed to xterm.js and not parsed yet.
    in_flight: Rc<Cell<usize>>,
    /// The pending timeout, if one runs.
    timer: Cell<Option<i32>>,
    /// What the timeout calls (made once, as it refers back to this hook).
    fire: RefCell<Option<Closure<dyn FnMut()>>>,
}

impl Predict {
    /// A hook for `terminal`.
    pub(super) fn new(terminal: &sys::Terminal, mode: Mode, style: Style) -> Rc<Predict> {
        let predict = Rc::new(Predict {
            terminal: terminal.clone(),
            predictor: RefCell::new(Predictor::new(mode, style)),
            in_flight: Rc::new(Cell::new(0)),
            timer: Cell::new(None),
            fire: RefCell::new(None),
        });
        let weak = Rc::downgrade(&predict);
        let fire = Closure::<dyn FnMut()>::new(move || {
            if let Some(predict) = weak.upgrade() {
                predict.timer.set(None);
                let out = predict.predictor.borrow_mut().tick(now());
                predict.write_raw(&out, None);
                predict.arm();
            }
        });
        *predict.fire.borrow_mut() = Some(fire);
        predict
    }

    /// Writes output of the device (or the page) to the terminal; `parsed` runs once xterm.js
    /// processed it.
    pub(super) fn write(self: &Rc<Self>, data: &[u8], parsed: Option<Box<dyn FnOnce()>>) {
        let shown = self.predictor.borrow_mut().output(data, now()).into_owned();
        self.write_raw(&shown, parsed);
        self.arm();
    }

    /// The operator typed `bytes`; draws what the predictor predicts.
    pub(super) fn input(self: &Rc<Self>, bytes: &[u8]) {
        if self.predictor.borrow().mode() == Mode::Off {
            return;
        }
        let screen = self.screen();
        let drawn = self.predictor.borrow_mut().input(bytes, screen, now());
        if !drawn.is_empty() {
            self.write_raw(&drawn, None);
        }
        self.arm();
    }

    /// Changes the mode (drawn predictions go when it turns off).
    pub(super) fn set_mode(self: &Rc<Self>, mode: Mode) {
        let out = self.predictor.borrow_mut().set_mode(mode);
        self.write_raw(&out, None);
    }

    /// Changes how predictions look.
    pub(super) fn set_style(&self, style: Style) {
        self.predictor.borrow_mut().set_style(style);
    }

    /// A keep-alive round trip.
    pub(super) fn observe_rtt(&self, ms: f64) {
        self.predictor.borrow_mut().observe_rtt(ms);
    }

    /// The echo delay the predictor measured, if any.
    pub(super) fn echo_ms(&self) -> Option<f64> {
        self.predictor.borrow().echo_ms()
    }

    /// Takes drawn predictions back and forgets everything (a resize, a new connection): the
    /// new predictor keeps only the settings.
    pub(super) fn forget(self: &Rc<Self>) {
        let mode = self.predictor.borrow().mode();
        self.set_mode(mode);
        self.restart();
    }

    fn restart(&self) {
        let mut predictor = self.predictor.borrow_mut();
        let mode = predictor.mode();
        let style = predictor.style();
        *predictor = Predictor::new(mode, style);
    }

    fn write_raw(&self, bytes: &[u8], parsed: Option<Box<dyn FnOnce()>>) {
        if bytes.is_empty() {
            if let Some(parsed) = parsed {
                parsed();
            }
            return;
        }
        self.in_flight.set(self.in_flight.get() + 1);
        let in_flight = Rc::clone(&self.in_flight);
        let callback = Closure::once_into_js(move || {
            in_flight.set(in_flight.get().saturating_sub(1));
            if let Some(parsed) = parsed {
                parsed();
            }
        });
        self.terminal
            .write_bytes(&Uint8Array::from(bytes), callback.unchecked_ref());
    }

    /// What the predictor needs to know of the screen, when xterm.js's buffer is up to date.
    fn screen(&self) -> Option<Screen> {
        if self.in_flight.get() > 0 {
            return None;
        }
        let buffer = self.terminal.buffer().active();
        let col = buffer.cursor_x();
        let line = buffer.get_line(buffer.base_y() + buffer.cursor_y())?;
        let blank_right = line.translate_to_string(true, col).is_empty();
        Some(Screen {
            col: u16::try_from(col).ok()?,
            cols: u16::try_from(self.terminal.cols()).ok()?,
            blank_right,
            alternate: buffer.kind() == "alternate",
        })
    }

    /// Keeps a timer running while predictions are drawn, to take them back when overdue.
    fn arm(self: &Rc<Self>) {
        let Some(deadline) = self.predictor.borrow().deadline() else {
            return;
        };
        if self.timer.get().is_some() {
            return;
        }
        let Some(window) = web_sys::window() else {
            return;
        };
        let fire = self.fire.borrow();
        let Some(fire) = fire.as_ref() else {
            return;
        };
        let wait = (deadline - now()).clamp(0.0, 60_000.0).ceil() as i32;
        if let Ok(id) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            fire.as_ref().unchecked_ref(),
            wait,
        ) {
            self.timer.set(Some(id));
        }
    }
}

impl Drop for Predict {
    fn drop(&mut self) {
        if let Some(id) = self.timer.take()
            && let Some(window) = web_sys::window()
        {
            window.clear_timeout_with_handle(id);
        }
    }
}
