//! Splitting the app's WebAssembly so the first screen downloads only what it runs.
//!
//! The app marks split points with `wasm_split_helpers::wasm_split` (the session machinery:
//! russh, the key formats, the ciphers). Code reachable only from a split point is moved into a
//! module of its own, fetched the first time the split point is called. The cut needs the
//! linker's relocations (`-C link-arg=--emit-relocs`, see `.cargo/config.toml`), so it runs on
//! cargo's output, before wasm-bindgen:
//!
//! 1. `wasm-split-cli` cuts cargo's `burrow-app.wasm` into the main module, one module per split
//!    point (and per group of split points sharing code) and a small JS link module that fetches
//!    them and hands them the main module's memory and function table;
//! 2. `wasm-bindgen --keep-lld-exports` generates the main module's glue (the function table
//!    must stay exported for the split modules);
//! 3. `wasm-opt -Oz` shrinks every module.
//!
//! The results replace the glue and `.wasm` that Trunk wrote into `dist/`, under Trunk's hashed
//! names (so `loader.js` and the preload links still point at them); the link module and the split
//! modules get the same hashed stem, and the subresource-integrity hashes in `index.html` are
//! brought up to date.

use std::path::Path;

use base64::Engine as _;
use sha2::{Digest, Sha384};

use crate::run::{Cmd, XtaskError, say};

/// The name `wasm-split-cli` gives the JS link module; the main module's glue imports it.
const LINK_MODULE: &str = "__wasm_split.js";

/// The WebAssembly features the modules use: Rust's defaults for wasm32-unknown-unknown, all of
/// them in every browser Burrow supports.
const WASM_FEATURES: [&str; 6] = [
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];

/// Splits cargo's build of the app (under `target`) and puts the parts into `dist`.
pub fn split(target: &Path, dist: &Path, npm_bin: &Path) -> Result<(), XtaskError> {
    let input = target
        .join("wasm32-unknown-unknown")
        .join("wasm-release")
        .join("burrow-app.wasm");
    if !input.is_file() {
        return Err(XtaskError::Missing(format!(
            "{} is missing: trunk did not build the app with the wasm-release profile",
            input.display()
        )));
    }
    let index_path = dist.join("index.html");
    let mut index = read_text(&index_path)?;
    let stem = glue_stem(&index)?;
    let work = target.join("wasm-split");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|source| io(&work, "creating", source))?;

    say(format!("splitting {} at its split points", input.display()));
    Cmd::new("wasm-split-cli")
        .args(["--target", "web", "--out-name", &stem])
        .arg(&input)
        .arg(&work)
        .run()?;
    let bindgen = work.join("bindgen");
    Cmd::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--keep-lld-exports"])
        .args(["--out-name", &stem])
        .arg("--out-dir")
        .arg(&bindgen)
        .arg(work.join(format!("{stem}.wasm")))
        .run()?;

    // The link module and the split modules, renamed after the app's hashed stem so that a page
    // never pairs one build's main module with another build's parts.
    let link_name = format!("{stem}-split.js");
    let mut link = read_text(&work.join(LINK_MODULE))?;
    let mut parts = Vec::new();
    for path in crate::wasm_imports::find_wasm(&work)? {
        let name = file_name(&path);
        if name == format!("{stem}.wasm") {
            continue;
        }
        let renamed = format!("{stem}-{name}");
        replace_all(
            &mut link,
            &format!("\"./{name}\""),
            &format!("\"./{renamed}\""),
            LINK_MODULE,
        )?;
        parts.push((path, renamed));
    }
    if parts.is_empty() {
        return Err(XtaskError::Usage(format!(
            "wasm-split-cli found no split point in {}: the app's #[wasm_split] functions were \
             not linked with --emit-relocs (.cargo/config.toml)",
            input.display()
        )));
    }
    let mut glue = read_text(&bindgen.join(format!("{stem}.js")))?;
    replace_all(
        &mut glue,
        &format!("from \"./{LINK_MODULE}\""),
        &format!("from \"./{link_name}\""),
        "the wasm-bindgen glue",
    )?;

    let main_wasm = dist.join(format!("{stem}_bg.wasm"));
    let main_js = dist.join(format!("{stem}.js"));
    let old_wasm = sri(&read_bytes(&main_wasm)?);
    let old_js = sri(&read_bytes(&main_js)?);
    optimise(
        npm_bin,
        &bindgen.join(format!("{stem}_bg.wasm")),
        &main_wasm,
    )?;
    write(&main_js, glue.as_bytes())?;
    write(&dist.join(&link_name), link.as_bytes())?;
    for (path, renamed) in &parts {
        optimise(npm_bin, path, &dist.join(renamed))?;
    }
    replace_all(
        &mut index,
        &old_wasm,
        &sri(&read_bytes(&main_wasm)?),
        "index.html",
    )?;
    replace_all(
        &mut index,
        &old_js,
        &sri(&read_bytes(&main_js)?),
        "index.html",
    )?;
    write(&index_path, index.as_bytes())?;

    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    say(format!(
        "main module {} bytes; fetched on first use: {}",
        size(&main_wasm),
        parts
            .iter()
            .map(|(_, name)| format!("{name} {} bytes", size(&dist.join(name))))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// The hashed stem of the glue Trunk wrote (`burrow-app-0123abcd`), from `loader.js`'s tag.
fn glue_stem(index: &str) -> Result<String, XtaskError> {
    let start = index
        .find("data-burrow-js=")
        .map(|at| at + "data-burrow-js=".len())
        .ok_or_else(|| {
            XtaskError::Usage(
                "dist/index.html has no data-burrow-js attribute (Trunk.toml's pattern_script)"
                    .to_owned(),
            )
        })?;
    let value: String = index[start..]
        .trim_start_matches(['"', '/'])
        .chars()
        .take_while(|c| !matches!(c, ' ' | '"' | '>'))
        .collect();
    value
        .strip_suffix(".js")
        .filter(|stem| !stem.is_empty() && !stem.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            XtaskError::Usage(format!(
                "dist/index.html's data-burrow-js is {value:?}, not a .js file beside it"
            ))
        })
}

/// Replaces every `from` in `text` by `to`; `from` must occur.
fn replace_all(text: &mut String, from: &str, to: &str, what: &str) -> Result<(), XtaskError> {
    if !text.contains(from) {
        return Err(XtaskError::Usage(format!(
            "{what} does not contain {from:?}: the split tools' output changed shape"
        )));
    }
    *text = text.replace(from, to);
    Ok(())
}

/// A subresource-integrity value (`sha384-…`), as Trunk writes them.
fn sri(bytes: &[u8]) -> String {
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    )
}

fn optimise(npm_bin: &Path, input: &Path, output: &Path) -> Result<(), XtaskError> {
    Cmd::new(npm_bin.join("wasm-opt"))
        .arg("-Oz")
        .args(WASM_FEATURES)
        .arg(input)
        .arg("-o")
        .arg(output)
        .run()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_text(path: &Path) -> Result<String, XtaskError> {
    std::fs::read_to_string(path).map_err(|source| io(path, "reading", source))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, XtaskError> {
    std::fs::read(path).map_err(|source| io(path, "reading", source))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), XtaskError> {
    std::fs::write(path, bytes).map_err(|source| io(path, "writing", source))
}

fn io(path: &Path, doing: &str, source: std::io::Error) -> XtaskError {
    XtaskError::Io {
        what: format!("{doing} {}", path.display()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stem_comes_from_the_loader_tag() {
        let index = "<script data-burrow-js=/burrow-app-4af2d7.js data-burrow-wasm=/x.wasm \
                     src=/loader.js type=module></script>";
        assert_eq!(glue_stem(index).expect("a stem"), "burrow-app-4af2d7");
        let quoted = r#"<script data-burrow-js="/burrow-app-1.js" src="/loader.js"></script>"#;
        assert_eq!(glue_stem(quoted).expect("a stem"), "burrow-app-1");
        assert!(glue_stem("<script src=/loader.js></script>").is_err());
        assert!(glue_stem("<script data-burrow-js=/a/b.js>").is_err());
    }

    #[test]
    fn a_missing_literal_is_an_error_not_a_silent_no_op() {
        let mut text = "import * as i from \"./__wasm_split.js\"".to_owned();
        replace_all(
            &mut text,
            "\"./__wasm_split.js\"",
            "\"./x-split.js\"",
            "glue",
        )
        .expect("found");
        assert_eq!(text, "import * as i from \"./x-split.js\"");
        assert!(replace_all(&mut text, "\"./__wasm_split.js\"", "\"./y.js\"", "glue").is_err());
    }

    #[test]
    fn integrity_values_are_trunks_format() {
        // sha384 of the empty input, as `openssl dgst -sha384 -binary | base64` prints it.
        assert_eq!(
            sri(b""),
            "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb"
        );
    }
}
