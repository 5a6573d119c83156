//! Waiting for the device to join a tunnel the page opened: `describe` is polled until the
//! destination is connected, the tunnel closes, or a deadline passes.
//!
//! Sans-IO: [`DeviceWait`] takes each describe answer with the time it arrived and says what
//! to do next; the browser driver owns the timer and the HTTP call. The errors it ends with say
//! what to check: the thing name, and whether the device's agent runs and is subscribed to the
//! thing's notification topic.

use std::time::Duration;

use super::{ApiError, Tunnel, TunnelStatus};

/// How long a device may take to join a tunnel opened for it.
pub const DEVICE_DEADLINE: Duration = Duration::from_secs(30);
/// The pause between two describes.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// After new tokens for both ends, how long a connected destination is not believed yet: the
/// device's old connection may still be up until its new session (started by the notification)
/// takes the tunnel over, and a stream opened on the old one would be cut by that takeover.
pub const SETTLE_AFTER_ROTATION: Duration = Duration::from_secs(2);

/// Why Device mode could not reach the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A call to the tunnel API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The device did not join the tunnel in time.
    #[error("{thing} did not connect to its tunnel within {seconds} s")]
    NeverConnected {
        /// The thing name.
        thing: String,
        /// The deadline, in seconds.
        seconds: u64,
    },
    /// The tunnel closed while waiting (closed elsewhere, or expired).
    #[error("the tunnel for {thing} closed before the device connected")]
    ClosedWhileWaiting {
        /// The thing name.
        thing: String,
    },
}

impl DeviceError {
    /// Words for the error panel, saying what to check.
    pub fn user_message(&self) -> String {
        match self {
            DeviceError::Api(err) => err.user_message(),
            DeviceError::NeverConnected { thing, seconds } => format!(
                "{thing} did not connect to its tunnel within {seconds} s. Check the thing \
                 name, and that the device's agent is running and subscribed to \
                 $aws/things/{thing}/tunnels/notify (for burrow: `burrow agent --thing {thing} \
                 --mqtt …`). The tunnel stays open: Open tunnels lists it."
            ),
            DeviceError::ClosedWhileWaiting { thing } => format!(
                "The tunnel for {thing} was closed before the device connected (closed \
                 elsewhere or expired): connect again to open a new one."
            ),
        }
    }
}

/// What the waiter wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The device is connected: go on to SSH.
    Connected,
    /// Describe again after this pause.
    PollAfter(Duration),
    /// Give up with this error.
    Fail(DeviceError),
}

/// The wait for one tunnel's device; times are measured from when the tunnel was opened.
#[derive(Debug, Clone)]
pub struct DeviceWait {
    thing: String,
    deadline: Duration,
    settle: Duration,
}

impl DeviceWait {
    /// A wait for `thing` with the default deadline.
    pub fn new(thing: &str) -> Self {
        Self::with_deadline(thing, DEVICE_DEADLINE)
    }

    /// A wait for `thing` that gives up after `deadline`.
    pub fn with_deadline(thing: &str, deadline: Duration) -> Self {
        Self {
            thing: thing.to_owned(),
            deadline,
            settle: Duration::ZERO,
        }
    }

    /// A wait after both ends got new tokens: a connected destination counts only once
    /// [`SETTLE_AFTER_ROTATION`] has passed.
    pub fn after_rotation(thing: &str) -> Self {
        Self {
            settle: SETTLE_AFTER_ROTATION,
            ..Self::new(thing)
        }
    }

    /// The thing waited for.
    pub fn thing(&self) -> &str {
        &self.thing
    }

    /// Takes a describe answer that arrived `elapsed` after the wait began.
    pub fn on_describe(&self, answer: Result<Tunnel, ApiError>, elapsed: Duration) -> Next {
        match answer {
            Ok(tunnel) if tunnel.status == TunnelStatus::Closed => {
                Next::Fail(DeviceError::ClosedWhileWaiting {
                    thing: self.thing.clone(),
                })
            }
            Ok(tunnel) if tunnel.destination_connected && elapsed >= self.settle => Next::Connected,
            Ok(tunnel) if tunnel.destination_connected => Next::PollAfter(self.settle - elapsed),
            // A describe failing once (a network blip) is not fatal before the deadline;
            // answers that cannot change on retry are.
            Err(
                err @ (ApiError::NotFound
                | ApiError::Off
                | ApiError::Unauthenticated
                | ApiError::Refused { .. }
                | ApiError::ThingNotAllowed(_)),
            ) => Next::Fail(err.into()),
            Ok(_) | Err(_) if elapsed >= self.deadline => Next::Fail(DeviceError::NeverConnected {
                thing: self.thing.clone(),
                seconds: self.deadline.as_secs(),
            }),
            Ok(_) | Err(_) => Next::PollAfter(POLL_EVERY.min(self.deadline - elapsed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(status: TunnelStatus, connected: bool) -> Tunnel {
        Tunnel {
            tunnel_id: "t-1".into(),
            status,
            thing_name: Some("pump-7".into()),
            services: vec!["SSH".into()],
            source_connected: false,
            destination_connected: connected,
            created_at: 0.0,
            expires_at: 0.0,
        }
    }

    #[test]
    fn polls_until_the_device_connects() {
        let wait = DeviceWait::new("pump-7");
        let secs = Duration::from_secs;
        assert_eq!(
            wait.on_describe(Ok(tunnel(TunnelStatus::Open, false)), secs(1)),
            Next::PollAfter(POLL_EVERY)
        );
        assert_eq!(
            wait.on_describe(Err(ApiError::Unreachable), secs(2)),
            Next::PollAfter(POLL_EVERY)
        );
        assert_eq!(
            wait.on_describe(Ok(tunnel(TunnelStatus::Open, true)), secs(3)),
            Next::Connected
        );
    }

    #[test]
    fn after_new_tokens_the_old_connection_is_not_believed_at_once() {
        let wait = DeviceWait::after_rotation("pump-7");
        assert_eq!(
            wait.on_describe(
                Ok(tunnel(TunnelStatus::Open, true)),
                Duration::from_millis(300)
            ),
            Next::PollAfter(Duration::from_millis(1700))
        );
        assert_eq!(
            wait.on_describe(Ok(tunnel(TunnelStatus::Open, true)), SETTLE_AFTER_ROTATION),
            Next::Connected
        );
    }

    #[test]
    fn the_last_poll_stops_at_the_deadline() {
        let wait = DeviceWait::with_deadline("pump-7", Duration::from_millis(1200));
        assert_eq!(
            wait.on_describe(
                Ok(tunnel(TunnelStatus::Open, false)),
                Duration::from_millis(1000)
            ),
            Next::PollAfter(Duration::from_millis(200))
        );
    }

    #[test]
    fn a_device_that_never_connects_names_the_topic() {
        let wait = DeviceWait::new("pump-7");
        let Next::Fail(err) =
            wait.on_describe(Ok(tunnel(TunnelStatus::Open, false)), DEVICE_DEADLINE)
        else {
            panic!("the deadline passed");
        };
        assert_eq!(
            err,
            DeviceError::NeverConnected {
                thing: "pump-7".into(),
                seconds: 30
            }
        );
        let words = err.user_message();
        assert!(
            words.contains("$aws/things/pump-7/tunnels/notify"),
            "{words}"
        );
        assert!(words.contains("Check the thing name"), "{words}");
        assert!(words.contains("agent is running"), "{words}");
    }

    #[test]
    fn closed_or_unknown_tunnels_end_the_wait_at_once() {
        let wait = DeviceWait::new("pump-7");
        let zero = Duration::ZERO;
        assert_eq!(
            wait.on_describe(Ok(tunnel(TunnelStatus::Closed, false)), zero),
            Next::Fail(DeviceError::ClosedWhileWaiting {
                thing: "pump-7".into()
            })
        );
        assert_eq!(
            wait.on_describe(Err(ApiError::NotFound), zero),
            Next::Fail(DeviceError::Api(ApiError::NotFound))
        );
        assert_eq!(
            wait.on_describe(Err(ApiError::Unauthenticated), zero),
            Next::Fail(DeviceError::Api(ApiError::Unauthenticated))
        );
    }
}
