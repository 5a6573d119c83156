//! SSH user authentication: publickey (rsa-sha2-512/256 when the server offers them),
//! password, and keyboard-interactive (a lone hidden prompt is answered with the password,
//! other rounds are asked in the page).
//!
//! It first asks the server which methods it takes (`none`), then tries what the operator's
//! credential allows, in a fixed order, following the server's remaining methods after each
//! failure and partial success. On failure the error names what was tried and what the
//! server still offers. Secrets live in [`Credentials`] (zeroized on drop) and are dropped by
//! the caller right after authentication; russh receives a plain copy of a password, which
//! it drops after sending.

use std::sync::Arc;

use russh::MethodKind;
use russh::client::AuthResult;
use russh::client::KeyboardInteractiveAuthResponse;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use zeroize::Zeroizing;

use super::client::{Connection, Prompter, serve, ssh_error};
use super::error::SshError;
use super::vocab::{Credential, KbdQuestion};

/// The operator's secret, ready for authentication.
pub enum Credentials {
    /// A password.
    Password(Zeroizing<String>),
    /// A decrypted private key (its memory is wiped on drop by `ssh-key`).
    Key(Arc<PrivateKey>),
    /// Nothing: only keyboard-interactive, with every prompt asked in the page.
    None,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password(_) => f.write_str("Credentials::Password(..)"),
            Credentials::Key(key) => write!(f, "Credentials::Key({})", key.algorithm().as_str()),
            Credentials::None => f.write_str("Credentials::None"),
        }
    }
}

impl Credentials {
    /// Checks the form's credential before anything is sent: a key is decrypted now, so a
    /// wrong passphrase fails before the single-use token is spent. The key text and
    /// passphrase are wiped when `credential` is dropped here.
    pub fn prepare(credential: Credential) -> Result<Self, SshError> {
        match credential {
            Credential::Password(password) => Ok(Credentials::Password(password)),
            Credential::PrivateKey { text, passphrase } => {
                let key =
                    super::keys::parse_private_key(&text, passphrase.as_ref().map(|p| p.as_str()))?;
                Ok(Credentials::Key(Arc::new(key)))
            }
            Credential::None => Ok(Credentials::None),
        }
    }

    fn password(&self) -> Option<&str> {
        match self {
            Credentials::Password(password) => Some(password.as_str()),
            Credentials::Key(_) | Credentials::None => None,
        }
    }
}

/// The method to try next, or `None` when nothing is left.
pub fn next_method(
    offered: &[MethodKind],
    has_key: bool,
    has_password: bool,
    tried: &[MethodKind],
) -> Option<MethodKind> {
    let usable = |method: MethodKind, have: bool| {
        have && offered.contains(&method) && !tried.contains(&method)
    };
    if usable(MethodKind::PublicKey, has_key) {
        Some(MethodKind::PublicKey)
    } else if usable(MethodKind::Password, has_password) {
        Some(MethodKind::Password)
    } else if usable(MethodKind::KeyboardInteractive, true) {
        Some(MethodKind::KeyboardInteractive)
    } else {
        None
    }
}

fn names(methods: &[MethodKind]) -> Vec<String> {
    methods.iter().map(String::from).collect()
}

/// Authenticates `user` on `conn`, asking the operator through `prompter` where needed.
pub async fn authenticate(
    conn: &mut Connection,
    user: &str,
    credentials: &Credentials,
    prompter: &dyn Prompter,
) -> Result<(), SshError> {
    let mut unused = None;
    let first = serve(
        conn.handle.authenticate_none(user),
        &mut conn.events,
        prompter,
        &mut unused,
    )
    .await
    .map_err(|err| ssh_error(&err))?;
    let mut offered: Vec<MethodKind> = match first {
        AuthResult::Success => return Ok(()),
        AuthResult::Failure {
            remaining_methods, ..
        } => remaining_methods.to_vec(),
    };
    let mut tried: Vec<MethodKind> = Vec::new();
    loop {
        let has_key = matches!(credentials, Credentials::Key(_));
        let Some(method) = next_method(&offered, has_key, credentials.password().is_some(), &tried)
        else {
            return Err(SshError::AuthFailed {
                offered: names(&offered),
                tried: names(&tried),
            });
        };
        let result = match (method, credentials) {
            (MethodKind::PublicKey, Credentials::Key(key)) => {
                try_publickey(conn, user, key, prompter).await?
            }
            (MethodKind::Password, Credentials::Password(password)) => serve(
                conn.handle
                    .authenticate_password(user, password.as_str().to_owned()),
                &mut conn.events,
                prompter,
                &mut unused,
            )
            .await
            .map_err(|err| ssh_error(&err))?,
            _ => try_keyboard_interactive(conn, user, credentials.password(), prompter).await?,
        };
        tried.push(method);
        match result {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods,
                partial_success,
            } => {
                offered = remaining_methods.to_vec();
                if partial_success {
                    // The step counted; the server wants another method next (e.g. an OTP
                    // after the key). Methods that already passed are not offered again.
                    tried.retain(|m| offered.contains(m) && *m != method);
                }
            }
        }
    }
}

async fn try_publickey(
    conn: &mut Connection,
    user: &str,
    key: &Arc<PrivateKey>,
    prompter: &dyn Prompter,
) -> Result<AuthResult, SshError> {
    let mut unused = None;
    let hash = if key.algorithm().is_rsa() {
        // The server's EXT_INFO arrived before its answer to `none`, so this does not wait.
        // `None` (no server-sig-algs) means an old server: plain ssh-rsa.
        conn.handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    };
    serve(
        conn.handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), hash)),
        &mut conn.events,
        prompter,
        &mut unused,
    )
    .await
    .map_err(|err| ssh_error(&err))
}

/// Whether a round is a lone hidden prompt (the usual PAM "Password:").
fn is_password_round(prompts: &[russh::client::Prompt]) -> bool {
    matches!(prompts, [only] if !only.echo)
}

async fn try_keyboard_interactive(
    conn: &mut Connection,
    user: &str,
    password: Option<&str>,
    prompter: &dyn Prompter,
) -> Result<AuthResult, SshError> {
    let mut unused = None;
    let mut response = serve(
        conn.handle
            .authenticate_keyboard_interactive_start(user, None),
        &mut conn.events,
        prompter,
        &mut unused,
    )
    .await
    .map_err(|err| ssh_error(&err))?;
    let mut password_used = false;
    loop {
        match response {
            KeyboardInteractiveAuthResponse::Success => return Ok(AuthResult::Success),
            KeyboardInteractiveAuthResponse::Failure {
                remaining_methods,
                partial_success,
            } => {
                return Ok(AuthResult::Failure {
                    remaining_methods,
                    partial_success,
                });
            }
            KeyboardInteractiveAuthResponse::InfoRequest {
                name,
                instructions,
                prompts,
            } => {
                let answers: Vec<String> = match password {
                    Some(password) if !password_used && is_password_round(&prompts) => {
                        password_used = true;
                        vec![password.to_owned()]
                    }
                    _ if prompts.is_empty() => Vec::new(),
                    _ => {
                        let question = KbdQuestion {
                            name,
                            instructions,
                            prompts: prompts.iter().map(|p| (p.prompt.clone(), p.echo)).collect(),
                        };
                        let count = question.prompts.len();
                        match prompter.keyboard_interactive(question).await {
                            Some(answers) if answers.len() == count => {
                                answers.iter().map(|a| a.as_str().to_owned()).collect()
                            }
                            Some(_) => {
                                return Err(SshError::AnswerCount);
                            }
                            None => return Err(SshError::AuthCancelled),
                        }
                    }
                };
                response = serve(
                    conn.handle
                        .authenticate_keyboard_interactive_respond(answers),
                    &mut conn.events,
                    prompter,
                    &mut unused,
                )
                .await
                .map_err(|err| ssh_error(&err))?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MethodKind::{KeyboardInteractive as Kbd, Password, PublicKey};

    #[test]
    fn method_order_follows_the_credential_and_the_server() {
        const ALL: &[MethodKind] = &[PublicKey, Password, Kbd];
        /// Offered, has key, has password, tried, expected next method.
        type Case = (
            &'static [MethodKind],
            bool,
            bool,
            &'static [MethodKind],
            Option<MethodKind>,
        );
        let cases: &[Case] = &[
            (ALL, true, false, &[], Some(PublicKey)),
            (ALL, true, false, &[PublicKey], Some(Kbd)),
            (ALL, false, true, &[], Some(Password)),
            (ALL, false, true, &[Password], Some(Kbd)),
            (ALL, false, true, &[Password, Kbd], None),
            (&[Kbd], false, true, &[], Some(Kbd)),
            (&[PublicKey], false, true, &[], None),
            (&[Password], true, false, &[], None),
            (&[], true, true, &[], None),
            // Neither key nor password: only the device's own prompts.
            (ALL, false, false, &[], Some(Kbd)),
            (&[PublicKey, Password], false, false, &[], None),
        ];
        for (offered, key, password, tried, expect) in cases {
            assert_eq!(
                next_method(offered, *key, *password, tried),
                *expect,
                "{offered:?} key={key} password={password} tried={tried:?}"
            );
        }
    }

    #[test]
    fn a_lone_hidden_prompt_is_a_password_round() {
        let prompt = |echo| russh::client::Prompt {
            prompt: "Password: ".into(),
            echo,
        };
        assert!(is_password_round(&[prompt(false)]));
        assert!(!is_password_round(&[prompt(true)]));
        assert!(!is_password_round(&[prompt(false), prompt(false)]));
        assert!(!is_password_round(&[]));
    }

    #[test]
    fn credentials_debug_shows_no_secret() {
        let creds = Credentials::Password(Zeroizing::new("hunter2".into()));
        assert!(!format!("{creds:?}").contains("hunter2"));
    }

    #[test]
    fn no_credential_prepares_to_answer_prompts_only() {
        let creds = Credentials::prepare(Credential::None).expect("nothing to check");
        assert!(matches!(creds, Credentials::None));
        assert_eq!(creds.password(), None);
    }
}
