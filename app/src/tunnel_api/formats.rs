//! Device mode's memory of which message format each device answers, and the one fallback:
//! a device with no memory is tried in V3; when no SSH banner comes back in V3 (the AWS IoT
//! Device Client and Greengrass never answer V3), the page rotates ALL tokens (the device gets a
//! fresh one by notification and starts a new session), retries in V1 and remembers V1.
//!
//! The memory is a small text in the browser's `localStorage` (`DEVICE FORMAT` a line; an
//! in-memory text on native builds, for tests). A device that answered remembers the format
//! that worked, so the next connection is right the first time.

use crate::session::{Format, SessionError};

/// The `localStorage` key of the memory.
pub const STORAGE_KEY: &str = "burrow.device_formats";

/// The remembered formats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formats {
    entries: Vec<(String, Format)>,
}

fn format_of(word: &str) -> Option<Format> {
    match word {
        "V1" => Some(Format::V1),
        "V2" => Some(Format::V2),
        "V3" => Some(Format::V3),
        _ => None,
    }
}

/// The form's word for `format`.
pub fn word_of(format: Format) -> &'static str {
    match format {
        Format::V1 => "V1",
        Format::V2 => "V2",
        Format::V3 => "V3",
    }
}

impl Formats {
    /// Reads the memory's text; unreadable lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut formats = Self::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some(device), Some(format), None) = (words.next(), words.next(), words.next())
                && let Some(format) = format_of(format)
            {
                formats.remember(device, format);
            }
        }
        formats
    }

    /// The memory as text.
    pub fn to_text(&self) -> String {
        self.entries
            .iter()
            .map(|(device, format)| format!("{device} {}\n", word_of(*format)))
            .collect()
    }

    /// What is remembered for `device`.
    pub fn get(&self, device: &str) -> Option<Format> {
        self.entries
            .iter()
            .find(|(name, _)| name == device)
            .map(|(_, format)| *format)
    }

    /// Remembers `format` for `device`; returns whether anything changed.
    pub fn remember(&mut self, device: &str, format: Format) -> bool {
        if device.is_empty() || device.chars().any(char::is_whitespace) {
            return false;
        }
        match self.entries.iter_mut().find(|(name, _)| name == device) {
            Some((_, known)) if *known == format => false,
            Some((_, known)) => {
                *known = format;
                true
            }
            None => {
                self.entries.push((device.to_owned(), format));
                true
            }
        }
    }
}

/// The format of a device's first attempt: what worked before, else the form's choice.
pub fn first_try(remembered: Option<Format>, chosen: Format) -> Format {
    remembered.unwrap_or(chosen)
}

/// After an attempt in `format` ended with `err`: the format to retry in, when the error is V3's
/// silence and the device has no memory of a format that worked (a device that answered V3
/// before is not switched by one silent attempt).
pub fn fallback(err: &SessionError, format: Format, remembered: Option<Format>) -> Option<Format> {
    let silent_v3 = matches!(
        err,
        SessionError::NoBanner {
            format: Format::V3,
            ..
        }
    );
    (silent_v3 && format == Format::V3 && remembered.is_none()).then_some(Format::V1)
}

/// The status line's words while retrying.
pub fn retry_note(device: &str) -> String {
    format!(
        "No SSH banner from {device} in V3 within 2 s: sent new access tokens, retrying in V1 \
         (remembered for {device})."
    )
}

/// Where the memory lives.
mod storage {
    #[cfg(target_arch = "wasm32")]
    pub fn load() -> String {
        web_sys::window()
            .and_then(|window| window.local_storage().ok().flatten())
            .and_then(|storage| storage.get_item(super::STORAGE_KEY).ok().flatten())
            .unwrap_or_default()
    }

    #[cfg(target_arch = "wasm32")]
    pub fn save(text: &str) {
        if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
            // A store that refuses writes only means the fallback runs again next time.
            let _ = storage.set_item(super::STORAGE_KEY, text);
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load() -> String {
        TEXT.with(|text| text.borrow().clone())
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(text: &str) {
        TEXT.with(|stored| *stored.borrow_mut() = text.to_owned());
    }
}

/// What is remembered for `device`.
pub fn remembered(device: &str) -> Option<Format> {
    Formats::parse(&storage::load()).get(device)
}

/// Remembers that `device` answers `format`.
pub fn remember(device: &str, format: Format) {
    let mut formats = Formats::parse(&storage::load());
    if formats.remember(device, format) {
        storage::save(&formats.to_text());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_round_trips_and_skips_junk() {
        let mut formats = Formats::default();
        assert!(formats.remember("pump-7", Format::V1));
        assert!(!formats.remember("pump-7", Format::V1));
        assert!(formats.remember("valve-2", Format::V3));
        assert!(formats.remember("pump-7", Format::V3));
        assert!(!formats.remember("", Format::V1));
        let text = formats.to_text();
        assert_eq!(text, "pump-7 V3\nvalve-2 V3\n");
        assert_eq!(Formats::parse(&text), formats);
        let junk = Formats::parse("x V9\nonly\na b c\nok V2\n");
        assert_eq!(junk.get("ok"), Some(Format::V2));
        assert_eq!(junk.get("x"), None);
    }

    #[test]
    fn silent_v3_without_memory_falls_back_to_v1_once() {
        let silent = SessionError::NoBanner {
            format: Format::V3,
            seconds: 2,
        };
        assert_eq!(fallback(&silent, Format::V3, None), Some(Format::V1));
        // A device that answered V3 before, or an attempt already in V1: no switch.
        assert_eq!(fallback(&silent, Format::V3, Some(Format::V3)), None);
        let silent_v1 = SessionError::NoBanner {
            format: Format::V1,
            seconds: 2,
        };
        assert_eq!(fallback(&silent_v1, Format::V1, None), None);
        assert_eq!(
            fallback(&SessionError::AuthCancelled, Format::V3, None),
            None
        );
        assert_eq!(first_try(Some(Format::V1), Format::V3), Format::V1);
        assert_eq!(first_try(None, Format::V3), Format::V3);
        assert!(retry_note("pump-7").contains("retrying in V1"));
    }

    #[test]
    fn the_store_remembers_per_device() {
        remember("store-test", Format::V1);
        assert_eq!(remembered("store-test"), Some(Format::V1));
        assert_eq!(remembered("other-device"), None);
    }
}
