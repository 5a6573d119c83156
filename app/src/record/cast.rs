//! The asciicast v2 format, written without IO: a header line, then one JSON array per event
//! (`[seconds, "o", text]` for output, `[seconds, "r", "COLSxROWS"]` for a resize), as
//! <https://docs.asciinema.org/manual/asciicast/v2/> describes and `asciinema cat`/`play` read.
//!
//! Only what the device sent is recorded: there is no input event, so keystrokes (and a
//! password typed at a prompt that does not echo it) never reach a file. Output arrives in
//! arbitrary chunks, so a UTF-8 sequence cut between two chunks is held back until its end
//! arrives; bytes that are not UTF-8 become U+FFFD (the format's text is a JSON string).

use serde_json::json;

/// What the header says about the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Terminal columns when the recording started.
    pub width: u32,
    /// Terminal rows.
    pub height: u32,
    /// When it started, in seconds since the Unix epoch.
    pub timestamp: u64,
    /// The `TERM` the pty announced.
    pub term: String,
    /// A title (the device and tab), if any.
    pub title: Option<String>,
}

/// Turns one tab's output and resizes into asciicast v2 lines.
#[derive(Debug)]
pub struct CastWriter {
    start_ms: f64,
    last: f64,
    carry: Vec<u8>,
}

impl CastWriter {
    /// Starts a recording at `now_ms` (a monotonic clock); returns the writer and the header
    /// line.
    pub fn start(header: &Header, now_ms: f64) -> (Self, Vec<u8>) {
        let mut value = json!({
            "version": 2,
            "width": header.width,
            "height": header.height,
            "timestamp": header.timestamp,
            "env": { "TERM": header.term },
        });
        if let Some(title) = &header.title {
            value["title"] = json!(title);
        }
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        let writer = Self {
            start_ms: now_ms,
            last: 0.0,
            carry: Vec::new(),
        };
        (writer, line)
    }

    /// Seconds since the start, never less than the previous event's.
    fn time(&mut self, now_ms: f64) -> f64 {
        let t = ((now_ms - self.start_ms) / 1000.0).max(self.last);
        self.last = t;
        t
    }

    fn event(&mut self, now_ms: f64, kind: &str, text: &str) -> Vec<u8> {
        let t = self.time(now_ms);
        let mut line = format!("[{t:.6}, {}, {}]", json!(kind), json!(text)).into_bytes();
        line.push(b'\n');
        line
    }

    /// The `"o"` event for `data` received at `now_ms`, or `None` when it holds only the
    /// start of a UTF-8 sequence (kept for the next call).
    pub fn output(&mut self, data: &[u8], now_ms: f64) -> Option<Vec<u8>> {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(data);
        let text = decode(&bytes, &mut self.carry);
        if text.is_empty() {
            return None;
        }
        Some(self.event(now_ms, "o", &text))
    }

    /// The `"r"` event for a new terminal size. Output held back stays held back (a resize
    /// cannot land inside a character).
    pub fn resize(&mut self, cols: u32, rows: u32, now_ms: f64) -> Vec<u8> {
        self.event(now_ms, "r", &format!("{cols}x{rows}"))
    }

    /// Ends the recording: an incomplete UTF-8 sequence still held becomes U+FFFD.
    pub fn finish(&mut self, now_ms: f64) -> Option<Vec<u8>> {
        if self.carry.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&std::mem::take(&mut self.carry)).into_owned();
        Some(self.event(now_ms, "o", &text))
    }
}

/// Decodes `bytes` as UTF-8, invalid sequences as U+FFFD; an incomplete sequence at the end
/// goes to `carry` instead.
fn decode(bytes: &[u8], carry: &mut Vec<u8>) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                return text;
            }
            Err(err) => {
                let (valid, after) = rest.split_at(err.valid_up_to());
                // `valid` is valid UTF-8 by the error's own account.
                text.push_str(&String::from_utf8_lossy(valid));
                match err.error_len() {
                    Some(bad) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[bad..];
                    }
                    None => {
                        carry.extend_from_slice(after);
                        return text;
                    }
                }
            }
        }
    }
}

/// The file name of a download: `<device>-<YYYYMMDD-HHMMSS>.cast` (UTC), with anything but
/// letters, digits, `.`, `_`, `-` and `@` in the device's name made `_`.
pub fn file_name(device: &str, unix_secs: u64) -> String {
    let device: String = device
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let device = if device.is_empty() { "device" } else { &device };
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{device}-{year:04}{month:02}{day:02}-{:02}{:02}{:02}.cast",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
