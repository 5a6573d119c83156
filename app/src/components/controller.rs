//! The glue between the page and a session: it starts sessions with the form's request, keeps
//! the [`SessionHandle`], and implements [`SessionHost`] by turning the session's reports into
//! signals the view renders (and its output into terminal writes).
//!
//! It decides nothing about the connection itself; that is the session machinery's job.
//! Each started session gets its own host tagged with a generation number: reports from an
//! older session (e.g. one replaced by Reconnect) are ignored, so they cannot disturb the new one.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use leptos::prelude::*;
use zeroize::Zeroizing;

use super::request::{FormValues, build_request};
use super::status::Status;
use crate::session::{
    self, HostKeyQuestion, KbdQuestion, Phase, SessionError, SessionHandle, SessionHost, Stats,
};
use crate::ssh::link::Link;
use crate::term::Term;
use crate::term::settings::Settings;

/// Keyboard-interactive answers, as the session wants them.
type KbdAnswer = Option<Vec<Zeroizing<String>>>;

/// What the view shows about the session; all `Copy` signal handles.
#[derive(Clone, Copy)]
pub struct UiState {
    /// The connection's step.
    pub status: RwSignal<Status>,
    /// Round trip and byte counters.
    pub stats: RwSignal<Stats>,
    /// Service ids the tunnel offers (when the form must pick one).
    pub services: RwSignal<Vec<String>>,
    /// The error panel's text.
    pub error: RwSignal<Option<String>>,
    /// A host key waiting for the operator's decision.
    pub host_key: RwSignal<Option<HostKeyQuestion>>,
    /// A keyboard-interactive round waiting for answers.
    pub kbd: RwSignal<Option<KbdQuestion>>,
    /// The terminal's renderer (`dom` or `webgl`), for the page's `data-renderer`.
    pub renderer: RwSignal<&'static str>,
    /// Whether a session was ever started (the Reconnect button needs one).
    pub started_once: RwSignal<bool>,
    /// Bumped whenever the connection features open channels on changes (logged in,
    /// reconnected, ended); [`Controller::link`] has the current one.
    pub link_changes: RwSignal<u64>,
    /// The terminal's settings (typeahead, cursor blinking), as remembered by the browser.
    pub settings: RwSignal<Settings>,
}

impl UiState {
    fn new() -> Self {
        Self {
            status: RwSignal::new(Status::Idle),
            stats: RwSignal::new(Stats::default()),
            services: RwSignal::new(Vec::new()),
            error: RwSignal::new(None),
            host_key: RwSignal::new(None),
            kbd: RwSignal::new(None),
            renderer: RwSignal::new("dom"),
            started_once: RwSignal::new(false),
            link_changes: RwSignal::new(0),
            settings: RwSignal::new(Settings::load()),
        }
    }
}

/// The page's session controller (one per page).
pub struct Controller {
    /// The signals the view renders.
    pub state: UiState,
    term: RefCell<Option<Rc<Term>>>,
    session: RefCell<Option<SessionHandle>>,
    link: RefCell<Option<Link>>,
    generation: Cell<u64>,
    host_key_answer: RefCell<Option<oneshot::Sender<bool>>>,
    kbd_answer: RefCell<Option<oneshot::Sender<KbdAnswer>>>,
}

impl Controller {
    /// A controller with no terminal and no session yet.
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            state: UiState::new(),
            term: RefCell::new(None),
            session: RefCell::new(None),
            link: RefCell::new(None),
            generation: Cell::new(0),
            host_key_answer: RefCell::new(None),
            kbd_answer: RefCell::new(None),
        })
    }

    /// The terminal, once the view has created it.
    pub fn term(&self) -> Option<Rc<Term>> {
        self.term.borrow().clone()
    }

    /// Hands the controller its terminal and routes keystrokes and size changes to the session.
    pub fn attach_terminal(self: &Rc<Self>, term: Term) {
        term.apply_settings(self.state.settings.get_untracked());
        let on_input = Rc::downgrade(self);
        term.on_input(move |bytes| {
            if let Some(controller) = on_input.upgrade() {
                controller.with_session(|session| session.input(bytes));
            }
        });
        let on_resize = Rc::downgrade(self);
        term.on_resize(move |cols, rows| {
            if let Some(controller) = on_resize.upgrade() {
                controller.with_session(|session| session.resize(cols, rows));
            }
        });
        self.state.renderer.set(term.renderer().as_str());
        let renderer = self.state.renderer;
        term.on_renderer_change(move |now| {
            // The page may be gone by the time a script loads or a context is lost.
            let _ = renderer.try_set(now.as_str());
        });
        *self.term.borrow_mut() = Some(Rc::new(term));
    }

    /// Releases the terminal and ends any session (the page is going away).
    pub fn shut_down(&self) {
        self.disconnect();
        self.generation.set(self.generation.get() + 1);
        let term = self.term.borrow_mut().take();
        drop(term);
    }

    /// The logged-in connection, for features that open channels of their own (Files).
    pub fn link(&self) -> Option<Link> {
        self.link.borrow().clone()
    }

    fn set_link(&self, link: Option<Link>) {
        *self.link.borrow_mut() = link;
        self.state.link_changes.update(|n| *n += 1);
    }

    fn with_session(&self, f: impl FnOnce(&SessionHandle)) {
        // Clone the handle out so no borrow is held while the session runs code.
        let session = self.session.borrow().clone();
        if let Some(session) = session {
            f(&session);
        }
    }

    /// Starts a session from the form. `keep_scrollback` keeps the terminal's contents
    /// (Reconnect); otherwise the terminal is cleared first.
    pub fn connect(self: &Rc<Self>, values: FormValues, page_origin: &str, keep_scrollback: bool) {
        let Some(term) = self.term() else {
            self.state
                .error
                .set(Some("The terminal is not ready yet; try again.".to_owned()));
            return;
        };
        term.fit();
        term.prepare_session();
        let (cols, rows) = term.size();
        let request = match build_request(values, page_origin, cols, rows) {
            Ok(request) => request,
            Err(error) => {
                self.state.error.set(Some(error.user_message()));
                return;
            }
        };
        // A session still running is replaced: stop it and ignore its further reports.
        self.disconnect();
        self.cancel_questions();
        self.set_link(None);
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        if keep_scrollback {
            term.write_text("\r\n\x1b[2m── reconnecting ──\x1b[0m\r\n");
        } else {
            term.reset();
        }
        let state = self.state;
        state.error.set(None);
        state.services.set(Vec::new());
        state.stats.set(Stats::default());
        state.status.set(Status::Starting);
        state.started_once.set(true);
        let host = Rc::new(UiHost {
            controller: Rc::downgrade(self),
            generation,
        });
        let handle = session::start(request, host);
        *self.session.borrow_mut() = Some(handle);
        term.focus();
    }

    /// Asks the running session to end.
    pub fn disconnect(&self) {
        let session = self.session.borrow_mut().take();
        if let Some(session) = session {
            session.disconnect();
            if self.state.status.get_untracked().is_active() {
                self.state.status.set(Status::Disconnecting);
            }
        }
    }

    /// The operator's answer to the host key question.
    pub fn answer_host_key(&self, trust: bool) {
        self.state.host_key.set(None);
        let answer = self.host_key_answer.borrow_mut().take();
        if let Some(answer) = answer {
            // The session may have ended meanwhile; then nobody waits for the answer.
            let _ = answer.send(trust);
        }
        if let Some(term) = self.term() {
            term.focus();
        }
    }

    /// The operator's keyboard-interactive answers (`None`: cancel).
    pub fn answer_kbd(&self, answers: KbdAnswer) {
        self.state.kbd.set(None);
        let sender = self.kbd_answer.borrow_mut().take();
        if let Some(sender) = sender {
            // The session may have ended meanwhile; then nobody waits for the answers.
            let _ = sender.send(answers);
        }
    }

    /// Drops pending questions: their sessions see the question cancelled.
    fn cancel_questions(&self) {
        drop(self.host_key_answer.borrow_mut().take());
        drop(self.kbd_answer.borrow_mut().take());
        self.state.host_key.set(None);
        self.state.kbd.set(None);
    }
}

/// The [`SessionHost`] of one session.
struct UiHost {
    controller: std::rc::Weak<Controller>,
    generation: u64,
}

impl UiHost {
    /// The controller, if this session is still the page's current one.
    fn current(&self) -> Option<Rc<Controller>> {
        self.controller
            .upgrade()
            .filter(|controller| controller.generation.get() == self.generation)
    }
}

impl SessionHost for UiHost {
    fn phase(&self, phase: Phase) {
        let Some(controller) = self.current() else {
            return;
        };
        let status = controller.state.status;
        // Once the operator asked to disconnect, only the end is news.
        if status.get_untracked() == Status::Disconnecting && phase != Phase::Closed {
            return;
        }
        status.set(if phase == Phase::Closed {
            Status::Ended
        } else {
            Status::Phase(phase)
        });
        if phase == Phase::Connected
            && let Some(term) = controller.term()
        {
            term.focus();
        }
    }

    fn stats(&self, stats: Stats) {
        if let Some(controller) = self.current() {
            if let (Some(rtt), Some(term)) = (stats.rtt_ms, controller.term()) {
                term.observe_rtt(rtt);
            }
            controller.state.stats.set(stats);
        }
    }

    fn services(&self, ids: Vec<String>) {
        if let Some(controller) = self.current() {
            controller.state.services.set(ids);
        }
    }

    fn output(&self, data: &[u8], parsed: Box<dyn FnOnce()>) {
        match self.current().and_then(|controller| controller.term()) {
            Some(term) => term.write(data, parsed),
            // Nobody shows this output any more; let the session go on draining.
            None => parsed(),
        }
    }

    fn ask_host_key(&self, question: HostKeyQuestion) -> oneshot::Receiver<bool> {
        let (sender, receiver) = oneshot::channel();
        // A stale session gets its sender dropped: it sees the question cancelled.
        if let Some(controller) = self.current() {
            *controller.host_key_answer.borrow_mut() = Some(sender);
            controller.state.host_key.set(Some(question));
        }
        receiver
    }

    fn ask_keyboard_interactive(&self, question: KbdQuestion) -> oneshot::Receiver<KbdAnswer> {
        let (sender, receiver) = oneshot::channel();
        if let Some(controller) = self.current() {
            *controller.kbd_answer.borrow_mut() = Some(sender);
            controller.state.kbd.set(Some(question));
        }
        receiver
    }

    fn linked(&self, link: Link) {
        if let Some(controller) = self.current() {
            controller.set_link(Some(link));
        }
    }

    fn ended(&self, outcome: Result<(), SessionError>) {
        let Some(controller) = self.current() else {
            return;
        };
        drop(controller.session.borrow_mut().take());
        controller.set_link(None);
        controller.cancel_questions();
        let state = controller.state;
        state.status.set(Status::Ended);
        let note = match &outcome {
            Ok(()) => "\r\n\x1b[2m── session closed ──\x1b[0m\r\n".to_owned(),
            Err(_) => "\r\n\x1b[2m── disconnected ──\x1b[0m\r\n".to_owned(),
        };
        if let Some(term) = controller.term() {
            term.write_text(&note);
        }
        state
            .error
            .set(outcome.err().map(|error| error.user_message()));
    }
}
