//! A thrown JavaScript value as text, for the error types of every layer that calls into the
//! browser (the terminal, the driver's WebSocket, the Files panel's file APIs). A leaf: it
//! imports nothing of the app.

use wasm_bindgen::{JsCast, JsValue};

/// A JavaScript exception, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsError(pub String);

impl JsError {
    /// Describes a thrown JavaScript value: an `Error`'s message, a string, or its debug form.
    pub fn from_js(value: &JsValue) -> Self {
        if let Some(error) = value.dyn_ref::<js_sys::Error>() {
            return Self(String::from(error.message()));
        }
        match value.as_string() {
            Some(text) => Self(text),
            None => Self(format!("{value:?}")),
        }
    }
}

impl std::fmt::Display for JsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
