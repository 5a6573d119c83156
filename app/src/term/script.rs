//! Addon scripts fetched on first use rather than with the page.
//!
//! Trunk copies these files next to the app (`rel="copy-file"` in index.html, no hash in their
//! names) instead of adding them to the page, so the first screen downloads only what it draws.
//! [`load`] adds a classic `<script>` for one of them, beside the loader script (so any base
//! path works), and waits for it to define its global. The Content-Security-Policy allows this
//! as it is (`script-src 'self'`): the scripts come from the page's own origin, and nothing is
//! evaluated from a string. A script already loaded, or loading for another terminal, is not
//! fetched again.

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::JsError;

/// One addon's script: its file beside the app and the global it defines.
#[derive(Debug, Clone, Copy)]
pub(super) struct Script {
    /// The file name in `dist/`.
    pub file: &'static str,
    /// The UMD global the script defines (`SearchAddon`, …).
    pub global: &'static str,
}

thread_local! {
    /// Scripts being loaded: the promise that settles when they ran.
    static LOADING: RefCell<HashMap<&'static str, js_sys::Promise>> = RefCell::new(HashMap::new());
}

/// Whether the script's global is defined.
pub(super) fn present(script: Script) -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str(script.global))
        .is_ok_and(|value| !value.is_undefined())
}

/// The script's URL: its file beside the loader script.
fn url(document: &web_sys::Document, file: &str) -> String {
    document
        .query_selector("script[data-burrow-js]")
        .ok()
        .flatten()
        .and_then(|tag| tag.dyn_into::<web_sys::HtmlScriptElement>().ok())
        .and_then(|tag| web_sys::Url::new_with_base(file, &tag.src()).ok())
        .map_or_else(|| file.to_owned(), |url| url.href())
}

/// Adds the script's `<script>` to the page (once) and returns the promise of its loading.
fn start(script: Script) -> Result<js_sys::Promise, String> {
    if let Some(promise) = LOADING.with(|loading| loading.borrow().get(script.file).cloned()) {
        return Ok(promise);
    }
    let document = web_sys::window()
        .and_then(|window| window.document())
        .ok_or("no document")?;
    let tag = document
        .create_element("script")
        .map_err(|error| JsError::from_js(&error).to_string())?
        .dyn_into::<web_sys::HtmlScriptElement>()
        .map_err(|_| "not a script element")?;
    tag.set_src(&url(&document, script.file));
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        tag.set_onload(Some(&resolve));
        tag.set_onerror(Some(&reject));
    });
    let head = document.head().ok_or("the page has no <head>")?;
    head.append_child(&tag)
        .map_err(|error| JsError::from_js(&error).to_string())?;
    LOADING.with(|loading| loading.borrow_mut().insert(script.file, promise.clone()));
    Ok(promise)
}

/// Loads `script` unless its global is defined already, and waits until it is.
pub(super) async fn load(script: Script) -> Result<(), String> {
    if present(script) {
        return Ok(());
    }
    let promise = start(script)?;
    let outcome = JsFuture::from(promise).await;
    if outcome.is_err() {
        // Forget the failed attempt, so a later use tries again.
        LOADING.with(|loading| loading.borrow_mut().remove(script.file));
        return Err(format!("{} did not load", script.file));
    }
    if present(script) {
        Ok(())
    } else {
        Err(format!("{} did not define {}", script.file, script.global))
    }
}
