//! `cargo xtask bench`: the place for the project's benchmarks.
//!
//! The benchmarks (and their report `bench/BENCHMARKS.md`) arrive with the benchmarks issue; until
//! then this command says so and fails, rather than pretending to measure anything.

use std::path::Path;

use crate::run::XtaskError;

/// Reports that there are no benchmarks yet.
pub fn run(_root: &Path, _args: &[String]) -> Result<(), XtaskError> {
    Err(XtaskError::Missing(
        "there are no benchmarks yet; they arrive with the benchmarks issue".to_owned(),
    ))
}
