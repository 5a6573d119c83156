//! The terminal: the only module that touches xterm.js.
//!
//! xterm.js itself is not part of the first screen (a form, with no terminal to draw): [`load`]
//! fetches its script when a session starts ([`script`]), and [`preload`] starts that fetch at
//! the Connect click.
//!
//! [`Term`] owns one xterm.js `Terminal` with its addons (fit; WebGL with a DOM fallback; web
//! links, Unicode 11 widths and the write-only OSC 52 clipboard, fetched when a session starts:
//! [`extras`]; search, fetched on first use: [`search`]), a `ResizeObserver` that keeps
//! it fitted to its element, and every JavaScript callback it registered. Dropping it disposes
//! the terminal and releases all of that. It knows nothing about SSH or sessions: it takes bytes
//! to display and reports keystrokes and size changes.
//!
//! Every write goes through the typeahead hook ([`predict`], running the sans-IO
//! [`typeahead::Predictor`]), which may draw typed keys before the device echoes them. The
//! cursor does not blink unless the operator asks, and then without a per-frame animation
//! ([`blink`]). [`settings`] holds the operator's choices for both.

mod blink;
mod extras;
mod predict;
mod script;
mod search;
pub mod settings;
mod sys;
pub mod typeahead;
mod webgl;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub use webgl::is_software_renderer;

use settings::Settings;

pub use crate::js::JsError;

/// Why the terminal could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    /// xterm.js or one of its addons is missing or threw while being set up.
    #[error("the terminal could not start ({what}): {error}")]
    Setup {
        /// The step that failed.
        what: &'static str,
        /// What JavaScript said.
        error: JsError,
    },
}

impl TermError {
    fn setup(what: &'static str) -> impl FnOnce(JsValue) -> Self {
        move |value| Self::Setup {
            what,
            error: JsError::from_js(&value),
        }
    }
}

/// Which renderer draws the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renderer {
    /// The WebGL2 addon (hardware-accelerated).
    Webgl,
    /// xterm.js's DOM renderer: the text is in the page (`.xterm-rows`).
    Dom,
}

impl Renderer {
    /// A short name for the page (`data-renderer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Renderer::Webgl => "webgl",
            Renderer::Dom => "dom",
        }
    }
}

/// A callback the terminal holds, with the registration that makes xterm.js call it.
struct Listener {
    registration: Option<sys::Disposable>,
    _callback: Box<dyn std::any::Any>,
}

/// One xterm.js terminal in the page, with its addons. Dropping it disposes everything.
pub struct Term {
    terminal: sys::Terminal,
    fit: sys::Fit,
    search: Rc<search::Finder>,
    extras: Rc<extras::Extras>,
    webgl: Rc<webgl::Slot>,
    predict: Rc<predict::Predict>,
    blink: Rc<blink::Blink>,
    listeners: RefCell<Vec<Listener>>,
    observer: Option<web_sys::ResizeObserver>,
    /// Called with -1 / +1 for Ctrl+Shift+PageUp / PageDown (switch tabs).
    tab_switch: TabSwitch,
}

/// What Ctrl+Shift+PageUp/PageDown call, once the page set it.
type TabSwitch = Rc<RefCell<Option<Box<dyn FnMut(i32)>>>>;

/// Sets `key` on a plain object. Setting a property on a fresh plain object cannot fail, so the
/// result is not looked at.
fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

/// Colours of the terminal (a dark theme matching `style/app.css`).
fn theme() -> Object {
    let theme = Object::new();
    for (key, colour) in [
        ("background", "#0b0f16"),
        ("foreground", "#d6dde8"),
        ("cursor", "#e0a84f"),
        ("cursorAccent", "#0b0f16"),
        ("selectionBackground", "#34507a"),
        ("black", "#1b2230"),
        ("red", "#e06c75"),
        ("green", "#98c379"),
        ("yellow", "#e5c07b"),
        ("blue", "#61afef"),
        ("magenta", "#c678dd"),
        ("cyan", "#56b6c2"),
        ("white", "#d6dde8"),
        ("brightBlack", "#5c6773"),
        ("brightRed", "#f08a93"),
        ("brightGreen", "#b5e08f"),
        ("brightYellow", "#f2d49b"),
        ("brightBlue", "#86c3f7"),
        ("brightMagenta", "#d99cea"),
        ("brightCyan", "#7fd1db"),
        ("brightWhite", "#ffffff"),
    ] {
        set(&theme, key, colour);
    }
    theme
}

fn options() -> Object {
    let options = Object::new();
    // `terminal.unicode` (Unicode 11 widths) is a proposed API in xterm.js 6.
    set(&options, "allowProposedApi", true);
    // Off: the DOM renderer blinks with an endless CSS animation, which makes the page draw a
    // frame every 16 ms and delays every echo behind them. `blink` blinks it when asked.
    set(&options, "cursorBlink", false);
    set(&options, "scrollback", 10_000);
    set(
        &options,
        "fontFamily",
        "ui-monospace, 'SFMono-Regular', 'Cascadia Mono', 'DejaVu Sans Mono', Menlo, Consolas, \
         'Liberation Mono', monospace",
    );
    set(&options, "fontSize", 14);
    set(&options, "macOptionIsMeta", true);
    set(&options, "rightClickSelectsWord", true);
    set(&options, "theme", theme());
    options
}

/// Puts `text` on the system clipboard; failures (no permission, no focus) are logged only.
fn copy_to_clipboard(text: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let promise = window.navigator().clipboard().write_text(text);
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(error) = wasm_bindgen_futures::JsFuture::from(promise).await {
            web_sys::console::warn_1(
                &format!("clipboard write refused: {}", JsError::from_js(&error)).into(),
            );
        }
    });
}

/// xterm.js itself: fetched when the first terminal opens (a session starts), not with the first
/// screen, which draws none ([`load`]).
const XTERM: script::Script = script::Script {
    file: "xterm.js",
    global: "Terminal",
};
/// The fit addon, fetched with xterm.js.
const FIT: script::Script = script::Script {
    file: "addon-fit.js",
    global: "FitAddon",
};

/// Fetches xterm.js and its fit addon (both at once, the first time only), so that
/// [`Term::open`] can run. A failed fetch is tried again by the next call.
pub async fn load() -> Result<(), TermError> {
    let (xterm, fit) = futures_util::join!(script::load(XTERM), script::load(FIT));
    xterm.and(fit).map_err(|error| TermError::Setup {
        what: "loading xterm.js",
        error: JsError(error),
    })
}

/// Starts fetching xterm.js without waiting for it: called on the Connect click, so that the
/// script arrives while the session's first round trips run.
pub fn preload() {
    wasm_bindgen_futures::spawn_local(async {
        // A failure is reported by the [`load`] that needs the script.
        let _ = load().await;
    });
}

impl Term {
    /// Creates a terminal inside `parent`, loads the addons and fits it to `parent`; xterm.js
    /// must be in the page ([`load`]).
    pub fn open(parent: &web_sys::HtmlElement) -> Result<Term, TermError> {
        let terminal = sys::Terminal::new(&options()).map_err(TermError::setup("Terminal"))?;
        let fit = sys::Fit::new().map_err(TermError::setup("fit addon"))?;

        let defaults = Settings::default();
        let mut term = Term {
            predict: predict::Predict::new(&terminal, defaults.typeahead, defaults.style),
            blink: blink::Blink::new(&terminal, parent),
            search: search::Finder::new(&terminal),
            extras: extras::Extras::new(&terminal),
            terminal,
            fit,
            webgl: Rc::new(webgl::Slot::default()),
            listeners: RefCell::new(Vec::new()),
            observer: None,
            tab_switch: Rc::new(RefCell::new(None)),
        };
        // From here on, `term` owns the terminal: an early return disposes it.
        term.terminal
            .load_addon(term.fit.unchecked_ref())
            .map_err(TermError::setup("fit addon"))?;
        term.terminal
            .open(parent)
            .map_err(TermError::setup("open"))?;
        // WebGL is loaded after `open`, as the addon needs the terminal's element.
        webgl::attach(&term.terminal, &term.webgl);
        // A terminal opened beside a session (another tab) gets the session's addons at once.
        if extras::Extras::in_page() {
            term.extras.load();
        }
        term.observer = Some(term.watch_size(parent)?);
        term.fit();
        Ok(term)
    }

    /// Keeps the terminal fitted to `parent` while the page's layout changes.
    fn watch_size(
        &self,
        parent: &web_sys::HtmlElement,
    ) -> Result<web_sys::ResizeObserver, TermError> {
        let fit = self.fit.clone();
        let callback = Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_entries, _observer| {
            // A failed fit (e.g. while the element is hidden) keeps the old size.
            let _ = fit.fit();
        });
        let observer = web_sys::ResizeObserver::new(callback.as_ref().unchecked_ref())
            .map_err(TermError::setup("ResizeObserver"))?;
        observer.observe(parent);
        self.listeners.borrow_mut().push(Listener {
            registration: None,
            _callback: Box::new(callback),
        });
        Ok(observer)
    }

    /// Shows `data` (raw terminal output); `parsed` runs once xterm.js has processed it.
    ///
    /// The bytes are copied into a fresh `Uint8Array`, as xterm.js keeps the array until it
    /// parses it. If the terminal is disposed first, `parsed` never runs.
    ///
    /// It is written at once, in this call: nothing waits for a frame here. The first write
    /// after a keystroke (an echo) is even parsed inside this call, as xterm.js's write buffer
    /// skips its usual `setTimeout` after user input; its renderer then updates the rows in the
    /// next animation frame. That is the earliest paint there is: a change made to the page now
    /// is painted in that same frame too, so forcing xterm.js's (private) renderer to run here
    /// would show nothing sooner, and would run it outside the frame xterm.js expects. Drawn
    /// predictions are taken back first ([`predict`]).
    pub fn write(&self, data: &[u8], parsed: Box<dyn FnOnce()>) {
        self.predict.write(data, Some(parsed));
    }

    /// Shows a message of the page itself (e.g. "connection closed"), as terminal text.
    pub fn write_text(&self, text: &str) {
        self.predict.write(text.as_bytes(), None);
    }

    /// Applies the operator's settings (typeahead, prediction style, cursor blinking).
    pub fn apply_settings(&self, settings: Settings) {
        self.predict.set_mode(settings.typeahead);
        self.predict.set_style(settings.style);
        self.blink.set(settings.cursor_blink);
    }

    /// A keep-alive round trip, for typeahead's automatic mode until echoes were timed.
    pub fn observe_rtt(&self, ms: f64) {
        self.predict.observe_rtt(ms);
    }

    /// The echo delay typeahead measured (key → echo, smoothed), in milliseconds.
    pub fn echo_ms(&self) -> Option<f64> {
        self.predict.echo_ms()
    }

    /// Calls `on_input` with the bytes of every keystroke, paste or mouse report.
    ///
    /// Typeahead sees each key first and may draw it at once.
    pub fn on_input(&self, mut on_input: impl FnMut(&[u8]) + 'static) {
        let predict = Rc::clone(&self.predict);
        let blink = Rc::clone(&self.blink);
        let on_input = Rc::new(RefCell::new(move |bytes: &[u8]| {
            predict.input(bytes);
            blink.keystroke();
            on_input(bytes);
        }));
        let text_input = Rc::clone(&on_input);
        let text = Closure::<dyn FnMut(String)>::new(move |data: String| {
            (text_input.borrow_mut())(data.as_bytes());
        });
        // `onBinary` passes one character per byte (U+0000..U+00FF).
        let binary = Closure::<dyn FnMut(String)>::new(move |data: String| {
            let bytes: Vec<u8> = data
                .chars()
                .map(|c| u8::try_from(c).unwrap_or(b'?'))
                .collect();
            (on_input.borrow_mut())(&bytes);
        });
        let text_registration = self.terminal.on_data(text.as_ref().unchecked_ref());
        let binary_registration = self.terminal.on_binary(binary.as_ref().unchecked_ref());
        let mut listeners = self.listeners.borrow_mut();
        listeners.push(Listener {
            registration: Some(text_registration),
            _callback: Box::new(text),
        });
        listeners.push(Listener {
            registration: Some(binary_registration),
            _callback: Box::new(binary),
        });
    }

    /// Calls `on_resize(cols, rows)` whenever the terminal's size changes.
    /// Typeahead forgets its predictions then (their columns changed).
    pub fn on_resize(&self, mut on_resize: impl FnMut(u32, u32) + 'static) {
        let predict = Rc::clone(&self.predict);
        let callback =
            Closure::<dyn FnMut(sys::ResizeEvent)>::new(move |size: sys::ResizeEvent| {
                predict.forget();
                on_resize(size.cols(), size.rows());
            });
        let registration = self.terminal.on_resize(callback.as_ref().unchecked_ref());
        self.listeners.borrow_mut().push(Listener {
            registration: Some(registration),
            _callback: Box::new(callback),
        });
    }

    /// Handles the page's own shortcuts before xterm.js sees them: Ctrl+Shift+F calls
    /// `on_search`, Ctrl+Shift+C copies the selection. Everything else goes to the terminal.
    pub fn on_search_shortcut(&self, mut on_search: impl FnMut() + 'static) {
        let terminal = self.terminal.clone();
        let tab_switch = Rc::clone(&self.tab_switch);
        let search = Rc::clone(&self.search);
        let handler = Closure::<dyn FnMut(web_sys::KeyboardEvent) -> bool>::new(
            move |event: web_sys::KeyboardEvent| {
                if event.type_() != "keydown" || !event.ctrl_key() || !event.shift_key() {
                    return true;
                }
                match event.code().as_str() {
                    "KeyF" => {
                        event.prevent_default();
                        search.preload();
                        on_search();
                        false
                    }
                    "KeyC" if terminal.has_selection() => {
                        event.prevent_default();
                        copy_to_clipboard(&terminal.get_selection());
                        false
                    }
                    code @ ("PageUp" | "PageDown") if tab_switch.borrow().is_some() => {
                        event.prevent_default();
                        let step = if code == "PageUp" { -1 } else { 1 };
                        if let Some(switch) = tab_switch.borrow_mut().as_mut() {
                            switch(step);
                        }
                        false
                    }
                    _ => true,
                }
            },
        );
        self.terminal
            .attach_custom_key_event_handler(handler.as_ref().unchecked_ref());
        self.listeners.borrow_mut().push(Listener {
            registration: None,
            _callback: Box::new(handler),
        });
    }

    /// Calls `on_switch(-1)` for Ctrl+Shift+PageUp and `on_switch(1)` for Ctrl+Shift+PageDown
    /// (the page's tabs), instead of sending those keys to the device. Needs
    /// [`Term::on_search_shortcut`] (which installs the key handler).
    pub fn on_tab_switch(&self, on_switch: impl FnMut(i32) + 'static) {
        *self.tab_switch.borrow_mut() = Some(Box::new(on_switch));
    }

    /// Calls `on_title` with the window title a program sets (OSC 0 or 2).
    pub fn on_title_change(&self, on_title: impl Fn(String) + 'static) {
        let callback = Closure::<dyn Fn(String)>::new(on_title);
        let registration = self
            .terminal
            .on_title_change(callback.as_ref().unchecked_ref());
        self.listeners.borrow_mut().push(Listener {
            registration: Some(registration),
            _callback: Box::new(callback),
        });
    }

    /// Shows or hides the terminal (the page's tabs): only a shown terminal holds the page's
    /// WebGL context, so a hidden one gives it back and the shown one takes it, and a shown
    /// terminal is fitted and redrawn (it kept parsing output while hidden).
    pub fn set_visible(&self, visible: bool) {
        if visible {
            if !self.webgl.active() {
                webgl::attach(&self.terminal, &self.webgl);
            }
            self.fit();
            self.terminal
                .refresh(0, self.terminal.rows().saturating_sub(1));
        } else {
            webgl::release(&self.webgl);
        }
    }

    /// A session is starting: fetches what it needs and the first screen did not (Unicode 11
    /// widths, web links, the OSC 52 clipboard; [`extras`]), the first time.
    pub fn prepare_session(&self) {
        self.extras.load();
    }

    /// Fits the terminal to its element now.
    pub fn fit(&self) {
        // A failed fit (e.g. while the element is hidden) keeps the old size.
        let _ = self.fit.fit();
    }

    /// The terminal's size in columns and rows.
    pub fn size(&self) -> (u32, u32) {
        (self.terminal.cols(), self.terminal.rows())
    }

    /// Moves the keyboard focus to the terminal.
    pub fn focus(&self) {
        self.terminal.focus();
    }

    /// Clears the screen and the scrollback.
    pub fn reset(&self) {
        self.predict.forget();
        self.terminal.reset();
    }

    /// Starts fetching the search addon (the search box opened), so a search need not wait.
    pub fn prepare_search(&self) {
        self.search.preload();
    }

    /// Selects the next (or, `backwards`, the previous) match of `needle`, wrapping, and tells
    /// `done` whether there was one. The first search may wait for the addon's script.
    pub fn find(&self, needle: &str, backwards: bool, done: impl FnOnce(bool) + 'static) {
        self.search.find(needle, backwards, Box::new(done));
    }

    /// Removes the search highlight.
    pub fn clear_search(&self) {
        self.search.clear();
    }

    /// Calls `callback` with the renderer whenever it changes: WebGL takes over once its script
    /// has loaded, and hands back to the DOM renderer when its context is lost.
    pub fn on_renderer_change(&self, callback: impl Fn(Renderer) + 'static) {
        let blink = Rc::downgrade(&self.blink);
        self.webgl.on_change(Box::new(move |webgl| {
            if let Some(blink) = blink.upgrade() {
                blink.renderer_changed(webgl);
            }
            callback(if webgl {
                Renderer::Webgl
            } else {
                Renderer::Dom
            });
        }));
    }

    /// The renderer in use right now (WebGL falls back to DOM when its context is lost).
    pub fn renderer(&self) -> Renderer {
        if self.webgl.active() {
            Renderer::Webgl
        } else {
            Renderer::Dom
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Some(observer) = self.observer.take() {
            observer.disconnect();
        }
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        for listener in &listeners {
            if let Some(registration) = &listener.registration {
                registration.dispose();
            }
        }
        self.webgl.forget_listener();
        webgl::release(&self.webgl);
        self.tab_switch.borrow_mut().take();
        self.terminal.dispose();
        // The callbacks go last: nothing can call them once the terminal is disposed.
        drop(listeners);
    }
}
