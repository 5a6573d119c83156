//! Reading the operator's private key: OpenSSH, PEM (RSA, EC), PKCS#8 (plain or encrypted) and
//! PuTTY `.ppk`, through `russh::keys`, with errors an operator can act on.
//!
//! The key text and passphrase stay in the caller's `Zeroizing` buffers; this module copies
//! neither. It never logs.

use russh::keys::PrivateKey;

use super::error::SshError;

/// Reads a private key, decrypting it with `passphrase` when it is encrypted.
pub fn parse_private_key(text: &str, passphrase: Option<&str>) -> Result<PrivateKey, SshError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(SshError::KeyParse("the key is empty".to_owned()));
    }
    if looks_like_public_key(trimmed) {
        return Err(SshError::KeyParse(
            "this is a public key; paste the private key (the file without .pub)".to_owned(),
        ));
    }
    let passphrase = passphrase.filter(|p| !p.is_empty());
    let encrypted = is_encrypted(trimmed);
    match russh::keys::decode_secret_key(trimmed, passphrase) {
        Ok(key) => Ok(key),
        Err(err) => Err(map_error(&err, encrypted, passphrase.is_some())),
    }
}

/// Whether the text is an encrypted key of a format we recognise.
fn is_encrypted(text: &str) -> bool {
    if text.starts_with("PuTTY-User-Key-File-") {
        return text
            .lines()
            .any(|l| l.starts_with("Encryption:") && !l.contains("none"));
    }
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return true;
    }
    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        return russh::keys::ssh_key::PrivateKey::from_openssh(text)
            .map(|key| key.is_encrypted())
            .unwrap_or(false);
    }
    false
}

fn looks_like_public_key(text: &str) -> bool {
    text.starts_with("ssh-")
        || text.starts_with("ecdsa-sha2-")
        || text.starts_with("sk-")
        || text.contains("BEGIN PUBLIC KEY")
        || text.contains("BEGIN SSH2 PUBLIC KEY")
}

fn map_error(err: &russh::keys::Error, encrypted: bool, have_passphrase: bool) -> SshError {
    use russh::keys::Error;
    match err {
        Error::KeyIsEncrypted => SshError::KeyPassphraseNeeded,
        _ if encrypted && !have_passphrase => SshError::KeyPassphraseNeeded,
        _ if encrypted => SshError::KeyWrongPassphrase,
        Error::CouldNotReadKey => {
            SshError::KeyParse("not a private key format this app reads".to_owned())
        }
        Error::UnsupportedKeyType {
            key_type_string, ..
        } => SshError::KeyParse(format!("unsupported key type {key_type_string}")),
        other => SshError::KeyParse(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn key_file(name: &str) -> String {
        let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "keys", name]
            .iter()
            .collect();
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    /// The public key `ssh-keygen` wrote next to the private one.
    fn public_of(name: &str) -> russh::keys::PublicKey {
        let text = key_file(&format!("{name}.pub"));
        russh::keys::PublicKey::from_openssh(text.trim()).expect("ssh-keygen's .pub parses")
    }

    const PASS: &str = "correct horse";

    #[test]
    fn every_supported_format_reads_to_the_matching_public_key() {
        let cases = [
            ("ed25519", None, "ed25519"),
            ("ed25519_encrypted", Some(PASS), "ed25519_encrypted"),
            ("ecdsa_pem", None, "ecdsa_pem"),
            ("ecdsa384_pkcs8", None, "ecdsa384_pkcs8"),
            ("rsa_pem", None, "rsa_pem"),
            ("rsa_openssh", None, "rsa_openssh"),
            ("rsa_pkcs8_encrypted", Some(PASS), "rsa_pkcs8_encrypted"),
            ("ed25519.ppk", None, "ed25519"),
            ("ed25519_encrypted.ppk", Some(PASS), "ed25519_encrypted"),
        ];
        for (file, passphrase, public) in cases {
            let key = parse_private_key(&key_file(file), passphrase)
                .unwrap_or_else(|err| panic!("{file}: {err:?}"));
            assert_eq!(
                key.public_key().key_data(),
                public_of(public).key_data(),
                "{file}"
            );
        }
    }

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        for file in [
            "ed25519_encrypted",
            "rsa_pkcs8_encrypted",
            "ed25519_encrypted.ppk",
        ] {
            let text = key_file(file);
            assert_eq!(
                parse_private_key(&text, None).map(|_| ()),
                Err(SshError::KeyPassphraseNeeded),
                "{file} without passphrase"
            );
            assert_eq!(
                parse_private_key(&text, Some("")).map(|_| ()),
                Err(SshError::KeyPassphraseNeeded),
                "{file} with an empty passphrase"
            );
            assert_eq!(
                parse_private_key(&text, Some("wrong horse")).map(|_| ()),
                Err(SshError::KeyWrongPassphrase),
                "{file} with a wrong passphrase"
            );
        }
    }

    #[test]
    fn a_passphrase_for_a_plain_key_is_ignored() {
        assert!(parse_private_key(&key_file("ed25519"), Some("unused")).is_ok());
    }

    #[test]
    fn garbage_public_keys_and_truncated_keys_are_parse_errors() {
        let full = key_file("ed25519");
        let truncated: String = full.lines().take(3).collect::<Vec<_>>().join("\n");
        let cases = [
            String::new(),
            "hello".to_owned(),
            key_file("ed25519.pub"),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".to_owned(),
            truncated,
            "-----BEGIN OPENSSH PRIVATE KEY-----\n!!!!\n-----END OPENSSH PRIVATE KEY-----"
                .to_owned(),
        ];
        for text in cases {
            assert!(
                matches!(parse_private_key(&text, None), Err(SshError::KeyParse(_))),
                "{text:?} gave {:?}",
                parse_private_key(&text, None).map(|_| ())
            );
        }
    }

    #[test]
    fn fingerprints_match_ssh_keygen() {
        for name in ["ed25519", "ecdsa_pem", "ecdsa384_pkcs8", "rsa_pem"] {
            let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "keys", name]
                .iter()
                .collect();
            let out = std::process::Command::new("ssh-keygen")
                .arg("-E")
                .arg("sha256")
                .arg("-lf")
                .arg(path.with_extension(match path.extension() {
                    Some(ext) => format!("{}.pub", ext.to_string_lossy()),
                    None => "pub".to_owned(),
                }))
                .output()
                .expect("ssh-keygen runs (openssh-client is a test dependency)");
            assert!(out.status.success(), "{name}: {out:?}");
            let stdout = String::from_utf8(out.stdout).expect("utf-8");
            // "<bits> SHA256:<base64> <comment> (<TYPE>)"
            let expected = stdout
                .split_whitespace()
                .nth(1)
                .expect("a fingerprint field");
            let key = parse_private_key(&key_file(name), None).expect("parses");
            assert_eq!(
                crate::ssh::known_hosts::fingerprint(key.public_key()),
                expected,
                "{name}"
            );
        }
    }
}
