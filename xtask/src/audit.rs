//! The dependency audit: `cargo deny` with the policy in `deny.toml` at the repository root.
//!
//! Licenses, bans (including "russh must be at least 0.63") and sources need nothing but the
//! lock file and the local crate cache, so they always run and always decide. The advisories
//! check needs a copy of the RustSec advisory database, which lives in a git repository that
//! cargo-deny fetches from GitHub; no package registry ships it. So this module uses a copy
//! when one is present (or can be fetched within a time limit), and otherwise says loudly that
//! advisories were *not* checked. `BURROW_REQUIRE_ADVISORIES=1` turns that case into a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::run::{Cmd, XtaskError, say};

/// How long fetching the advisory database may take before we give up on it.
const FETCH_LIMIT: Duration = Duration::from_secs(180);

/// Runs every cargo-deny check that can run here; see the module documentation.
pub fn run(root: &Path) -> Result<(), XtaskError> {
    Cmd::cargo()
        .args([
            "deny",
            "--locked",
            "check",
            "--hide-inclusion-graph",
            "bans",
            "licenses",
            "sources",
        ])
        .dir(root)
        .run()?;

    let db_root = advisory_db_root();
    if !has_advisory_db(&db_root) {
        say(format!(
            "no advisory database in {}; trying to fetch it (needs access to GitHub)",
            db_root.display()
        ));
        if let Err(error) = Cmd::cargo()
            .args(["deny", "--locked", "fetch", "db"])
            .dir(root)
            .run_with_timeout(FETCH_LIMIT)
        {
            say(format!("fetching the advisory database failed: {error}"));
        }
    }
    if has_advisory_db(&db_root) {
        say(format!(
            "checking advisories against the database in {}",
            db_root.display()
        ));
        // `--offline` keeps cargo-deny from fetching the database again, and also from
        // downloading crates: make sure every locked crate (all targets) is in the local cache.
        Cmd::cargo().args(["fetch", "--locked"]).dir(root).run()?;
        return Cmd::cargo()
            .args([
                "deny",
                "--locked",
                "--offline",
                "check",
                "--hide-inclusion-graph",
                "advisories",
            ])
            .dir(root)
            .run();
    }
    let message = format!(
        "RustSec advisories were NOT checked: no advisory database copy in {} and it could not \
         be fetched. Licenses, bans and sources were checked. To check advisories, run \
         `cargo deny fetch db` where GitHub is reachable (or copy that directory from such a \
         machine) and run again.",
        db_root.display()
    );
    if std::env::var_os("BURROW_REQUIRE_ADVISORIES").is_some_and(|v| v == "1") {
        return Err(XtaskError::Missing(message));
    }
    println!();
    println!("WARNING: {message}");
    println!();
    Ok(())
}

/// The directory cargo-deny keeps advisory database clones in, as `deny.toml` configures it.
fn advisory_db_root() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from(".cargo"));
    cargo_home.join("advisory-dbs")
}

/// A usable clone has a `crates/` folder of advisories.
fn has_advisory_db(db_root: &Path) -> bool {
    std::fs::read_dir(db_root).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().join("crates").is_dir())
    })
}
