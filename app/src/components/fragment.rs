//! Parameters handed to the page in its URL fragment: `#token=…` (Token mode) or `#thing=…`
//! (Device mode), with `&user=…`.
//!
//! The fragment never reaches a server, which is why a token may travel there and never in the
//! query string. [`parse`] is plain Rust; [`take_from_location`] reads the page's fragment and
//! removes it from the address bar at once, so the token is not left in the history or in a
//! bookmark.

use zeroize::Zeroizing;

/// What the fragment carried.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FragmentParams {
    /// The source access token (`token=`).
    pub token: Option<Zeroizing<String>>,
    /// The SSH user name (`user=`).
    pub user: Option<String>,
    /// The device's thing name (`thing=`): open the page in Device mode for it.
    pub thing: Option<String>,
}

impl FragmentParams {
    /// Whether the fragment carried anything the page uses.
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.user.is_none() && self.thing.is_none()
    }
}

/// Decodes `%XX` escapes. `+` stays a plus sign (tokens may contain it); a malformed escape is
/// kept as written; bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str) -> String {
    fn hex(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) => hex(*high).zip(hex(*low)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `token`, `thing` and `user` from a fragment (with or without its leading `#`). Unknown keys are
/// ignored; empty values count as absent; the first occurrence of a key wins.
pub fn parse(fragment: &str) -> FragmentParams {
    let fragment = fragment.strip_prefix('#').unwrap_or(fragment);
    let mut params = FragmentParams::default();
    for pair in fragment.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value).trim().to_owned();
        if value.is_empty() {
            continue;
        }
        match key {
            "token" if params.token.is_none() => params.token = Some(Zeroizing::new(value)),
            "user" if params.user.is_none() => params.user = Some(value),
            "thing" if params.thing.is_none() => params.thing = Some(value),
            _ => {}
        }
    }
    params
}

/// Takes the parameters from the page's own URL fragment and removes the fragment from the
/// address bar (`history.replaceState`), keeping the path and the query.
pub fn take_from_location() -> FragmentParams {
    let Some(window) = web_sys::window() else {
        return FragmentParams::default();
    };
    let location = window.location();
    let hash = Zeroizing::new(location.hash().unwrap_or_default());
    if hash.is_empty() {
        return FragmentParams::default();
    }
    let params = parse(&hash);
    let path = location.pathname().unwrap_or_else(|_| "/".to_owned());
    let query = location.search().unwrap_or_default();
    if let Ok(history) = window.history() {
        // Failure here (e.g. a sandboxed frame) leaves the fragment; nothing else to do.
        let _ = history.replace_state_with_url(
            &wasm_bindgen::JsValue::NULL,
            "",
            Some(&format!("{path}{query}")),
        );
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fragment: &str, token: Option<&str>, user: Option<&str>) {
        let params = parse(fragment);
        assert_eq!(
            params.token.as_deref().map(String::as_str),
            token,
            "token of {fragment:?}"
        );
        assert_eq!(params.user.as_deref(), user, "user of {fragment:?}");
    }

    #[test]
    fn token_alone() {
        check("#token=AQGAAXiZ-abc_123", Some("AQGAAXiZ-abc_123"), None);
    }

    #[test]
    fn token_and_user_in_any_order() {
        check("#token=t0k&user=pi", Some("t0k"), Some("pi"));
        check("#user=pi&token=t0k", Some("t0k"), Some("pi"));
    }

    #[test]
    fn a_device_link_names_thing_and_user() {
        let params = parse("#thing=pump-7&user=pi");
        assert_eq!(params.thing.as_deref(), Some("pump-7"));
        assert_eq!(params.user.as_deref(), Some("pi"));
        assert_eq!(params.token, None);
        assert!(!params.is_empty());
        assert_eq!(parse("#thing=").thing, None);
    }

    #[test]
    fn without_hash_sign() {
        check("token=abc", Some("abc"), None);
    }

    #[test]
    fn percent_escapes_are_decoded_and_plus_is_kept() {
        check(
            "#token=a%2Bb%3D%3D+c&user=j%C3%BCrgen",
            Some("a+b==+c"),
            Some("jürgen"),
        );
    }

    #[test]
    fn empty_unknown_and_malformed_parts() {
        check("", None, None);
        check("#", None, None);
        check("#token=&user=", None, None);
        check("#foo=bar&&token", None, None);
        check("#token=100%&user=%zz", Some("100%"), Some("%zz"));
    }

    #[test]
    fn first_occurrence_wins() {
        check("#token=first&token=second", Some("first"), None);
    }

    #[test]
    fn invalid_utf8_does_not_panic() {
        check("#user=%FF%FE", None, Some("\u{FFFD}\u{FFFD}"));
    }

    #[test]
    fn is_empty_reports_presence() {
        assert!(parse("#other=1").is_empty());
        assert!(!parse("#user=a").is_empty());
    }
}
