//! The dependency audit: `cargo deny` with the policy in `deny.toml` at the repository root.
//!
//! Licenses, bans (including "russh must be at least 0.63") and sources need nothing but the
//! lock file and the local crate cache, so they always run and always decide. The advisories
//! check needs a copy of the RustSec advisory database, which lives in a git repository that
//! cargo-deny fetches from GitHub; no package registry ships it. So this module uses a copy
//! when one is present; otherwise it clones one from a git bundle of the database when there is
//! one ([`bundle`]: `BURROW_ADVISORY_DB_BUNDLE`, or `shared/advisory-db/advisory-db.bundle`
//! beside the checkout, for machines without GitHub), or fetches it within a time limit. Failing
//! all that it says loudly that advisories were *not* checked; `BURROW_REQUIRE_ADVISORIES=1`
//! (set by `.ci/run`) turns that case into a failure. Advisories are then checked offline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::run::{Cmd, XtaskError, say};

/// How long fetching the advisory database may take before we give up on it.
const FETCH_LIMIT: Duration = Duration::from_secs(180);
/// The directory cargo-deny uses for `db-urls = ["https://github.com/rustsec/advisory-db"]`
/// (deny.toml): the URL's name and a hash of the URL.
const DB_DIR_NAME: &str = "advisory-db-3157b0e258782691";
/// Where a git bundle of the database may lie, relative to the checkout (the checkout itself
/// may be a worktree one level further down).
const BUNDLE_PLACES: [&str; 2] = [
    "../shared/advisory-db/advisory-db.bundle",
    "../../shared/advisory-db/advisory-db.bundle",
];

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
    if !has_advisory_db(&db_root)
        && let Some(bundle) = bundle(root)
    {
        clone_bundle(&bundle, &db_root)?;
    }
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

/// The advisory database bundle to clone from, if there is one.
fn bundle(root: &Path) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BURROW_ADVISORY_DB_BUNDLE") {
        return Some(PathBuf::from(path));
    }
    BUNDLE_PLACES
        .iter()
        .map(|place| root.join(place))
        .find(|path| path.is_file())
}

/// Clones the bundle's `main` branch to where cargo-deny looks, through a temporary directory so
/// an interrupted clone never looks like a database.
fn clone_bundle(bundle: &Path, db_root: &Path) -> Result<(), XtaskError> {
    let target = db_root.join(DB_DIR_NAME);
    let partial = db_root.join(format!("{DB_DIR_NAME}.partial-{}", std::process::id()));
    say(format!(
        "no advisory database clone; cloning the snapshot {} to {}",
        bundle.display(),
        target.display()
    ));
    std::fs::create_dir_all(db_root).map_err(|err| {
        XtaskError::Missing(format!("cannot create {}: {err}", db_root.display()))
    })?;
    let _ = std::fs::remove_dir_all(&partial);
    Cmd::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "clone",
            "--quiet",
            "--branch",
            "main",
        ])
        .arg(bundle)
        .arg(&partial)
        .run()?;
    if let Some(date) = Cmd::new("git")
        .args(["log", "-1", "--format=%cs"])
        .dir(&partial)
        .probe()
    {
        say(format!("the advisory database snapshot is from {date}"));
    }
    if target.join("crates").is_dir() {
        // Another run cloned it meanwhile.
        let _ = std::fs::remove_dir_all(&partial);
        return Ok(());
    }
    if target.exists() {
        // A clone without advisories (an empty or broken directory): replace it.
        std::fs::remove_dir_all(&target).map_err(|err| {
            XtaskError::Missing(format!("cannot replace {}: {err}", target.display()))
        })?;
    }
    std::fs::rename(&partial, &target).map_err(|err| {
        XtaskError::Missing(format!(
            "cannot move the clone to {}: {err}",
            target.display()
        ))
    })
}

/// A usable clone has a `crates/` folder of advisories.
fn has_advisory_db(db_root: &Path) -> bool {
    std::fs::read_dir(db_root).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().join("crates").is_dir())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        Cmd::new("git")
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
            ])
            .args(args.iter().copied())
            .dir(dir)
            .run()
            .expect("git runs");
    }

    #[test]
    fn a_bundle_becomes_the_clone_cargo_deny_reads() {
        let base = std::env::temp_dir().join(format!("xtask-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let repo = base.join("repo");
        std::fs::create_dir_all(repo.join("crates/rsa")).expect("mkdir");
        std::fs::write(repo.join("crates/rsa/RUSTSEC-0000-0000.md"), "x").expect("write");
        git(&repo, &["init", "--quiet"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "--quiet", "-m", "snapshot"]);
        let snapshot = base.join("db.bundle");
        git(
            &repo,
            &[
                "bundle",
                "create",
                snapshot.to_str().expect("utf-8"),
                "main",
            ],
        );

        let db_root = base.join("advisory-dbs");
        assert!(!has_advisory_db(&db_root));
        clone_bundle(&snapshot, &db_root).expect("clones");
        assert!(has_advisory_db(&db_root));
        assert!(db_root.join(DB_DIR_NAME).join("crates/rsa").is_dir());
        // A second run keeps the clone it finds.
        clone_bundle(&snapshot, &db_root).expect("clones again");
        assert!(has_advisory_db(&db_root));
        let leftovers: Vec<_> = std::fs::read_dir(&db_root)
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(DB_DIR_NAME)]);

        // The bundle beside the checkout is found (the checkout may be a worktree).
        let checkout = base.join("wt/me");
        std::fs::create_dir_all(&checkout).expect("mkdir");
        std::fs::create_dir_all(base.join("shared/advisory-db")).expect("mkdir");
        std::fs::copy(
            &snapshot,
            base.join("shared/advisory-db/advisory-db.bundle"),
        )
        .expect("copy");
        if std::env::var_os("BURROW_ADVISORY_DB_BUNDLE").is_none() {
            assert!(bundle(&checkout).is_some_and(|p| p.is_file()));
            assert!(bundle(&base.join("elsewhere/a/b")).is_none());
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
