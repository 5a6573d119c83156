//! Tidiness the codebase enforces on itself: the invariants `ARCHITECTURE.md` states, checked on
//! the sources (run by `cargo xtask test` with the other tests).
//!
//! - every Rust module starts with a `//!` doc (generated code excepted);
//! - in `app/`, only `src/driver/socket.rs` touches `web_sys::WebSocket`, and only `src/term/`
//!   declares xterm.js bindings (its `sys` module stays private);
//! - in `app/`, the driver (`src/driver/`), the SSH layer (`src/ssh/`) and the parsed endpoint
//!   (`src/endpoint.rs`) import nothing of the session or the UI: the session converts their
//!   errors, not the other way round;
//! - `burrow-proto` depends on no IO crate and its sources use no IO, clock or process API;
//! - no Rust file is longer than [`MAX_LINES`] lines, except those in [`LONG_FILES`], which may
//!   only shrink;
//! - the page's style sheets nest no rule inside another (a missing `}` would otherwise make
//!   CSS nesting swallow the rules after it, silently).

use std::path::{Path, PathBuf};

/// The longest a Rust file may be.
const MAX_LINES: usize = 700;

/// Files over [`MAX_LINES`] when the rule came in, each with the most lines it may have. The
/// list only shrinks: a file may not grow past its number, and a file back under the limit must
/// leave the list (lower a number when a file shrinks, so it cannot grow back).
const LONG_FILES: &[(&str, usize)] = &[
    ("app/src/components/files.rs", 756),
    ("app/src/ssh/sftp.rs", 814),
    ("app/tests/openssh.rs", 1037),
    ("bench/load/src/main.rs", 836),
    ("proto/src/endpoint.rs", 1134),
    ("proto/src/service.rs", 990),
    ("proto/tests/pair.rs", 1152),
    ("server/tests/common/mod.rs", 966),
    ("server/tests/serve_data_plane.rs", 790),
    ("server/tests/serve_http.rs", 773),
];

/// The dependencies `burrow-proto` may have: none of them does IO.
const PROTO_DEPENDENCIES: &[&str] = &["prost", "thiserror"];

/// What `burrow-proto`'s sources must not use: it does no IO and never reads the clock.
const PROTO_FORBIDDEN: &[&str] = &[
    "std::io",
    "std::net",
    "std::fs",
    "std::env",
    "std::process",
    "std::thread",
    "Instant",
    "SystemTime",
    "tokio",
    "web_sys",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ lies in the repository")
        .to_path_buf()
}

/// Every `.rs` file of the repository's crates (build output and npm packages left out), as
/// paths relative to the root with `/` separators, sorted.
fn rust_files() -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(
                    name,
                    "target" | "node_modules" | "dist" | ".git" | "corpus" | "artifacts"
                ) {
                    walk(&path, root, out);
                }
            } else if name.ends_with(".rs") {
                let relative = path.strip_prefix(root).expect("under the root");
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = root();
    let mut out = Vec::new();
    for dir in ["app", "bench", "fuzz", "proto", "server", "xtask"] {
        walk(&root.join(dir), &root, &mut out);
    }
    out.sort();
    assert!(
        out.len() > 50,
        "found only {} Rust files: is the root right?",
        out.len()
    );
    out
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// The lines of `text` that are code, not comments (a line comment's rest is dropped).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = line.split("//").next().unwrap_or("").trim();
        (!code.is_empty()).then_some((i + 1, code))
    })
}

#[test]
fn every_module_starts_with_a_doc_comment() {
    let missing: Vec<String> = rust_files()
        .into_iter()
        .filter(|file| {
            let text = read(file);
            let generated = text.starts_with("// This file is @generated");
            !generated && !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these modules do not start with a `//!` doc saying what they are for: {missing:#?}"
    );
}

#[test]
fn only_the_socket_module_touches_web_sys_websocket() {
    const OWNER: &str = "app/src/driver/socket.rs";
    let mut offenders = Vec::new();
    let mut owner_uses = false;
    for file in rust_files().into_iter().filter(|f| f.starts_with("app/")) {
        let text = read(&file);
        // `web_sys::WebSocket`, or `WebSocket` inside a `use web_sys::{…}` (up to its `;`).
        let mut in_use = false;
        for (number, code) in code_lines(&text) {
            if code.starts_with("use web_sys") {
                in_use = true;
            }
            let touches = code.contains("web_sys::WebSocket")
                || (in_use
                    && code
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == "WebSocket"));
            if code.contains(';') {
                in_use = false;
            }
            if touches {
                if file == OWNER {
                    owner_uses = true;
                } else {
                    offenders.push(format!("{file}:{number}: {code}"));
                }
            }
        }
    }
    assert!(
        owner_uses,
        "{OWNER} no longer uses web_sys::WebSocket: update this test and ARCHITECTURE.md"
    );
    assert!(
        offenders.is_empty(),
        "web_sys::WebSocket outside {OWNER}: {offenders:#?}"
    );
}

#[test]
fn the_driver_and_ssh_import_nothing_of_the_session_or_the_ui() {
    let lower = rust_files().into_iter().filter(|f| {
        f.starts_with("app/src/driver/")
            || f.starts_with("app/src/ssh/")
            || f == "app/src/endpoint.rs"
    });
    let mut offenders = Vec::new();
    let mut checked = 0;
    for file in lower {
        checked += 1;
        for (number, code) in code_lines(&read(&file)) {
            if code.contains("crate::session") || code.contains("crate::components") {
                offenders.push(format!("{file}:{number}: {code}"));
            }
        }
    }
    assert!(
        checked > 15,
        "the driver's and ssh's files were not found ({checked})"
    );
    assert!(
        offenders.is_empty(),
        "upward imports (the session converts the driver's errors; move shared types down): \
         {offenders:#?}"
    );
}

#[test]
fn only_the_term_module_declares_xterm_bindings() {
    let mut offenders = Vec::new();
    for file in rust_files()
        .into_iter()
        .filter(|f| f.starts_with("app/src/"))
    {
        if file.starts_with("app/src/term/") {
            continue;
        }
        let text = read(&file);
        for (number, code) in code_lines(&text) {
            let binding = code.starts_with("#[wasm_bindgen")
                && (code.contains("Addon")
                    || code.contains("Terminal")
                    || code.to_ascii_lowercase().contains("xterm"));
            let terminal_type = code.contains("type Terminal;");
            let raw = code.contains("term::sys");
            if binding || terminal_type || raw {
                offenders.push(format!("{file}:{number}: {code}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "xterm.js bindings outside app/src/term/: {offenders:#?}"
    );
    let term = read("app/src/term/mod.rs");
    assert!(
        code_lines(&term).any(|(_, code)| code == "mod sys;"),
        "app/src/term/mod.rs must keep its xterm.js bindings private (`mod sys;`)"
    );
}

#[test]
fn burrow_proto_has_no_io_dependency_and_does_no_io() {
    let manifest = read("proto/Cargo.toml");
    let mut section = String::new();
    let mut unexpected = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let dependencies = section == "dependencies"
            || section.starts_with("target.") && section.ends_with(".dependencies");
        if dependencies && let Some((name, _)) = line.split_once('=') {
            let name = name.trim().split('.').next().unwrap_or("").trim();
            if !name.is_empty() && !name.starts_with('#') && !PROTO_DEPENDENCIES.contains(&name) {
                unexpected.push(name.to_owned());
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "burrow-proto has new dependencies {unexpected:?}; it must stay sans-IO (add a crate to \
         PROTO_DEPENDENCIES only if it does no IO and reads no clock)"
    );
    let mut uses = Vec::new();
    for file in rust_files()
        .into_iter()
        .filter(|f| f.starts_with("proto/src/"))
    {
        let text = read(&file);
        for (number, code) in code_lines(&text) {
            for forbidden in PROTO_FORBIDDEN {
                if code.contains(forbidden) {
                    uses.push(format!("{file}:{number}: {code}"));
                }
            }
        }
    }
    assert!(
        uses.is_empty(),
        "burrow-proto's sources use IO, the clock or the OS: {uses:#?}"
    );
}

#[test]
fn no_file_is_longer_than_the_limit_and_long_files_only_shrink() {
    let files = rust_files();
    let mut problems = Vec::new();
    for (file, max) in LONG_FILES {
        if !files.iter().any(|f| f == file) {
            problems.push(format!(
                "{file} is in LONG_FILES but no longer exists: remove it"
            ));
        }
        assert!(
            *max > MAX_LINES,
            "{file}: a LONG_FILES entry must be over the limit"
        );
    }
    for file in &files {
        let lines = read(file).lines().count();
        match LONG_FILES.iter().find(|(f, _)| f == file) {
            Some((_, max)) if lines > *max => problems.push(format!(
                "{file} has {lines} lines, more than the {max} it had: split it instead of growing it"
            )),
            Some(_) if lines <= MAX_LINES => problems.push(format!(
                "{file} has {lines} lines, within the limit: remove it from LONG_FILES"
            )),
            Some(_) => {}
            None if lines > MAX_LINES => problems.push(format!(
                "{file} has {lines} lines, over the limit of {MAX_LINES}: split it along its seams"
            )),
            None => {}
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The rules of `css` opened inside another style rule (not inside an at-rule such as
/// `@media`), as `line: selector`.
fn nested_rules(css: &str) -> Vec<String> {
    let mut found = Vec::new();
    // For each open block: whether it is an at-rule's.
    let mut open: Vec<bool> = Vec::new();
    let mut prelude = String::new();
    let mut line = 1;
    let mut chars = css.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '{' => {
                let selector = prelude.trim().to_owned();
                if open.last() == Some(&false) {
                    found.push(format!("{line}: {selector}"));
                }
                open.push(selector.starts_with('@'));
                prelude.clear();
            }
            '}' => {
                open.pop();
                prelude.clear();
            }
            ';' => prelude.clear(),
            _ => {
                if c == '\n' {
                    line += 1;
                }
                prelude.push(c);
            }
        }
    }
    found
}

#[test]
fn style_sheets_nest_no_rules() {
    let style = root().join("style");
    let mut sheets: Vec<PathBuf> = std::fs::read_dir(&style)
        .expect("style/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "css"))
        .collect();
    sheets.sort();
    assert!(!sheets.is_empty(), "no style sheets in {}", style.display());
    for sheet in sheets {
        let css = std::fs::read_to_string(&sheet).expect("readable");
        let nested = nested_rules(&css);
        assert!(
            nested.is_empty(),
            "{}: rules inside another rule (a missing `}}` before them?): {nested:?}",
            sheet.display()
        );
    }
}

#[test]
fn the_nesting_check_finds_a_missing_brace() {
    let broken = "a {\n  color: red;\n\n/* next */\n.b {\n  flex: 1;\n}\n";
    assert_eq!(nested_rules(broken), vec!["5: .b".to_owned()]);
    let fine = "@media (max-width: 1px) {\n  .a { color: red; }\n}\n.b { flex: 1; }\n";
    assert!(nested_rules(fine).is_empty());
}
