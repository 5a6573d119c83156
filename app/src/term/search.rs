//! Search in the scrollback, with the search addon fetched on first use.
//!
//! The addon's script is not part of the page ([`script`]): it is fetched the first time the
//! operator opens the search box ([`Finder::preload`]) or searches, and loaded into the terminal
//! once it ran. A search asked for meanwhile runs as soon as the addon is there; if the script
//! cannot be fetched, the search finds nothing and the console says why.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::Object;
use wasm_bindgen::JsCast;

use super::{JsError, script, sys};

/// The addon's script, beside the app's own files (see index.html).
const SCRIPT: script::Script = script::Script {
    file: "addon-search.js",
    global: "SearchAddon",
};

/// Told whether a search found a match.
type Done = Box<dyn FnOnce(bool)>;

/// Given the addon once it is there (`None` when it could not be loaded).
type WithAddon = Box<dyn FnOnce(Option<&sys::Search>)>;

/// One terminal's search addon, once loaded.
pub(super) struct Finder {
    terminal: sys::Terminal,
    addon: RefCell<Option<sys::Search>>,
}

impl Finder {
    /// Search for `terminal` (nothing is fetched yet).
    pub(super) fn new(terminal: &sys::Terminal) -> Rc<Finder> {
        Rc::new(Finder {
            terminal: terminal.clone(),
            addon: RefCell::new(None),
        })
    }

    /// Starts fetching the addon, if it is not loaded yet.
    pub(super) fn preload(self: &Rc<Self>) {
        if self.addon.borrow().is_none() {
            self.with_addon(Box::new(|_: Option<&sys::Search>| {}));
        }
    }

    /// Selects the next (or previous) match of `needle`, wrapping; `done(found)` is told.
    pub(super) fn find(self: &Rc<Self>, needle: &str, backwards: bool, done: Done) {
        if needle.is_empty() {
            done(false);
            return;
        }
        let needle = needle.to_owned();
        self.with_addon(Box::new(move |addon: Option<&sys::Search>| {
            let found = addon.is_some_and(|addon| {
                if backwards {
                    addon.find_previous(&needle, &Object::new())
                } else {
                    addon.find_next(&needle, &Object::new())
                }
            });
            done(found);
        }));
    }

    /// Removes the search highlight.
    pub(super) fn clear(&self) {
        if let Some(addon) = self.addon.borrow().as_ref() {
            addon.clear_decorations();
        }
    }

    /// Calls `then` with the addon: at once when loaded, else once its script ran (`None` when
    /// it could not be loaded, or the terminal went away meanwhile: then `then` is not called).
    fn with_addon(self: &Rc<Self>, then: WithAddon) {
        if let Some(addon) = self.addon.borrow().as_ref() {
            then(Some(addon));
            return;
        }
        let finder: Weak<Finder> = Rc::downgrade(self);
        wasm_bindgen_futures::spawn_local(async move {
            let loaded = script::load(SCRIPT).await;
            let Some(finder) = finder.upgrade() else {
                return;
            };
            if let Err(error) = loaded.and_then(|()| finder.attach()) {
                web_sys::console::warn_1(&format!("search unavailable: {error}").into());
                then(None);
                return;
            }
            then(finder.addon.borrow().as_ref());
        });
    }

    /// Loads the addon into the terminal (once; a second caller finds it there).
    fn attach(&self) -> Result<(), String> {
        if self.addon.borrow().is_some() {
            return Ok(());
        }
        let addon = sys::Search::new().map_err(|error| JsError::from_js(&error).to_string())?;
        self.terminal
            .load_addon(addon.unchecked_ref())
            .map_err(|error| JsError::from_js(&error).to_string())?;
        *self.addon.borrow_mut() = Some(addon);
        Ok(())
    }
}
