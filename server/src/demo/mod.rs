//! `burrow demo`: the whole product on one machine, in one command.
//!
//! It starts an MQTT broker (Debian's mosquitto, see [`broker`]), the local tunneling service
//! in-process (`burrow serve --mqtt`, default 127.0.0.1:8080, serving the built app), the demo
//! device (an SSH server embedded in `burrow`, see [`device`]; or `--device HOST:PORT` for an
//! existing sshd) and its agent in-process, which gets only its thing name ([`THING`]) and the
//! broker, never a token. Once the agent has subscribed, it prints the URL to open — the page
//! in Device mode for that thing (`#thing=…&user=…`, read by the page and removed from its
//! address bar) — the user name and the password. Connect in the page opens the tunnel through
//! the service's tunnel API; the destination token reaches the agent by notification, as on
//! AWS IoT Core, and the page's own token never shows. Ctrl-C (or SIGTERM) stops all of it; the
//! device's shells die with it.
//!
//! It deliberately adds no logic of its own to the parts: the service, the agent and the device
//! run exactly as they do alone.

mod broker;
mod device;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;

use crate::{agent, serve};

/// The demo device's thing name.
pub(crate) const THING: &str = "burrow-demo-device";
/// How long the demo waits for the device's agent to subscribe to its notifications.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long shutdown waits for the service to close its WebSockets.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `burrow demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address of the local tunneling service and the app (loopback recommended).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Point the destination agent at this existing SSH server instead of the embedded demo
    /// device (whose users and passwords are then the server's own).
    #[arg(long, value_name = "HOST:PORT")]
    pub device: Option<String>,
    /// Directory of the built browser app (Trunk's output).
    #[arg(long = "static", value_name = "DIR", default_value = "dist")]
    pub static_dir: PathBuf,
}

/// What went wrong talking to the demo's own control plane.
/// Parses flags the way their own subcommands do, so every default stays theirs.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct ServeCli {
    #[command(flatten)]
    args: serve::ServeArgs,
}

#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct AgentCli {
    #[command(flatten)]
    args: agent::AgentArgs,
}

/// Runs the demo until Ctrl-C or SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let listen = args.listen.to_string();
    let static_dir = args.static_dir.display().to_string();
    let broker = broker::Broker::start().await?;
    let serve_args = ServeCli::try_parse_from([
        "--listen",
        listen.as_str(),
        "--static",
        static_dir.as_str(),
        "--mqtt",
        broker.url.as_str(),
    ])
    .context("service flags")?
    .args;
    let server = serve::Server::bind(serve_args).await?;
    let url = server.url().to_owned();
    let addr = url
        .rsplit("://")
        .next()
        .and_then(|hostport| hostport.parse::<SocketAddr>().ok())
        .with_context(|| format!("cannot read the service address from {url}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serving = tokio::spawn(server.serve(async {
        let _sender_gone = stopped.await;
    }));

    let (target, device, login) = match &args.device {
        Some(target) => (target.clone(), None, None),
        None => {
            let device = device::Device::bind(0).await?;
            let target = device.addr.to_string();
            let login = (
                device.account.name.clone(),
                device.password.clone(),
                device.fingerprint.clone(),
            );
            (target, Some(tokio::spawn(device.run())), Some(login))
        }
    };

    let endpoint = format!("ws://{addr}");
    let mapping = format!("SSH={target}");
    // The device's agent knows its thing and the broker, never a token.
    let agent_args = AgentCli::try_parse_from([
        "--mode",
        "destination",
        "--thing",
        THING,
        "--mqtt",
        broker.url.as_str(),
        "--endpoint",
        endpoint.as_str(),
        "-d",
        mapping.as_str(),
    ])
    .context("agent flags")?
    .args;
    let (subscribed, on_subscribed) = tokio::sync::oneshot::channel();
    let mut agent_task = tokio::spawn(agent::run_with(agent_args, Some(subscribed)));
    tokio::time::timeout(SUBSCRIBE_TIMEOUT, on_subscribed)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the device's agent did not subscribe to {} within {SUBSCRIBE_TIMEOUT:?}",
                broker.url
            )
        })?
        .map_err(|_| anyhow::anyhow!("the device's agent stopped before it subscribed"))?;

    let user = login.as_ref().map(|(user, _, _)| user.as_str());
    let mut link = format!("{url}/#thing={}", percent_encode(THING));
    if let Some(user) = user {
        link.push_str("&user=");
        link.push_str(&percent_encode(user));
    }
    println!("burrow demo: service on {url}");
    println!(
        "burrow demo: MQTT broker on {} (device {THING} waits there for its token)",
        broker.url
    );
    println!("burrow demo: open {link}");
    match &login {
        Some((user, password, fingerprint)) => {
            println!("burrow demo: device {target} (embedded SSH server, host key {fingerprint})");
            println!("burrow demo: user {user}");
            println!("burrow demo: password {}", password.as_str());
        }
        None => println!("burrow demo: device {target} (log in with that server's own accounts)"),
    }
    println!("burrow demo: press Ctrl-C to stop");

    // A JoinHandle must not be polled again once it has completed: remember which did.
    let mut agent_done = false;
    let mut serving_done = false;
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        result = &mut agent_task => {
            agent_done = true;
            match result {
                // The agent stops by itself on Ctrl-C too.
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.context("the destination agent stopped")),
                Err(err) => Err(anyhow::anyhow!("the destination agent failed: {err}")),
            }
        }
        result = &mut serving => {
            serving_done = true;
            match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the tunneling service stopped")),
                Ok(Err(err)) => Err(err.context("the tunneling service stopped")),
                Err(err) => Err(anyhow::anyhow!("the tunneling service failed: {err}")),
            }
        }
    };

    tracing::info!("stopping the demo");
    if !agent_done {
        agent_task.abort();
        let _aborted = agent_task.await;
    }
    if let Some(device) = device {
        // Dropping the device's tasks kills every shell it started.
        device.abort();
        let _aborted = device.await;
    }
    let _already_stopped = stop.send(());
    if !serving_done {
        let _slow = tokio::time::timeout(STOP_TIMEOUT, serving).await;
    }
    drop(broker);
    outcome
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_encoded() {
        assert_eq!(percent_encode("AQ+/=x-_.~"), "AQ%2B%2F%3Dx-_.~");
    }

    #[test]
    fn demo_flags_default_to_the_documented_port() {
        #[derive(clap::Parser)]
        #[command(no_binary_name = true)]
        struct Cli {
            #[command(flatten)]
            demo: DemoArgs,
        }
        let cli = Cli::try_parse_from(Vec::<String>::new()).expect("defaults");
        assert_eq!(cli.demo.listen, "127.0.0.1:8080".parse().expect("address"));
        assert!(cli.demo.device.is_none());
    }
}
