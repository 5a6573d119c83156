//! Installing what the build and the tests need on a fresh machine, saying what it does.
//!
//! Each `ensure_*` function first probes for the tool and does nothing (beyond one line saying
//! so) when it is already there. Debian packages are installed with `apt-get` when the xtask runs
//! as root; otherwise the exact command to run is printed and the xtask stops. This module never
//! downloads anything except through the ordinary package clients (apt, cargo, npm, pip).

use std::path::Path;
use std::time::SystemTime;

use crate::run::{Cmd, XtaskError, is_root, on_path, say};

/// The Rust target the browser app and `burrow-proto` are built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// A Debian package and a file whose presence shows it is installed.
#[derive(Debug, Clone, Copy)]
pub struct AptPackage {
    /// The package name for `apt-get install`.
    pub package: &'static str,
    /// A program on `PATH`, or an absolute path, that the package provides.
    pub provides: &'static str,
}

/// clang compiles `ring`'s C and assembly parts for wasm32.
pub const CLANG: AptPackage = AptPackage {
    package: "clang",
    provides: "clang",
};
/// Debian's Chromium runs the Playwright suite.
pub const CHROMIUM: AptPackage = AptPackage {
    package: "chromium",
    provides: "/usr/bin/chromium",
};
/// A real OpenSSH server is the device behind the agent in the end-to-end tests.
pub const OPENSSH_SERVER: AptPackage = AptPackage {
    package: "openssh-server",
    provides: "/usr/sbin/sshd",
};
/// `sshpass` lets scripted `ssh` clients log in with a password.
pub const SSHPASS: AptPackage = AptPackage {
    package: "sshpass",
    provides: "sshpass",
};
/// Debian's mosquitto is the MQTT broker of the tunnel-notification tests and the demo, and
/// mosquitto-clients' `mosquitto_pub` publishes the tests' hostile payloads.
pub const MOSQUITTO: AptPackage = AptPackage {
    package: "mosquitto",
    provides: "/usr/sbin/mosquitto",
};
/// `mosquitto_pub`, checked on its own (the clients are a package of their own).
pub const MOSQUITTO_CLIENTS: AptPackage = AptPackage {
    package: "mosquitto-clients",
    provides: "mosquitto_pub",
};
/// Node.js and npm run the Playwright suite and install xterm.js.
pub const NODE: AptPackage = AptPackage {
    package: "nodejs npm",
    provides: "npm",
};

/// Installs the Debian packages of `wanted` that are missing, with one `apt-get` call.
///
/// Without root rights it prints the exact command and fails, because nothing later can work.
pub fn ensure_apt(wanted: &[AptPackage]) -> Result<(), XtaskError> {
    let missing: Vec<&AptPackage> = wanted.iter().filter(|p| !on_path(p.provides)).collect();
    for package in wanted.iter().filter(|p| on_path(p.provides)) {
        say(format!(
            "{} is installed ({} found)",
            package.package, package.provides
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing
        .iter()
        .flat_map(|p| p.package.split_whitespace())
        .collect();
    let install = Cmd::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(names.iter().copied())
        .env("DEBIAN_FRONTEND", "noninteractive");
    if !is_root() {
        return Err(XtaskError::Missing(format!(
            "missing Debian packages: {}; install them with:\n    sudo apt-get update && sudo {}",
            names.join(" "),
            install.display()
        )));
    }
    say(format!(
        "installing missing Debian packages: {}",
        names.join(" ")
    ));
    Cmd::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    install.run()?;
    for package in missing {
        if !on_path(package.provides) {
            return Err(XtaskError::Missing(format!(
                "`{}` is still missing after installing {}",
                package.provides, package.package
            )));
        }
    }
    Ok(())
}

/// Adds the wasm32 target through rustup when it is not installed.
pub fn ensure_wasm_target() -> Result<(), XtaskError> {
    let installed = Cmd::new("rustup")
        .args(["target", "list", "--installed"])
        .probe();
    match installed {
        Some(list) if list.lines().any(|line| line.trim() == WASM_TARGET) => {
            say(format!("Rust target {WASM_TARGET} is installed"));
            Ok(())
        }
        Some(_) => {
            say(format!("adding the Rust target {WASM_TARGET}"));
            Cmd::new("rustup")
                .args(["target", "add", WASM_TARGET])
                .run()
        }
        None => Err(XtaskError::Missing(format!(
            "rustup was not found; install the Rust target with `rustup target add {WASM_TARGET}` \
             (or your toolchain's equivalent) and run again"
        ))),
    }
}

/// Installs trunk 0.21 with cargo when it is missing or of another minor version.
pub fn ensure_trunk() -> Result<(), XtaskError> {
    match Cmd::new("trunk").arg("--version").probe() {
        Some(version) if version.starts_with("trunk 0.21.") => {
            say(format!("{version} is installed"));
            Ok(())
        }
        found => {
            say(format!(
                "installing trunk 0.21 (found: {})",
                found.as_deref().unwrap_or("none")
            ));
            Cmd::cargo()
                .args(["install", "trunk", "--version", "~0.21", "--locked"])
                .run()
        }
    }
}

/// The version of `wasm_split_cli_support` (the `wasm-split-cli` that cuts the app's WebAssembly
/// at its split points, `split.rs`): it must understand the split-point format of the
/// `wasm_split_helpers` crate the app links.
const WASM_SPLIT_VERSION: &str = "0.2.4";

/// Installs `wasm-split-cli` (crate `wasm_split_cli_support`) at [`WASM_SPLIT_VERSION`] when
/// `cargo install --list` does not show it.
pub fn ensure_wasm_split() -> Result<(), XtaskError> {
    let wanted = format!("wasm_split_cli_support v{WASM_SPLIT_VERSION}:");
    let listed = Cmd::cargo().args(["install", "--list"]).probe();
    if listed
        .as_deref()
        .is_some_and(|list| list.lines().any(|line| line.trim() == wanted))
    {
        say(format!("wasm-split-cli {WASM_SPLIT_VERSION} is installed"));
        return Ok(());
    }
    say(format!("installing wasm-split-cli {WASM_SPLIT_VERSION}"));
    Cmd::cargo()
        .args([
            "install",
            "wasm_split_cli_support",
            "--version",
            WASM_SPLIT_VERSION,
            "--locked",
            "--features",
            "build-binary",
        ])
        .run()
}

/// The tools `app::build` runs beyond the apt packages: trunk, wasm-bindgen-cli, wasm-split-cli
/// and the npm packages of `root` (xterm.js, binaryen's wasm-opt).
pub fn ensure_app_tools(root: &Path) -> Result<(), XtaskError> {
    ensure_trunk()?;
    ensure_wasm_bindgen(root)?;
    ensure_wasm_split()?;
    ensure_npm_packages(root)
}

/// Installs `wasm-bindgen-cli` at exactly the version of the `wasm-bindgen` crate in Cargo.lock.
///
/// The CLI and the crate must match to the patch version, or the generated glue is refused.
pub fn ensure_wasm_bindgen(root: &Path) -> Result<(), XtaskError> {
    let Some(wanted) = locked_version(root, "wasm-bindgen")? else {
        say("Cargo.lock has no wasm-bindgen yet; wasm-bindgen-cli is not needed");
        return Ok(());
    };
    let found = Cmd::new("wasm-bindgen").arg("--version").probe();
    let found_version = found
        .as_deref()
        .and_then(|line| line.split_whitespace().nth(1))
        .map(str::to_owned);
    if found_version.as_deref() == Some(wanted.as_str()) {
        say(format!(
            "wasm-bindgen-cli {wanted} is installed (matches Cargo.lock)"
        ));
        return Ok(());
    }
    say(format!(
        "installing wasm-bindgen-cli {wanted} to match Cargo.lock (found: {})",
        found_version.as_deref().unwrap_or("none")
    ));
    Cmd::cargo()
        .args(["install", "wasm-bindgen-cli", "--version", &wanted])
        .run()
}

/// Returns the version of `package` recorded in the workspace's Cargo.lock, if it is there.
///
/// When several versions are locked, the highest-listed first match is returned; the project
/// keeps one version of the crates this is asked about.
pub fn locked_version(root: &Path, package: &str) -> Result<Option<String>, XtaskError> {
    let lock_path = root.join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).map_err(|source| XtaskError::Io {
        what: format!("reading {}", lock_path.display()),
        source,
    })?;
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name_line {
            let version = lines
                .next()
                .and_then(|next| next.trim().strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'));
            return Ok(version.map(str::to_owned));
        }
    }
    Ok(None)
}

/// Runs `npm ci` in `dir` when it has a `package.json`, unless `node_modules` is already newer
/// than the manifest and the lock file.
pub fn ensure_npm_packages(dir: &Path) -> Result<(), XtaskError> {
    let manifest = dir.join("package.json");
    if !manifest.is_file() {
        say(format!(
            "no package.json in {}; no npm packages to install",
            dir.display()
        ));
        return Ok(());
    }
    let lock = dir.join("package-lock.json");
    if !lock.is_file() {
        return Err(XtaskError::Missing(format!(
            "{} has no package-lock.json next to it; run `npm install` there and commit the lock file",
            manifest.display()
        )));
    }
    if !on_path("npm") {
        ensure_apt(&[NODE])?;
    }
    let installed_marker = dir.join("node_modules").join(".package-lock.json");
    let up_to_date = match (
        modified(&installed_marker),
        modified(&lock),
        modified(&manifest),
    ) {
        (Some(installed), Some(lock), Some(manifest)) => installed >= lock && installed >= manifest,
        _ => false,
    };
    if up_to_date {
        say(format!(
            "npm packages in {} are up to date with package-lock.json",
            dir.display()
        ));
        return Ok(());
    }
    say(format!(
        "installing npm packages in {} from package-lock.json",
        dir.display()
    ));
    Cmd::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .dir(dir)
        .run()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Installs the AWS CLI through pip when `aws` is missing (Debian's package as a fallback).
pub fn ensure_aws_cli() -> Result<(), XtaskError> {
    if on_path("aws") {
        say("the AWS CLI (`aws`) is installed");
        return Ok(());
    }
    say("installing the AWS CLI with pip");
    let pip = Cmd::new("python3").args(["-m", "pip", "install", "--quiet", "awscli"]);
    match pip.run() {
        Ok(()) if on_path("aws") => Ok(()),
        outcome => {
            if let Err(error) = outcome {
                say(format!("pip could not install the AWS CLI: {error}"));
            }
            say("trying Debian's awscli package instead");
            ensure_apt(&[AptPackage {
                package: "awscli",
                provides: "aws",
            }])
        }
    }
}

/// Installs asciinema through pip when it is missing: the e2e suite checks with
/// `asciinema cat` that the page's session recordings play back.
pub fn ensure_asciinema() -> Result<(), XtaskError> {
    if on_path("asciinema") {
        say("asciinema is installed");
        return Ok(());
    }
    say("installing asciinema with pip");
    Cmd::new("python3")
        .args(["-m", "pip", "install", "--quiet", "asciinema"])
        .run()?;
    if on_path("asciinema") {
        Ok(())
    } else {
        Err(XtaskError::Missing(
            "pip installed asciinema but `asciinema` is not on PATH: add pip's script \
             directory to PATH"
                .to_owned(),
        ))
    }
}

/// Installs cargo-deny with cargo when it is missing.
pub fn ensure_cargo_deny() -> Result<(), XtaskError> {
    match Cmd::cargo().args(["deny", "--version"]).probe() {
        Some(version) => {
            say(format!("{version} is installed"));
            Ok(())
        }
        None => {
            say("installing cargo-deny (a few minutes the first time)");
            Cmd::cargo()
                .args(["install", "cargo-deny", "--locked"])
                .run()
        }
    }
}
