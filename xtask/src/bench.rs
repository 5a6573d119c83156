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
//! The suite runs under `xvfb-run` (Debian's `xvfb`), so the echo figure measures a headed
//! Chromium beside the headless one. `BENCH_ONLY=echo,typeahead` runs only those figures; the
//! report then carries the others over, marked, from the current `BENCHMARKS.md`.
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

/// Xvfb gives the echo figure a headed Chromium (headless frame timing differs); the suite
/// runs under its `xvfb-run`.
const XVFB: AptPackage = AptPackage {
    package: "xvfb",
    provides: "xvfb-run",
};

/// The figures `BENCH_ONLY` may name, with the start of their test titles in `bench/`.
const FIGURES: &[(&str, &str)] = &[
    ("prompt", "time to prompt"),
    ("echo", "echo latency"),
    ("throughput", "throughput"),
    ("bundle", "bundle"),
    ("scale", "service scale"),
    ("sftp", "sftp"),
    ("typeahead", "typeahead"),
    ("tabs", "tabs"),
];

/// The Playwright `--grep` for `BENCH_ONLY` (comma-separated figure names): those figures and
/// the report, which carries the others over from the current BENCHMARKS.md.
fn only_grep(only: &str) -> Result<Option<String>, XtaskError> {
    let mut titles = Vec::new();
    for name in only
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let Some((_, title)) = FIGURES.iter().find(|(figure, _)| *figure == name) else {
            let known: Vec<&str> = FIGURES.iter().map(|(figure, _)| *figure).collect();
            return Err(XtaskError::Usage(format!(
                "BENCH_ONLY names no figure `{name}`; the figures are {}",
                known.join(", ")
            )));
        };
        titles.push(*title);
    }
    if titles.is_empty() {
        return Ok(None);
    }
    titles.push("report");
    Ok(Some(format!("({}): ", titles.join("|"))))
}

/// A full run takes about a quarter of an hour; past this something hangs.
const SUITE_LIMIT: Duration = Duration::from_secs(40 * 60);

/// Builds what the benchmarks need, runs them and rewrites `BENCHMARKS.md`.
pub fn run(root: &Path, args: &[String]) -> Result<(), XtaskError> {
    if let Some(arg) = args.first() {
        return Err(XtaskError::Usage(format!(
            "`cargo xtask bench` takes no arguments (got `{arg}`); tune it with BENCH_RUNS, \
             BENCH_KEYS, BENCH_RAW_MB, BENCH_RENDERED_MB and BENCH_SCALE, or run some figures \
             with BENCH_ONLY=echo,typeahead"
        )));
    }
    let grep = only_grep(&std::env::var("BENCH_ONLY").unwrap_or_default())?;
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
        XVFB,
        setup::NODE,
    ])?;
    setup::ensure_app_tools(root)?;
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
    // Under xvfb-run, so the echo figure can also measure a headed Chromium (DISPLAY set).
    let mut suite = Cmd::new("xvfb-run").args([
        "-a",
        "-s",
        "-screen 0 1920x1080x24",
        "npx",
        "playwright",
        "test",
    ]);
    if let Some(grep) = &grep {
        suite = suite.args(["--grep", grep.as_str()]);
    }
    let outcome = suite
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

#[cfg(test)]
mod tests {
    use super::only_grep;

    #[test]
    fn bench_only_becomes_a_grep_of_the_figures_and_the_report() {
        assert_eq!(only_grep("").expect("empty is fine"), None);
        assert_eq!(
            only_grep("echo, typeahead")
                .expect("known figures")
                .as_deref(),
            Some("(echo latency|typeahead|report): ")
        );
        let error = only_grep("echo,speed").expect_err("an unknown figure");
        assert!(error.to_string().contains("`speed`"), "{error}");
    }
}
