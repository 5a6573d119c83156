//! The Files panel's SFTP channel: the `sftp` subsystem on a second channel of the shell's
//! connection ([`Link`]), spoken by the `russh-sftp` crate, with listing, changes (make a
//! directory, rename, delete) and pipelined transfers.
//!
//! # Transfers
//!
//! A round trip through the tunnel costs tens of milliseconds, so one request at a time would
//! cap a transfer at `request size / rtt`; but every byte in flight is also queued in front of
//! the shell's keystrokes on the same connection. A transfer therefore keeps as many requests
//! outstanding as its [`Pacer`] allows: up to OpenSSH's 64 requests of 32 KiB
//! ([`MAX_IN_FLIGHT_BYTES`]; downloads are also held to the SSH window the page grants,
//! [`super::client::WINDOW_SIZE`]) on a fast link, and only what the link carries in a round
//! trip plus 25 ms when a queue builds (a rate-limited tunnel), so a key is still answered
//! quickly during a transfer. Uploads go through russh's channel writer, which waits for the
//! device's window. Data is handed to a [`Sink`] in file order and
//! read from a [`Source`] as it is sent: neither side ever holds the whole file, and a slow
//! sink (the disk) holds the requests back instead of growing a buffer.
//!
//! An upload goes to `NAME.partial` next to its target and is renamed only once every byte is
//! acknowledged, so a transfer that did not finish never looks complete on the device: a
//! cancelled or failed one is removed, and one whose connection was lost stays as
//! `NAME.partial` (the device cannot be told anything any more).
//!
//! # Errors
//!
//! SFTP's status codes are few (OpenSSH reports a full disk as a plain "Failure"), so a failed
//! write asks the server for the file system's free space (`statvfs@openssh.com`) to tell
//! "no space left" apart. A device whose SSH server refuses the subsystem, or whose subsystem
//! ends before saying hello (the configured `sftp-server` is not installed), gets
//! [`FilesError::NoServer`], which names the package to install.
//!
//! This module does no browser IO: sources and sinks are traits, which is how the native tests
//! run transfers against a real OpenSSH `sftp-server`.

use std::collections::BTreeMap;
use std::rc::Rc;

use futures_util::future::{FusedFuture, LocalBoxFuture};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt, select};
use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, StatusCode};

use super::link::Link;
use super::pacing::{MAX_IN_FLIGHT_BYTES, MAX_REQUEST, Pacer, Ticket};

/// How long one request may wait for its answer. Generous: a slow link or a busy device may
/// take a while, and the pacer keeps requests from queueing long behind each other.
const REQUEST_TIMEOUT_SECS: u64 = 60;
/// The suffix of an upload that is not complete yet.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Why a Files operation failed, in the operator's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    /// The device's SSH server has no SFTP server (refused the subsystem, or it ended at once).
    #[error("the device has no sftp server ({detail})")]
    NoServer {
        /// What happened.
        detail: String,
    },
    /// The device refused access.
    #[error("permission denied: {path}")]
    PermissionDenied {
        /// The path concerned.
        path: String,
    },
    /// The path does not exist.
    #[error("not found: {path}")]
    NotFound {
        /// The path concerned.
        path: String,
    },
    /// The device's file system is full.
    #[error("no space left on the device for {path}")]
    NoSpace {
        /// The path being written.
        path: String,
    },
    /// The SSH connection (or the SFTP channel) went away.
    #[error("the connection was lost")]
    ConnectionLost,
    /// The operator cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The SFTP server failed otherwise.
    #[error("the sftp server refused {what}: {message}")]
    Failed {
        /// What was being done.
        what: String,
        /// The server's message (or the client's reason).
        message: String,
    },
    /// Reading or saving the file in the browser failed.
    #[error("the browser: {0}")]
    Local(String),
}

impl FilesError {
    /// The words the Files panel shows.
    pub fn user_message(&self) -> String {
        match self {
            FilesError::NoServer { detail } => format!(
                "SFTP is missing on the device: {detail}. Install an SFTP server there: \
                 openssh-sftp-server on Debian and Ubuntu (OpenSSH's sftp-server); \
                 Dropbear-based devices need it too (on OpenWrt: opkg install \
                 openssh-sftp-server) — Dropbear itself has none. The shell keeps working."
            ),
            FilesError::PermissionDenied { path } => {
                format!("Permission denied on the device: {path}.")
            }
            FilesError::NotFound { path } => format!("Not found on the device: {path}."),
            FilesError::NoSpace { path } => {
                format!("No space left on the device's file system while writing {path}.")
            }
            FilesError::ConnectionLost => "The connection to the device was lost.".to_owned(),
            FilesError::Cancelled => "Cancelled.".to_owned(),
            FilesError::Failed { what, message } => {
                format!("The device's SFTP server could not {what}: {message}.")
            }
            FilesError::Local(what) => format!("The browser could not {what}."),
        }
    }
}

/// What kind of entry a directory row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (or a symbolic link to one).
    Dir,
    /// A regular file (or a symbolic link to one).
    File,
    /// Anything else (device, socket, fifo, dangling link).
    Other,
}

/// One row of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name within its directory.
    pub name: String,
    /// What it is (links resolved).
    pub kind: Kind,
    /// Whether it is a symbolic link.
    pub link: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: Option<u32>,
    /// The mode bits (type and permissions), when the server sent them.
    pub mode: Option<u32>,
}

/// Where a download goes (the browser's disk, or memory in tests). Writes come in file order.
pub trait Sink {
    /// Appends `data`.
    fn write(&mut self, data: Vec<u8>) -> LocalBoxFuture<'_, Result<(), FilesError>>;
    /// Every byte was written: make the file complete.
    fn finish(&mut self) -> LocalBoxFuture<'_, Result<(), FilesError>>;
    /// The transfer failed or was cancelled. With `keep` (bytes arrived and the operator did
    /// not cancel) what arrived may be kept under a name that says it is partial; returns that
    /// name, or `None` when nothing that could look complete was left.
    fn abandon(&mut self, keep: bool) -> LocalBoxFuture<'_, Option<String>>;
}

/// Where an upload's bytes come from (a browser `File`, or memory in tests).
pub trait Source {
    /// The total size in bytes.
    fn size(&self) -> u64;
    /// Up to `len` bytes at `offset` (fewer only at the end).
    fn read(&mut self, offset: u64, len: usize) -> LocalBoxFuture<'_, Result<Vec<u8>, FilesError>>;
}

/// How a transfer ended badly: the error, and what it leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub error: FilesError,
    /// Bytes moved before it stopped.
    pub done: u64,
    /// A partial file left behind, named as partial (remote for uploads, local for
    /// downloads); `None` when nothing was kept.
    pub partial: Option<String>,
}

impl Failure {
    /// The words for the transfer row.
    pub fn user_message(&self) -> String {
        let mut text = self.error.user_message();
        match (&self.error, &self.partial) {
            (_, Some(partial)) => {
                text.push_str(&format!(" The partial file is kept as {partial}."));
            }
            (FilesError::Cancelled, None) => text.push_str(" Nothing was kept."),
            (_, None) if self.done > 0 => text.push_str(" The partial file was removed."),
            _ => {}
        }
        text
    }
}

/// `dir` and `name` joined with one slash.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The parent directory of `path` (`/` stays `/`).
pub fn parent(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => trimmed[..i].to_owned(),
    }
}

/// Whether `name` can be created in a directory as it is (no separators, not `.`/`..`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn kind_of(mode: Option<u32>) -> Kind {
    match mode.map(|m| m & 0o170000) {
        Some(0o040000) => Kind::Dir,
        Some(0o100000) => Kind::File,
        _ => Kind::Other,
    }
}

/// Directories first, then by name.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| {
        (a.kind != Kind::Dir)
            .cmp(&(b.kind != Kind::Dir))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// An SFTP session on a channel of the shell's connection.
pub struct Sftp {
    raw: Rc<RawSftpSession>,
    link: Link,
    /// The login's home directory (where the panel starts).
    pub home: String,
    statvfs: bool,
    /// A monotonic clock in milliseconds, for the transfers' round trips.
    clock: fn() -> f64,
}

impl std::fmt::Debug for Sftp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sftp").field("home", &self.home).finish()
    }
}

impl Sftp {
    /// Opens the `sftp` subsystem on a new channel of `link` and says hello. `clock` is a
    /// monotonic clock in milliseconds (transfers time their requests with it).
    pub async fn open(link: &Link, clock: fn() -> f64) -> Result<Sftp, FilesError> {
        let channel =
            link.open_session("the SFTP channel")
                .await
                .map_err(|err| FilesError::Failed {
                    what: "open a channel".to_owned(),
                    message: err.to_string(),
                })?;
        let mut channel = channel;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|_| FilesError::ConnectionLost)?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Success) => break,
                Some(ChannelMsg::Failure) => {
                    return Err(FilesError::NoServer {
                        detail: "its SSH server refused the sftp subsystem".to_owned(),
                    });
                }
                Some(ChannelMsg::Close | ChannelMsg::Eof | ChannelMsg::ExitStatus { .. }) => {
                    return Err(FilesError::NoServer {
                        detail: "its sftp subsystem ended at once".to_owned(),
                    });
                }
                Some(_) => {}
                None if link.is_closed() => return Err(FilesError::ConnectionLost),
                None => {
                    return Err(FilesError::NoServer {
                        detail: "its SSH server closed the sftp channel".to_owned(),
                    });
                }
            }
        }
        let config = russh_sftp::client::Config {
            max_write_packet_len: MAX_REQUEST,
            ..russh_sftp::client::Config::default()
        };
        let raw = RawSftpSession::new_with_config(channel.into_stream(), config);
        // The hello gets the library's default deadline; a missing sftp-server binary ends the
        // channel before it, which reads as the session closing.
        let version = match raw.init().await {
            Ok(version) => version,
            Err(_) if link.is_closed() => return Err(FilesError::ConnectionLost),
            Err(SftpError::Timeout) => {
                return Err(FilesError::NoServer {
                    detail: "its sftp subsystem did not answer".to_owned(),
                });
            }
            Err(_) => {
                return Err(FilesError::NoServer {
                    detail: "its sftp subsystem ended before answering (the configured \
                             sftp-server program is probably not installed)"
                        .to_owned(),
                });
            }
        };
        raw.set_timeout(REQUEST_TIMEOUT_SECS);
        let statvfs = version.extensions.contains_key("statvfs@openssh.com");
        let mut sftp = Sftp {
            raw: Rc::new(raw),
            link: link.clone(),
            home: String::new(),
            statvfs,
            clock,
        };
        sftp.home = sftp.canonical(".").await?;
        Ok(sftp)
    }

    /// Whether the connection under this session is gone.
    pub fn is_closed(&self) -> bool {
        self.link.is_closed()
    }

    /// Turns a library error on `path` into the operator's terms.
    fn error(&self, err: SftpError, what: &str, path: &str) -> FilesError {
        classify(err, what, path, self.link.is_closed())
    }

    /// The absolute form of `path`.
    pub async fn canonical(&self, path: &str) -> Result<String, FilesError> {
        let name = self
            .raw
            .realpath(path)
            .await
            .map_err(|err| self.error(err, "resolve the path", path))?;
        name.files
            .into_iter()
            .next()
            .map(|file| file.filename)
            .ok_or_else(|| FilesError::Failed {
                what: "resolve the path".to_owned(),
                message: "empty answer".to_owned(),
            })
    }

    /// What `path` is, or `None` when it does not exist.
    pub async fn lookup(&self, path: &str) -> Result<Option<Entry>, FilesError> {
        match self.raw.stat(path).await {
            Ok(attrs) => Ok(Some(entry(base_name(path), &attrs.attrs, false))),
            Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {
                Ok(None)
            }
            Err(err) => Err(self.error(err, "look at the file", path)),
        }
    }

    /// The entries of directory `path`, directories first (without `.` and `..`).
    pub async fn list(&self, path: &str) -> Result<Vec<Entry>, FilesError> {
        let what = "list the directory";
        let handle = self
            .raw
            .opendir(path)
            .await
            .map_err(|err| self.error(err, what, path))?
            .handle;
        let mut entries = Vec::new();
        let result = loop {
            match self.raw.readdir(handle.as_str()).await {
                Ok(name) => {
                    for file in name.files {
                        if file.filename == "." || file.filename == ".." {
                            continue;
                        }
                        let link = kind_link(file.attrs.permissions);
                        entries.push(entry(file.filename, &file.attrs, link));
                    }
                }
                Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => {
                    break Ok(());
                }
                Err(err) => break Err(self.error(err, what, path)),
            }
        };
        let _ = self.raw.close(handle).await;
        result?;
        // Symbolic links are shown as what they point to.
        for entry in entries.iter_mut().filter(|entry| entry.link) {
            if let Ok(attrs) = self.raw.stat(join(path, &entry.name)).await {
                entry.kind = kind_of(attrs.attrs.permissions);
                entry.size = attrs.attrs.size.unwrap_or(entry.size);
            }
        }
        sort_entries(&mut entries);
        Ok(entries)
    }

    /// Makes directory `path`.
    pub async fn mkdir(&self, path: &str) -> Result<(), FilesError> {
        self.raw
            .mkdir(path, FileAttributes::empty())
            .await
            .map(drop)
            .map_err(|err| self.error(err, "make the directory", path))
    }

    /// Renames `from` to `to` (which must not exist).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), FilesError> {
        self.raw
            .rename(from, to)
            .await
            .map(drop)
            .map_err(|err| self.error(err, "rename", from))
    }

    /// Deletes the file or (empty) directory at `path`.
    pub async fn delete(&self, path: &str, kind: Kind) -> Result<(), FilesError> {
        let result = if kind == Kind::Dir {
            self.raw.rmdir(path).await
        } else {
            self.raw.remove(path).await
        };
        result
            .map(drop)
            .map_err(|err| self.error(err, "delete", path))
    }

    /// Downloads `path` into `sink`, reporting bytes written to `progress`, until done or
    /// `cancel` resolves with why it stops (cancelled, or the connection lost).
    pub async fn download(
        &self,
        path: &str,
        sink: &mut dyn Sink,
        progress: &dyn Fn(u64),
        cancel: &mut (dyn FusedFuture<Output = FilesError> + Unpin),
    ) -> Result<u64, Failure> {
        let fail = |error: FilesError, done: u64| Failure {
            error,
            done,
            partial: None,
        };
        let handle = match self
            .raw
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
        {
            Ok(handle) => handle.handle,
            Err(err) => return Err(fail(self.error(err, "open the file", path), 0)),
        };
        let mut written = 0;
        let result = self
            .pull(path, &handle, sink, progress, cancel, &mut written)
            .await;
        if !self.is_closed() {
            let _ = self.raw.close(handle).await;
        }
        let result = match result {
            Ok(()) => sink.finish().await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => Ok(written),
            Err(error) => {
                let keep = written > 0 && error != FilesError::Cancelled;
                let partial = sink.abandon(keep).await;
                Err(Failure {
                    error,
                    done: written,
                    partial,
                })
            }
        }
    }

    async fn pull(
        &self,
        path: &str,
        handle: &str,
        sink: &mut dyn Sink,
        progress: &dyn Fn(u64),
        cancel: &mut (dyn FusedFuture<Output = FilesError> + Unpin),
        written: &mut u64,
    ) -> Result<(), FilesError> {
        type Reply = (u64, u32, Ticket, Result<Vec<u8>, SftpError>);
        let read = |offset: u64, len: u32, ticket: Ticket| -> LocalBoxFuture<'static, Reply> {
            let raw = Rc::clone(&self.raw);
            let handle = handle.to_owned();
            async move {
                let reply = raw.read(handle, offset, len).await.map(|data| data.data);
                (offset, len, ticket, reply)
            }
            .boxed_local()
        };
        let mut pacer = Pacer::new();
        let mut in_flight = FuturesUnordered::new();
        // Data that arrived ahead of a slower earlier request, by offset.
        let mut ready: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut ready_bytes = 0u64;
        // Parts of the file a short read left out, to ask for again.
        let mut gaps: Vec<(u64, u32)> = Vec::new();
        let mut next = 0u64;
        let mut eof: Option<u64> = None;
        loop {
            // Requests go out in batches (see `Pacer::may_top_up`).
            let top_up = pacer.may_top_up(pacer.request_size());
            loop {
                let size = pacer.request_size();
                // Out-of-order data waiting for an earlier request counts against the window
                // too, so a stuck request cannot make the buffer grow without bound.
                if !top_up
                    || !pacer.may_send(size)
                    || pacer.in_flight() + ready_bytes >= 2 * MAX_IN_FLIGHT_BYTES
                {
                    break;
                }
                let (offset, len) = if let Some((offset, len)) = gaps.pop() {
                    if len > size {
                        gaps.push((offset + u64::from(size), len - size));
                        (offset, size)
                    } else {
                        (offset, len)
                    }
                } else if eof.is_none() {
                    next += u64::from(size);
                    (next - u64::from(size), size)
                } else {
                    break;
                };
                let ticket = pacer.sent((self.clock)(), len);
                in_flight.push(read(offset, len, ticket));
            }
            if in_flight.is_empty() {
                break;
            }
            let (offset, len, ticket, reply) = select! {
                reply = in_flight.select_next_some() => reply,
                why = &mut *cancel => return Err(why),
            };
            pacer.answered(ticket, (self.clock)());
            match reply {
                Ok(data) if data.is_empty() => {
                    eof = Some(eof.map_or(offset, |at| at.min(offset)));
                }
                Ok(data) => {
                    let got = data.len() as u64;
                    if got < u64::from(len) {
                        let missing = u32::try_from(u64::from(len) - got).unwrap_or(len);
                        gaps.push((offset + got, missing));
                    }
                    ready_bytes += got;
                    ready.insert(offset, data);
                }
                Err(SftpError::Status(status)) if status.status_code == StatusCode::Eof => {
                    eof = Some(eof.map_or(offset, |at| at.min(offset)));
                }
                Err(err) => return Err(self.error(err, "read the file", path)),
            }
            // A gap past the end of the file needs no asking.
            if let Some(end) = eof {
                gaps.retain(|(offset, _)| *offset < end);
            }
            while let Some(data) = ready.remove(written) {
                let got = data.len() as u64;
                ready_bytes -= got;
                *written += got;
                sink.write(data).await?;
                progress(*written);
            }
        }
        if ready.is_empty() {
            Ok(())
        } else {
            Err(FilesError::Failed {
                what: "read the whole file".to_owned(),
                message: "it left out a part of it".to_owned(),
            })
        }
    }

    /// Uploads `source` as `dir/name`. An existing file of that name is replaced only when
    /// `replace` is set (the caller asked the operator); otherwise the upload fails before
    /// sending anything.
    pub async fn upload(
        &self,
        source: &mut dyn Source,
        dir: &str,
        name: &str,
        replace: bool,
        progress: &dyn Fn(u64),
        cancel: &mut (dyn FusedFuture<Output = FilesError> + Unpin),
    ) -> Result<u64, Failure> {
        let target = join(dir, name);
        let partial = format!("{target}{PARTIAL_SUFFIX}");
        let fail = |error: FilesError| Failure {
            error,
            done: 0,
            partial: None,
        };
        if !replace && self.lookup(&target).await.map_err(fail)?.is_some() {
            return Err(fail(FilesError::Failed {
                what: "upload without replacing".to_owned(),
                message: format!("{target} already exists"),
            }));
        }
        let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE;
        let handle = match self
            .raw
            .open(&partial, flags, FileAttributes::empty())
            .await
        {
            Ok(handle) => handle.handle,
            Err(err) => return Err(fail(self.error(err, "create the file", &target))),
        };
        let mut acked = 0;
        let result = self
            .push(&target, &handle, source, progress, cancel, &mut acked)
            .await;
        let closed = if self.is_closed() {
            Err(FilesError::ConnectionLost)
        } else {
            self.raw
                .close(handle)
                .await
                .map(drop)
                .map_err(|err| self.error(err, "finish writing", &target))
        };
        let result = result.and(closed);
        let result = match result {
            Ok(()) => self.settle(&partial, &target, replace).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => Ok(acked),
            Err(error) => {
                // Cleaning up needs the connection; without it the partial file stays, named
                // as partial.
                let kept = if self.is_closed() || matches!(error, FilesError::ConnectionLost) {
                    Some(partial)
                } else if self.raw.remove(partial.as_str()).await.is_ok() {
                    None
                } else {
                    Some(partial)
                };
                Err(Failure {
                    error,
                    done: acked,
                    partial: kept,
                })
            }
        }
    }

    /// Moves a complete upload from its partial name to `target`.
    async fn settle(&self, partial: &str, target: &str, replace: bool) -> Result<(), FilesError> {
        if replace {
            match self.raw.remove(target).await {
                Ok(_) => {}
                Err(SftpError::Status(status)) if status.status_code == StatusCode::NoSuchFile => {}
                Err(err) => return Err(self.error(err, "replace the file", target)),
            }
        }
        self.raw
            .rename(partial, target)
            .await
            .map(drop)
            .map_err(|err| self.error(err, "put the file in place", target))
    }

    async fn push(
        &self,
        target: &str,
        handle: &str,
        source: &mut dyn Source,
        progress: &dyn Fn(u64),
        cancel: &mut (dyn FusedFuture<Output = FilesError> + Unpin),
        acked: &mut u64,
    ) -> Result<(), FilesError> {
        type Reply = (Ticket, Result<(), SftpError>);
        let write =
            |offset: u64, data: Vec<u8>, ticket: Ticket| -> LocalBoxFuture<'static, Reply> {
                let raw = Rc::clone(&self.raw);
                let handle = handle.to_owned();
                async move { (ticket, raw.write(handle, offset, data).await.map(drop)) }
                    .boxed_local()
            };
        let size = source.size();
        let mut pacer = Pacer::new();
        let mut in_flight = FuturesUnordered::new();
        let mut offset = 0u64;
        loop {
            // Requests go out in batches (see `Pacer::may_top_up`).
            let top_up = pacer.may_top_up(pacer.request_size());
            while top_up && offset < size && pacer.may_send(pacer.request_size()) {
                let want = (size - offset).min(u64::from(pacer.request_size()));
                let want = usize::try_from(want).unwrap_or(MAX_REQUEST as usize);
                let data = source.read(offset, want).await?;
                if data.is_empty() {
                    return Err(FilesError::Local(
                        "read the file: it became shorter while being sent".to_owned(),
                    ));
                }
                let len = u32::try_from(data.len()).unwrap_or(MAX_REQUEST);
                let ticket = pacer.sent((self.clock)(), len);
                in_flight.push(write(offset, data, ticket));
                offset += u64::from(len);
            }
            if in_flight.is_empty() {
                return Ok(());
            }
            let (ticket, reply) = select! {
                reply = in_flight.select_next_some() => reply,
                why = &mut *cancel => return Err(why),
            };
            pacer.answered(ticket, (self.clock)());
            match reply {
                Ok(()) => {
                    *acked += ticket.bytes();
                    progress(*acked);
                }
                Err(err) => {
                    let error = self.error(err, "write the file", target);
                    return Err(self.explain_write_failure(error, target).await);
                }
            }
        }
    }

    /// A generic write failure on a full file system is "no space left".
    async fn explain_write_failure(&self, error: FilesError, target: &str) -> FilesError {
        if !matches!(error, FilesError::Failed { .. }) || !self.statvfs {
            return error;
        }
        match self.raw.statvfs(parent(target)).await {
            Ok(fs) if fs.blocks_avail.saturating_mul(fs.fragment_size.max(1)) < 1024 * 1024 => {
                FilesError::NoSpace {
                    path: target.to_owned(),
                }
            }
            _ => error,
        }
    }
}

fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
        .to_owned()
}

fn kind_link(mode: Option<u32>) -> bool {
    mode.is_some_and(|m| m & 0o170000 == 0o120000)
}

fn entry(name: String, attrs: &FileAttributes, link: bool) -> Entry {
    Entry {
        name,
        kind: kind_of(attrs.permissions),
        link,
        size: attrs.size.unwrap_or(0),
        mtime: attrs.mtime,
        mode: attrs.permissions,
    }
}

/// A library error in the operator's terms; `closed` says whether the connection is gone.
pub fn classify(err: SftpError, what: &str, path: &str, closed: bool) -> FilesError {
    let path = path.to_owned();
    match err {
        SftpError::Status(status) => match status.status_code {
            StatusCode::NoSuchFile => FilesError::NotFound { path },
            StatusCode::PermissionDenied => FilesError::PermissionDenied { path },
            StatusCode::NoConnection | StatusCode::ConnectionLost => FilesError::ConnectionLost,
            _ => FilesError::Failed {
                what: what.to_owned(),
                message: if status.error_message.is_empty() {
                    status.status_code.to_string()
                } else {
                    status.error_message
                },
            },
        },
        _ if closed => FilesError::ConnectionLost,
        SftpError::Timeout => FilesError::Failed {
            what: what.to_owned(),
            message: format!("no answer within {REQUEST_TIMEOUT_SECS} s"),
        },
        // The library's session ends when its channel does: the connection went away.
        SftpError::IO(_) | SftpError::UnexpectedBehavior(_) => FilesError::ConnectionLost,
        other => FilesError::Failed {
            what: what.to_owned(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
