//! The per-tunnel bandwidth quota (`--rate-limit-per-tunnel`), like AWS's 800 Kbps per tunnel,
//! and the relay's handshake rate per client address ([`PerAddress`]).
//!
//! [`TokenBucket`] is sans-IO: the caller passes the time (a [`Duration`] since any origin) and
//! gets back how long to wait before relaying a message. The bucket holds one second's worth of
//! bytes, so short bursts pass at once and sustained traffic settles at the rate. Bytes of both
//! directions count against the same bucket. It never reads a clock, so its tests run on
//! simulated time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// A bandwidth, stored in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    bytes_per_sec: u64,
}

impl Rate {
    /// The rate in bytes per second.
    pub(crate) fn bytes_per_sec(self) -> u64 {
        self.bytes_per_sec
    }
}

/// A `--rate-limit-per-tunnel` value that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate {0:?}: use a number with a unit such as 800kbps, 2Mbps, 64000bps, 100KB/s or 1MB/s"
)]
pub(crate) struct RateError(String);

impl FromStr for Rate {
    type Err = RateError;

    /// Parses `800kbps`, `800Kbps`, `2mbps`, `64000bps`, `64000` (bits per second), `100KB/s`,
    /// `1MB/s` or `512B/s`. The prefixes are decimal (k = 1000).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RateError(s.to_owned());
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| err())?;
        let (scale, bits) = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "bps" => (1.0, true),
            "kbps" => (1e3, true),
            "mbps" => (1e6, true),
            "gbps" => (1e9, true),
            "b/s" => (1.0, false),
            "kb/s" => (1e3, false),
            "mb/s" => (1e6, false),
            _ => return Err(err()),
        };
        let bytes = value * scale / if bits { 8.0 } else { 1.0 };
        if !bytes.is_finite() || !(1.0..=1e12).contains(&bytes) {
            return Err(err());
        }
        Ok(Rate {
            bytes_per_sec: bytes as u64,
        })
    }
}

/// A token bucket that lets the balance go negative: a message larger than the balance still
/// passes, and the debt is the wait.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    capacity: f64,
    balance: f64,
    last: Duration,
}

impl TokenBucket {
    /// A full bucket for `rate`, at time `now`.
    pub(crate) fn new(rate: Rate, now: Duration) -> Self {
        let rate = rate.bytes_per_sec() as f64;
        Self {
            rate,
            capacity: rate,
            balance: rate,
            last: now,
        }
    }

    /// Takes `bytes` at time `now`; returns how long to wait before sending them.
    pub(crate) fn reserve(&mut self, now: Duration, bytes: usize) -> Duration {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.balance = (self.balance + elapsed * self.rate).min(self.capacity);
        self.balance -= bytes as f64;
        if self.balance >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.balance / self.rate)
        }
    }
}

/// Client addresses tracked at most; past this, addresses whose bucket is full again are
/// forgotten (they are no different from new ones).
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// A count of events (relay handshakes) per client address and minute: each address may have
/// a burst of `per_minute`, then one every `60 / per_minute` seconds. Sans-IO like
/// [`TokenBucket`]: the caller passes the time. IPv6 clients count per /64, since one host
/// usually holds a whole /64.
#[derive(Debug)]
pub(crate) struct PerAddress {
    per_minute: u32,
    /// Each address's balance (in events) and when it was last updated.
    buckets: HashMap<IpAddr, (f64, Duration)>,
}

impl PerAddress {
    /// A limiter allowing `per_minute` events per address and minute (0: none at all).
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: HashMap::new(),
        }
    }

    /// The events allowed per address and minute.
    pub(crate) fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Counts one event from `addr` at `now`: `Ok` if allowed, else how long until the next
    /// one is.
    pub(crate) fn check(&mut self, addr: IpAddr, now: Duration) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        if self.per_minute == 0 {
            return Err(Duration::from_secs(60));
        }
        let key = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut seg = v6.segments();
                    seg[4..].fill(0);
                    IpAddr::V6(seg.into())
                }
            },
            v4 => v4,
        };
        if self.buckets.len() >= MAX_TRACKED_ADDRESSES && !self.buckets.contains_key(&key) {
            self.buckets.retain(|_, (balance, last)| {
                *balance + now.saturating_sub(*last).as_secs_f64() * rate < capacity
            });
            if self.buckets.len() >= MAX_TRACKED_ADDRESSES {
                // Thousands of addresses all busy: nobody new gets in until some calm down.
                return Err(Duration::from_secs_f64(1.0 / rate));
            }
        }
        let (balance, last) = self.buckets.entry(key).or_insert((capacity, now));
        let elapsed = now.saturating_sub(*last).as_secs_f64();
        *last = (*last).max(now);
        *balance = (*balance + elapsed * rate).min(capacity);
        if *balance >= 1.0 {
            *balance -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *balance) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        let bps = |s: &str| s.parse::<Rate>().map(Rate::bytes_per_sec);
        assert_eq!(bps("800kbps"), Ok(100_000));
        assert_eq!(bps("800Kbps"), Ok(100_000));
        assert_eq!(bps("2Mbps"), Ok(250_000));
        assert_eq!(bps("64000"), Ok(8_000));
        assert_eq!(bps("100KB/s"), Ok(100_000));
        assert_eq!(bps("1.5MB/s"), Ok(1_500_000));
        for bad in ["", "fast", "0", "-5kbps", "10 parsecs", "1e400"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
    }

    /// Sends `total` bytes in messages of `chunk` bytes as fast as the bucket allows, on
    /// simulated time, and returns when the last one may go.
    fn simulate(rate: &str, total: usize, chunk: usize) -> Duration {
        let mut bucket = TokenBucket::new(rate.parse().expect("valid rate"), Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut sent = 0;
        while sent < total {
            now += bucket.reserve(now, chunk);
            sent += chunk;
        }
        now
    }

    #[test]
    fn sustained_traffic_settles_at_the_rate() {
        // 800 Kbps = 100 000 B/s. One second of burst, then 1 MB more takes 10 s.
        let t = simulate("800kbps", 1_100_000, 1_000);
        assert!((9.9..=10.1).contains(&t.as_secs_f64()), "{t:?}");
        // Message size does not change the long-run rate.
        let t = simulate("800kbps", 1_100_000, 100_000);
        assert!((9.9..=10.1).contains(&t.as_secs_f64()), "{t:?}");
    }

    #[test]
    fn a_burst_within_the_bucket_passes_at_once_and_idle_time_refills() {
        let mut bucket = TokenBucket::new("800kbps".parse().expect("valid"), Duration::ZERO);
        assert_eq!(bucket.reserve(Duration::ZERO, 100_000), Duration::ZERO);
        assert_eq!(
            bucket.reserve(Duration::ZERO, 50_000),
            Duration::from_millis(500)
        );
        // After two idle seconds the bucket is full again, never fuller.
        let later = Duration::from_secs(3);
        assert_eq!(bucket.reserve(later, 100_000), Duration::ZERO);
        assert!(bucket.reserve(later, 1) > Duration::ZERO);
        // Time going backwards (a caller bug) does not refill or panic.
        assert!(bucket.reserve(Duration::ZERO, 1) > Duration::ZERO);
    }

    #[test]
    fn per_address_allows_a_burst_then_the_rate() {
        let mut limiter = PerAddress::new(6);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let t0 = Duration::from_secs(100);
        for _ in 0..6 {
            assert_eq!(limiter.check(a, t0), Ok(()));
        }
        let wait = limiter
            .check(a, t0)
            .expect_err("the seventh at once is refused");
        assert!((9.9..=10.1).contains(&wait.as_secs_f64()), "{wait:?}");
        // Another address has its own budget.
        assert_eq!(limiter.check(b, t0), Ok(()));
        // One more every 10 s.
        assert_eq!(limiter.check(a, t0 + Duration::from_secs(10)), Ok(()));
        assert!(limiter.check(a, t0 + Duration::from_secs(11)).is_err());
        // The same /64 is the same client.
        let v6a: IpAddr = "2001:db8::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
        for _ in 0..6 {
            assert_eq!(limiter.check(v6a, t0), Ok(()));
        }
        assert!(limiter.check(v6b, t0).is_err());
    }

    #[test]
    fn per_address_memory_is_bounded() {
        let mut limiter = PerAddress::new(60);
        let t0 = Duration::from_secs(1);
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            let _ = limiter.check(ip, t0);
        }
        assert!(limiter.buckets.len() <= MAX_TRACKED_ADDRESSES);
        // Once the old ones have refilled, new addresses get in again.
        let later = t0 + Duration::from_secs(120);
        assert_eq!(
            limiter.check("192.0.2.9".parse().expect("ip"), later),
            Ok(())
        );
        assert!(limiter.buckets.len() <= MAX_TRACKED_ADDRESSES);
    }
}
