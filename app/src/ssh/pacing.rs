//! How much of a transfer may be in flight at once: a delay-based limit (in the spirit of TCP
//! Vegas and LEDBAT) that keeps the tunnel busy without queueing seconds of file data in front
//! of the shell's keystrokes.
//!
//! # Why
//!
//! The shell and the Files panel share one SSH connection, and so one tunnel. Every byte of a
//! transfer that is queued on the way (in the tunneling service's rate limiter, in socket
//! buffers, in the page's WebSocket) is a byte a keystroke's echo waits behind. OpenSSH's
//! `sftp` keeps 64 requests of 32 KiB (2 MiB) in flight; through AWS's 800 KB/s per tunnel
//! that is 2.6 s of queue, and a key typed during a download took that long to echo. On a
//! fast link the same 2 MiB are what keeps the transfer from being capped by the round trip.
//!
//! # How
//!
//! [`Pacer`] times every request from sending to its answer and keeps the smallest round trip
//! seen, the path's delay without a queue (`min_rtt`). Each answer also gives a rate the path
//! carried: the window the request went out in over its round trip (Vegas's "actual" rate).
//! The path's rate is the largest of these over the last [`RATE_WINDOW_MS`] (BBR's bottleneck
//! bandwidth filter), and the limit moves toward
//!
//! ```text
//! rate × (min_rtt + QUEUE_TARGET_MS)
//! ```
//!
//! the bytes the path carries in one round trip plus [`QUEUE_TARGET_MS`] of queue — enough to
//! keep it busy, never more than a few tens of milliseconds in front of an echo.
//!
//! The largest recent rate, not the latest, because round trips also vary for reasons the
//! transfer does not cause: on a busy machine (the service, the agents and sshd waiting for a
//! CPU) a loopback round trip ranges from under a millisecond to tens. Taken one by one, every
//! long one would read as a queue and shrink the limit, the next round trip would be as long,
//! and the limit would fall to a fraction of what the path carries. A queue the transfer
//! builds itself cannot raise the rate past the bottleneck's, so the filter leaves the
//! rate-limited case as it is. When nothing
//! queues (round trips stay near `min_rtt`) the goal is larger than what is in flight, so the
//! limit grows by a factor of `(min_rtt + target) / rtt` per window — on a fast link to
//! [`MAX_IN_FLIGHT_BYTES`] within a few round trips — and when a queue builds past the target
//! the limit shrinks toward the rate the path really has. Each answer moves the limit by its
//! share of a window, so the limit changes smoothly, about once per round trip.
//!
//! When the path is slow, requests get smaller too ([`Pacer::request_size`]), down to
//! [`MIN_REQUEST`]: a 32 KiB request alone takes 41 ms through 800 KB/s, which would read as
//! queueing and leave less in front of a key than needed to keep the path busy.
//!
//! The type is sans-IO: the caller passes the time (milliseconds on any monotonic clock) and
//! asks what it may send; it never reads a clock and never waits, so its tests run on
//! simulated links.

use std::collections::VecDeque;

/// The largest request (OpenSSH's `sftp` asks for 32 KiB at a time).
pub const MAX_REQUEST: u32 = 32 * 1024;
/// How many requests a top-up waits room for on a fast path ([`Pacer::may_top_up`]).
pub const TOP_UP_REQUESTS: u32 = 4;
/// The limit, in requests, from which top-ups wait for a batch.
pub const TOP_UP_MIN_REQUESTS: u32 = 32;
/// The smallest request, used when the limit is small.
pub const MIN_REQUEST: u32 = 4 * 1024;
/// The most bytes in flight: OpenSSH's 64 requests of 32 KiB. A download's answers are also
/// held to the SSH window the page grants ([`super::client::WINDOW_SIZE`], smaller): the
/// device's server waits for window space, which the round trips measured here include.
pub const MAX_IN_FLIGHT_BYTES: u64 = 64 * MAX_REQUEST as u64;
/// What a transfer starts with: two full requests.
pub const INITIAL_IN_FLIGHT_BYTES: u64 = 2 * MAX_REQUEST as u64;
/// How much queueing delay a transfer may add in front of everything else on the connection.
pub const QUEUE_TARGET_MS: f64 = 25.0;
/// Round trips are never taken as shorter than this (a clock's resolution).
const MIN_RTT_FLOOR_MS: f64 = 0.1;
/// How far back the path's rate is the largest rate an answer showed (ms).
pub const RATE_WINDOW_MS: f64 = 250.0;

/// What [`Pacer::sent`] returns and [`Pacer::answered`] takes back: one request's record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticket {
    sent_at: f64,
    bytes: u64,
    /// The limit when this request went out.
    window: f64,
}

impl Ticket {
    /// The request's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// The in-flight limit of one transfer.
#[derive(Debug, Clone)]
pub struct Pacer {
    limit: f64,
    in_flight: u64,
    min_rtt: Option<f64>,
    /// The rate the path carries (bytes per ms), smoothed over answers.
    rate: Option<f64>,
    /// Recent answers' rates as (time, rate), decreasing in rate: the front is the largest
    /// within [`RATE_WINDOW_MS`] (a monotonic queue, so each answer costs O(1) on average).
    recent: VecDeque<(f64, f64)>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// A transfer that has sent nothing yet.
    pub fn new() -> Self {
        Self {
            limit: INITIAL_IN_FLIGHT_BYTES as f64,
            in_flight: 0,
            min_rtt: None,
            rate: None,
            recent: VecDeque::new(),
        }
    }

    /// Records an answer's rate at `now` and returns the largest within the window.
    fn windowed_max_rate(&mut self, now: f64, rate: f64) -> f64 {
        while self.recent.back().is_some_and(|&(_, seen)| seen <= rate) {
            self.recent.pop_back();
        }
        self.recent.push_back((now, rate));
        while self
            .recent
            .front()
            .is_some_and(|&(at, _)| at < now - RATE_WINDOW_MS)
        {
            self.recent.pop_front();
        }
        self.recent.front().map_or(rate, |&(_, max)| max)
    }

    /// The current limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit as u64
    }

    /// Bytes sent and not yet answered.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The shortest round trip seen (ms), once a request was answered.
    pub fn min_rtt(&self) -> Option<f64> {
        self.min_rtt
    }

    /// The size of the next request, in multiples of [`MIN_REQUEST`]: what the path carries in
    /// half the queueing target, at most [`MAX_REQUEST`]. A request's own transmission time is
    /// part of its round trip, so it must stay well under the target for the round trips to
    /// tell a queue apart; before any answer, half a full request.
    pub fn request_size(&self) -> u32 {
        let Some(rate) = self.rate else {
            return MAX_REQUEST / 2;
        };
        let wanted = (rate * QUEUE_TARGET_MS / 2.0) as u64;
        let rounded = wanted / u64::from(MIN_REQUEST) * u64::from(MIN_REQUEST);
        rounded.clamp(u64::from(MIN_REQUEST), u64::from(MAX_REQUEST)) as u32
    }

    /// Whether a request of `bytes` may go out now. One request may always be in flight, so a
    /// transfer never stalls.
    pub fn may_send(&self, bytes: u32) -> bool {
        self.in_flight == 0 || (self.in_flight + u64::from(bytes)) as f64 <= self.limit
    }

    /// Whether to top the window up now, before sending requests of `bytes` each: when nothing
    /// is in flight, or when room for one has opened; on a fast path (a limit of at least
    /// [`TOP_UP_MIN_REQUESTS`] requests), once room for [`TOP_UP_REQUESTS`] has. Requests then
    /// leave in bursts that share a WebSocket message, where topping up after every answer cost
    /// the page one `send` per request. A slow path sends few requests, and there a batch's
    /// gap in what is in flight would cost throughput: it keeps topping up one by one.
    pub fn may_top_up(&self, bytes: u32) -> bool {
        let one = f64::from(bytes);
        let batch = if self.limit >= one * f64::from(TOP_UP_MIN_REQUESTS) {
            one * f64::from(TOP_UP_REQUESTS)
        } else {
            one
        };
        self.in_flight == 0 || self.in_flight as f64 + batch <= self.limit
    }

    /// Records a request of `bytes` sent at `now` (ms).
    pub fn sent(&mut self, now: f64, bytes: u32) -> Ticket {
        self.in_flight += u64::from(bytes);
        Ticket {
            sent_at: now,
            bytes: u64::from(bytes),
            window: self.limit.max(self.in_flight as f64),
        }
    }

    /// Records the answer to `ticket` at `now` (ms) and adjusts the limit.
    pub fn answered(&mut self, ticket: Ticket, now: f64) {
        self.in_flight = self.in_flight.saturating_sub(ticket.bytes);
        let rtt = (now - ticket.sent_at).max(MIN_RTT_FLOOR_MS);
        let min_rtt = self.min_rtt.map_or(rtt, |seen| seen.min(rtt));
        self.min_rtt = Some(min_rtt);
        // The window this request went out in was carried in its round trip (Vegas's "actual"
        // rate). When the transfer did not fill its window this overestimates the rate and the
        // limit grows, which is harmless: it is capped, and a queue shows in the round trips.
        let rate = ticket.window / rtt;
        self.rate = Some(
            self.rate
                .map_or(rate, |smooth| smooth + (rate - smooth) / 8.0),
        );
        let path_rate = self.windowed_max_rate(now, rate);
        let mut goal = path_rate * (min_rtt + QUEUE_TARGET_MS);
        if rtt - min_rtt < QUEUE_TARGET_MS / 2.0 {
            // No queue worth the name: grow like a slow start, doubling per round trip, so a
            // long path reaches its rate in a few round trips instead of many.
            goal = goal.max(2.0 * ticket.window);
        }
        let goal = goal.clamp(f64::from(MIN_REQUEST), MAX_IN_FLIGHT_BYTES as f64);
        // Move by this answer's share of a window: about the whole way once per round trip.
        let share = (ticket.bytes as f64 / self.limit).min(1.0);
        self.limit += (goal - self.limit) * share;
        self.limit = self
            .limit
            .clamp(f64::from(MIN_REQUEST), MAX_IN_FLIGHT_BYTES as f64);
        // Close enough to the cap is the cap (the approach above is only asymptotic).
        if MAX_IN_FLIGHT_BYTES as f64 - self.limit < f64::from(MIN_REQUEST) {
            self.limit = MAX_IN_FLIGHT_BYTES as f64;
        }
    }

    /// Forgets a request that got no answer (the transfer is ending).
    pub fn abandoned(&mut self, ticket: Ticket) {
        self.in_flight = self.in_flight.saturating_sub(ticket.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated path: a fixed delay each way plus a first-in-first-out bottleneck of `rate`
    /// bytes per ms (the tunnel's limit), which a keystroke's echo queues behind like any byte.
    struct Link {
        rate: f64,
        delay: f64,
        /// When the bottleneck is free again.
        busy_until: f64,
        /// Up to this much more delay on the way back, at random, whatever the transfer does
        /// (a busy machine scheduling the processes on the path); answers stay in order.
        jitter: f64,
        seed: u64,
        last: f64,
    }

    impl Link {
        fn new(rate: f64, delay: f64) -> Self {
            Self {
                rate,
                delay,
                busy_until: 0.0,
                jitter: 0.0,
                seed: 0x2545_f491_4f6c_dd1d,
                last: 0.0,
            }
        }

        /// Sends `bytes` at `now`; returns when the answer arrives.
        fn carry(&mut self, now: f64, bytes: u64) -> f64 {
            let at_bottleneck = now + self.delay;
            let start = at_bottleneck.max(self.busy_until);
            self.busy_until = start + bytes as f64 / self.rate;
            // xorshift: deterministic noise in [0, 1).
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let noise = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
            self.last = self
                .last
                .max(self.busy_until + self.delay + noise * self.jitter);
            self.last
        }
    }

    struct Run {
        /// Bytes per ms delivered.
        throughput: f64,
        /// How long an echo sent at a random moment would wait (ms, worst seen).
        worst_echo: f64,
        final_limit: u64,
        min_rtt: f64,
    }

    /// Moves `total` bytes through `link` as a transfer does: send while the pacer allows, take
    /// answers in order. Every 7 ms a one-byte "echo" probes the queue.
    fn transfer(link: &mut Link, total: u64, paced: bool) -> Run {
        transfer_with(&mut Pacer::new(), link, total, paced)
    }

    /// [`transfer`] with a given pacer, which the caller can look at afterwards.
    fn transfer_with(pacer: &mut Pacer, link: &mut Link, total: u64, paced: bool) -> Run {
        let mut now = 0.0;
        let mut sent = 0u64;
        let mut done = 0u64;
        let mut waiting: VecDeque<(f64, Ticket)> = VecDeque::new();
        let mut worst_echo: f64 = 0.0;
        let mut next_probe = 50.0;
        while done < total {
            // Paced, as the transfers do: a top-up starts once room for a batch has opened.
            let top_up = !paced || pacer.may_top_up(pacer.request_size());
            loop {
                let size = if paced {
                    pacer.request_size()
                } else {
                    MAX_REQUEST
                };
                let allowed = if paced {
                    pacer.may_send(size)
                } else {
                    pacer.in_flight() + u64::from(size) <= MAX_IN_FLIGHT_BYTES
                };
                if !top_up || sent >= total || !allowed {
                    break;
                }
                let ticket = pacer.sent(now, size);
                waiting.push_back((link.carry(now, u64::from(size)), ticket));
                sent += u64::from(size);
            }
            let (at, ticket) = waiting.pop_front().expect("something in flight");
            // Echo probes in the meantime: their wait is the queue at the bottleneck.
            while next_probe < at {
                let wait = (link.busy_until - (next_probe + link.delay)).max(0.0);
                if next_probe > 2000.0 {
                    worst_echo = worst_echo.max(wait);
                }
                next_probe += 7.0;
            }
            now = at;
            pacer.answered(ticket, now);
            done += ticket.bytes();
        }
        Run {
            throughput: done as f64 / now,
            worst_echo,
            final_limit: pacer.limit(),
            min_rtt: pacer.min_rtt().unwrap_or(f64::NAN),
        }
    }

    #[test]
    fn a_rate_limited_tunnel_gets_its_rate_with_little_queued_in_front_of_keys() {
        // AWS's 800 KB/s per tunnel, 2 ms each way (a tunnel to a nearby region).
        let mut link = Link::new(800.0, 2.0);
        let paced = transfer(&mut link, 20_000_000, true);
        assert!(
            paced.throughput > 0.97 * 800.0,
            "keeps the limit busy: {} B/ms",
            paced.throughput
        );
        assert!(
            paced.worst_echo < 60.0,
            "an echo waits behind at most a few tens of ms: {}",
            paced.worst_echo
        );
        // Without the pacer, 2 MiB queue in front of every echo: 2.6 s.
        let mut link = Link::new(800.0, 2.0);
        let unpaced = transfer(&mut link, 20_000_000, false);
        assert!(unpaced.worst_echo > 2000.0, "{}", unpaced.worst_echo);
    }

    #[test]
    fn a_long_round_trip_keeps_enough_in_flight_for_the_rate() {
        // 800 KB/s across an ocean: 90 ms each way, so 144 KB are on the way at any time.
        let mut link = Link::new(800.0, 90.0);
        let run = transfer(&mut link, 20_000_000, true);
        assert!(run.throughput > 0.95 * 800.0, "{} B/ms", run.throughput);
        assert!(run.worst_echo < 60.0, "{}", run.worst_echo);
        assert!(run.min_rtt >= 180.0, "{}", run.min_rtt);
    }

    #[test]
    fn a_fast_link_grows_to_the_full_window_and_loses_no_throughput() {
        // 100 MB/s with 5 ms each way: the window, not the link, caps a transfer.
        let fast = || Link::new(100_000.0, 5.0);
        let paced = transfer(&mut fast(), 200_000_000, true);
        let unpaced = transfer(&mut fast(), 200_000_000, false);
        assert_eq!(paced.final_limit, MAX_IN_FLIGHT_BYTES);
        assert!(
            paced.throughput >= 0.97 * unpaced.throughput,
            "paced {} vs unpaced {} B/ms",
            paced.throughput,
            unpaced.throughput
        );
    }

    #[test]
    fn a_fast_link_with_little_delay_stays_saturated() {
        // Loopback-like: 60 MB/s (the page's own pace) and well under a millisecond each way.
        let fast = || Link::new(60_000.0, 0.3);
        let paced = transfer(&mut fast(), 200_000_000, true);
        let unpaced = transfer(&mut fast(), 200_000_000, false);
        assert!(
            paced.throughput >= 0.99 * unpaced.throughput,
            "paced {} vs unpaced {} B/ms",
            paced.throughput,
            unpaced.throughput
        );
        // Less queue than the unpaced 2 MiB (35 ms at this rate), and about the target.
        assert!(
            paced.worst_echo <= QUEUE_TARGET_MS + 5.0,
            "{}",
            paced.worst_echo
        );
    }

    #[test]
    fn delay_the_transfer_does_not_cause_does_not_shrink_the_limit() {
        // A loaded machine: loopback at 60 MB/s, but each answer up to 40 ms late at random,
        // however much is in flight. Read one by one, the late answers look like a queue.
        let jittery = || {
            let mut link = Link::new(60_000.0, 0.3);
            link.jitter = 40.0;
            link
        };
        let paced = transfer(&mut jittery(), 200_000_000, true);
        let unpaced = transfer(&mut jittery(), 200_000_000, false);
        assert!(
            paced.throughput >= 0.9 * unpaced.throughput,
            "paced {} vs unpaced {} B/ms",
            paced.throughput,
            unpaced.throughput
        );
    }

    #[test]
    fn the_limit_follows_a_rate_that_drops_and_recovers() {
        let mut pacer = Pacer::new();
        let mut link = Link::new(100_000.0, 1.0);
        let mut now = 0.0;
        let mut waiting: VecDeque<(f64, Ticket)> = VecDeque::new();
        let mut step = |pacer: &mut Pacer, link: &mut Link, now: &mut f64, until: f64| {
            while *now < until {
                while pacer.may_send(pacer.request_size()) {
                    let size = pacer.request_size();
                    let ticket = pacer.sent(*now, size);
                    waiting.push_back((link.carry(*now, u64::from(size)), ticket));
                }
                let (at, ticket) = waiting.pop_front().expect("in flight");
                *now = at;
                pacer.answered(ticket, at);
            }
        };
        step(&mut pacer, &mut link, &mut now, 1000.0);
        assert_eq!(pacer.limit(), MAX_IN_FLIGHT_BYTES);
        // Another transfer (or a rate limit) leaves this one 800 KB/s.
        link.rate = 800.0;
        step(&mut pacer, &mut link, &mut now, 10_000.0);
        assert!(pacer.limit() < 64 * 1024, "{}", pacer.limit());
        assert!(pacer.request_size() < MAX_REQUEST);
        link.rate = 100_000.0;
        step(&mut pacer, &mut link, &mut now, 11_000.0);
        assert_eq!(pacer.limit(), MAX_IN_FLIGHT_BYTES);
        assert_eq!(pacer.request_size(), MAX_REQUEST);
    }

    #[test]
    fn top_ups_wait_for_a_batch_only_on_a_fast_path() {
        // Grown to the full window (64 requests): after one answer, no top-up; after four, one.
        let mut pacer = Pacer::new();
        let mut link = Link::new(100_000.0, 1.0);
        let _ = transfer_with(&mut pacer, &mut link, 50_000_000, true);
        assert_eq!(pacer.limit(), MAX_IN_FLIGHT_BYTES);
        let tickets: Vec<Ticket> = (0..64).map(|_| pacer.sent(0.0, MAX_REQUEST)).collect();
        let mut tickets = tickets.into_iter();
        pacer.answered(tickets.next().expect("sent"), 1.0);
        assert!(pacer.may_send(MAX_REQUEST));
        assert!(!pacer.may_top_up(MAX_REQUEST));
        for ticket in tickets.by_ref().take(3) {
            pacer.answered(ticket, 1.0);
        }
        assert!(pacer.may_top_up(MAX_REQUEST));
        // A fresh transfer's small limit (two requests) tops up after every answer.
        let mut small = Pacer::new();
        let a = small.sent(0.0, MAX_REQUEST / 2);
        let _b = small.sent(0.0, MAX_REQUEST / 2);
        small.answered(a, 1.0);
        assert!(small.may_top_up(MAX_REQUEST / 2));
    }

    #[test]
    fn one_request_may_always_go_and_abandoned_ones_are_released() {
        let mut pacer = Pacer::new();
        assert_eq!(pacer.request_size(), 16 * 1024);
        assert!(pacer.may_send(MAX_REQUEST));
        let a = pacer.sent(0.0, MAX_REQUEST);
        let b = pacer.sent(0.0, MAX_REQUEST);
        assert!(!pacer.may_send(MIN_REQUEST));
        pacer.abandoned(a);
        pacer.abandoned(b);
        assert_eq!(pacer.in_flight(), 0);
        assert!(pacer.may_send(MAX_REQUEST));
        assert_eq!(pacer.min_rtt(), None);
    }
}
