//! `cargo xtask`: the project's automation, in plain Rust (matklad's cargo-xtask pattern).
//!
//! * `cargo xtask test` installs what is missing and runs every test of the project, step by step.
//! * `cargo xtask demo [ARGS…]` installs what is missing, builds the app and starts `burrow demo`.
//! * `cargo xtask app` installs what is missing and builds the browser app into `dist/`.
//! * `cargo xtask bench` installs what is missing, builds, runs the benchmarks against native
//!   OpenSSH and rewrites `BENCHMARKS.md`.
//!
//! This module only parses the command line and dispatches; it holds no build logic itself.

mod app;
mod audit;
mod bench;
mod demo;
mod run;
mod setup;
mod split;
mod test;
mod wasm_imports;

use std::path::PathBuf;
use std::process::ExitCode;

use run::XtaskError;

/// What `cargo xtask help` prints.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test [--skip STEP]... [--skip-e2e] [--list]
        install what is missing, then run every test of the project
        (fmt, clippy, native tests, wasm builds, dependency audit, app build,
        release build, Playwright end-to-end suite); stops at the first failure
  app   install what is missing and build the browser app into dist/
        (trunk, then the WebAssembly split at its split points)
  demo [ARGS...]
        install what is missing, build the app and run `burrow demo ARGS...`
  bench
        install what is missing, build, run the benchmarks (ours against
        native OpenSSH, about 15 minutes) and rewrite BENCHMARKS.md;
        tune with BENCH_RUNS, BENCH_KEYS, BENCH_RAW_MB, BENCH_RENDERED_MB,
        BENCH_SCALE
  help  print this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let root = repo_root();
    let result = match command.as_str() {
        "test" => test::parse_options(rest).and_then(|options| test::run(&root, &options)),
        "app" if rest.is_empty() => app::run(&root),
        "app" => Err(XtaskError::Usage(
            "`cargo xtask app` takes no options".to_owned(),
        )),
        "demo" => demo::run(&root, rest),
        "bench" => bench::run(&root, rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(XtaskError::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!();
            eprintln!("xtask {command}: FAILED: {error}");
            if let XtaskError::Usage(_) = error {
                eprint!("{USAGE}");
                return ExitCode::from(2);
            }
            ExitCode::FAILURE
        }
    }
}

/// Returns the workspace root: the parent of this crate's manifest directory.
fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}
