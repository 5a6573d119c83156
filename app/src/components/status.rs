//! What the status line says: the connection's step in words, the round-trip time and the
//! bytes carried. Plain Rust, so the wording is tested natively.

use crate::session::{Phase, Stats};

/// Where the page's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// No session has been started yet.
    #[default]
    Idle,
    /// The operator pressed Connect; the session has not reported a phase yet.
    Starting,
    /// Device mode: asking the tunnel API for a tunnel (or new tokens) for the device.
    OpeningTunnel,
    /// Device mode: waiting for the device to join its tunnel.
    WaitingForDevice,
    /// The session reported this phase.
    Phase(Phase),
    /// The operator pressed Disconnect; the session has not ended yet.
    Disconnecting,
    /// The session is over (cleanly or not: the error panel tells).
    Ended,
}

impl Status {
    /// The words shown in the status line.
    pub fn label(self) -> &'static str {
        match self {
            Status::Idle => "Not connected",
            Status::Starting => "Connecting…",
            Status::OpeningTunnel => "Opening a tunnel…",
            Status::WaitingForDevice => "Waiting for the device to connect…",
            Status::Phase(Phase::Cookie) => "Cookie…",
            Status::Phase(Phase::Tunnel) => "Opening tunnel…",
            Status::Phase(Phase::SshHandshake) => "SSH handshake…",
            Status::Phase(Phase::Auth) => "Authenticating…",
            Status::Phase(Phase::Shell) => "Starting shell…",
            Status::Phase(Phase::Connected) => "Connected",
            Status::Disconnecting => "Disconnecting…",
            Status::Phase(Phase::Closed) | Status::Ended => "Disconnected",
        }
    }

    /// The words shown in the status line when the device's name is known: Device mode's
    /// steps name it ("opening a tunnel for pump-7").
    pub fn label_for(self, device: Option<&str>) -> String {
        match (self, device) {
            (Status::OpeningTunnel, Some(thing)) => format!("Opening a tunnel for {thing}…"),
            (Status::WaitingForDevice, Some(thing)) => format!("Waiting for {thing} to connect…"),
            _ => self.label().to_owned(),
        }
    }

    /// Whether Device mode is preparing the tunnel (no session runs yet).
    pub fn is_preparing(self) -> bool {
        matches!(self, Status::OpeningTunnel | Status::WaitingForDevice)
    }

    /// Whether a session is under way (connecting, connected or closing).
    pub fn is_active(self) -> bool {
        !matches!(
            self,
            Status::Idle | Status::Ended | Status::Phase(Phase::Closed)
        )
    }

    /// Whether the session is still being set up (shown with a progress indicator).
    pub fn is_connecting(self) -> bool {
        matches!(
            self,
            Status::Starting
                | Status::OpeningTunnel
                | Status::WaitingForDevice
                | Status::Phase(
                    Phase::Cookie
                        | Phase::Tunnel
                        | Phase::SshHandshake
                        | Phase::Auth
                        | Phase::Shell
                )
        )
    }

    /// Whether the shell is running.
    pub fn is_connected(self) -> bool {
        self == Status::Phase(Phase::Connected)
    }

    /// A CSS class for the status dot.
    pub fn tone(self) -> &'static str {
        if self.is_connected() {
            "ok"
        } else if self.is_active() {
            "busy"
        } else {
            "off"
        }
    }
}

/// A byte count the way people read it: `0 B`, `999 B`, `1.5 KiB`, `12.0 MiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: the precision lost converting to f64 does not show at one decimal.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The figures after the status words: `rtt 12 ms · ↓ 1.2 KiB · ↑ 300 B`.
pub fn details(stats: &Stats) -> String {
    let mut parts = Vec::with_capacity(3);
    if let Some(rtt) = stats.rtt_ms.filter(|rtt| rtt.is_finite() && *rtt >= 0.0) {
        if rtt < 10.0 {
            parts.push(format!("rtt {rtt:.1} ms"));
        } else {
            parts.push(format!("rtt {rtt:.0} ms"));
        }
    }
    parts.push(format!("↓ {}", format_bytes(stats.bytes_in)));
    parts.push(format!("↑ {}", format_bytes(stats.bytes_out)));
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_its_words() {
        let expected = [
            (Status::Idle, "Not connected"),
            (Status::Starting, "Connecting…"),
            (Status::OpeningTunnel, "Opening a tunnel…"),
            (
                Status::WaitingForDevice,
                "Waiting for the device to connect…",
            ),
            (Status::Phase(Phase::Cookie), "Cookie…"),
            (Status::Phase(Phase::Tunnel), "Opening tunnel…"),
            (Status::Phase(Phase::SshHandshake), "SSH handshake…"),
            (Status::Phase(Phase::Auth), "Authenticating…"),
            (Status::Phase(Phase::Shell), "Starting shell…"),
            (Status::Phase(Phase::Connected), "Connected"),
            (Status::Disconnecting, "Disconnecting…"),
            (Status::Phase(Phase::Closed), "Disconnected"),
            (Status::Ended, "Disconnected"),
        ];
        for (status, label) in expected {
            assert_eq!(status.label(), label, "{status:?}");
        }
    }

    #[test]
    fn device_steps_name_the_device() {
        let pump = Some("pump-7");
        assert_eq!(
            Status::OpeningTunnel.label_for(pump),
            "Opening a tunnel for pump-7…"
        );
        assert_eq!(
            Status::WaitingForDevice.label_for(pump),
            "Waiting for pump-7 to connect…"
        );
        assert_eq!(
            Status::Phase(Phase::Auth).label_for(pump),
            "Authenticating…"
        );
        assert_eq!(Status::OpeningTunnel.label_for(None), "Opening a tunnel…");
        assert!(
            Status::WaitingForDevice.is_preparing() && Status::WaitingForDevice.is_connecting()
        );
        assert!(Status::OpeningTunnel.is_active() && !Status::Starting.is_preparing());
    }

    #[test]
    fn activity() {
        assert!(!Status::Idle.is_active());
        assert!(Status::Starting.is_active() && Status::Starting.is_connecting());
        assert!(Status::Phase(Phase::Auth).is_connecting());
        let connected = Status::Phase(Phase::Connected);
        assert!(connected.is_active() && connected.is_connected() && !connected.is_connecting());
        assert!(Status::Disconnecting.is_active() && !Status::Disconnecting.is_connecting());
        assert!(!Status::Ended.is_active() && !Status::Phase(Phase::Closed).is_active());
        assert_eq!(connected.tone(), "ok");
        assert_eq!(Status::Starting.tone(), "busy");
        assert_eq!(Status::Ended.tone(), "off");
    }

    #[test]
    fn bytes() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1.0 KiB");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(format_bytes(3 << 30), "3.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn details_line() {
        let stats = Stats {
            rtt_ms: Some(12.4),
            bytes_in: 2048,
            bytes_out: 300,
        };
        assert_eq!(details(&stats), "rtt 12 ms · ↓ 2.0 KiB · ↑ 300 B");
        let fast = Stats {
            rtt_ms: Some(0.84),
            ..Stats::default()
        };
        assert_eq!(details(&fast), "rtt 0.8 ms · ↓ 0 B · ↑ 0 B");
        let unknown = Stats {
            rtt_ms: Some(f64::NAN),
            ..Stats::default()
        };
        assert_eq!(details(&unknown), "↓ 0 B · ↑ 0 B");
    }
}
