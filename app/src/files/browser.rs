//! The browser side of transfers: reading a picked or dropped `File` in slices
//! ([`FileSource`]), and saving a download as it arrives ([`open_sink`]).
//!
//! Saving picks the first of:
//! 1. the File System Access API (`showSaveFilePicker`, Chromium): bytes go straight to the
//!    file the operator chose, in writes of about 1 MiB, one in flight while the next gathers
//!    (so the transfer never waits for the disk unless the disk is the slower one); a transfer
//!    that fails keeps what arrived renamed to `NAME.partial`, a cancelled one removes it;
//! 2. a streamed download through the same-origin service worker `download-sw.js`, registered
//!    on first use: a hidden frame opens `burrow-download/<id>`, which the worker answers with
//!    a stream the page feeds over a `MessagePort`, one chunk per request from the stream (so
//!    nothing piles up); a failure fails the download in the browser's download list, which
//!    keeps it as incomplete;
//! 3. only for files up to [`MEMORY_LIMIT`]: collecting the bytes into a `Blob`.
//!
//! Nothing here reads a whole file into memory except option 3, by design bounded.

use std::cell::Cell;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::StreamExt;
use futures_util::future::LocalBoxFuture;
use js_sys::{Array, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::ssh::sftp::{FilesError, PARTIAL_SUFFIX, Sink, Source};

/// The largest download kept in memory when the browser cannot stream it to disk.
pub const MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
/// How much of an upload is read from the `File` at once. Each slice costs the page's main
/// thread a fixed share of work (a 100 MB upload spent 200 ms in `slice` and `arrayBuffer` with
/// 1 MiB slices, 60 ms with these); two of them (this one and the next) are in memory at most.
const READ_AHEAD: u64 = 4 * 1024 * 1024;
/// Writes to a picked file are gathered up to this size.
const DISK_WRITE: usize = 1024 * 1024;
/// Chunks posted to the download worker.
const WORKER_CHUNK: usize = 256 * 1024;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_name = showSaveFilePicker)]
    fn show_save_file_picker(options: &JsValue) -> Result<Promise, JsValue>;

    /// A `FileSystemFileHandle`.
    type FileHandle;
    #[wasm_bindgen(method, js_name = createWritable)]
    fn create_writable(this: &FileHandle) -> Promise;
    #[wasm_bindgen(method, getter)]
    fn name(this: &FileHandle) -> String;
    #[wasm_bindgen(method, catch, js_name = move)]
    fn move_to(this: &FileHandle, name: &str) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn remove(this: &FileHandle) -> Result<Promise, JsValue>;

    /// A `FileSystemWritableFileStream`.
    type Writable;
    #[wasm_bindgen(method, catch)]
    fn write(this: &Writable, data: &Uint8Array) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn close(this: &Writable) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn abort(this: &Writable) -> Result<Promise, JsValue>;
}

/// A JavaScript failure, as text.
fn js_text(value: &JsValue) -> String {
    crate::js::JsError::from_js(value).0
}

async fn wait(promise: Result<Promise, JsValue>, what: &str) -> Result<JsValue, FilesError> {
    let promise =
        promise.map_err(|err| FilesError::Local(format!("{what} ({})", js_text(&err))))?;
    JsFuture::from(promise)
        .await
        .map_err(|err| FilesError::Local(format!("{what} ({})", js_text(&err))))
}

/// An upload's bytes, read from a browser `File` four megabytes at a time, the next four
/// already being read while these are sent.
pub struct FileSource {
    file: web_sys::File,
    size: u64,
    buffer: Vec<u8>,
    at: u64,
    /// The slice being read ahead: where it starts, and the browser's answer.
    ahead: Option<(u64, JsFuture)>,
}

impl FileSource {
    /// Starts reading `[offset, offset + READ_AHEAD)` (clipped to the file).
    fn start_read(&self, offset: u64, len: u64) -> Result<JsFuture, FilesError> {
        let stop = (offset + READ_AHEAD.max(len)).min(self.size);
        let slice = self
            .file
            .slice_with_f64_and_f64(offset as f64, stop as f64)
            .map_err(|err| FilesError::Local(format!("read the file ({})", js_text(&err))))?;
        Ok(JsFuture::from(slice.array_buffer()))
    }
}

impl FileSource {
    /// Reads `file` as it is sent.
    pub fn new(file: web_sys::File) -> Self {
        let size = file.size() as u64;
        Self {
            file,
            size,
            buffer: Vec::new(),
            at: 0,
            ahead: None,
        }
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>, FilesError>> {
        Box::pin(async move {
            let end = self.at + self.buffer.len() as u64;
            if offset < self.at || offset + len as u64 > end {
                // The slice read ahead, when it starts here (uploads read in order).
                let pending = match self.ahead.take() {
                    Some((start, pending)) if start == offset => pending,
                    _ => self.start_read(offset, len as u64)?,
                };
                let data = pending.await.map_err(|err| {
                    FilesError::Local(format!("read the file ({})", js_text(&err)))
                })?;
                self.buffer = Uint8Array::new(&data).to_vec();
                self.at = offset;
                let next = offset + self.buffer.len() as u64;
                if next < self.size && !self.buffer.is_empty() {
                    self.ahead = Some((next, self.start_read(next, 0)?));
                }
            }
            let start = usize::try_from(offset - self.at).unwrap_or(usize::MAX);
            let start = start.min(self.buffer.len());
            let stop = (start + len).min(self.buffer.len());
            Ok(self.buffer[start..stop].to_vec())
        })
    }
}

/// How the page saves downloads in this browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveMethod {
    /// The File System Access API.
    Picker,
    /// A streamed download through the service worker.
    Worker,
    /// A `Blob` (small files only).
    Memory,
}

fn has(target: &JsValue, name: &str) -> bool {
    Reflect::get(target, &JsValue::from_str(name)).is_ok_and(|value| !value.is_undefined())
}

/// The best way this browser offers to save a download of `size` bytes.
pub fn save_method(size: u64) -> Result<SaveMethod, FilesError> {
    let window = web_sys::window().ok_or_else(|| FilesError::Local("find the window".into()))?;
    if has(&window, "showSaveFilePicker") {
        return Ok(SaveMethod::Picker);
    }
    if window.is_secure_context() && has(&window.navigator(), "serviceWorker") {
        return Ok(SaveMethod::Worker);
    }
    if size <= MEMORY_LIMIT {
        return Ok(SaveMethod::Memory);
    }
    Err(FilesError::Local(format!(
        "save a file this large without holding it in memory: this browser has neither the \
         File System Access API nor service workers here (open the page over HTTPS, or in a \
         Chromium-based browser, to download files over {} MB)",
        MEMORY_LIMIT / 1_000_000
    )))
}

/// Opens where the download `name` of about `size` bytes goes. With the picker this must run
/// soon after the operator's click (the browser asks where to save).
pub async fn open_sink(name: &str, size: u64) -> Result<Box<dyn Sink>, FilesError> {
    match save_method(size)? {
        SaveMethod::Picker => Ok(Box::new(DiskSink::open(name).await?)),
        SaveMethod::Worker => Ok(Box::new(WorkerSink::open(name).await?)),
        SaveMethod::Memory => Ok(Box::new(MemorySink {
            name: name.to_owned(),
            parts: Array::new(),
        })),
    }
}

/// A file the operator picked, written through a `FileSystemWritableFileStream`.
struct DiskSink {
    handle: FileHandle,
    writable: Writable,
    buffer: Vec<u8>,
    /// The write the disk is doing now (at most one: the next megabyte gathers meanwhile).
    writing: Option<JsFuture>,
}

impl DiskSink {
    async fn open(name: &str) -> Result<Self, FilesError> {
        let options = Object::new();
        let _ = Reflect::set(&options, &"suggestedName".into(), &name.into());
        let handle = match show_save_file_picker(&options) {
            Ok(promise) => JsFuture::from(promise).await,
            Err(err) => Err(err),
        };
        let handle: FileHandle = match handle {
            Ok(handle) => handle.unchecked_into(),
            // The operator closed the dialog.
            Err(err)
                if err
                    .dyn_ref::<web_sys::DomException>()
                    .is_some_and(|e| e.name() == "AbortError") =>
            {
                return Err(FilesError::Cancelled);
            }
            Err(err) => {
                return Err(FilesError::Local(format!(
                    "ask where to save ({})",
                    js_text(&err)
                )));
            }
        };
        let writable = wait(Ok(handle.create_writable()), "open the file for writing")
            .await?
            .unchecked_into();
        Ok(Self {
            handle,
            writable,
            buffer: Vec::with_capacity(DISK_WRITE),
            writing: None,
        })
    }

    /// Waits for the write in progress, if any.
    async fn settle(&mut self) -> Result<(), FilesError> {
        match self.writing.take() {
            Some(write) => write
                .await
                .map(drop)
                .map_err(|err| FilesError::Local(format!("write the file ({})", js_text(&err)))),
            None => Ok(()),
        }
    }

    /// Hands the gathered bytes to the disk once the write before them is done; does not wait
    /// for this one.
    async fn flush(&mut self) -> Result<(), FilesError> {
        self.settle().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = Uint8Array::from(self.buffer.as_slice());
        self.buffer.clear();
        let promise = self
            .writable
            .write(&data)
            .map_err(|err| FilesError::Local(format!("write the file ({})", js_text(&err))))?;
        self.writing = Some(JsFuture::from(promise));
        Ok(())
    }
}

impl Sink for DiskSink {
    fn write(&mut self, data: Vec<u8>) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        Box::pin(async move {
            self.buffer.extend_from_slice(&data);
            if self.buffer.len() >= DISK_WRITE {
                self.flush().await?;
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        Box::pin(async move {
            self.flush().await?;
            self.settle().await?;
            wait(self.writable.close(), "finish the file")
                .await
                .map(drop)
        })
    }

    fn abandon(&mut self, keep: bool) -> LocalBoxFuture<'_, Option<String>> {
        Box::pin(async move {
            if keep {
                // Keep what arrived, under a name that says it is partial.
                let _ = self.flush().await;
                let _ = self.settle().await;
                if wait(self.writable.close(), "close").await.is_ok() {
                    let name = format!("{}{PARTIAL_SUFFIX}", self.handle.name());
                    if wait(self.handle.move_to(&name), "rename").await.is_ok() {
                        return Some(name);
                    }
                }
            } else {
                // A write still in progress fails with the abort; that is expected.
                let writing = self.writing.take();
                let _ = wait(self.writable.abort(), "abort").await;
                if let Some(write) = writing {
                    let _ = write.await;
                }
            }
            // Without a partial name nothing may look complete: remove the file.
            let _ = wait(self.handle.remove(), "remove").await;
            None
        })
    }
}

/// A streamed download through the service worker.
struct WorkerSink {
    port: web_sys::MessagePort,
    events: UnboundedReceiver<WorkerEvent>,
    credit: Cell<u32>,
    frame: web_sys::Element,
    buffer: Vec<u8>,
    _listener: Closure<dyn FnMut(web_sys::MessageEvent)>,
}

enum WorkerEvent {
    Registered,
    Pull,
    Cancelled,
}

static NEXT_DOWNLOAD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl WorkerSink {
    async fn open(name: &str) -> Result<Self, FilesError> {
        let window =
            web_sys::window().ok_or_else(|| FilesError::Local("find the window".into()))?;
        let container = window.navigator().service_worker();
        wait(
            Ok(container.register("download-sw.js")),
            "start the download worker",
        )
        .await?;
        let registration: web_sys::ServiceWorkerRegistration =
            wait(container.ready(), "start the download worker")
                .await?
                .unchecked_into();
        let worker = registration
            .active()
            .ok_or_else(|| FilesError::Local("start the download worker".into()))?;

        let channel = web_sys::MessageChannel::new()
            .map_err(|err| FilesError::Local(format!("open a message port ({})", js_text(&err))))?;
        let (sender, mut events) = unbounded();
        let listener = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(
            move |event: web_sys::MessageEvent| {
                let data = event.data();
                let event = if has(&data, "registered") {
                    WorkerEvent::Registered
                } else if has(&data, "pull") {
                    WorkerEvent::Pull
                } else {
                    WorkerEvent::Cancelled
                };
                let _ = sender.unbounded_send(event);
            },
        );
        let port = channel.port1();
        port.set_onmessage(Some(listener.as_ref().unchecked_ref()));
        let id = format!(
            "{}-{}",
            NEXT_DOWNLOAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            js_sys::Date::now() as u64
        );
        let message = Object::new();
        let _ = Reflect::set(&message, &"id".into(), &id.as_str().into());
        let _ = Reflect::set(&message, &"name".into(), &name.into());
        worker
            .post_message_with_transferable(&message, &Array::of1(&channel.port2()))
            .map_err(|err| {
                FilesError::Local(format!("reach the download worker ({})", js_text(&err)))
            })?;
        match events.next().await {
            Some(WorkerEvent::Registered) => {}
            _ => return Err(FilesError::Local("reach the download worker".into())),
        }
        let document = window
            .document()
            .ok_or_else(|| FilesError::Local("find the document".into()))?;
        let frame = document
            .create_element("iframe")
            .map_err(|err| FilesError::Local(format!("start the download ({})", js_text(&err))))?;
        let _ = frame.set_attribute("hidden", "");
        let _ = frame.set_attribute("src", &format!("burrow-download/{id}"));
        let body = document
            .body()
            .ok_or_else(|| FilesError::Local("find the page body".into()))?;
        let _ = body.append_child(&frame);
        Ok(Self {
            port,
            events,
            credit: Cell::new(0),
            frame,
            buffer: Vec::with_capacity(WORKER_CHUNK),
            _listener: listener,
        })
    }

    async fn send(&mut self, last: bool) -> Result<(), FilesError> {
        while !self.buffer.is_empty() {
            while self.credit.get() == 0 {
                match self.events.next().await {
                    Some(WorkerEvent::Pull) => self.credit.set(self.credit.get() + 1),
                    Some(WorkerEvent::Registered) => {}
                    Some(WorkerEvent::Cancelled) | None => return Err(FilesError::Cancelled),
                }
            }
            let take = self.buffer.len().min(WORKER_CHUNK);
            if take < WORKER_CHUNK && !last {
                return Ok(());
            }
            let chunk = Uint8Array::from(&self.buffer[..take]);
            self.buffer.drain(..take);
            let message = Object::new();
            let buffer = chunk.buffer();
            let _ = Reflect::set(&message, &"chunk".into(), &buffer);
            self.port
                .post_message_with_transferable(&message, &Array::of1(&buffer))
                .map_err(|err| {
                    FilesError::Local(format!("hand the download over ({})", js_text(&err)))
                })?;
            self.credit.set(self.credit.get() - 1);
        }
        Ok(())
    }

    fn post(&self, key: &str, value: JsValue) {
        let message = Object::new();
        let _ = Reflect::set(&message, &key.into(), &value);
        let _ = self.port.post_message(&message);
    }
}

impl Sink for WorkerSink {
    fn write(&mut self, data: Vec<u8>) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        Box::pin(async move {
            self.buffer.extend_from_slice(&data);
            if self.buffer.len() >= WORKER_CHUNK {
                self.send(false).await?;
            }
            Ok(())
        })
    }

    fn finish(&mut self) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        Box::pin(async move {
            self.send(true).await?;
            self.post("done", JsValue::TRUE);
            Ok(())
        })
    }

    fn abandon(&mut self, _keep: bool) -> LocalBoxFuture<'_, Option<String>> {
        Box::pin(async move {
            // The browser's download list shows it as failed (incomplete), never as done.
            self.post("error", "the transfer did not complete".into());
            None
        })
    }
}

impl Drop for WorkerSink {
    fn drop(&mut self) {
        self.port.set_onmessage(None);
        // The download lives on in the browser's download manager without the frame.
        let frame = self.frame.clone();
        let remove = Closure::once_into_js(move || frame.remove());
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                remove.unchecked_ref(),
                60_000,
            );
        }
    }
}

/// A small download collected into a `Blob`, then saved through a link.
struct MemorySink {
    name: String,
    parts: Array,
}

impl Sink for MemorySink {
    fn write(&mut self, data: Vec<u8>) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        self.parts.push(&Uint8Array::from(data.as_slice()));
        Box::pin(async { Ok(()) })
    }

    fn finish(&mut self) -> LocalBoxFuture<'_, Result<(), FilesError>> {
        let result = save_blob(&self.name, &self.parts);
        self.parts = Array::new();
        Box::pin(async move { result })
    }

    fn abandon(&mut self, _keep: bool) -> LocalBoxFuture<'_, Option<String>> {
        // Nothing reached the disk.
        self.parts = Array::new();
        Box::pin(async { None })
    }
}

fn save_blob(name: &str, parts: &Array) -> Result<(), FilesError> {
    let fail = |err: JsValue| FilesError::Local(format!("save the file ({})", js_text(&err)));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let blob =
        web_sys::Blob::new_with_u8_array_sequence_and_options(parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| FilesError::Local("find the document".into()))?;
    let link: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(fail)?.unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    // Let the download start before the URL goes.
    let revoke = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    if let Some(window) = web_sys::window() {
        let _ = window
            .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 30_000);
    }
    Ok(())
}
