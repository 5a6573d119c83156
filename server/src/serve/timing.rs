//! The data plane's own share of relay latency, for the service-scale benchmark: how long each
//! WebSocket message a peer sends spends in `burrow serve`, from the moment the reader has it to
//! the moment the other peer's writer has handed the message that carries its frames to the
//! socket.
//!
//! It is off unless the environment variable [`ENV`] is `1` when the service starts (the
//! benchmark's load client sets it; nothing else should). Off, the data plane reads no clock and
//! records nothing. On, each relayed message costs two reads of the monotonic clock
//! ([`Instant`]) and one relaxed atomic increment in a fixed histogram, and
//! `GET /bench/relay-timing` answers the histogram as JSON on the service's own port; nothing is
//! logged per message. Off, that path is answered 404.
//!
//! The histogram has 32 buckets per power of two of nanoseconds (each bucket's width is at most
//! 1/32 of its lower bound, about 3 %); buckets below 32 ns are exact. It is never reset: a
//! reader takes two snapshots and subtracts them to time a window.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};

/// The environment variable that turns the timing on (`1`).
pub(crate) const ENV: &str = "BURROW_RELAY_TIMING";
/// The path the histogram is served at when the timing is on.
pub(crate) const PATH: &str = "/bench/relay-timing";

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64` of nanoseconds.
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize) * SUB as usize;

/// Whole frames on their way to a peer, with the time the service received them from the other
/// peer (`None` for frames the service makes itself, or when the timing is off).
#[derive(Debug)]
pub(crate) struct Batch {
    /// Whole frames, length prefixes included.
    pub frames: Vec<u8>,
    /// When the reader had the WebSocket message they came in.
    pub received: Option<Instant>,
}

impl Batch {
    /// Frames the service makes itself (SERVICE_IDS, resets): not timed.
    pub(crate) fn service(frames: Vec<u8>) -> Self {
        Self {
            frames,
            received: None,
        }
    }
}

/// The histogram of service times.
pub(crate) struct RelayTiming {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
}

impl RelayTiming {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
        }
    }

    /// Records one message received at `received`, forwarded now.
    pub(crate) fn record(&self, received: Instant) {
        let nanos = u64::try_from(received.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `{"count": N, "buckets": [[lower_ns, upper_ns, count], …]}`, non-empty buckets only,
    /// `upper_ns` exclusive.
    fn snapshot(&self) -> serde_json::Value {
        let buckets: Vec<[u64; 3]> = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(index, count)| {
                let count = count.load(Ordering::Relaxed);
                let (lower, upper) = bounds(index);
                (count > 0).then_some([lower, upper, count])
            })
            .collect();
        serde_json::json!({
            "count": self.count.load(Ordering::Relaxed),
            "buckets": buckets,
        })
    }
}

/// The histogram, when the timing is on.
pub(crate) fn get() -> Option<&'static RelayTiming> {
    static TIMING: OnceLock<Option<RelayTiming>> = OnceLock::new();
    TIMING
        .get_or_init(|| (std::env::var(ENV).as_deref() == Ok("1")).then(RelayTiming::new))
        .as_ref()
}

/// The time a message was received at, when the timing is on.
pub(crate) fn received() -> Option<Instant> {
    get().map(|_| Instant::now())
}

/// `GET /bench/relay-timing`.
pub(crate) async fn handle() -> Response {
    match get() {
        Some(timing) => Json(timing.snapshot()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The bucket of a duration in nanoseconds.
fn bucket(nanos: u64) -> usize {
    if nanos < SUB {
        return nanos as usize;
    }
    let shift = 63 - nanos.leading_zeros() - SUB_BITS;
    let mantissa = nanos >> shift;
    ((shift as usize + 1) << SUB_BITS) + (mantissa - SUB) as usize
}

/// A bucket's bounds in nanoseconds, lower inclusive, upper exclusive.
fn bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index + 1);
    }
    let shift = (index >> SUB_BITS) - 1;
    let mantissa = SUB + (index & (SUB - 1));
    let upper = (u128::from(mantissa + 1) << shift).min(u128::from(u64::MAX));
    (mantissa << shift, u64::try_from(upper).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_within_its_bucket_and_buckets_are_narrow() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((0..64).map(|bit| 1u64 << bit));
        values.extend((1..64).map(|bit| (1u64 << bit) - 1));
        values.extend([999_999, 1_000_000, 2_000_000, 34_500_000, u64::MAX]);
        for value in values {
            let index = bucket(value);
            assert!(index < BUCKETS, "{value} → bucket {index}");
            let (lower, upper) = bounds(index);
            assert!(
                lower <= value && (value < upper || upper == u64::MAX),
                "{value} in [{lower}, {upper})"
            );
            assert!(
                (upper - lower) * SUB <= lower.max(SUB),
                "bucket [{lower}, {upper}) too wide"
            );
        }
    }

    #[test]
    fn buckets_are_contiguous() {
        for index in 1..BUCKETS {
            assert_eq!(
                bounds(index - 1).1,
                bounds(index).0,
                "gap before bucket {index}"
            );
        }
    }

    #[test]
    fn the_snapshot_counts_what_was_recorded() {
        let timing = RelayTiming::new();
        let start = Instant::now();
        for _ in 0..10 {
            timing.record(start);
        }
        let snapshot = timing.snapshot();
        assert_eq!(snapshot["count"], 10);
        let total: u64 = snapshot["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b[2].as_u64().expect("count"))
            .sum();
        assert_eq!(total, 10);
    }
}
