//! The terminal tabs: several shells on one SSH connection, each with its own xterm.js
//! terminal and scrollback, and a tab's recording.
//!
//! [`TabSet`] owns one [`Term`] per tab, each in an element of its own inside the terminal
//! pane; only the active one is shown (and holds the page's WebGL context, see
//! [`Term::set_visible`]), the others keep parsing their output. The shown terminal's element
//! carries `data-testid="terminal"`. Opening and closing the shell channels is the session's
//! business ([`crate::session::UserCommand::NewTab`], `CloseTab`); [`TabBar`] is the strip
//! above the terminal: the tabs (the program's window title, else "shell N", and the device),
//! **New terminal**, and **Record** / **Download recording** for the shown tab.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::StreamExt;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

use super::controller::Controller;
use crate::record::{RecordState, Recorder};
use crate::session::TabId;
use crate::term::{Term, TermError};

/// What the tab strip shows about one tab.
#[derive(Debug, Clone, PartialEq)]
pub struct TabInfo {
    /// The tab.
    pub id: TabId,
    /// The window title its program set, if any.
    pub title: Option<String>,
    /// Its recording, if any.
    pub recording: Option<RecordState>,
}

impl TabInfo {
    /// The tab's label: the program's title, else "shell N".
    pub fn label(&self) -> String {
        match &self.title {
            Some(title) if !title.trim().is_empty() => title.clone(),
            _ => format!("shell {}", self.id.0),
        }
    }
}

/// The signals the tab strip renders; all `Copy`.
#[derive(Clone, Copy)]
pub struct TabsState {
    /// The tabs, in order.
    pub tabs: RwSignal<Vec<TabInfo>>,
    /// The shown tab.
    pub active: RwSignal<TabId>,
    /// The device the session is on (`user@thing`), once known.
    pub device: RwSignal<String>,
    /// A note about recordings (an error, or where a download went).
    pub note: RwSignal<Option<String>>,
}

/// The id a tab's callbacks send with (it becomes [`TabId::FIRST`] when a new session
/// starts from it).
pub type TabCell = Rc<Cell<TabId>>;

/// One tab's terminal and recording.
struct Entry {
    id: TabId,
    cell: TabCell,
    term: Rc<Term>,
    element: web_sys::HtmlElement,
    recorder: Rc<RefCell<Option<Recorder>>>,
}

/// The page's tabs (one per page, inside the controller).
pub struct TabSet {
    /// What the view shows.
    pub state: TabsState,
    pane: RefCell<Option<web_sys::HtmlElement>>,
    entries: RefCell<Vec<Entry>>,
    next: Cell<u32>,
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or_else(js_sys::Date::now)
}

impl TabSet {
    /// No tabs yet (the pane is not in the page).
    pub fn new() -> Self {
        Self {
            state: TabsState {
                tabs: RwSignal::new(Vec::new()),
                active: RwSignal::new(TabId::FIRST),
                device: RwSignal::new(String::new()),
                note: RwSignal::new(None),
            },
            pane: RefCell::new(None),
            entries: RefCell::new(Vec::new()),
            next: Cell::new(TabId::FIRST.0 + 1),
        }
    }

    /// Where the tabs' terminals go.
    pub fn set_pane(&self, pane: web_sys::HtmlElement) {
        *self.pane.borrow_mut() = Some(pane);
    }

    /// A fresh id for a new tab.
    pub fn next_id(&self) -> TabId {
        let id = self.next.get();
        self.next.set(id + 1);
        TabId(id)
    }

    /// The shown tab's terminal.
    pub fn active_term(&self) -> Option<Rc<Term>> {
        let active = self.state.active.get_untracked();
        self.term(active)
    }

    /// `tab`'s terminal.
    pub fn term(&self, tab: TabId) -> Option<Rc<Term>> {
        self.entries
            .borrow()
            .iter()
            .find(|entry| entry.id == tab)
            .map(|entry| Rc::clone(&entry.term))
    }

    /// Every tab's terminal.
    pub fn terms(&self) -> Vec<Rc<Term>> {
        self.entries
            .borrow()
            .iter()
            .map(|entry| Rc::clone(&entry.term))
            .collect()
    }

    /// The tabs' ids, in order.
    pub fn ids(&self) -> Vec<TabId> {
        self.entries.borrow().iter().map(|entry| entry.id).collect()
    }

    /// Opens a terminal for `id` in a new element of the pane and shows it. `setup` wires it
    /// (input, resize, title) before it is kept.
    pub fn open(
        &self,
        id: TabId,
        renderer: RwSignal<&'static str>,
        setup: impl FnOnce(&Term, &TabCell, &Rc<RefCell<Option<Recorder>>>),
    ) -> Result<Rc<Term>, TermError> {
        let pane = self.pane.borrow().clone().ok_or_else(|| TermError::Setup {
            what: "tab",
            error: crate::term::JsError("the terminal pane is not in the page".to_owned()),
        })?;
        let element = web_sys::window()
            .and_then(|window| window.document())
            .and_then(|document| document.create_element("div").ok())
            .and_then(|element| element.dyn_into::<web_sys::HtmlElement>().ok())
            .ok_or_else(|| TermError::Setup {
                what: "tab",
                error: crate::term::JsError("could not create its element".to_owned()),
            })?;
        element.set_class_name("terminal-host");
        let _ = element.set_attribute("data-tab", &id.0.to_string());
        let _ = pane.append_child(&element);
        // Shown before it opens, so that it fits its element.
        self.hide_all();
        let term = match Term::open(&element) {
            Ok(term) => Rc::new(term),
            Err(error) => {
                element.remove();
                self.show(self.state.active.get_untracked());
                return Err(error);
            }
        };
        let recorder = Rc::new(RefCell::new(None));
        let cell = Rc::new(Cell::new(id));
        setup(&term, &cell, &recorder);
        // The page's `data-renderer` (on the shown terminal's element) follows each terminal.
        let _ = element.set_attribute("data-renderer", term.renderer().as_str());
        renderer.set(term.renderer().as_str());
        let marked = element.clone();
        term.on_renderer_change(move |now| {
            let _ = marked.set_attribute("data-renderer", now.as_str());
            // The page may be gone by the time a script loads or a context is lost.
            let _ = renderer.try_set(now.as_str());
        });
        self.entries.borrow_mut().push(Entry {
            id,
            cell,
            term: Rc::clone(&term),
            element,
            recorder,
        });
        self.state.tabs.update(|tabs| {
            tabs.push(TabInfo {
                id,
                title: None,
                recording: None,
            });
        });
        self.show(id);
        Ok(term)
    }

    fn hide_all(&self) {
        for entry in self.entries.borrow().iter() {
            entry.term.set_visible(false);
            let _ = entry.element.set_attribute("hidden", "");
            let _ = entry.element.remove_attribute("data-testid");
        }
    }

    /// Shows `tab` (hiding the others) and focuses it.
    pub fn show(&self, tab: TabId) {
        if !self.ids().contains(&tab) {
            return;
        }
        // The shown terminal first gives back its WebGL context, then the new one takes it.
        self.hide_all();
        let term = {
            let entries = self.entries.borrow();
            let Some(entry) = entries.iter().find(|entry| entry.id == tab) else {
                return;
            };
            let _ = entry.element.remove_attribute("hidden");
            let _ = entry.element.set_attribute("data-testid", "terminal");
            Rc::clone(&entry.term)
        };
        term.set_visible(true);
        self.state.active.set(tab);
        term.focus();
    }

    /// Shows the tab `step` places after the shown one (wrapping around).
    pub fn switch(&self, step: i32) {
        let ids = self.ids();
        let active = self.state.active.get_untracked();
        let Some(at) = ids.iter().position(|id| *id == active) else {
            return;
        };
        let len = i32::try_from(ids.len()).unwrap_or(1);
        let at = i32::try_from(at).unwrap_or(0);
        let next = usize::try_from((at + step).rem_euclid(len)).unwrap_or(0);
        self.show(ids[next]);
    }

    /// Removes `tab` and its terminal (its recording stops; a download of it completes).
    /// The neighbour is shown if it was the shown one.
    pub fn remove(&self, tab: TabId) {
        let ids = self.ids();
        let Some(at) = ids.iter().position(|id| *id == tab) else {
            return;
        };
        let entry = self.entries.borrow_mut().remove(at);
        if let Some(recorder) = entry.recorder.borrow_mut().as_mut() {
            recorder.stop(now_ms());
        }
        entry.element.remove();
        drop(entry);
        self.state
            .tabs
            .update(|tabs| tabs.retain(|info| info.id != tab));
        if self.state.active.get_untracked() == tab {
            let remaining = self.ids();
            if let Some(next) = remaining.get(at.min(remaining.len().saturating_sub(1))) {
                self.show(*next);
            }
        }
    }

    /// Keeps only the shown tab, as [`TabId::FIRST`] (a new session starts with one shell).
    pub fn keep_one(&self) {
        let active = self.state.active.get_untracked();
        for id in self.ids() {
            if id != active {
                self.remove(id);
            }
        }
        let mut entries = self.entries.borrow_mut();
        if let Some(entry) = entries.first_mut() {
            if let Some(recorder) = entry.recorder.borrow_mut().as_mut() {
                recorder.stop(now_ms());
            }
            entry.id = TabId::FIRST;
            entry.cell.set(TabId::FIRST);
            let _ = entry.element.set_attribute("data-tab", "1");
        }
        drop(entries);
        self.state.tabs.update(|tabs| {
            for info in tabs.iter_mut() {
                info.id = TabId::FIRST;
                info.title = None;
            }
        });
        self.state.active.set(TabId::FIRST);
        self.refresh_recording(TabId::FIRST);
    }

    /// Output for `tab`: shown in its terminal, and recorded if it is being recorded.
    pub fn write(&self, tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
        let target = {
            let entries = self.entries.borrow();
            entries
                .iter()
                .find(|entry| entry.id == tab)
                .map(|entry| (Rc::clone(&entry.term), Rc::clone(&entry.recorder)))
        };
        let Some((term, recorder)) = target else {
            // Nobody shows this output any more; let the session go on draining.
            parsed();
            return;
        };
        let full = match recorder.borrow_mut().as_mut() {
            Some(recorder) if recorder.recording() => {
                recorder.output(data, now_ms());
                recorder.state() == RecordState::Full
            }
            _ => false,
        };
        if full {
            self.refresh_recording(tab);
            self.state.note.set(Some(
                "The recording filled the memory it may use (64 MB) and stopped: download it \
                 now, and next time start the download while recording, so it goes to disk \
                 as it is made."
                    .to_owned(),
            ));
        }
        term.write(data, parsed);
    }

    /// A program in `tab` set its window title.
    pub fn set_title(&self, tab: TabId, title: String) {
        self.state.tabs.update(|tabs| {
            if let Some(info) = tabs.iter_mut().find(|info| info.id == tab) {
                info.title = Some(title);
            }
        });
    }

    fn recorder(&self, tab: TabId) -> Option<Rc<RefCell<Option<Recorder>>>> {
        self.entries
            .borrow()
            .iter()
            .find(|entry| entry.id == tab)
            .map(|entry| Rc::clone(&entry.recorder))
    }

    fn refresh_recording(&self, tab: TabId) {
        let state = self
            .recorder(tab)
            .and_then(|recorder| recorder.borrow().as_ref().map(Recorder::state));
        self.state.tabs.update(|tabs| {
            if let Some(info) = tabs.iter_mut().find(|info| info.id == tab) {
                info.recording = state;
            }
        });
    }

    /// Starts recording the shown tab, or stops its recording.
    pub fn toggle_recording(&self) {
        let tab = self.state.active.get_untracked();
        let (Some(recorder), Some(term)) = (self.recorder(tab), self.term(tab)) else {
            return;
        };
        {
            let mut slot = recorder.borrow_mut();
            match slot.as_mut() {
                Some(running) if running.recording() => running.stop(now_ms()),
                _ => {
                    let device = self.state.device.get_untracked();
                    let label = self
                        .state
                        .tabs
                        .get_untracked()
                        .iter()
                        .find(|info| info.id == tab)
                        .map(TabInfo::label)
                        .unwrap_or_default();
                    let title = Some(format!("{device} — {label}"));
                    let unix_secs = (js_sys::Date::now() / 1000.0) as u64;
                    *slot = Some(Recorder::start(
                        &device,
                        title,
                        term.size(),
                        now_ms(),
                        unix_secs,
                    ));
                    self.state.note.set(None);
                }
            }
        }
        self.refresh_recording(tab);
    }

    /// Downloads the shown tab's recording: what was recorded, then (while it records) what
    /// follows, streamed to disk until it stops.
    pub fn download_recording(&self) {
        let tab = self.state.active.get_untracked();
        let Some(recorder) = self.recorder(tab) else {
            return;
        };
        let download = recorder.borrow_mut().as_mut().and_then(Recorder::download);
        self.refresh_recording(tab);
        let Some(download) = download else {
            return;
        };
        let note = self.state.note;
        let tabs = self.state.tabs;
        wasm_bindgen_futures::spawn_local(async move {
            let size: usize = download.spooled.iter().map(Vec::len).sum();
            let result = async {
                let mut sink =
                    crate::files::browser::open_sink(&download.name, size as u64).await?;
                for chunk in download.spooled {
                    sink.write(chunk).await?;
                }
                if let Some(mut live) = download.live {
                    while let Some(chunk) = live.next().await {
                        sink.write(chunk).await?;
                    }
                }
                sink.finish().await
            }
            .await;
            let _ = note.try_set(Some(match result {
                Ok(()) => format!("Recording saved as {}.", download.name),
                Err(error) => format!("The recording could not be saved: {error}."),
            }));
            // The tab's recording is over once its download is.
            let _ = tabs.try_update(|tabs| {
                if let Some(info) = tabs.iter_mut().find(|info| info.id == tab) {
                    info.recording = None;
                }
            });
        });
    }

    /// Records `tab`'s resize, if it is being recorded.
    pub fn resized(recorder: &Rc<RefCell<Option<Recorder>>>, cols: u32, rows: u32) {
        if let Some(recorder) = recorder.borrow_mut().as_mut() {
            recorder.resize(cols, rows, now_ms());
        }
    }

    /// Drops every terminal (the page is going away).
    pub fn clear(&self) {
        let entries = std::mem::take(&mut *self.entries.borrow_mut());
        for entry in entries {
            entry.element.remove();
        }
    }
}

impl Default for TabSet {
    fn default() -> Self {
        Self::new()
    }
}

/// The strip above the terminal: the tabs, New terminal, and the shown tab's recording.
#[component]
pub fn TabBar(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let (state, status) = controller.with_value(|c| (c.tabs().state, c.state.status));
    let with = move |f: &dyn Fn(&Controller)| {
        if let Some(controller) = controller.try_get_value() {
            f(&controller);
        }
    };
    let connected = move || status.get().is_connected();
    let active_recording = move || {
        let active = state.active.get();
        state
            .tabs
            .get()
            .into_iter()
            .find(|info| info.id == active)
            .and_then(|info| info.recording)
    };
    let recording = move || {
        matches!(
            active_recording(),
            Some(RecordState::Recording | RecordState::Streaming)
        )
    };
    let downloadable = move || {
        matches!(
            active_recording(),
            Some(RecordState::Recording | RecordState::Stopped | RecordState::Full)
        )
    };
    view! {
        <div class="tab-bar" role="tablist" aria-label="Terminals">
            <For
                each=move || state.tabs.get()
                key=|info| (info.id, info.title.clone(), info.recording)
                let:info
            >
                {
                    let id = info.id;
                    let label = info.label();
                    let recording = info.recording.is_some_and(|state| {
                        matches!(state, RecordState::Recording | RecordState::Streaming)
                    });
                    view! {
                        <div
                            class="tab"
                            class:active=move || state.active.get() == id
                            role="tab"
                            aria-selected=move || (state.active.get() == id).to_string()
                            data-testid="tab"
                            data-tab=id.0.to_string()
                            on:click=move |_| with(&|c| c.tabs().show(id))
                        >
                            {recording.then(|| view! { <span class="rec-dot" title="Recording">"●"</span> })}
                            <span class="tab-title" data-testid="tab-title">{label}</span>
                            <span class="tab-device" data-testid="tab-device">{move || state.device.get()}</span>
                            <button
                                type="button"
                                class="tab-close"
                                data-testid="tab-close"
                                title="Close this terminal (ends its shell)"
                                aria-label="Close terminal"
                                on:click=move |ev| {
                                    ev.stop_propagation();
                                    with(&|c| c.close_tab(id));
                                }
                            >"✕"</button>
                        </div>
                    }
                }
            </For>
            <button
                type="button"
                class="tab-new"
                data-testid="tab-new"
                title="Another shell on the same connection (Ctrl+Shift+PageUp/PageDown switch)"
                disabled=move || !connected()
                on:click=move |_| {
                    if let Some(controller) = controller.try_get_value() {
                        controller.new_tab();
                    }
                }
            >"+ New terminal"</button>
            <span class="tab-spacer"></span>
            <button
                type="button"
                class="record"
                class:on=recording
                data-testid="record"
                title="Record this terminal's output (asciicast v2). Keystrokes are not recorded."
                on:click=move |_| with(&|c| c.tabs().toggle_recording())
            >{move || if recording() { "■ Stop recording" } else { "● Record" }}</button>
            <button
                type="button"
                class="record-download"
                data-testid="record-download"
                title="Save the recording as a .cast file; while recording, it keeps streaming to the file until you stop"
                disabled=move || !downloadable()
                on:click=move |_| with(&|c| c.tabs().download_recording())
            >"Download recording"</button>
        </div>
        <Show when=move || active_recording().is_some() || state.note.get().is_some()>
            <p class="record-note" data-testid="record-note">
                {move || state.note.get().unwrap_or_else(|| {
                    "Recording what the device displays in this terminal. Keystrokes are not \
                     recorded, so a password typed at a prompt that does not show it is not in \
                     the file."
                        .to_owned()
                })}
            </p>
        </Show>
    }
}
