//! `cargo xtask bench`: the benchmarks against native OpenSSH, and their report `BENCHMARKS.md`.
//!
//! It installs what is missing (Chromium, sshd, sshpass, python3, the wasm toolchain, the npm
//! packages of the app and of `bench/`), builds the app into `dist/`, the release `burrow` and
//! the load client `bench/load` (a crate of its own, outside the product's workspace and lock
//! file), then runs the Playwright benchmark suite in `bench/` with Debian's Chromium. The suite
//! measures every figure of the benchmarks issue (time to prompt, echo latency, throughput,
//! bundle, service scale; ours against native, each run several times) and rewrites
//! `BENCHMARKS.md` at the repository root from this run.
//!
//! Benchmarks are not tests: nothing here or in the suite asserts a timing, and `cargo xtask
//! test` never runs them. The command fails only when a figure could not be measured at all.
//! Knobs, as environment variables: `BENCH_RUNS` (5), `BENCH_KEYS` (500), `BENCH_RAW_MB` (100),
//! `BENCH_SFTP_MB` (100), `BENCH_SFTP_LIMITED_MB` (20),
//! `BENCH_RENDERED_MB` (100), `BENCH_SCALE` (`1,100,1000`).

use std::path::Path;
use std::time::Duration;

use crate::run::{Cmd, Stopwatch, XtaskError, format_duration, on_path, say};
use crate::setup::{self, AptPackage, CHROMIUM, CLANG, OPENSSH_SERVER, SSHPASS};

/// Python runs the native side's pseudo-terminal helper (`bench/native_pty.py`).
const PYTHON: AptPackage = AptPackage {
    package: "python3",
    provides: "python3",
};

/// A full run takes about a quarter of an hour; past this something hangs.
const SUITE_LIMIT: Duration = Duration::from_secs(40 * 60);

/// Builds what the benchmarks need, runs them and rewrites `BENCHMARKS.md`.
pub fn run(root: &Path, args: &[String]) -> Result<(), XtaskError> {
    if let Some(arg) = args.first() {
        return Err(XtaskError::Usage(format!(
            "`cargo xtask bench` takes no arguments (got `{arg}`); tune it with BENCH_RUNS, \
             BENCH_KEYS, BENCH_RAW_MB, BENCH_RENDERED_MB and BENCH_SCALE"
        )));
    }
    let total = Stopwatch::start();
    let bench = root.join("bench");
    say("checking what the benchmarks need");
    setup::ensure_wasm_target()?;
    setup::ensure_apt(&[
        CLANG,
        CHROMIUM,
        OPENSSH_SERVER,
        SSHPASS,
        PYTHON,
        setup::NODE,
    ])?;
    setup::ensure_trunk()?;
    setup::ensure_wasm_bindgen(root)?;
    setup::ensure_npm_packages(root)?;
    setup::ensure_npm_packages(&bench)?;

    crate::app::build(root)?;
    say("building the release `burrow`");
    Cmd::cargo()
        .args(["build", "--release", "--locked", "-p", "burrow-server"])
        .dir(root)
        .run()?;
    say("building the load client (bench/load, its own workspace; same target directory)");
    let target_dir = root.join("target");
    Cmd::cargo()
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(bench.join("load").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .dir(root)
        .run()?;

    let results = bench.join("results");
    if results.exists() {
        std::fs::remove_dir_all(&results).map_err(|source| XtaskError::Io {
            what: format!("removing the previous results in {}", results.display()),
            source,
        })?;
    }
    if !on_path("npx") {
        return Err(XtaskError::Missing(
            "npx (Node.js) is missing; install nodejs and npm".to_owned(),
        ));
    }
    // The report states how busy the machine was when the measurements began.
    let start_load = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default();
    say(format!(
        "running the benchmarks (about 15 minutes; load average now {start_load})"
    ));
    let release = target_dir.join("release");
    let outcome = Cmd::new("npx")
        .args(["playwright", "test"])
        .dir(&bench)
        .env("BURROW_BIN", release.join("burrow"))
        .env("BURROW_DIST", root.join("dist"))
        .env("BENCH_LOAD_BIN", release.join("burrow-bench-load"))
        .env("BENCH_START_LOAD", &start_load)
        .run_with_timeout(SUITE_LIMIT);
    let report = root.join("BENCHMARKS.md");
    match &outcome {
        Ok(()) => say(format!(
            "{} rewritten from this run; the raw figures are in {} ({} in all)",
            report.display(),
            results.display(),
            format_duration(total.elapsed())
        )),
        Err(_) => say(format!(
            "a figure could not be measured; {} shows what was (see the output above)",
            report.display()
        )),
    }
    outcome
}
