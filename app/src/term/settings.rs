//! The terminal's settings (typeahead, how predictions look, cursor blinking), remembered in the
//! browser's `localStorage` under [`KEY`] so the page opens with the operator's choice.
//!
//! The stored form is a small JSON object; unknown or damaged values fall back to the defaults
//! field by field, so a settings entry from another version never stops the page. Native builds
//! (the tests) keep no store.

use serde::{Deserialize, Serialize};

use super::typeahead::{Mode, Style};

/// The `localStorage` key.
pub const KEY: &str = "burrow.terminal-settings";

/// What the operator chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// When typed keys are shown before the device echoes them.
    pub typeahead: Mode,
    /// How predicted characters look until confirmed.
    pub style: Style,
    /// Whether the cursor blinks (off by default: a blinking cursor makes the page draw).
    pub cursor_blink: bool,
}

/// The stored form: plain strings, so a value this version does not know is just skipped.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default)]
    typeahead: String,
    #[serde(default)]
    style: String,
    #[serde(default)]
    cursor_blink: bool,
}

impl Settings {
    /// Reads settings from their stored text; anything missing or unknown is the default.
    pub fn parse(text: &str) -> Settings {
        let stored: Stored = serde_json::from_str(text).unwrap_or_default();
        Settings {
            typeahead: Mode::parse(&stored.typeahead).unwrap_or_default(),
            style: Style::parse(&stored.style).unwrap_or_default(),
            cursor_blink: stored.cursor_blink,
        }
    }

    /// The stored text of these settings.
    pub fn to_text(self) -> String {
        let stored = Stored {
            typeahead: self.typeahead.as_str().to_owned(),
            style: self.style.as_str().to_owned(),
            cursor_blink: self.cursor_blink,
        };
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// The settings the page remembered (defaults when none, or no storage).
    pub fn load() -> Settings {
        storage()
            .and_then(|storage| storage.get_item(KEY).ok().flatten())
            .map(|text| Settings::parse(&text))
            .unwrap_or_default()
    }

    /// Remembers these settings; a store that refuses (private mode, full) is only logged.
    pub fn save(self) {
        let Some(storage) = storage() else {
            return;
        };
        if storage.set_item(KEY, &self.to_text()).is_err() {
            web_sys::console::warn_1(&"the terminal settings could not be saved".into());
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    if cfg!(target_arch = "wasm32") {
        web_sys::window().and_then(|window| window.local_storage().ok().flatten())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_auto_underline_and_no_blinking() {
        let settings = Settings::parse("");
        assert_eq!(settings.typeahead, Mode::Auto);
        assert_eq!(settings.style, Style::Underline);
        assert!(!settings.cursor_blink);
    }

    #[test]
    fn settings_survive_the_store_and_unknown_values_fall_back() {
        let chosen = Settings {
            typeahead: Mode::Off,
            style: Style::Dim,
            cursor_blink: true,
        };
        assert_eq!(Settings::parse(&chosen.to_text()), chosen);
        let odd = Settings::parse(r#"{"typeahead":"sometimes","style":"dim","extra":1}"#);
        assert_eq!(odd.typeahead, Mode::Auto);
        assert_eq!(odd.style, Style::Dim);
        assert_eq!(Settings::parse("not json"), Settings::default());
    }
}
