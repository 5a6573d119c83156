//! Debian's `mosquitto` broker, started by the tests on a loopback port with its own
//! configuration and persistence (plain, or TLS requiring client certificates made here), and
//! `burrow agent --thing` waiting on it for its tunnels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{Proc, Serve, TempDir, agent, free_port, run, wait_connected, wait_listening};

/// TLS material for the broker and its clients, made here with rcgen.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// A CA, a broker certificate for 127.0.0.1 and a client certificate, in `dir`.
    pub fn make(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "burrow test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca).expect("certificate");
            (cert.pem(), key.serialize_pem())
        };
        let (server_pem, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "broker");
        let (client_pem, client_key) = leaf(Vec::new(), "dev-tls");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        Pki {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server_pem),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_pem),
            client_key: write("client.key", &client_key),
        }
    }
}

/// A running `mosquitto` on a loopback port, with its own configuration and persistence.
pub struct Broker {
    proc: Option<Proc>,
    /// Its loopback port.
    pub port: u16,
    dir: TempDir,
    /// Its TLS material, when it requires client certificates.
    pub tls: Option<Pki>,
}

impl Broker {
    /// A plain broker.
    pub fn start() -> Broker {
        Self::start_inner(false)
    }

    /// A broker that requires TLS client certificates.
    pub fn start_tls() -> Broker {
        Self::start_inner(true)
    }

    fn start_inner(tls: bool) -> Broker {
        let dir = TempDir::new("mosquitto");
        let tls = tls.then(|| Pki::make(dir.path()));
        let mut broker = Broker {
            proc: None,
            port: free_port(),
            dir,
            tls,
        };
        broker.launch();
        broker
    }

    /// Starts (or restarts) the broker process, once it accepts connections.
    pub fn launch(&mut self) {
        let dir = self.dir.path();
        let mut conf = format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n",
            self.port,
            dir.display()
        );
        if let Some(pki) = &self.tls {
            conf.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                pki.ca.display(),
                pki.server_cert.display(),
                pki.server_key.display()
            ));
        }
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, conf).expect("write mosquitto.conf");
        let mut cmd = Command::new("mosquitto");
        cmd.arg("-c").arg(&path);
        let proc = Proc::spawn("mosquitto", cmd);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto does not listen on {}:\n{}",
                self.port,
                proc.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
    }

    /// Stops the broker (SIGTERM), keeping its persistence for a restart.
    pub fn stop(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            // SIGTERM: mosquitto saves its persistent sessions on the way out.
            let _ = Command::new("kill").arg(proc.pid().to_string()).status();
            proc.wait_exit(Duration::from_secs(10));
        }
    }

    /// `mqtt://127.0.0.1:PORT` (or `mqtts://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The TLS flags of a client (`--mqtt-ca`, `--mqtt-cert`, `--mqtt-key`).
    pub fn client_flags(&self) -> Vec<String> {
        let Some(pki) = &self.tls else {
            return Vec::new();
        };
        [
            ("--mqtt-ca", &pki.ca),
            ("--mqtt-cert", &pki.client_cert),
            ("--mqtt-key", &pki.client_key),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
        .collect()
    }

    /// Publishes `payload` on `topic` with `mosquitto_pub`.
    pub fn publish(&self, topic: &str, payload: &str) {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", topic, "-m", payload]);
        let out = run("mosquitto_pub", cmd, Duration::from_secs(20));
        assert!(
            out.status.success(),
            "mosquitto_pub failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(proc) = &mut self.proc {
            proc.kill();
        }
    }
}

/// `burrow agent --thing THING --mqtt URL`, once subscribed.
pub fn thing_agent(
    broker: &Broker,
    serve: &Serve,
    thing: &str,
    mapping: &str,
    extra: &[String],
) -> Proc {
    let url = broker.url();
    let endpoint = serve.endpoint();
    let mut args: Vec<&str> = vec![
        "--mode",
        "destination",
        "--thing",
        thing,
        "--mqtt",
        &url,
        "--endpoint",
        &endpoint,
        "-d",
        mapping,
    ];
    args.extend(extra.iter().map(String::as_str));
    let mut proc = agent(&format!("agent of {thing}"), &args);
    proc.wait_line("'waiting for tunnels'", |l| {
        l.starts_with("burrow agent: waiting for tunnels of ")
    });
    proc
}

/// A source agent on a source token that a notification test got from the API (its tunnel's
/// destination token went to the thing), listening for `SSH` on a free port once connected.
pub fn source(serve: &Serve, token: &str) -> (Proc, u16) {
    let endpoint = serve.endpoint();
    let args = [
        "--mode",
        "source",
        "--endpoint",
        &endpoint,
        "--token",
        token,
        "-s",
        "SSH=0",
    ];
    let mut proc = agent("source agent", &args);
    let port = wait_listening(&mut proc);
    wait_connected(&mut proc);
    (proc, port)
}
