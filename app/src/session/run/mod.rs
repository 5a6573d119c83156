//! Running one session: [`start`] spawns it on the browser's executor and returns the UI's
//! [`SessionHandle`].
//!
//! The session walks the phases in order — credential check (before the single-use token is
//! spent), cookie helper, tunnel, SSH handshake with host key check, authentication, shell —
//! reporting each to the [`SessionHost`], then runs the shell until it exits or the operator
//! disconnects. When the service keeps the token usable for this page (a relay), a connection
//! lost mid-session is dialled again by itself ([`Redial`]): a new tunnel stream, SSH login and
//! shell, with the same credentials and the terminal kept. Every way out ends in exactly one
//! [`SessionHost::ended`] call; every network wait has a browser-timer deadline (paused while
//! the operator answers a question), so no failure leaves a spinner. A disconnect from the UI is honoured in every phase.
//!
//! The plain parts (the command buffer used while connecting, the redial policy, the page's
//! [`Prompter`] with its known-hosts decisions, the terminal adapter) are target-independent
//! and tested natively; the phase sequence itself needs the browser and lives in the
//! wasm32-only `browser` module.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc::unbounded;
use futures_util::future::LocalBoxFuture;
use zeroize::Zeroizing;

use super::{
    ConnectRequest, HostKeyQuestion, KbdQuestion, SessionError, SessionHandle, SessionHost, TabId,
};
use crate::ssh::client::Prompter;
use crate::ssh::error::SshError;
use crate::ssh::known_hosts::{self, Verdict};
use crate::ssh::shell::{ShellEnd, Terminal};

mod pending;
pub use pending::{MAX_TYPED_AHEAD, Pending};

/// Starts a session for `request`; reports go to `host`.
pub fn start(request: ConnectRequest, host: Rc<dyn SessionHost>) -> SessionHandle {
    let (commands, receiver) = unbounded();
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = run_loaded(request, host.clone(), receiver).await {
            host.phase(super::Phase::Closed);
            host.ended(Err(SessionError::Browser(format!(
                "the page could not load its SSH code ({e}): check the connection to this page, then connect again (or reload the page)"
            ))));
        }
    });
    #[cfg(not(target_arch = "wasm32"))]
    {
        drop((request, receiver));
        host.phase(super::Phase::Closed);
        host.ended(Err(SessionError::Browser(
            "sessions run only in a browser".to_owned(),
        )));
    }
    SessionHandle::new(commands)
}

/// Starts fetching the session machinery without waiting for it: called when the operator
/// starts on the form, so that Connect does not wait for the download. A failure is reported by
/// the session that needs the machinery.
pub fn preload() {
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(async {
        let _ = preload_machinery().await;
    });
}

/// The session machinery (SSH, key formats, ciphers) as a module of its own (xtask's
/// `split.rs` cuts it out of the app's WebAssembly): fetched on the first session, or before
/// by [`preload`]. The first screen's download is about half as large for it.
#[cfg(target_arch = "wasm32")]
#[wasm_split_helpers::wasm_split(session, fallible, preload(preload_machinery))]
fn run_loaded(
    request: ConnectRequest,
    host: Rc<dyn SessionHost>,
    receiver: futures_channel::mpsc::UnboundedReceiver<super::UserCommand>,
) -> Result<(), wasm_split_helpers::SplitLoaderError> {
    wasm_bindgen_futures::spawn_local(browser::run(request, host, receiver));
    Ok(())
}

/// The page's answers to russh's questions: the known-hosts store for host keys, the
/// operator for new keys and keyboard-interactive rounds.
pub struct PagePrompter<'a> {
    host: &'a dyn SessionHost,
    target: String,
    /// Whether a question is open (deadlines wait for the operator).
    asking: Cell<bool>,
}

impl<'a> PagePrompter<'a> {
    /// A prompter remembering host keys under `target`.
    pub fn new(host: &'a dyn SessionHost, target: String) -> Self {
        Self {
            host,
            target,
            asking: Cell::new(false),
        }
    }

    /// Whether the operator is being asked something right now.
    pub fn asking(&self) -> bool {
        self.asking.get()
    }
}

impl Prompter for PagePrompter<'_> {
    fn check_host_key(
        &self,
        key: &russh::keys::PublicKey,
    ) -> LocalBoxFuture<'_, Result<(), SshError>> {
        let key = key.clone();
        Box::pin(async move {
            let algorithm = known_hosts::algorithm(&key);
            let fingerprint = known_hosts::fingerprint(&key);
            match known_hosts::load().verdict(&self.target, &key) {
                Verdict::Known => Ok(()),
                Verdict::Mismatch { remembered } => Err(SshError::HostKeyMismatch {
                    target: self.target.clone(),
                    algorithm,
                    presented: fingerprint,
                    remembered,
                }),
                Verdict::Unknown => {
                    self.asking.set(true);
                    let answer = self
                        .host
                        .ask_host_key(HostKeyQuestion {
                            algorithm,
                            fingerprint: fingerprint.clone(),
                            target: self.target.clone(),
                        })
                        .await;
                    self.asking.set(false);
                    if answer != Ok(true) {
                        return Err(SshError::HostKeyRejected { fingerprint });
                    }
                    // Re-read: another tab may have written meanwhile.
                    let mut hosts = known_hosts::load();
                    hosts.remember(&self.target, &key);
                    // A store that refuses writes (private mode, full) only means the operator
                    // is asked again next time; the key was still accepted for this session.
                    let _ = known_hosts::save(&hosts);
                    Ok(())
                }
            }
        })
    }

    fn keyboard_interactive(
        &self,
        question: KbdQuestion,
    ) -> LocalBoxFuture<'_, Option<Vec<Zeroizing<String>>>> {
        Box::pin(async move {
            self.asking.set(true);
            let answer = self.host.ask_keyboard_interactive(question).await;
            self.asking.set(false);
            answer.ok().flatten()
        })
    }

    fn banner(&self, text: &str) {
        // The banner is shown in the terminal as the server sent it, with bare newlines made
        // terminal newlines. It is not parsed-tracked: it is small and arrives once.
        let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
        self.host
            .output(TabId::FIRST, text.as_bytes(), Box::new(|| {}));
    }
}

/// The terminal side of the shell loop: output to the page, round trips kept for the stats,
/// tabs that ended reported (and forgotten, so a new connection does not reopen them).
pub struct PageTerminal<'a> {
    host: &'a dyn SessionHost,
    /// The last keep-alive round trip.
    pub rtt: Cell<Option<f64>>,
    /// Tabs whose shell ended while the session went on.
    pub ended: std::cell::RefCell<Vec<TabId>>,
}

impl<'a> PageTerminal<'a> {
    /// A terminal adapter for `host`.
    pub fn new(host: &'a dyn SessionHost) -> Self {
        Self {
            host,
            rtt: Cell::new(None),
            ended: std::cell::RefCell::new(Vec::new()),
        }
    }
}

impl Terminal for PageTerminal<'_> {
    fn output(&self, tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
        self.host.output(tab, data, parsed);
    }

    fn rtt(&self, ms: f64) {
        self.rtt.set(Some(ms));
    }

    fn tab_ended(&self, tab: TabId, outcome: Result<ShellEnd, SshError>) {
        self.ended.borrow_mut().push(tab);
        self.host
            .tab_ended(tab, outcome.map(drop).map_err(SessionError::from));
    }
}

/// The error to report when SSH failed on `err`: a transport failure caused by the tunnel
/// ending (a reset, the WebSocket closing) is reported as the tunnel's reason.
pub fn explain(err: SessionError, tunnel_end: Option<SessionError>) -> SessionError {
    match (&err, tunnel_end) {
        (SessionError::Ssh(_) | SessionError::Timeout { .. }, Some(reason)) => reason,
        _ => err,
    }
}

/// The error for an SSH handshake that timed out: when not a byte came back through the
/// tunnel, the device side is silent (typically no destination connected; the service drops
/// what a source sends then).
pub fn handshake_timeout(err: SessionError, delivered: u64) -> SessionError {
    match err {
        SessionError::Timeout { seconds, .. } if delivered == 0 => {
            SessionError::DestinationSilent { seconds }
        }
        other => other,
    }
}

/// Dialling again after the tunnel connection was lost mid-session. Only a service that keeps
/// the token usable for this page (a relay holding a client token for it, as its cookie helper
/// says) is dialled again, and only after the shell ran once; then a few attempts follow with
/// growing pauses, while the endpoint may still be coming back.
#[derive(Debug)]
pub struct Redial {
    enabled: bool,
    connected_once: bool,
    attempts: u32,
}

impl Redial {
    /// Attempts in a row before giving up.
    pub const MAX_ATTEMPTS: u32 = 6;
    /// The first pause; each next one doubles, up to [`Redial::MAX_PAUSE`].
    pub const FIRST_PAUSE: Duration = Duration::from_millis(500);
    /// The longest pause between attempts.
    pub const MAX_PAUSE: Duration = Duration::from_secs(8);

    /// A policy for one session; `enabled` when the token may be used again.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            connected_once: false,
            attempts: 0,
        }
    }

    /// The shell is running: a later loss starts a fresh series of attempts.
    pub fn connected(&mut self) {
        self.connected_once = true;
        self.attempts = 0;
    }

    /// After `err` ended the session or an attempt: the pause before dialling again, or `None`
    /// when `err` is final.
    pub fn after(&mut self, err: &SessionError) -> Option<Duration> {
        let redialling = self.attempts > 0;
        if !self.enabled
            || !self.connected_once
            || self.attempts >= Self::MAX_ATTEMPTS
            || !connection_lost(err, redialling)
        {
            return None;
        }
        let pause = Self::FIRST_PAUSE
            .saturating_mul(1 << self.attempts.min(8))
            .min(Self::MAX_PAUSE);
        self.attempts += 1;
        Some(pause)
    }
}

/// Whether `err` means the connection went away rather than being refused or closed on
/// purpose. While dialling again, a failed handshake or a step that timed out also counts: the
/// endpoint may not be back yet.
fn connection_lost(err: &SessionError, redialling: bool) -> bool {
    match err {
        // 1000: the tunnel closed; 1002: another client took over; 1003 and 1007 to 1010: the
        // peers disagree on the protocol. Anything else (1006 above all) is a lost connection.
        SessionError::WebSocketClosed { code, .. } => {
            !matches!(code, 1000 | 1002 | 1003 | 1007..=1010)
        }
        SessionError::HandshakeRefused { .. } | SessionError::Timeout { .. } => redialling,
        _ => false,
    }
}

/// The terminal's note that the connection was lost and is being dialled again.
pub fn redial_note(err: &SessionError, pause: Duration) -> String {
    let cause = match err {
        SessionError::WebSocketClosed { code, .. } => format!("code {code}"),
        other => other.to_string(),
    };
    format!(
        "\r\n\x1b[2m── connection lost ({cause}); reconnecting in {:.1} s ──\x1b[0m\r\n",
        pause.as_secs_f64()
    )
}

#[cfg(target_arch = "wasm32")]
mod browser;

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use futures_channel::oneshot;
    use russh::keys::PublicKey;

    use super::*;
    use crate::session::{Phase, Stats};

    #[test]
    fn a_silent_tunnel_means_no_destination() {
        let timeout = || SessionError::Timeout {
            what: "the SSH handshake".into(),
            seconds: 20,
        };
        assert_eq!(
            handshake_timeout(timeout(), 0),
            SessionError::DestinationSilent { seconds: 20 }
        );
        assert_eq!(handshake_timeout(timeout(), 21), timeout());
        assert_eq!(
            handshake_timeout(SessionError::TokenSpent, 0),
            SessionError::TokenSpent
        );
    }

    fn dropped() -> SessionError {
        SessionError::WebSocketClosed {
            code: 1006,
            reason: String::new(),
        }
    }

    #[test]
    fn a_lost_connection_is_dialled_again_with_growing_pauses_then_given_up() {
        let mut redial = Redial::new(true);
        // Never connected: a failure is final.
        assert_eq!(redial.after(&dropped()), None);
        redial.connected();
        let refused = SessionError::HandshakeRefused {
            aws: false,
            detail: "WebSocket close code 1006".into(),
        };
        let mut pauses = vec![redial.after(&dropped()).expect("a drop is dialled again")];
        // While dialling again, an endpoint that is not back yet is tried again too.
        while let Some(pause) = redial.after(&refused) {
            pauses.push(pause);
        }
        let millis: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(pauses.len() as u32, Redial::MAX_ATTEMPTS);
        // A shell that runs again starts a fresh series.
        redial.connected();
        assert_eq!(redial.after(&dropped()), Some(Redial::FIRST_PAUSE));
    }

    #[test]
    fn refusals_and_deliberate_closes_are_final() {
        let mut redial = Redial::new(true);
        redial.connected();
        for err in [
            // The tunnel closed, or another client took over the source side.
            SessionError::WebSocketClosed {
                code: 1000,
                reason: "Tunnel is closed".into(),
            },
            SessionError::WebSocketClosed {
                code: 1002,
                reason: String::new(),
            },
            SessionError::TokenSpent,
            SessionError::TunnelClosed,
            SessionError::AuthFailed {
                offered: vec![],
                tried: vec![],
            },
            // Before any new attempt, a refusal is not a lost connection.
            SessionError::HandshakeRefused {
                aws: false,
                detail: String::new(),
            },
        ] {
            assert_eq!(redial.after(&err), None, "{err:?}");
        }
        // A going-away close (the endpoint restarts) is a lost connection.
        let going_away = SessionError::WebSocketClosed {
            code: 1001,
            reason: String::new(),
        };
        assert!(redial.after(&going_away).is_some());
    }

    #[test]
    fn without_a_reusable_token_nothing_is_dialled_again() {
        let mut redial = Redial::new(false);
        redial.connected();
        assert_eq!(redial.after(&dropped()), None);
    }

    #[test]
    fn the_redial_note_names_the_cause_and_the_pause() {
        let note = redial_note(&dropped(), Duration::from_millis(500));
        assert!(
            note.contains("connection lost (code 1006); reconnecting in 0.5 s"),
            "{note:?}"
        );
        assert!(note.starts_with("\r\n") && note.ends_with("\r\n"));
    }

    #[test]
    fn tunnel_reasons_replace_transport_errors_only() {
        let reset = Some(SessionError::DestinationUnreachable);
        assert_eq!(
            explain(SshError::Closed.into(), reset.clone()),
            SessionError::DestinationUnreachable
        );
        assert_eq!(
            explain(SessionError::KeyWrongPassphrase, reset),
            SessionError::KeyWrongPassphrase
        );
        assert_eq!(
            explain(SessionError::Ssh("x".into()), None),
            SessionError::Ssh("x".into())
        );
    }

    /// A host that records what it was told and answers host key questions from a script.
    #[derive(Default)]
    struct FakeHost {
        trust: Cell<bool>,
        asked: RefCell<Vec<HostKeyQuestion>>,
        output: RefCell<Vec<u8>>,
    }

    impl SessionHost for FakeHost {
        fn phase(&self, _phase: Phase) {}
        fn stats(&self, _stats: Stats) {}
        fn services(&self, _ids: Vec<String>) {}
        fn output(&self, _tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
            self.output.borrow_mut().extend_from_slice(data);
            parsed();
        }
        fn ask_host_key(&self, question: HostKeyQuestion) -> oneshot::Receiver<bool> {
            self.asked.borrow_mut().push(question);
            let (sender, receiver) = oneshot::channel();
            let _ = sender.send(self.trust.get());
            receiver
        }
        fn ask_keyboard_interactive(
            &self,
            _question: KbdQuestion,
        ) -> oneshot::Receiver<Option<Vec<Zeroizing<String>>>> {
            // Dropping the sender cancels the round.
            oneshot::channel().1
        }
        fn ended(&self, _outcome: Result<(), SessionError>) {}
    }

    fn test_key(name: &str) -> PublicKey {
        let path = format!("{}/tests/keys/{name}.pub", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).expect("test key");
        PublicKey::from_openssh(text.trim()).expect("parses")
    }

    #[tokio::test]
    async fn first_use_asks_then_remembers_and_a_changed_key_is_refused() {
        let host = FakeHost::default();
        let target = "ws://prompter-test/tunnel:t/SSH".to_owned();
        let prompter = PagePrompter::new(&host, target.clone());
        let key = test_key("ed25519");

        // Declined: not remembered.
        host.trust.set(false);
        assert!(matches!(
            prompter.check_host_key(&key).await,
            Err(SshError::HostKeyRejected { .. })
        ));
        // Accepted: remembered, and the question named algorithm, fingerprint and target.
        host.trust.set(true);
        assert_eq!(prompter.check_host_key(&key).await, Ok(()));
        {
            let asked = host.asked.borrow();
            assert_eq!(asked.len(), 2);
            assert_eq!(asked[1].algorithm, "ssh-ed25519");
            assert_eq!(asked[1].fingerprint, known_hosts::fingerprint(&key));
            assert_eq!(asked[1].target, target);
        }
        // Known now: no question.
        assert_eq!(prompter.check_host_key(&key).await, Ok(()));
        assert_eq!(host.asked.borrow().len(), 2);
        // Another key for the same target: refused loudly with both fingerprints.
        let other = test_key("ed25519_encrypted");
        match prompter.check_host_key(&other).await {
            Err(SshError::HostKeyMismatch {
                presented,
                remembered,
                ..
            }) => {
                assert_eq!(presented, known_hosts::fingerprint(&other));
                assert_eq!(
                    remembered,
                    vec![format!("ssh-ed25519 {}", known_hosts::fingerprint(&key))]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(host.asked.borrow().len(), 2);
        assert!(!prompter.asking());
    }

    #[tokio::test]
    async fn cancelled_keyboard_interactive_is_none_and_banners_reach_the_terminal() {
        let host = FakeHost::default();
        let prompter = PagePrompter::new(&host, "t".to_owned());
        let question = KbdQuestion {
            name: String::new(),
            instructions: String::new(),
            prompts: vec![("Code: ".into(), true)],
        };
        assert_eq!(prompter.keyboard_interactive(question).await, None);
        prompter.banner("Welcome\nto the device\r\n");
        assert_eq!(&*host.output.borrow(), b"Welcome\r\nto the device\r\n");
    }

    #[test]
    fn native_start_ends_at_once() {
        #[derive(Default)]
        struct Ended(RefCell<Option<Result<(), SessionError>>>);
        impl SessionHost for Ended {
            fn phase(&self, _phase: Phase) {}
            fn stats(&self, _stats: Stats) {}
            fn services(&self, _ids: Vec<String>) {}
            fn output(&self, _tab: TabId, _data: &[u8], parsed: Box<dyn FnOnce()>) {
                parsed();
            }
            fn ask_host_key(&self, _question: HostKeyQuestion) -> oneshot::Receiver<bool> {
                oneshot::channel().1
            }
            fn ask_keyboard_interactive(
                &self,
                _question: KbdQuestion,
            ) -> oneshot::Receiver<Option<Vec<Zeroizing<String>>>> {
                oneshot::channel().1
            }
            fn ended(&self, outcome: Result<(), SessionError>) {
                *self.0.borrow_mut() = Some(outcome);
            }
        }
        let host = Rc::new(Ended::default());
        let request = ConnectRequest {
            endpoint: crate::endpoint::parse_endpoint("http://127.0.0.1:1", "").expect("valid"),
            cookie_helper: "http://127.0.0.1:1/cookie".into(),
            token: Zeroizing::new("t".into()),
            service_id: None,
            device: None,
            format: super::super::Format::V3,
            username: "u".into(),
            credential: super::super::Credential::Password(Zeroizing::new("p".into())),
            cols: 80,
            rows: 24,
        };
        let handle = start(request, host.clone());
        handle.disconnect();
        assert!(matches!(
            host.0.borrow().as_ref(),
            Some(Err(SessionError::Browser(_)))
        ));
    }
}
