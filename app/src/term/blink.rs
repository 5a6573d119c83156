//! Cursor blinking without a frame every 16 ms.
//!
//! xterm.js 6's DOM renderer blinks the cursor with an endless CSS animation, which makes the
//! browser produce a frame on every display refresh even when nothing changes; a key's echo then
//! waits behind those frames (see BENCHMARKS.md). So xterm.js's own blinking is never turned on
//! with the DOM renderer. When the operator wants a blinking cursor (it is off by default), a
//! 600 ms timer toggles the class [`HIDDEN_CLASS`] on the terminal's element instead, and
//! `style/app.css` hides the cursor while it is set: one style change per toggle and no frame in
//! between. Every key shows the cursor again and restarts the period, as terminals do.
//!
//! The WebGL renderer blinks with a timer of its own (xterm.js's cursor blink state manager: a
//! 600 ms `setInterval` that requests one frame per toggle), not with an animation, so with
//! WebGL xterm.js's `cursorBlink` option is used as it is.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::sys;

/// The class that hides the cursor during the off half of a blink.
pub const HIDDEN_CLASS: &str = "cursor-off";
/// Half a blink period.
const PERIOD_MS: i32 = 600;

/// A running interval and the callback it calls.
type Interval = (i32, Closure<dyn FnMut()>);

/// One terminal's blinking.
pub(super) struct Blink {
    terminal: sys::Terminal,
    element: web_sys::HtmlElement,
    wanted: Cell<bool>,
    webgl: Cell<bool>,
    timer: RefCell<Option<Interval>>,
}

impl Blink {
    /// Blinking for `terminal`, whose cursor is drawn inside `element`; off until asked.
    pub(super) fn new(terminal: &sys::Terminal, element: &web_sys::HtmlElement) -> Rc<Blink> {
        Rc::new(Blink {
            terminal: terminal.clone(),
            element: element.clone(),
            wanted: Cell::new(false),
            webgl: Cell::new(false),
            timer: RefCell::new(None),
        })
    }

    /// Turns blinking on or off.
    pub(super) fn set(self: &Rc<Self>, wanted: bool) {
        self.wanted.set(wanted);
        self.apply();
    }

    /// The renderer changed (WebGL came or went).
    pub(super) fn renderer_changed(self: &Rc<Self>, webgl: bool) {
        self.webgl.set(webgl);
        self.apply();
    }

    /// A key was typed: the cursor shows at once and the period starts again.
    pub(super) fn keystroke(self: &Rc<Self>) {
        if self.timer.borrow().is_some() {
            self.stop();
            self.start();
        }
    }

    fn apply(self: &Rc<Self>) {
        let xterm_blinks = self.wanted.get() && self.webgl.get();
        if let Ok(options) = Reflect::get(&self.terminal, &"options".into()) {
            // Setting an option on a live terminal cannot fail for a known boolean option.
            let _ = Reflect::set(&options, &"cursorBlink".into(), &xterm_blinks.into());
        }
        self.stop();
        if self.wanted.get() && !self.webgl.get() {
            self.start();
        }
    }

    fn start(self: &Rc<Self>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let weak = Rc::downgrade(self);
        let tick = Closure::<dyn FnMut()>::new(move || {
            if let Some(blink) = weak.upgrade() {
                // A class list change cannot fail on a live element.
                let _ = blink.element.class_list().toggle(HIDDEN_CLASS);
            }
        });
        match window.set_interval_with_callback_and_timeout_and_arguments_0(
            tick.as_ref().unchecked_ref(),
            PERIOD_MS,
        ) {
            Ok(id) => *self.timer.borrow_mut() = Some((id, tick)),
            Err(_) => web_sys::console::warn_1(&"the cursor cannot blink (no timer)".into()),
        }
    }

    fn stop(&self) {
        if let Some((id, _tick)) = self.timer.borrow_mut().take()
            && let Some(window) = web_sys::window()
        {
            window.clear_interval_with_handle(id);
        }
        let _ = self.element.class_list().remove_1(HIDDEN_CLASS);
    }
}

impl Drop for Blink {
    fn drop(&mut self) {
        self.stop();
    }
}
