//! The Files panel: the device's directories over SFTP (a second channel on the shell's
//! connection, opened on first use), uploads (file picker, or files dropped onto the panel or
//! the terminal), downloads streamed to disk, and a row per transfer with progress, speed,
//! time left and Cancel.
//!
//! It holds no protocol logic: listing, changes and transfers are [`crate::ssh::sftp`]; reading
//! and saving files in the browser is [`crate::files::browser`]. The panel only sequences the
//! operator's actions, asks before deleting or replacing, and shows outcomes in words.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared};
use leptos::html;
use leptos::prelude::*;

use super::controller::Controller;
use crate::files::browser::{FileSource, open_sink};
use crate::files::progress::{self, Meter};
use crate::ssh::sftp::{self, Entry, Failure, FilesError, Kind, Sftp};
use rows::{FileRowView, TransferView};

mod rows;

/// The progress of a transfer is shown at most this often.
const PROGRESS_EVERY_MS: f64 = 200.0;

/// Files dropped onto the terminal, handed to the panel (provided as context by the page).
#[derive(Clone, Copy)]
pub struct FileDrops {
    queue: StoredValue<Vec<web_sys::File>, LocalStorage>,
    count: RwSignal<u64>,
}

impl FileDrops {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            queue: StoredValue::new_local(Vec::new()),
            count: RwSignal::new(0),
        }
    }

    /// Lets files be dropped where this `dragover` happens.
    pub fn dragover(&self, event: &web_sys::DragEvent) {
        if carries_files(event) {
            event.prevent_default();
            if let Some(transfer) = event.data_transfer() {
                transfer.set_drop_effect("copy");
            }
        }
    }

    /// Takes the files of a `drop` for the panel to upload.
    pub fn drop_files(&self, event: &web_sys::DragEvent) {
        let Some(files) = event.data_transfer().and_then(|t| t.files()) else {
            return;
        };
        if files.length() == 0 {
            return;
        }
        event.prevent_default();
        let files = file_list(&files);
        self.queue.update_value(|queue| queue.extend(files));
        self.count.update(|n| *n += 1);
    }

    fn take(&self) -> Vec<web_sys::File> {
        self.queue
            .try_update_value(std::mem::take)
            .unwrap_or_default()
    }
}

impl Default for FileDrops {
    fn default() -> Self {
        Self::new()
    }
}

fn carries_files(event: &web_sys::DragEvent) -> bool {
    event.data_transfer().is_some_and(|transfer| {
        let types = transfer.types();
        (0..types.length()).any(|i| types.get(i).as_string().as_deref() == Some("Files"))
    })
}

fn file_list(files: &web_sys::FileList) -> Vec<web_sys::File> {
    (0..files.length()).filter_map(|i| files.get(i)).collect()
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// What ends a running transfer early, with why: the operator cancelled, or its connection is
/// gone.
type Stop = futures_util::future::Fuse<LocalBoxFuture<'static, FilesError>>;

/// How a transfer row stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RowState {
    Running,
    Done,
    Cancelled(String),
    Failed(String),
}

/// One transfer, as shown.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: u64,
    name: String,
    upload: bool,
    total: u64,
    done: u64,
    speed: Option<f64>,
    eta: Option<f64>,
    state: RowState,
}

impl Row {
    fn figures(&self) -> String {
        let percent = if self.total > 0 {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        } else {
            100.0
        };
        let mut text = format!(
            "{} of {} · {percent:.0}%",
            progress::bytes(self.done),
            progress::bytes(self.total)
        );
        if self.state == RowState::Running {
            if let Some(speed) = self.speed {
                text.push_str(&format!(" · {}/s", progress::bytes(speed as u64)));
            }
            if let Some(eta) = self.eta {
                text.push_str(&format!(" · {} left", progress::duration(eta)));
            }
        }
        text
    }
}

/// A question the panel asks inline: a confirmation, or a name.
#[derive(Debug, Clone, PartialEq)]
struct Question {
    text: String,
    yes: &'static str,
    /// `Some(initial)`: the answer is a name typed into a field.
    name: Option<String>,
}

type Opening = Shared<LocalBoxFuture<'static, Result<Rc<Sftp>, FilesError>>>;

/// The panel's state (all handles are `Copy`).
#[derive(Clone, Copy)]
struct Panel {
    controller: StoredValue<Rc<Controller>, LocalStorage>,
    open: RwSignal<bool>,
    path: RwSignal<String>,
    entries: RwSignal<Vec<Entry>>,
    loading: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    question: RwSignal<Option<Question>>,
    transfers: RwSignal<Vec<Row>>,
    sftp: StoredValue<Option<(u64, Opening)>, LocalStorage>,
    answer: StoredValue<Option<oneshot::Sender<Option<String>>>, LocalStorage>,
    cancels: StoredValue<HashMap<u64, oneshot::Sender<FilesError>>, LocalStorage>,
    next_id: StoredValue<u64>,
}

impl Panel {
    fn link_generation(&self) -> u64 {
        self.controller
            .with_value(|c| c.state.link_changes.get_untracked())
    }

    /// The SFTP session on the current connection, opened on first use.
    async fn session(self) -> Result<Rc<Sftp>, FilesError> {
        let generation = self.link_generation();
        let cached = self.sftp.with_value(|cached| {
            cached
                .as_ref()
                .filter(|(g, _)| *g == generation)
                .map(|(_, opening)| opening.clone())
        });
        let opening = match cached {
            Some(opening) => opening,
            None => {
                let Some(link) = self.controller.with_value(|c| c.link()) else {
                    return Err(FilesError::Local(
                        "reach the device: connect first (the Files panel uses the shell's \
                         connection)"
                            .to_owned(),
                    ));
                };
                let opening: Opening = async move { Sftp::open(&link, now_ms).await.map(Rc::new) }
                    .boxed_local()
                    .shared();
                self.sftp.set_value(Some((generation, opening.clone())));
                opening
            }
        };
        let result = opening.await;
        if result.is_err() {
            // The next action tries again (the operator may have installed the server).
            self.sftp.update_value(|cached| {
                if cached.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *cached = None;
                }
            });
        }
        result
    }

    fn show_error(&self, error: &FilesError) {
        self.error.set(Some(error.user_message()));
    }

    /// Lists `path` (the login's home when empty) and shows it.
    fn navigate(self, path: String) {
        self.loading.set(true);
        leptos::task::spawn_local(async move {
            let result = async {
                let sftp = self.session().await?;
                let path = if path.is_empty() {
                    sftp.home.clone()
                } else {
                    path
                };
                let entries = sftp.list(&path).await?;
                Ok::<_, FilesError>((path, entries))
            }
            .await;
            let _ = self.loading.try_set(false);
            match result {
                Ok((path, entries)) => {
                    let _ = self.error.try_set(None);
                    let _ = self.path.try_set(path);
                    let _ = self.entries.try_set(entries);
                }
                Err(error) => self.show_error(&error),
            }
        });
    }

    fn refresh(self) {
        self.navigate(self.path.get_untracked());
    }

    /// Asks `question`; resolves to the answer (`None`: no).
    async fn ask(self, question: Question) -> Option<String> {
        let (sender, receiver) = oneshot::channel();
        // A question still open is answered "no" by being replaced.
        self.answer.set_value(Some(sender));
        self.question.set(Some(question));
        receiver.await.ok().flatten()
    }

    fn reply(self, answer: Option<String>) {
        self.question.set(None);
        if let Some(sender) = self.answer.try_update_value(Option::take).flatten() {
            let _ = sender.send(answer);
        }
    }

    fn act(self, work: impl std::future::Future<Output = Result<(), FilesError>> + 'static) {
        leptos::task::spawn_local(async move {
            match work.await {
                Ok(()) => self.refresh(),
                Err(error) => self.show_error(&error),
            }
        });
    }

    fn make_dir(self) {
        let dir = self.path.get_untracked();
        self.act(async move {
            let question = Question {
                text: format!("New directory in {dir}:"),
                yes: "Create",
                name: Some(String::new()),
            };
            let Some(name) = self.ask(question).await else {
                return Ok(());
            };
            let sftp = self.session().await?;
            sftp.mkdir(&sftp::join(&dir, valid(&name)?)).await
        });
    }

    fn rename(self, entry: Entry) {
        let dir = self.path.get_untracked();
        self.act(async move {
            let question = Question {
                text: format!("Rename {} to:", entry.name),
                yes: "Rename",
                name: Some(entry.name.clone()),
            };
            let Some(name) = self.ask(question).await else {
                return Ok(());
            };
            if name == entry.name {
                return Ok(());
            }
            let sftp = self.session().await?;
            let to = sftp::join(&dir, valid(&name)?);
            sftp.rename(&sftp::join(&dir, &entry.name), &to).await
        });
    }

    fn delete(self, entry: Entry) {
        let dir = self.path.get_untracked();
        self.act(async move {
            let what = if entry.kind == Kind::Dir {
                "the directory"
            } else {
                ""
            };
            let question = Question {
                text: format!("Delete {what} {} from the device?", entry.name).replace("  ", " "),
                yes: "Delete",
                name: None,
            };
            if self.ask(question).await.is_none() {
                return Ok(());
            }
            let sftp = self.session().await?;
            sftp.delete(&sftp::join(&dir, &entry.name), entry.kind)
                .await
        });
    }

    /// Uploads `files` into the directory shown (the home when nothing was shown yet).
    fn upload(self, files: Vec<web_sys::File>) {
        if files.is_empty() {
            return;
        }
        self.open.set(true);
        leptos::task::spawn_local(async move {
            let sftp = match self.session().await {
                Ok(sftp) => sftp,
                Err(error) => return self.show_error(&error),
            };
            let mut dir = self.path.get_untracked();
            if dir.is_empty() {
                dir = sftp.home.clone();
                self.navigate(dir.clone());
            }
            for file in files {
                let name = file.name();
                if let Err(error) = valid(&name) {
                    self.show_error(&error);
                    continue;
                }
                let target = sftp::join(&dir, &name);
                let existing = match sftp.lookup(&target).await {
                    Ok(existing) => existing,
                    Err(error) => {
                        self.show_error(&error);
                        continue;
                    }
                };
                let replace = match existing {
                    Some(existing) => {
                        let question = Question {
                            text: format!(
                                "{target} already exists on the device ({}). Replace it?",
                                progress::bytes(existing.size)
                            ),
                            yes: "Replace",
                            name: None,
                        };
                        if self.ask(question).await.is_none() {
                            continue;
                        }
                        true
                    }
                    None => false,
                };
                let size = file.size() as u64;
                let sftp = Rc::clone(&sftp);
                let dir = dir.clone();
                self.transfer(name.clone(), size, true, move |progress, mut cancel| {
                    async move {
                        let mut source = FileSource::new(file);
                        sftp.upload(&mut source, &dir, &name, replace, &*progress, &mut cancel)
                            .await
                    }
                    .boxed_local()
                });
            }
        });
    }

    fn download(self, entry: Entry) {
        let dir = self.path.get_untracked();
        leptos::task::spawn_local(async move {
            // The save dialog comes first, while the click still counts as the operator's.
            let mut sink = match open_sink(&entry.name, entry.size).await {
                Ok(sink) => sink,
                Err(FilesError::Cancelled) => return,
                Err(error) => return self.show_error(&error),
            };
            let sftp = match self.session().await {
                Ok(sftp) => sftp,
                Err(error) => {
                    let _ = sink.abandon(false).await;
                    return self.show_error(&error);
                }
            };
            let path = sftp::join(&dir, &entry.name);
            self.transfer(
                entry.name.clone(),
                entry.size,
                false,
                move |progress, mut cancel| {
                    async move {
                        sftp.download(&path, &mut *sink, &*progress, &mut cancel)
                            .await
                    }
                    .boxed_local()
                },
            );
        });
    }

    /// Runs one transfer with its row, progress and Cancel.
    fn transfer(
        self,
        name: String,
        total: u64,
        upload: bool,
        work: impl FnOnce(Rc<dyn Fn(u64)>, Stop) -> LocalBoxFuture<'static, Result<u64, Failure>>
        + 'static,
    ) {
        let id = self.next_id.get_value();
        self.next_id.set_value(id + 1);
        self.transfers.update(|rows| {
            rows.push(Row {
                id,
                name,
                upload,
                total,
                done: 0,
                speed: None,
                eta: None,
                state: RowState::Running,
            })
        });
        let (cancel_sender, cancel) = oneshot::channel::<FilesError>();
        self.cancels
            .update_value(|cancels| drop(cancels.insert(id, cancel_sender)));
        let transfers = self.transfers;
        let meter = Rc::new(RefCell::new(Meter::default()));
        let shown = Rc::new(Cell::new(f64::NEG_INFINITY));
        let progress: Rc<dyn Fn(u64)> = {
            let meter = Rc::clone(&meter);
            Rc::new(move |done: u64| {
                let now = now_ms();
                meter.borrow_mut().sample(now, done);
                if now - shown.get() < PROGRESS_EVERY_MS && done < total {
                    return;
                }
                shown.set(now);
                let (speed, eta) = {
                    let meter = meter.borrow();
                    (meter.speed(), meter.eta_secs(total))
                };
                let _ = transfers.try_update(|rows| {
                    if let Some(row) = rows.iter_mut().find(|row| row.id == id) {
                        row.done = done;
                        row.speed = speed;
                        row.eta = eta;
                    }
                });
            })
        };
        leptos::task::spawn_local(async move {
            meter.borrow_mut().sample(now_ms(), 0);
            // A sender dropped without a word (the panel went away) stops as cancelled.
            let stop = cancel
                .map(|why| why.unwrap_or(FilesError::Cancelled))
                .boxed_local()
                .fuse();
            let result = work(progress, stop).await;
            self.cancels
                .update_value(|cancels| drop(cancels.remove(&id)));
            let (done, state) = match result {
                Ok(done) => (done, RowState::Done),
                Err(failure) => {
                    let message = failure.user_message();
                    let state = if failure.error == FilesError::Cancelled {
                        RowState::Cancelled(message)
                    } else {
                        RowState::Failed(message)
                    };
                    (failure.done, state)
                }
            };
            let _ = transfers.try_update(|rows| {
                if let Some(row) = rows.iter_mut().find(|row| row.id == id) {
                    row.done = done;
                    row.state = state;
                }
            });
            if upload {
                self.refresh();
            }
        });
    }

    fn cancel(self, id: u64) {
        if let Some(sender) = self
            .cancels
            .try_update_value(|cancels| cancels.remove(&id))
            .flatten()
        {
            let _ = sender.send(FilesError::Cancelled);
        }
    }

    /// The connection the transfers ran on is gone: each ends now as lost (requests already
    /// sent on it would otherwise wait out their timeout), keeping what it has as partial.
    fn lose_all(self) {
        let senders = self
            .cancels
            .try_update_value(std::mem::take)
            .unwrap_or_default();
        for sender in senders.into_values() {
            let _ = sender.send(FilesError::ConnectionLost);
        }
    }
}

fn valid(name: &str) -> Result<&str, FilesError> {
    if sftp::valid_name(name) {
        Ok(name)
    } else {
        Err(FilesError::Local(format!(
            "use {name:?} as a file name (no slashes, not . or ..)"
        )))
    }
}

/// The panel, under the terminal, with its toggle.
#[component]
pub fn FilesPanel(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
    /// Files dropped onto the terminal.
    drops: FileDrops,
) -> impl IntoView {
    let panel = Panel {
        controller,
        open: RwSignal::new(false),
        path: RwSignal::new(String::new()),
        entries: RwSignal::new(Vec::new()),
        loading: RwSignal::new(false),
        error: RwSignal::new(None),
        question: RwSignal::new(None),
        transfers: RwSignal::new(Vec::new()),
        sftp: StoredValue::new_local(None),
        answer: StoredValue::new_local(None),
        cancels: StoredValue::new_local(HashMap::new()),
        next_id: StoredValue::new(1),
    };
    let link_changes = controller.with_value(|c| c.state.link_changes);
    let connected = move || {
        link_changes.track();
        controller.with_value(|c| c.link().is_some())
    };

    // A new connection (or none): list again when the panel is open.
    // Running transfers were on the connection that is gone.
    Effect::new(move |previous: Option<u64>| {
        let now = link_changes.get();
        if previous.is_some_and(|p| p != now) {
            panel.lose_all();
            if panel.open.get_untracked() && connected() {
                panel.navigate(panel.path.get_untracked());
            }
        }
        now
    });
    // Files dropped onto the terminal.
    Effect::new(move |_| {
        if drops.count.get() > 0 {
            panel.upload(drops.take());
        }
    });

    let toggle = move |_| {
        let open = !panel.open.get_untracked();
        panel.open.set(open);
        if open && panel.entries.with_untracked(Vec::is_empty) {
            panel.navigate(panel.path.get_untracked());
        }
    };
    let picker = NodeRef::<html::Input>::new();
    let on_pick = move |_| {
        if let Some(input) = picker.get_untracked() {
            let files = input.files().map(|f| file_list(&f)).unwrap_or_default();
            // The same file can be picked again.
            input.set_value("");
            panel.upload(files);
        }
    };
    let path_input = NodeRef::<html::Input>::new();
    let name_input = NodeRef::<html::Input>::new();
    Effect::new(move |_| {
        if panel
            .question
            .with(|q| q.as_ref().is_some_and(|q| q.name.is_some()))
            && let Some(input) = name_input.get()
        {
            let _ = input.focus();
            input.select();
        }
    });
    let answer_yes = move || {
        let typed = name_input
            .get_untracked()
            .map(|input| input.value())
            .unwrap_or_default();
        panel.reply(Some(typed));
    };
    let running = move || {
        panel
            .transfers
            .with(|rows| rows.iter().filter(|r| r.state == RowState::Running).count())
    };

    view! {
        <div class="files-dock">
            <button
                type="button"
                class="small files-toggle"
                data-testid="files-toggle"
                aria-expanded=move || panel.open.get().to_string()
                on:click=toggle
            >
                {move || if panel.open.get() { "Files ▾" } else { "Files ▸" }}
                <Show when=move || { running() > 0 }>
                    <span class="files-busy">{move || format!(" · {} transfer(s)", running())}</span>
                </Show>
            </button>
            <Show when=move || panel.open.get()>
                <section
                    class="files"
                    data-testid="files"
                    aria-label="Files on the device"
                    on:dragover=move |ev| drops.dragover(&ev)
                    on:drop=move |ev| {
                        let Some(files) = ev.data_transfer().and_then(|t| t.files()) else { return };
                        if files.length() > 0 {
                            ev.prevent_default();
                            panel.upload(file_list(&files));
                        }
                    }
                >
                    <div class="files-bar">
                        <button type="button" class="small" title="Up one directory" data-testid="files-up"
                            on:click=move |_| panel.navigate(sftp::parent(&panel.path.get_untracked()))>"↑"</button>
                        <input
                            type="text"
                            class="files-path"
                            data-testid="files-path"
                            aria-label="Directory on the device"
                            spellcheck="false"
                            node_ref=path_input
                            prop:value=move || panel.path.get()
                            on:keydown=move |ev| if ev.key() == "Enter" {
                                ev.prevent_default();
                                if let Some(input) = path_input.get_untracked() {
                                    panel.navigate(input.value().trim().to_owned());
                                }
                            }
                        />
                        <button type="button" class="small" title="Refresh" data-testid="files-refresh"
                            on:click=move |_| panel.refresh()>"⟳"</button>
                        <button type="button" class="small" data-testid="files-mkdir"
                            on:click=move |_| panel.make_dir()>"New directory"</button>
                        <label class="small button files-upload-label">
                            "Upload…"
                            <input type="file" multiple class="files-upload" data-testid="files-upload"
                                node_ref=picker on:change=on_pick />
                        </label>
                    </div>
                    <Show when=move || panel.question.with(Option::is_some)>
                        {move || panel.question.get().map(|question| view! {
                            <div class="files-question" data-testid="files-question" role="alertdialog">
                                <span>{question.text.clone()}</span>
                                {question.name.clone().map(|initial| view! {
                                    <input type="text" data-testid="files-name" node_ref=name_input
                                        prop:value=initial
                                        on:keydown=move |ev| match ev.key().as_str() {
                                            "Enter" => { ev.prevent_default(); answer_yes(); }
                                            "Escape" => { ev.prevent_default(); panel.reply(None); }
                                            _ => {}
                                        } />
                                })}
                                <button type="button" class="small primary" data-testid="files-confirm"
                                    on:click=move |_| answer_yes()>{question.yes}</button>
                                <button type="button" class="small" data-testid="files-decline"
                                    on:click=move |_| panel.reply(None)>"Cancel"</button>
                            </div>
                        })}
                    </Show>
                    <Show when=move || panel.error.with(Option::is_some)>
                        <div class="files-error" role="alert">
                            <span data-testid="files-error">{move || panel.error.get()}</span>
                            <button type="button" class="dismiss" aria-label="Dismiss" on:click=move |_| panel.error.set(None)>"✕"</button>
                        </div>
                    </Show>
                    <div class="files-list" data-loading=move || panel.loading.get().to_string()>
                        <Show when=move || !connected()>
                            <p class="hint">"Connect first: the Files panel uses the shell's connection."</p>
                        </Show>
                        <table>
                            <tbody>
                                <For
                                    each=move || panel.entries.get()
                                    key=|entry| (entry.name.clone(), entry.size, entry.mtime, entry.kind as u8)
                                    let:entry
                                >
                                    <FileRowView panel=panel entry=entry />
                                </For>
                            </tbody>
                        </table>
                    </div>
                    <Show when=move || panel.transfers.with(|rows| !rows.is_empty())>
                        <ul class="transfers" aria-label="Transfers">
                            <For
                                each=move || panel.transfers.get()
                                key=|row| row.id
                                let:row
                            >
                                <TransferView panel=panel id=row.id name=row.name.clone()
                                    label=format!("{} {}", if row.upload { "↑" } else { "↓" }, row.name) />
                            </For>
                        </ul>
                    </Show>
                </section>
            </Show>
        </div>
    }
}
