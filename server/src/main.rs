//! `burrow`: the command-line entry point. It only parses arguments and hands over to the
//! subcommand modules; no logic lives here.

mod agent;
mod demo;
mod mqtt;
mod serve;
mod wsclient;

use clap::{Parser, Subcommand};

/// Burrow: SSH into devices behind firewalls through AWS IoT Secure Tunneling.
#[derive(Debug, Parser)]
#[command(name = "burrow", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the local tunneling service (data plane, control plane, cookie helper, the app).
    Serve(serve::ServeArgs),
    /// Run a local proxy (source or destination), like AWS's localproxy.
    Agent(agent::AgentArgs),
    /// Run everything on this machine: the service, a tunnel, a destination agent and a demo
    /// device (an embedded SSH server), and print the URL to open.
    Demo(demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
                // The WebSocket client library traces whole handshake requests, headers (and so
                // tunnel tokens) included: never let that through, whatever RUST_LOG says (and
                // keep its debug chatter out of the operator's terminal too).
                .add_directive(
                    "tungstenite::handshake::client=info"
                        .parse()
                        .expect("a constant, valid log directive"),
                )
                // The MQTT client's debug output names packets; keep it (and any payload, which
                // may hold a tunnel token) out of the log too.
                .add_directive(
                    "rumqttc=warn"
                        .parse()
                        .expect("a constant, valid log directive"),
                ),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("burrow: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Agent(args) => agent::run(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("burrow: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
