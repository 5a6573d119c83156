//! The glue between the page and a session: it starts sessions with the form's request, keeps
//! the [`SessionHandle`], and implements [`SessionHost`] by turning the session's reports into
//! signals the view renders (and its output into terminal writes).
//!
//! It decides nothing about the connection itself; that is the session machinery's job.
//! Each started session gets its own host tagged with a generation number: reports from an
//! older session (e.g. one replaced by Reconnect) are ignored, so they cannot disturb the new one.
//! Device mode's steps before and around a session (open, wait, rotate, close, join) are in
//! `quick`.

mod quick;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::oneshot;
use leptos::prelude::*;
use zeroize::Zeroizing;

pub use quick::DeviceTunnel;

use super::request::{FormValues, build_request};
use super::status::Status;
use super::tabs::TabSet;
use crate::session::{
    self, HostKeyQuestion, KbdQuestion, Phase, SessionError, SessionHandle, SessionHost, Stats,
    TabId,
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
    /// The services of a tunnel that waits for the operator to choose one.
    pub service_choice: RwSignal<Option<Vec<String>>>,
    /// The terminal's renderer (`dom` or `webgl`), for the page's `data-renderer`.
    pub renderer: RwSignal<&'static str>,
    /// Whether a session was ever started (the Reconnect button needs one).
    pub started_once: RwSignal<bool>,
    /// Bumped whenever the connection features open channels on changes (logged in,
    /// reconnected, ended); [`Controller::link`] has the current one.
    pub link_changes: RwSignal<u64>,
    /// The terminal's settings (typeahead, cursor blinking), as remembered by the browser.
    pub settings: RwSignal<Settings>,
    /// The tunnel Device mode opened or joined (Send new access tokens and Close act on it).
    pub device: RwSignal<Option<DeviceTunnel>>,
    /// The device the current attempt is for, as the status line names it.
    pub device_name: RwSignal<Option<String>>,
    /// `user@device` of the current session, for the compact bar.
    pub login: RwSignal<Option<String>>,
    /// A note that is not an error (e.g. the tunnel was closed).
    pub notice: RwSignal<Option<String>>,
    /// The format of the current Device-mode session (`None` in Token mode).
    pub device_format: RwSignal<Option<crate::session::Format>>,
    /// The status line's word on the format (Device mode retried in V1).
    pub format_note: RwSignal<Option<String>>,
    /// Bumped when Device mode retries in another format: the page then sends new access
    /// tokens with the form's login.
    pub retry_requests: RwSignal<u64>,
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
            service_choice: RwSignal::new(None),
            renderer: RwSignal::new("dom"),
            started_once: RwSignal::new(false),
            link_changes: RwSignal::new(0),
            settings: RwSignal::new(Settings::load()),
            device: RwSignal::new(None),
            device_name: RwSignal::new(None),
            login: RwSignal::new(None),
            notice: RwSignal::new(None),
            device_format: RwSignal::new(None),
            format_note: RwSignal::new(None),
            retry_requests: RwSignal::new(0),
        }
    }
}

/// The page's session controller (one per page).
pub struct Controller {
    /// The signals the view renders.
    pub state: UiState,
    tabs: TabSet,
    /// Opens the search box (the pane's); every tab's Ctrl+Shift+F calls it.
    on_search: RefCell<Option<Rc<dyn Fn()>>>,
    session: RefCell<Option<SessionHandle>>,
    link: RefCell<Option<Link>>,
    generation: Cell<u64>,
    host_key_answer: RefCell<Option<oneshot::Sender<bool>>>,
    kbd_answer: RefCell<Option<oneshot::Sender<KbdAnswer>>>,
    service_answer: RefCell<Option<oneshot::Sender<Option<String>>>>,
    /// Token mode: the device name and format of the current session, remembered once it runs.
    token_device: RefCell<Option<(String, crate::session::Format)>>,
}

impl Controller {
    /// A controller with no terminal and no session yet.
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            state: UiState::new(),
            tabs: TabSet::new(),
            on_search: RefCell::new(None),
            session: RefCell::new(None),
            link: RefCell::new(None),
            generation: Cell::new(0),
            host_key_answer: RefCell::new(None),
            kbd_answer: RefCell::new(None),
            service_answer: RefCell::new(None),
            token_device: RefCell::new(None),
        })
    }

    /// The shown tab's terminal, once the view has created it.
    pub fn term(&self) -> Option<Rc<Term>> {
        self.tabs.active_term()
    }

    /// The terminal tabs.
    pub fn tabs(&self) -> &TabSet {
        &self.tabs
    }

    /// Hands the controller the pane the tabs' terminals go in; `on_search` opens the search
    /// box. The first tab opens when the first session starts ([`Controller::start`]).
    pub fn attach_pane(self: &Rc<Self>, pane: web_sys::HtmlElement, on_search: Rc<dyn Fn()>) {
        self.tabs.set_pane(pane);
        *self.on_search.borrow_mut() = Some(on_search);
    }

    /// Fetches xterm.js (the first session of the page), opens the first tab and then starts
    /// the session. The status line shows the session starting meanwhile; a Disconnect or
    /// another Connect in between wins.
    fn open_terminal_then_start(
        self: &Rc<Self>,
        values: FormValues,
        page_origin: &str,
        keep_scrollback: bool,
    ) {
        let generation = self.take_over();
        self.state.error.set(None);
        self.state.status.set(Status::Starting);
        let controller = Rc::clone(self);
        let origin = page_origin.to_owned();
        leptos::task::spawn_local(async move {
            let opened = match crate::term::load().await {
                Ok(()) if controller.generation.get() == generation => {
                    controller.open_tab(TabId::FIRST)
                }
                Ok(()) => return,
                Err(error) => Err(error),
            };
            if controller.generation.get() != generation {
                return;
            }
            match opened {
                Ok(_) => controller.start(values, &origin, keep_scrollback),
                Err(error) => {
                    controller.state.error.set(Some(format!(
                        "{error}. Check that the page's files are all served (xterm.js is \
                         fetched when a session starts), then reload the page."
                    )));
                    controller.state.status.set(Status::Ended);
                }
            }
        });
    }

    /// Opens a terminal for `id` and routes its keystrokes, size changes and title to the
    /// session and the tab strip.
    fn open_tab(self: &Rc<Self>, id: TabId) -> Result<Rc<Term>, crate::term::TermError> {
        let settings = self.state.settings.get_untracked();
        let on_search = self.on_search.borrow().clone();
        let weak = Rc::downgrade(self);
        self.tabs
            .open(id, self.state.renderer, move |term, tab, recorder| {
                term.apply_settings(settings);
                let controller = weak.clone();
                let input_tab = Rc::clone(tab);
                term.on_input(move |bytes| {
                    if let Some(controller) = controller.upgrade() {
                        controller.with_session(|session| session.input(input_tab.get(), bytes));
                    }
                });
                let controller = weak.clone();
                let resize_tab = Rc::clone(tab);
                let recorder = Rc::clone(recorder);
                term.on_resize(move |cols, rows| {
                    TabSet::resized(&recorder, cols, rows);
                    if let Some(controller) = controller.upgrade() {
                        controller
                            .with_session(|session| session.resize(resize_tab.get(), cols, rows));
                    }
                });
                let controller = weak.clone();
                let title_tab = Rc::clone(tab);
                term.on_title_change(move |title| {
                    if let Some(controller) = controller.upgrade() {
                        controller.tabs.set_title(title_tab.get(), title);
                    }
                });
                term.on_search_shortcut(move || {
                    if let Some(on_search) = &on_search {
                        on_search();
                    }
                });
                let controller = weak.clone();
                term.on_tab_switch(move |step| {
                    if let Some(controller) = controller.upgrade() {
                        controller.tabs.switch(step);
                    }
                });
            })
    }

    /// Opens another shell on the session's connection, in a new tab.
    pub fn new_tab(self: &Rc<Self>) {
        if !self.state.status.get_untracked().is_connected() {
            return;
        }
        let id = self.tabs.next_id();
        match self.open_tab(id) {
            Ok(term) => {
                let (cols, rows) = term.size();
                self.with_session(|session| session.new_tab(id, cols, rows));
            }
            Err(error) => self.state.error.set(Some(error.to_string())),
        }
    }

    /// Ends `tab`'s shell. The last tab stays in the page (with its scrollback) and the
    /// session ends with it.
    pub fn close_tab(&self, tab: TabId) {
        self.with_session(|session| session.close_tab(tab));
        if self.tabs.ids().len() > 1 {
            self.tabs.remove(tab);
        }
    }

    /// Ends whatever the page is doing (a session, Device mode's steps, a question) for a new
    /// flow, and returns that flow's generation: reports of the old ones are ignored from now on.
    fn take_over(&self) -> u64 {
        self.disconnect();
        self.cancel_questions();
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        generation
    }

    /// Releases the terminals and ends any session (the page is going away).
    pub fn shut_down(&self) {
        self.disconnect();
        self.generation.set(self.generation.get() + 1);
        self.tabs.clear();
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

    /// Starts a Token-mode session from the form. `keep_scrollback` keeps the terminal's
    /// contents (Reconnect); otherwise the terminal is cleared first.
    pub fn connect(self: &Rc<Self>, values: FormValues, page_origin: &str, keep_scrollback: bool) {
        crate::term::preload();
        // Token mode remembers the format that worked under the device name, as Device mode
        // does under the thing.
        *self.token_device.borrow_mut() = crate::components::request::parse_format(&values.format)
            .filter(|_| !values.device_name.trim().is_empty())
            .map(|format| (values.device_name.trim().to_owned(), format));
        self.state.device.set(None);
        self.state.device_name.set(None);
        self.state.format_note.set(None);
        self.start(values, page_origin, keep_scrollback);
        self.state.device_format.set(None);
    }

    /// Starts a session for the form's values (Token mode's, or Device mode's once it has its
    /// token).
    fn start(self: &Rc<Self>, values: FormValues, page_origin: &str, keep_scrollback: bool) {
        let Some(term) = self.term() else {
            self.open_terminal_then_start(values, page_origin, keep_scrollback);
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
        let generation = self.take_over();
        self.set_link(None);
        // A session starts with one shell: the shown tab's terminal becomes its first tab.
        self.tabs.keep_one();
        if keep_scrollback {
            term.write_text("\r\n\x1b[2m── reconnecting ──\x1b[0m\r\n");
        } else {
            term.reset();
        }
        let state = self.state;
        state.error.set(None);
        state.notice.set(None);
        let device = request
            .device
            .clone()
            .or_else(|| state.device_name.get_untracked());
        state.login.set(Some(match device {
            Some(device) => format!("{}@{device}", request.username),
            None => request.username.clone(),
        }));
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

    /// Asks the running session to end (or stops Device mode's preparations; the tunnel stays
    /// open).
    pub fn disconnect(&self) {
        let status = self.state.status.get_untracked();
        // Preparing: Device mode's steps, or the terminal's script being fetched.
        if status.is_preparing() || (status == Status::Starting && self.session.borrow().is_none())
        {
            self.generation.set(self.generation.get() + 1);
            self.state.status.set(Status::Ended);
        }
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

    /// The operator's choice among the tunnel's services (`None`: give up).
    pub fn answer_service(&self, service: Option<String>) {
        self.state.service_choice.set(None);
        let sender = self.service_answer.borrow_mut().take();
        if let Some(sender) = sender {
            // The session may have ended meanwhile; then nobody waits for the choice.
            let _ = sender.send(service);
        }
    }

    /// Drops pending questions: their sessions see the question cancelled.
    fn cancel_questions(&self) {
        drop(self.host_key_answer.borrow_mut().take());
        drop(self.kbd_answer.borrow_mut().take());
        drop(self.service_answer.borrow_mut().take());
        self.state.host_key.set(None);
        self.state.kbd.set(None);
        self.state.service_choice.set(None);
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
        if phase == Phase::Connected {
            controller.device_connected();
            if let Some(term) = controller.term() {
                term.focus();
            }
        }
    }

    fn stats(&self, stats: Stats) {
        if let Some(controller) = self.current() {
            if let Some(rtt) = stats.rtt_ms {
                for term in controller.tabs.terms() {
                    term.observe_rtt(rtt);
                }
            }
            controller.state.stats.set(stats);
        }
    }

    fn services(&self, ids: Vec<String>) {
        if let Some(controller) = self.current() {
            controller.state.services.set(ids);
        }
    }

    fn choose_service(&self, ids: Vec<String>) -> Option<oneshot::Receiver<Option<String>>> {
        let (sender, receiver) = oneshot::channel();
        // A stale session gets its sender dropped: it sees the choice given up.
        if let Some(controller) = self.current() {
            *controller.service_answer.borrow_mut() = Some(sender);
            controller.state.service_choice.set(Some(ids));
        }
        Some(receiver)
    }

    fn output(&self, tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
        match self.current() {
            Some(controller) => controller.tabs.write(tab, data, parsed),
            // Nobody shows this output any more; let the session go on draining.
            None => parsed(),
        }
    }

    fn device(&self, name: String) {
        if let Some(controller) = self.current() {
            controller.tabs.state.device.set(name);
        }
    }

    fn tab_ended(&self, tab: TabId, outcome: Result<(), SessionError>) {
        let Some(controller) = self.current() else {
            return;
        };
        // A shell that exits closes its tab (the session goes on in the others); one the
        // device refused to open says why.
        controller.tabs.remove(tab);
        if let Err(error) = outcome {
            controller.state.error.set(Some(error.user_message()));
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
        let retry = controller.device_fallback(&outcome);
        drop(controller.session.borrow_mut().take());
        controller.set_link(None);
        controller.cancel_questions();
        let state = controller.state;
        state.status.set(Status::Ended);
        let note = match &outcome {
            Ok(()) => "\r\n\x1b[2m── session closed ──\x1b[0m\r\n".to_owned(),
            Err(_) => "\r\n\x1b[2m── disconnected ──\x1b[0m\r\n".to_owned(),
        };
        for term in controller.tabs.terms() {
            term.write_text(&note);
        }
        if retry {
            state.retry_requests.update(|n| *n += 1);
        } else {
            state
                .error
                .set(outcome.err().map(|error| error.user_message()));
        }
    }
}
