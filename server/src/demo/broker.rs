//! The demo's MQTT broker: Debian's `mosquitto` on a free loopback port, configured from a
//! private temporary directory, killed with the demo (`cargo xtask demo` installs it).
//!
//! The demo's service publishes its tunnel notification there and the demo device's agent
//! waits there for it, exactly as a device waits on AWS IoT Core.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long mosquitto may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running broker; dropping it stops it and removes its directory.
pub(super) struct Broker {
    /// `mqtt://127.0.0.1:PORT`.
    pub url: String,
    _child: Child,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    /// Starts mosquitto and waits until it accepts connections.
    pub(super) async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port for the MQTT broker")?
            .port();
        let dir = std::env::temp_dir().join(format!("burrow-demo-mqtt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).context("cannot make the broker's directory")?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n"),
        )
        .context("cannot write the broker's configuration")?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context(
                "cannot start mosquitto, the demo's MQTT broker (install it with \
                 `apt-get install mosquitto`, or run `cargo xtask demo`, which does)",
            )?;
        let broker = Self {
            url: format!("mqtt://127.0.0.1:{port}"),
            _child: child,
            dir,
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "mosquitto did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(broker)
    }
}
