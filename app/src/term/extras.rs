//! The addons a session needs and the first screen does not: Unicode 11 widths, web links and
//! the write-only OSC 52 clipboard.
//!
//! Their scripts are not part of the page ([`script`]); [`Extras::load`] fetches them when a
//! session starts (the Connect click), long before its first output: the cookie helper, the
//! tunnel and the SSH handshake take several round trips, the scripts one. Until then the page
//! only shows its own ASCII notes, for which xterm.js's default widths are exact. A script that
//! cannot be fetched leaves its feature off, with a console warning; the terminal works on.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::Object;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{JsError, copy_to_clipboard, script, set, sys};

const UNICODE11: script::Script = script::Script {
    file: "addon-unicode11.js",
    global: "Unicode11Addon",
};
const WEB_LINKS: script::Script = script::Script {
    file: "addon-web-links.js",
    global: "WebLinksAddon",
};
const CLIPBOARD: script::Script = script::Script {
    file: "addon-clipboard.js",
    global: "ClipboardAddon",
};

/// One terminal's session addons, loaded once.
pub(super) struct Extras {
    terminal: sys::Terminal,
    started: Cell<bool>,
    /// The clipboard provider's callbacks, alive as long as the terminal.
    callbacks: RefCell<Vec<Box<dyn std::any::Any>>>,
}

impl Extras {
    /// The addons of `terminal`, not fetched yet.
    pub(super) fn new(terminal: &sys::Terminal) -> Rc<Extras> {
        Rc::new(Extras {
            terminal: terminal.clone(),
            started: Cell::new(false),
            callbacks: RefCell::new(Vec::new()),
        })
    }

    /// Whether another terminal of the page fetched the scripts already (then a new terminal
    /// loads the addons at once).
    pub(super) fn in_page() -> bool {
        [UNICODE11, WEB_LINKS, CLIPBOARD]
            .into_iter()
            .all(script::present)
    }

    /// Fetches the scripts (the first time) and loads each addon once its script ran, unless
    /// the terminal is gone by then.
    pub(super) fn load(self: &Rc<Self>) {
        if self.started.replace(true) {
            return;
        }
        for (script, attach) in [
            (
                UNICODE11,
                Extras::attach_unicode11 as fn(&Extras) -> Result<(), JsValue>,
            ),
            (WEB_LINKS, Extras::attach_web_links),
            (CLIPBOARD, Extras::attach_clipboard),
        ] {
            let extras: Weak<Extras> = Rc::downgrade(self);
            wasm_bindgen_futures::spawn_local(async move {
                let loaded = script::load(script).await;
                let Some(extras) = extras.upgrade() else {
                    return;
                };
                let outcome = loaded.and_then(|()| {
                    attach(&extras).map_err(|error| JsError::from_js(&error).to_string())
                });
                if let Err(error) = outcome {
                    web_sys::console::warn_1(
                        &format!("{} unavailable: {error}", script.global).into(),
                    );
                }
            });
        }
    }

    fn attach_unicode11(&self) -> Result<(), JsValue> {
        let addon = sys::Unicode11::new()?;
        self.terminal.load_addon(addon.unchecked_ref())?;
        self.terminal.unicode()?.set_active_version("11")
    }

    fn attach_web_links(&self) -> Result<(), JsValue> {
        let addon = sys::WebLinks::new()?;
        self.terminal.load_addon(addon.unchecked_ref())
    }

    fn attach_clipboard(&self) -> Result<(), JsValue> {
        let (provider, callbacks) = clipboard_provider();
        let addon = sys::Clipboard::new(&JsValue::UNDEFINED, &provider)?;
        self.terminal.load_addon(addon.unchecked_ref())?;
        self.callbacks.borrow_mut().extend(callbacks);
        Ok(())
    }
}

/// The OSC 52 clipboard provider: writes go to the system clipboard, reads always return
/// nothing, so a remote host can never read the operator's clipboard.
fn clipboard_provider() -> (Object, Vec<Box<dyn std::any::Any>>) {
    let provider = Object::new();
    let read = Closure::<dyn Fn(JsValue) -> JsValue>::new(|_selection| JsValue::from_str(""));
    let write = Closure::<dyn Fn(JsValue, String)>::new(|selection: JsValue, text: String| {
        // Only the system clipboard (`c`); the X11 primary selection does not exist here.
        if selection.as_string().as_deref() == Some("c") {
            copy_to_clipboard(&text);
        }
    });
    set(&provider, "readText", read.as_ref().clone());
    set(&provider, "writeText", write.as_ref().clone());
    (provider, vec![Box::new(read), Box::new(write)])
}
