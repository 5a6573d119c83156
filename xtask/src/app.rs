//! Building the browser app into `dist/`: one place for `cargo xtask test`, `demo` and `bench`.
//!
//! Trunk compiles the app with the `wasm-release` cargo profile (see index.html) and optimises
//! the WebAssembly with `wasm-opt`; then the WebAssembly is split so the first screen fetches
//! only what it runs (`split.rs`). It must use binaryen 132 from npm (`node_modules/.bin`,
//! pinned in package.json): Debian's binaryen 108 produces a module that fails to load, so that
//! folder is put first on Trunk's `PATH`. Afterwards every text and WebAssembly file gets
//! gzip and brotli copies beside it (`xtask/scripts/precompress.mjs`), which `burrow serve`
//! sends to browsers that accept them.

use std::ffi::OsString;
use std::path::Path;

use crate::run::{Cmd, XtaskError, say};

/// `cargo xtask app`: installs what the build needs, then builds `dist/`.
pub fn run(root: &Path) -> Result<(), XtaskError> {
    crate::setup::ensure_wasm_target()?;
    crate::setup::ensure_apt(&[crate::setup::CLANG])?;
    crate::setup::ensure_app_tools(root)?;
    build(root)
}

/// Cargo's target directory for `root` (`CARGO_TARGET_DIR` when set).
fn target_dir(root: &Path) -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// Runs `trunk build --release --offline` in `root`, then precompresses `dist/`.
pub fn build(root: &Path) -> Result<(), XtaskError> {
    say("building the browser app into dist/ (trunk, wasm-opt from npm's binaryen)");
    let npm_bin = root.join("node_modules").join(".bin");
    if !npm_bin.join("wasm-opt").is_file() {
        return Err(XtaskError::Missing(format!(
            "{} is missing: the npm packages of {} are not installed (npm ci there installs \
             binaryen 132, the wasm-opt the app must be built with)",
            npm_bin.join("wasm-opt").display(),
            root.display()
        )));
    }
    let mut path = OsString::from(npm_bin.as_os_str());
    if let Some(system) = std::env::var_os("PATH") {
        path.push(":");
        path.push(system);
    }
    Cmd::new("trunk")
        .args(["build", "--release", "--offline"])
        .dir(root)
        .env("PATH", path)
        .run()?;
    crate::split::split(&target_dir(root), &root.join("dist"), &npm_bin)?;
    Cmd::new("node")
        .arg(root.join("xtask").join("scripts").join("precompress.mjs"))
        .arg(root.join("dist"))
        .dir(root)
        .run()?;
    Ok(())
}
