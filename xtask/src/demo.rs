//! `cargo xtask demo`: installs what the demo needs, builds the app and starts `burrow demo`.
//!
//! Everything after `demo` on the command line goes to `burrow demo` unchanged (for example
//! `cargo xtask demo -- --device 127.0.0.1:22`). The last step replaces this process with
//! `cargo run --release -p burrow-server -- demo …`, so Ctrl-C reaches `burrow` directly and
//! nothing of the xtask is left behind. The demo's own behaviour lives in `server/`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::run::{XtaskError, say};
use crate::setup::{self, CLANG};

/// Prepares and starts the demo; returns only if something fails.
pub fn run(root: &Path, args: &[String]) -> Result<(), XtaskError> {
    let passthrough: Vec<String> = match args.split_first() {
        Some((first, rest)) if first == "--" => rest.to_vec(),
        _ => args.to_vec(),
    };
    say(
        "checking what the demo needs (wasm target, clang, trunk, wasm-bindgen-cli, npm packages with binaryen)",
    );
    setup::ensure_wasm_target()?;
    setup::ensure_apt(&[CLANG, setup::MOSQUITTO])?;
    setup::ensure_app_tools(root)?;
    crate::app::build(root)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "run",
            "--release",
            "--locked",
            "-p",
            "burrow-server",
            "--",
            "demo",
        ])
        .args(&passthrough);
    say(format!(
        "starting the demo: cargo run --release --locked -p burrow-server -- demo {}",
        passthrough.join(" ")
    ));
    crate::run::flush();
    // `exec` only returns when the program could not be started.
    let source = command.exec();
    Err(XtaskError::Spawn {
        command: "cargo run --release -p burrow-server -- demo".to_owned(),
        source,
    })
}
