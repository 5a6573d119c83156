//! Transfer figures for the Files panel: speed over a sliding window, time left, and the
//! words for sizes, times and modes. Plain Rust, tested natively.

use std::collections::VecDeque;

/// The span of recent progress the speed is measured over.
const WINDOW_MS: f64 = 3000.0;

/// Bytes over time for one transfer.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    samples: VecDeque<(f64, u64)>,
}

impl Meter {
    /// Records `bytes` done at `now_ms`.
    pub fn sample(&mut self, now_ms: f64, bytes: u64) {
        self.samples.push_back((now_ms, bytes));
        while self.samples.len() > 2
            && self
                .samples
                .front()
                .is_some_and(|(t, _)| now_ms - *t > WINDOW_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Bytes per second over the window, once there are two samples apart in time.
    pub fn speed(&self) -> Option<f64> {
        let (t0, b0) = *self.samples.front()?;
        let (t1, b1) = *self.samples.back()?;
        (t1 - t0 > 0.0).then(|| (b1.saturating_sub(b0)) as f64 * 1000.0 / (t1 - t0))
    }

    /// Seconds left for `total` bytes at the current speed.
    pub fn eta_secs(&self, total: u64) -> Option<f64> {
        let done = self.samples.back()?.1;
        let speed = self.speed().filter(|s| *s > 0.0)?;
        Some(total.saturating_sub(done) as f64 / speed)
    }
}

/// `1.5 MB`, `512 B`: decimal units, as file managers show sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `1:05`, `2:03:04`.
pub fn duration(secs: f64) -> String {
    let secs = secs.max(0.0).round() as u64;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `drwxr-xr-x` from the mode bits, as `ls -l` prints them.
pub fn mode(mode: Option<u32>) -> String {
    let Some(mode) = mode else {
        return "?".to_owned();
    };
    let kind = match mode & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut text = String::with_capacity(10);
    text.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

/// `2026-12-01 21:40` (UTC) from seconds since the epoch.
pub fn time(secs: Option<u32>) -> String {
    let Some(secs) = secs else {
        return String::new();
    };
    let secs = i64::from(secs);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        rest / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_time_left_follow_the_recent_window() {
        let mut meter = Meter::default();
        assert_eq!(meter.speed(), None);
        meter.sample(0.0, 0);
        assert_eq!(meter.speed(), None);
        meter.sample(1000.0, 1_000_000);
        assert_eq!(meter.speed(), Some(1_000_000.0));
        assert_eq!(meter.eta_secs(5_000_000), Some(4.0));
        // Old samples leave the window: a transfer that slowed down shows its new speed.
        meter.sample(5000.0, 2_000_000);
        meter.sample(6000.0, 2_100_000);
        let speed = meter.speed().expect("speed");
        assert!((speed - 100_000.0).abs() < 1.0, "{speed}");
    }

    #[test]
    fn words_for_sizes_times_and_modes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1500), "1.5 kB");
        assert_eq!(bytes(52_428_800), "52 MB");
        assert_eq!(duration(65.0), "1:05");
        assert_eq!(duration(7384.0), "2:03:04");
        assert_eq!(mode(Some(0o040755)), "drwxr-xr-x");
        assert_eq!(mode(Some(0o100640)), "-rw-r-----");
        assert_eq!(mode(None), "?");
        assert_eq!(time(Some(0)), "1970-01-01 00:00");
        assert_eq!(time(Some(1_780_350_000)), "2026-06-01 21:40");
    }
}
