//! Session recording: one tab's output as an asciicast v2 file.
//!
//! [`cast`] is the format (sans-IO, tested natively in `app/tests/cast.rs`); [`Recorder`] is
//! one recording: it turns output and resizes into lines and keeps them until the operator
//! downloads them. Keystrokes are never given to it (the page says so next to the button):
//! what is in the file is what the device displayed, so a password typed at a prompt that
//! does not echo it is not.
//!
//! Memory stays bounded for long sessions: until a download starts, lines wait in memory up
//! to [`SPOOL_LIMIT`] (past it the recording stops, with a note saying to download while
//! recording); once the download started, lines are handed to it as they come, and the
//! download streams them to disk (`files::browser::open_sink`: the File System Access API or
//! the service-worker stream) until the recording stops. It is Rust in the app's WASM, so
//! there is no script to load.

pub mod cast;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use cast::{CastWriter, Header};

/// Lines kept in memory while no download takes them (64 MiB).
pub const SPOOL_LIMIT: usize = 64 * 1024 * 1024;

/// Where a recording stands, for the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordState {
    /// Recording into memory.
    Recording,
    /// Recording straight into a download.
    Streaming,
    /// Stopped, waiting to be downloaded.
    Stopped,
    /// Stopped because memory filled before a download started.
    Full,
}

/// What a download gets: the lines so far, and the ones still to come while recording.
pub struct Download {
    /// The file's name.
    pub name: String,
    /// The lines recorded so far.
    pub spooled: Vec<Vec<u8>>,
    /// Lines recorded from now on, until the recording stops.
    pub live: Option<UnboundedReceiver<Vec<u8>>>,
}

/// One tab's recording.
#[derive(Debug)]
pub struct Recorder {
    writer: CastWriter,
    name: String,
    spool: Vec<Vec<u8>>,
    spooled: usize,
    live: Option<UnboundedSender<Vec<u8>>>,
    state: RecordState,
}

impl Recorder {
    /// Starts recording a terminal of `cols`×`rows` on `device`, at `now_ms` (monotonic) and
    /// `unix_secs` (wall clock).
    pub fn start(
        device: &str,
        title: Option<String>,
        (cols, rows): (u32, u32),
        now_ms: f64,
        unix_secs: u64,
    ) -> Self {
        let header = Header {
            width: cols,
            height: rows,
            timestamp: unix_secs,
            term: crate::ssh::shell::TERM.to_owned(),
            title,
        };
        let (writer, line) = CastWriter::start(&header, now_ms);
        let spooled = line.len();
        Self {
            writer,
            name: cast::file_name(device, unix_secs),
            spool: vec![line],
            spooled,
            live: None,
            state: RecordState::Recording,
        }
    }

    /// Where it stands.
    pub fn state(&self) -> RecordState {
        self.state
    }

    /// Whether it still takes output.
    pub fn recording(&self) -> bool {
        matches!(self.state, RecordState::Recording | RecordState::Streaming)
    }

    fn push(&mut self, line: Vec<u8>) {
        if let Some(live) = &self.live {
            // A download that failed took its receiver with it; then the line has no reader.
            let _ = live.unbounded_send(line);
            return;
        }
        if self.spooled + line.len() > SPOOL_LIMIT {
            self.state = RecordState::Full;
            return;
        }
        self.spooled += line.len();
        self.spool.push(line);
    }

    /// Output the device sent to the tab.
    pub fn output(&mut self, data: &[u8], now_ms: f64) {
        if self.recording()
            && let Some(line) = self.writer.output(data, now_ms)
        {
            self.push(line);
        }
    }

    /// The tab's terminal has a new size.
    pub fn resize(&mut self, cols: u32, rows: u32, now_ms: f64) {
        if self.recording() {
            let line = self.writer.resize(cols, rows, now_ms);
            self.push(line);
        }
    }

    /// Stops recording; a download streaming it completes.
    pub fn stop(&mut self, now_ms: f64) {
        if !self.recording() {
            return;
        }
        if let Some(line) = self.writer.finish(now_ms) {
            self.push(line);
        }
        self.live = None;
        self.state = RecordState::Stopped;
    }

    /// Hands the recording to a download: what was spooled, and (while recording) the lines
    /// to come. `None` once a download has it.
    pub fn download(&mut self) -> Option<Download> {
        if self.state == RecordState::Streaming || (self.spool.is_empty() && !self.recording()) {
            return None;
        }
        let spooled = std::mem::take(&mut self.spool);
        self.spooled = 0;
        let live = if self.recording() {
            let (sender, receiver) = unbounded();
            self.live = Some(sender);
            self.state = RecordState::Streaming;
            Some(receiver)
        } else {
            None
        };
        Some(Download {
            name: self.name.clone(),
            spooled,
            live,
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};

    use super::*;

    fn text(lines: &[Vec<u8>]) -> String {
        String::from_utf8(lines.concat()).expect("UTF-8")
    }

    #[test]
    fn a_stopped_recording_downloads_whole_once() {
        let mut rec = Recorder::start("ops@pump", None, (80, 24), 0.0, 0);
        rec.output(b"hello", 10.0);
        rec.resize(100, 30, 20.0);
        rec.stop(30.0);
        rec.output(b"after", 40.0);
        assert_eq!(rec.state(), RecordState::Stopped);
        let download = rec.download().expect("a download");
        assert_eq!(download.name, "ops@pump-19700101-000000.cast");
        assert!(download.live.is_none());
        let file = text(&download.spooled);
        assert_eq!(file.lines().count(), 3, "{file}");
        assert!(file.contains("\"hello\"") && file.contains("\"100x30\""));
        assert!(!file.contains("after"));
        assert!(rec.download().is_none());
    }

    #[test]
    fn a_download_while_recording_follows_it_until_it_stops() {
        let mut rec = Recorder::start("d", None, (80, 24), 0.0, 0);
        rec.output(b"before", 1.0);
        let mut download = rec.download().expect("a download");
        assert_eq!(rec.state(), RecordState::Streaming);
        assert!(rec.download().is_none());
        rec.output(b"during", 2.0);
        rec.stop(3.0);
        // The recording stopped, so the live lines are all there and the stream has ended.
        let live: Vec<Vec<u8>> = download
            .live
            .take()
            .expect("live lines")
            .collect::<Vec<_>>()
            .now_or_never()
            .expect("the stream ended");
        assert!(text(&download.spooled).contains("before"));
        assert!(text(&live).contains("during"));
    }

    #[test]
    fn memory_is_bounded_before_a_download() {
        let mut rec = Recorder::start("d", None, (80, 24), 0.0, 0);
        let chunk = vec![b'x'; 1024 * 1024];
        for i in 0..80 {
            rec.output(&chunk, f64::from(i));
        }
        assert_eq!(rec.state(), RecordState::Full);
        assert!(!rec.recording());
        let download = rec.download().expect("what fit is kept");
        let size: usize = download.spooled.iter().map(Vec::len).sum();
        assert!(size <= SPOOL_LIMIT && size > SPOOL_LIMIT / 2, "{size}");
    }
}
