//! Host keys the operator accepted, kept per device, in OpenSSH `known_hosts` format.
//!
//! A *target* is one token that stands where OpenSSH writes a host name (see
//! `session::target`). For a device it is the device's name ([`device_target`]: the thing name,
//! plus `/SERVICE` for a service other than SSH), as OpenSSH's `HostKeyAlias` would be: the
//! same device keeps its key across tunnels, tokens and endpoints (relay or direct to AWS), so a
//! changed key is refused. A tunnel without a known device falls back to an endpoint + tunnel
//! (or token hash) + service target, good for that tunnel only. Entries written by older
//! versions (`endpoint/thing:NAME/SERVICE`) are read as the device's ([`migrated_target`]) and
//! written back that way. The store is a
//! `known_hosts` text in the browser's `localStorage` (an in-memory text on native builds, for
//! tests); [`export`] and [`import`] move it in and out of the page. Parsing, formatting,
//! fingerprints and the verdict on a presented key are plain functions, tested natively.
//!
//! Deliberately not supported: hashed host names (`|1|…`), `@cert-authority` and `@revoked`
//! markers, wildcards. Importing skips such lines and counts only what it stored.

use russh::keys::{HashAlg, PublicKey};

/// The `localStorage` key of the store.
pub const STORAGE_KEY: &str = "burrow.known_hosts";

/// Why a known-hosts text could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnownHostsError {
    /// A line is not `target algorithm base64-key [comment]`.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The browser refused to store the text.
    #[error("cannot save the known hosts: {0}")]
    Storage(String),
}

/// One remembered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The target the key belongs to.
    pub target: String,
    /// The key (without comment).
    pub key: PublicKey,
}

/// What the store says about a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is remembered for this target.
    Known,
    /// Nothing is remembered for this target: ask the operator.
    Unknown,
    /// Other keys are remembered for this target: refuse.
    Mismatch {
        /// The remembered keys, as `algorithm SHA256:…`.
        remembered: Vec<String>,
    },
}

/// The remembered host keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// `SHA256:…` as OpenSSH prints it (`ssh-keygen -lf`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The key's algorithm name, e.g. `ssh-ed25519`.
pub fn algorithm(key: &PublicKey) -> String {
    key.algorithm().as_str().to_owned()
}

/// Whether `target` can stand in a known_hosts line as one host name.
pub fn is_valid_target(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 512
        && !target.starts_with(['#', '@', '|'])
        && target
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, ',' | '*' | '?' | '!'))
}

/// The target of a device's service: `pump-7` for SSH (or the tunnel's only, unnamed
/// service), `pump-7/VNC` for another service.
pub fn device_target(device: &str, service_id: &str) -> String {
    match service_id {
        "" | "SSH" => device.to_owned(),
        service => format!("{device}/{service}"),
    }
}

/// Whether `target` names a device (rather than one tunnel through one endpoint).
pub fn is_device_target(target: &str) -> bool {
    !target.contains("://")
}

/// The device target an entry of an older version stands for: `ENDPOINT/thing:NAME/SERVICE`
/// (`-` for no service) becomes [`device_target`]`(NAME, SERVICE)`. Other targets stay.
pub fn migrated_target(target: &str) -> Option<String> {
    if !target.contains("://") {
        return None;
    }
    let (rest, service) = target.rsplit_once('/')?;
    let (_, thing) = rest.rsplit_once("/thing:")?;
    let service = if service == "-" { "" } else { service };
    let migrated = device_target(thing, service);
    (is_valid_target(&migrated) && !thing.is_empty() && !thing.contains(['/', '%']))
        .then_some(migrated)
}

fn without_comment(key: &PublicKey) -> PublicKey {
    PublicKey::new(key.key_data().clone(), "")
}

impl KnownHosts {
    /// Parses a known_hosts text. Blank lines, comments, hashed names and marker lines
    /// (`@cert-authority`, `@revoked`) are skipped; any other malformed line is an error.
    pub fn parse(text: &str) -> Result<Self, KnownHostsError> {
        let mut hosts = KnownHosts::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                continue;
            }
            let bad = |reason: &str| KnownHostsError::Line {
                line: index + 1,
                reason: reason.to_owned(),
            };
            let (names, key_text) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected a host name followed by a key"))?;
            let key_text = key_text.trim_start();
            let key = PublicKey::from_openssh(key_text)
                .map_err(|err| bad(&format!("unreadable key ({err})")))?;
            for name in names.split(',') {
                if name.starts_with('|') {
                    // A hashed name cannot be matched against a target; skip it.
                    continue;
                }
                if !is_valid_target(name) {
                    return Err(bad(&format!("unsupported host name {name:?}")));
                }
                let target = migrated_target(name).unwrap_or_else(|| name.to_owned());
                hosts.remember(&target, &key);
            }
        }
        Ok(hosts)
    }

    /// The store as known_hosts text: `target algorithm base64`, one key a line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            // A key that came out of `from_openssh` always encodes again.
            if let Ok(key) = entry.key.to_openssh() {
                out.push_str(&entry.target);
                out.push(' ');
                out.push_str(key.trim_end());
                out.push('\n');
            }
        }
        out
    }

    /// The remembered entries, in order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What the store says about `key` presented for `target`.
    ///
    /// Like OpenSSH's strict checking, any remembered key for the target that differs is a
    /// mismatch, also when its algorithm differs: this client's algorithm preferences are fixed,
    /// so a device that changes its key type changed its key.
    pub fn verdict(&self, target: &str, key: &PublicKey) -> Verdict {
        let remembered: Vec<&Entry> = self.entries.iter().filter(|e| e.target == target).collect();
        if remembered.is_empty() {
            return Verdict::Unknown;
        }
        if remembered
            .iter()
            .any(|e| e.key.key_data() == key.key_data())
        {
            return Verdict::Known;
        }
        Verdict::Mismatch {
            remembered: remembered
                .iter()
                .map(|e| format!("{} {}", algorithm(&e.key), fingerprint(&e.key)))
                .collect(),
        }
    }

    /// Remembers `key` for `target`, replacing a remembered key of the same algorithm.
    /// Returns whether anything changed.
    pub fn remember(&mut self, target: &str, key: &PublicKey) -> bool {
        let key = without_comment(key);
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.target == target && e.key.algorithm() == key.algorithm())
        {
            if entry.key.key_data() == key.key_data() {
                return false;
            }
            entry.key = key;
            return true;
        }
        self.entries.push(Entry {
            target: target.to_owned(),
            key,
        });
        true
    }

    /// Adds every entry of `other`; returns how many were new or changed.
    pub fn merge(&mut self, other: &KnownHosts) -> usize {
        other
            .entries
            .iter()
            .filter(|entry| self.remember(&entry.target, &entry.key))
            .count()
    }
}

/// Where the store's text lives.
mod storage {
    #[cfg(target_arch = "wasm32")]
    pub fn load() -> String {
        web_sys::window()
            .and_then(|window| window.local_storage().ok().flatten())
            .and_then(|storage| storage.get_item(super::STORAGE_KEY).ok().flatten())
            .unwrap_or_default()
    }

    #[cfg(target_arch = "wasm32")]
    pub fn save(text: &str) -> Result<(), String> {
        let storage = web_sys::window()
            .ok_or("no window")?
            .local_storage()
            .map_err(|_| "localStorage is not available".to_owned())?
            .ok_or("localStorage is not available")?;
        storage
            .set_item(super::STORAGE_KEY, text)
            .map_err(|_| "localStorage refused the write (full or disabled)".to_owned())
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
    pub fn save(text: &str) -> Result<(), String> {
        TEXT.with(|stored| *stored.borrow_mut() = text.to_owned());
        Ok(())
    }
}

/// The store as it is now. A damaged store reads as its readable lines' keys where possible,
/// else as empty (the operator is then asked again; nothing is trusted silently).
pub fn load() -> KnownHosts {
    let text = storage::load();
    KnownHosts::parse(&text).unwrap_or_else(|_| {
        let mut hosts = KnownHosts::default();
        for line in text.lines() {
            if let Ok(one) = KnownHosts::parse(line) {
                hosts.merge(&one);
            }
        }
        hosts
    })
}

/// Replaces the store.
pub fn save(hosts: &KnownHosts) -> Result<(), KnownHostsError> {
    storage::save(&hosts.to_text()).map_err(KnownHostsError::Storage)
}

/// The store in OpenSSH `known_hosts` format, for the operator to download.
pub fn export() -> String {
    load().to_text()
}

/// Adds the keys of a known_hosts text to the store; returns how many were new or changed.
/// Nothing is stored when any line is malformed.
pub fn import(text: &str) -> Result<usize, KnownHostsError> {
    let incoming = KnownHosts::parse(text)?;
    let mut hosts = load();
    let changed = hosts.merge(&incoming);
    if changed > 0 {
        save(&hosts)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test keys only (generated for these tests).
    const ED25519: &str = "ssh-ed25519 \
        AAAAC3NzaC1lZDI1NTE5AAAAIITlDK6bHRWU2z5pX/SjXngnmo/G3yoB+WW7k0zBNYNV test@burrow";
    const ED25519_OTHER: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILKKlw8lw2hG7PHaBMBcb/++0w/3t2kXzGiW6Z3zfO7a";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).expect("test key parses")
    }

    #[test]
    fn unknown_known_and_mismatch() {
        let mut hosts = KnownHosts::default();
        let target = "ws://127.0.0.1:8080/tunnel:abc/SSH";
        assert_eq!(hosts.verdict(target, &key(ED25519)), Verdict::Unknown);
        assert!(hosts.remember(target, &key(ED25519)));
        assert!(!hosts.remember(target, &key(ED25519)));
        assert_eq!(hosts.verdict(target, &key(ED25519)), Verdict::Known);
        assert_eq!(
            hosts.verdict(target, &key(ED25519_OTHER)),
            Verdict::Mismatch {
                remembered: vec![format!("ssh-ed25519 {}", fingerprint(&key(ED25519)))]
            }
        );
        assert_eq!(
            hosts.verdict("other", &key(ED25519_OTHER)),
            Verdict::Unknown
        );
    }

    #[test]
    fn export_import_round_trip() {
        let mut hosts = KnownHosts::default();
        hosts.remember("ws://h:1/tunnel:a/SSH", &key(ED25519));
        hosts.remember("pump-7", &key(ED25519_OTHER));
        let text = hosts.to_text();
        assert_eq!(text.lines().count(), 2);
        assert!(
            !text.contains("test@burrow"),
            "comments are not kept: {text}"
        );
        let again = KnownHosts::parse(&text).expect("own output parses");
        assert_eq!(again, hosts);
        assert_eq!(again.to_text(), text);
    }

    #[test]
    fn parse_takes_openssh_lines_and_skips_what_it_cannot_match() {
        let text = format!(
            "# a comment\n\n\
             a,b {ED25519}\n\
             |1|abc=|def= {ED25519_OTHER}\n\
             @cert-authority *.example {ED25519_OTHER}\n"
        );
        let hosts = KnownHosts::parse(&text).expect("valid");
        let targets: Vec<&str> = hosts.entries().iter().map(|e| e.target.as_str()).collect();
        assert_eq!(targets, vec!["a", "b"]);
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers() {
        let cases = [
            ("host\n", 1),
            (
                &format!("ok {ED25519}\nhost ssh-ed25519 !!!notbase64\n") as &str,
                2,
            ),
            (&format!("ho*st {ED25519}\n") as &str, 1),
        ];
        for (text, line) in cases {
            match KnownHosts::parse(text) {
                Err(KnownHostsError::Line { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn import_merges_into_the_store_and_export_shows_it() {
        let before = export();
        let text = format!("imported-target {ED25519}\n");
        assert_eq!(import(&text), Ok(1));
        assert_eq!(import(&text), Ok(0));
        let after = export();
        assert!(after.starts_with(&before));
        assert!(after.contains("imported-target ssh-ed25519 "));
        assert!(import("broken line\n").is_err());
        assert_eq!(export(), after);
    }

    #[test]
    fn device_targets_are_the_device_name() {
        assert_eq!(device_target("pump-7", "SSH"), "pump-7");
        assert_eq!(device_target("pump-7", ""), "pump-7");
        assert_eq!(device_target("pump-7", "VNC"), "pump-7/VNC");
        assert!(is_device_target("pump-7/VNC"));
        assert!(!is_device_target("ws://h:1/tunnel:t/SSH"));
    }

    #[test]
    fn entries_of_older_versions_become_the_device_s() {
        let cases = [
            ("ws://127.0.0.1:8080/thing:pump-7/SSH", Some("pump-7")),
            (
                "wss://data.tunneling.iot.eu-west-1.amazonaws.com/thing:pump-7/-",
                Some("pump-7"),
            ),
            ("ws://h:1/thing:pump-7/VNC", Some("pump-7/VNC")),
            ("ws://h:1/tunnel:t-1/SSH", None),
            ("ws://h:1/token:0123456789abcdef/SSH", None),
            ("ws://h:1/thing:pump%207/SSH", None),
            ("pump-7", None),
        ];
        for (old, new) in cases {
            assert_eq!(migrated_target(old).as_deref(), new, "{old}");
        }
        // Read from an old store: the device's entry, and the same verdicts under its name.
        let text = format!(
            "ws://127.0.0.1:8080/thing:pump-7/SSH {ED25519}\nws://h:1/tunnel:t-1/SSH {ED25519_OTHER}\n"
        );
        let hosts = KnownHosts::parse(&text).expect("an old store parses");
        assert_eq!(hosts.verdict("pump-7", &key(ED25519)), Verdict::Known);
        assert!(matches!(
            hosts.verdict("pump-7", &key(ED25519_OTHER)),
            Verdict::Mismatch { .. }
        ));
        assert_eq!(
            hosts.verdict("ws://h:1/tunnel:t-1/SSH", &key(ED25519_OTHER)),
            Verdict::Known
        );
        let exported = hosts.to_text();
        assert!(exported.starts_with("pump-7 ssh-ed25519 "), "{exported}");
    }

    #[test]
    fn targets_must_be_single_plain_tokens() {
        assert!(is_valid_target("ws://127.0.0.1:8080/tunnel:abc/SSH"));
        for bad in ["", "a b", "a,b", "#x", "|1|x", "a*", "é"] {
            assert!(!is_valid_target(bad), "{bad:?}");
        }
    }
}
