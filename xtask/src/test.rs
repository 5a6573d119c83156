//! `cargo xtask test`: installs what is missing, then runs every check and test of the project.
//!
//! The steps run in a fixed order, cheapest first, and the first failure stops the run with a
//! non-zero exit. Each step prints a header, the commands it runs with their full output, and its
//! duration; the end prints a table of durations and one line with the number of tests that
//! passed and failed, counted from the test runners' own summary lines (cargo-nextest or
//! `cargo test`, and Playwright). This module decides *what* runs; `run` and `setup` do the work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::run::{Cmd, Stopwatch, XtaskError, format_duration, on_path, say};
use crate::setup::{
    self, CHROMIUM, CLANG, MOSQUITTO, MOSQUITTO_CLIENTS, OPENSSH_SERVER, SSHPASS, WASM_TARGET,
};

/// Options of `cargo xtask test`.
#[derive(Debug, Default)]
pub struct Options {
    /// Names of steps not to run (local iteration only; CI runs everything).
    skip: Vec<String>,
    /// Only print the steps.
    list: bool,
}

/// One step of the test run.
struct Step {
    /// Short name, as used by `--skip`.
    name: &'static str,
    /// What the step checks, for the header.
    title: &'static str,
    /// The work.
    action: fn(&Context) -> Result<Counts, XtaskError>,
}

/// What every step can see.
struct Context {
    root: PathBuf,
    skip: Vec<String>,
}

impl Context {
    fn skips(&self, step: &str) -> bool {
        self.skip.iter().any(|s| s == step)
    }
}

/// Numbers of tests as reported by a test runner's summary lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

const STEPS: &[Step] = &[
    Step {
        name: "setup",
        title: "install what is missing",
        action: step_setup,
    },
    Step {
        name: "fmt",
        title: "formatting (cargo fmt --check)",
        action: step_fmt,
    },
    Step {
        name: "clippy",
        title: "lints of the workspace, warnings are errors",
        action: step_clippy,
    },
    Step {
        name: "clippy-wasm",
        title: "lints of the browser app for wasm32, warnings are errors",
        action: step_clippy_wasm,
    },
    Step {
        name: "unit",
        title: "native tests of the workspace",
        action: step_unit_tests,
    },
    Step {
        name: "wasm-proto",
        title: "burrow-proto builds for wasm32",
        action: step_wasm_proto,
    },
    Step {
        name: "audit",
        title: "dependency audit (cargo deny)",
        action: step_audit,
    },
    Step {
        name: "app",
        title: "browser app build (trunk build --release) and its WebAssembly imports",
        action: step_app,
    },
    Step {
        name: "release",
        title: "release build of `burrow`",
        action: step_release,
    },
    Step {
        name: "e2e",
        title: "end-to-end suite (Playwright, Chromium, burrow, sshd)",
        action: step_e2e,
    },
];

/// Parses the options after `cargo xtask test`.
pub fn parse_options(args: &[String]) -> Result<Options, XtaskError> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--skip" => {
                let step = args
                    .next()
                    .ok_or_else(|| XtaskError::Usage("--skip needs a step name".to_owned()))?;
                options.skip.push(step.clone());
            }
            "--skip-e2e" => options.skip.push("e2e".to_owned()),
            "--list" => options.list = true,
            other => {
                return Err(XtaskError::Usage(format!(
                    "unknown option `{other}` for `cargo xtask test`"
                )));
            }
        }
    }
    for step in &options.skip {
        if !STEPS.iter().any(|s| s.name == step) {
            return Err(XtaskError::Usage(format!(
                "unknown step `{step}`; steps: {}",
                step_names()
            )));
        }
    }
    Ok(options)
}

fn step_names() -> String {
    STEPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// Runs the test steps in order and stops at the first failure.
pub fn run(root: &Path, options: &Options) -> Result<(), XtaskError> {
    if options.list {
        for step in STEPS {
            println!("{:<12} {}", step.name, step.title);
        }
        return Ok(());
    }
    let context = Context {
        root: root.to_path_buf(),
        skip: options.skip.clone(),
    };
    if !context.skip.is_empty() {
        say(format!(
            "skipping on request: {} (CI runs every step)",
            context.skip.join(", ")
        ));
    }
    let total = Stopwatch::start();
    let mut counts = Counts::default();
    let mut timings: Vec<(&str, Option<Duration>)> = Vec::new();
    let count = STEPS.len();
    for (index, step) in STEPS.iter().enumerate() {
        if context.skips(step.name) {
            timings.push((step.name, None));
            continue;
        }
        println!();
        println!("==> [{}/{count}] {}: {}", index + 1, step.name, step.title);
        crate::run::flush();
        let watch = Stopwatch::start();
        let outcome = (step.action)(&context);
        let elapsed = watch.elapsed();
        match outcome {
            Ok(step_counts) => {
                counts.add(step_counts);
                println!("<== {}: ok in {}", step.name, format_duration(elapsed));
                timings.push((step.name, Some(elapsed)));
            }
            Err(error) => {
                println!(
                    "<== {}: FAILED after {}",
                    step.name,
                    format_duration(elapsed)
                );
                print_timings(&timings);
                return Err(XtaskError::Missing(format!(
                    "step `{}` ({}) failed: {error}",
                    step.name, step.title
                )));
            }
        }
    }
    timings.push(("total", Some(total.elapsed())));
    print_timings(&timings);
    print_counts(counts);
    Ok(())
}

fn print_timings(timings: &[(&str, Option<Duration>)]) {
    println!();
    println!("step durations:");
    for (name, duration) in timings {
        match duration {
            Some(duration) => println!("  {name:<12} {:>8}", format_duration(*duration)),
            None => println!("  {name:<12} {:>8}", "skipped"),
        }
    }
}

fn print_counts(counts: Counts) {
    println!();
    if counts.skipped > 0 {
        println!(
            "summary: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.skipped
        );
    } else {
        println!(
            "summary: {} passed, {} failed",
            counts.passed, counts.failed
        );
    }
    crate::run::flush();
}

/// Runs a test runner's command, keeping its summary counts even when it fails.
fn run_counted(command: &Cmd, parse: fn(&[String]) -> Counts) -> Result<Counts, XtaskError> {
    match command.run_capturing() {
        Ok(lines) => Ok(parse(&lines)),
        Err((error, lines)) => {
            let counts = parse(&lines);
            print_counts(counts);
            Err(error)
        }
    }
}

fn step_setup(context: &Context) -> Result<Counts, XtaskError> {
    let root = &context.root;
    setup::ensure_wasm_target()?;
    let mut apt = vec![CLANG, SSHPASS, MOSQUITTO, MOSQUITTO_CLIENTS];
    if !context.skips("e2e") {
        apt.push(CHROMIUM);
        apt.push(OPENSSH_SERVER);
    }
    setup::ensure_apt(&apt)?;
    setup::ensure_app_tools(root)?;
    if !context.skips("e2e") {
        setup::ensure_npm_packages(&root.join("e2e"))?;
    }
    setup::ensure_aws_cli()?;
    if !context.skips("e2e") {
        setup::ensure_asciinema()?;
    }
    if !context.skips("audit") {
        setup::ensure_cargo_deny()?;
    }
    Ok(Counts::default())
}

fn step_fmt(context: &Context) -> Result<Counts, XtaskError> {
    Cmd::cargo()
        .args(["fmt", "--all", "--check"])
        .dir(&context.root)
        .run()?;
    Ok(Counts::default())
}

fn step_clippy(context: &Context) -> Result<Counts, XtaskError> {
    Cmd::cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
        .dir(&context.root)
        .run()?;
    Ok(Counts::default())
}

fn step_clippy_wasm(context: &Context) -> Result<Counts, XtaskError> {
    Cmd::cargo()
        .args([
            "clippy",
            "-p",
            "burrow-app",
            "--target",
            WASM_TARGET,
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
        .dir(&context.root)
        .run()?;
    Ok(Counts::default())
}

fn step_unit_tests(context: &Context) -> Result<Counts, XtaskError> {
    let root = &context.root;
    let mut counts = if nextest_available() {
        run_counted(
            &Cmd::cargo()
                .args([
                    "nextest",
                    "run",
                    "--workspace",
                    "--locked",
                    "--no-fail-fast",
                    "--failure-output",
                    "final",
                ])
                .dir(root),
            parse_nextest,
        )?
    } else {
        say("cargo-nextest is not installed; using cargo test");
        return run_counted(
            &Cmd::cargo()
                .args(["test", "--workspace", "--locked", "--no-fail-fast"])
                .dir(root),
            parse_cargo_test,
        );
    };
    // cargo-nextest does not run documentation tests; cargo test does, for the library crates.
    say("documentation tests (cargo-nextest does not run them)");
    counts.add(run_counted(
        &Cmd::cargo()
            .args(["test", "--workspace", "--locked", "--doc"])
            .dir(root),
        parse_cargo_test,
    )?);
    Ok(counts)
}

fn nextest_available() -> bool {
    Cmd::cargo()
        .args(["nextest", "--version"])
        .probe()
        .is_some()
}

fn step_wasm_proto(context: &Context) -> Result<Counts, XtaskError> {
    Cmd::cargo()
        .args([
            "build",
            "-p",
            "burrow-proto",
            "--target",
            WASM_TARGET,
            "--locked",
        ])
        .dir(&context.root)
        .run()?;
    Ok(Counts::default())
}

fn step_audit(context: &Context) -> Result<Counts, XtaskError> {
    crate::audit::run(&context.root)?;
    Ok(Counts::default())
}

fn step_app(context: &Context) -> Result<Counts, XtaskError> {
    crate::app::build(&context.root)?;
    crate::wasm_imports::check(&context.root.join("dist"))?;
    Ok(Counts::default())
}

fn step_release(context: &Context) -> Result<Counts, XtaskError> {
    Cmd::cargo()
        .args(["build", "--release", "--locked", "-p", "burrow-server"])
        .dir(&context.root)
        .run()?;
    Ok(Counts::default())
}

fn step_e2e(context: &Context) -> Result<Counts, XtaskError> {
    let e2e = context.root.join("e2e");
    if !e2e.join("playwright.config.ts").is_file() {
        return Err(XtaskError::Missing(
            "e2e/playwright.config.ts is missing; the end-to-end suite cannot run".to_owned(),
        ));
    }
    let burrow = context.root.join("target").join("release").join("burrow");
    if !burrow.is_file() {
        return Err(XtaskError::Missing(format!(
            "{} is missing; the release step builds it",
            burrow.display()
        )));
    }
    if !on_path("npx") {
        return Err(XtaskError::Missing(
            "npx (Node.js) is missing; the setup step installs it".to_owned(),
        ));
    }
    run_counted(
        &Cmd::new("npx")
            .args(["playwright", "test"])
            .dir(&e2e)
            .env("BURROW_BIN", &burrow)
            .env("BURROW_DIST", context.root.join("dist")),
        parse_playwright,
    )
}

/// Reads cargo-nextest's closing line: `Summary [ 1.2s] 42 tests run: 41 passed, 1 failed, 0 skipped`.
fn parse_nextest(lines: &[String]) -> Counts {
    let mut counts = Counts::default();
    for line in lines {
        let line = line.trim();
        if !line.starts_with("Summary") {
            continue;
        }
        let Some((_, tail)) = line.split_once(" run: ") else {
            continue;
        };
        counts = Counts::default();
        for part in tail.split(',') {
            let mut words = part.split_whitespace();
            let (Some(number), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match kind {
                "passed" => counts.passed += number,
                "failed" | "timed" => counts.failed += number,
                "skipped" => counts.skipped += number,
                _ => {}
            }
        }
    }
    counts
}

/// Adds up `cargo test`'s lines: `test result: ok. 5 passed; 0 failed; 1 ignored; …`.
fn parse_cargo_test(lines: &[String]) -> Counts {
    let mut counts = Counts::default();
    for line in lines {
        let Some((_, tail)) = line.trim().split_once("test result: ") else {
            continue;
        };
        for part in tail.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let Some(index) = words.iter().position(|w| w.parse::<u64>().is_ok()) else {
                continue;
            };
            let number: u64 = words[index].parse().unwrap_or(0);
            match words.get(index + 1).copied() {
                Some("passed") => counts.passed += number,
                Some("failed") => counts.failed += number,
                Some("ignored") => counts.skipped += number,
                _ => {}
            }
        }
    }
    counts
}

/// Reads Playwright's closing lines: `  12 passed (40.1s)`, `  1 failed`, `  2 skipped`, `  1 flaky`.
fn parse_playwright(lines: &[String]) -> Counts {
    let mut counts = Counts::default();
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(number), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse::<u64>() else {
            continue;
        };
        // Only the summary lines have this shape with nothing but a duration after the kind.
        let rest: Vec<&str> = words.collect();
        if !(rest.is_empty() || (rest.len() == 1 && rest[0].starts_with('('))) {
            continue;
        }
        match kind {
            "passed" | "flaky" => counts.passed += number,
            "failed" | "interrupted" => counts.failed += number,
            "skipped" | "did" => counts.skipped += number,
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn nextest_summary_is_read() {
        let output = lines(
            "        PASS [   0.010s] burrow-proto codec::tests::roundtrip\n\
             ------------\n     \
             Summary [   1.234s] 42 tests run: 40 passed, 2 failed, 1 skipped\n",
        );
        assert_eq!(
            parse_nextest(&output),
            Counts {
                passed: 40,
                failed: 2,
                skipped: 1
            }
        );
    }

    #[test]
    fn cargo_test_results_are_added_up() {
        let output = lines(
            "test result: ok. 5 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
             running 3 tests\n\
             test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert_eq!(
            parse_cargo_test(&output),
            Counts {
                passed: 7,
                failed: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn playwright_summary_is_read_and_test_lines_are_not() {
        let output = lines(
            "Running 4 tests using 1 worker\n\
             \x20 ✓  1 [chromium] › smoke.spec.ts:10:1 › password login (5.1s)\n\
             \x20 1 failed\n\
             \x20   [chromium] › errors.spec.ts:20:1 › wrong password\n\
             \x20 1 skipped\n\
             \x20 2 passed (20.5s)\n",
        );
        assert_eq!(
            parse_playwright(&output),
            Counts {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
    }

    #[test]
    fn options_reject_unknown_steps() {
        let error = parse_options(&["--skip".to_owned(), "nope".to_owned()]);
        assert!(matches!(error, Err(XtaskError::Usage(message)) if message.contains("nope")));
        let options = parse_options(&["--skip-e2e".to_owned()]).expect("--skip-e2e is valid");
        assert_eq!(options.skip, vec!["e2e".to_owned()]);
    }
}
