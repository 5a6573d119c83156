//! The check that the built app imports nothing unexpected: every import of the WebAssembly
//! module in `dist/` must come from wasm-bindgen's generated glue (the module `./NAME_bg.js`, or
//! `wbg` in wasm-bindgen's other output layout). An import from
//! anywhere else (typically `env`) means some dependency was compiled for a C or WASI world the
//! browser does not provide (ring without clang's wasm target, getrandom without its `wasm_js`
//! backend, a stray `std::time` or libc call): the page would fail to instantiate, or trap when
//! the import is first called. `cargo xtask test` runs it right after building the app.
//!
//! The app is split (`split.rs`): the main module may also import the split loaders from the
//! link module (`./__wasm_split.js`), and the split modules import only what the main module
//! shares with them (`__wasm_split`: its memory, function table and stack pointer).

use std::path::{Path, PathBuf};

use crate::run::{XtaskError, say};

/// Whether imports from `module` are wasm-bindgen's glue (`./burrow-app_bg.js` as Trunk builds
/// the app today, or `wbg`) or the split's link between the modules.
fn is_glue(module: &str) -> bool {
    matches!(module, "wbg" | "./__wasm_split.js" | "__wasm_split")
        || module
            .strip_prefix("./")
            .and_then(|rest| rest.strip_suffix("_bg.js"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// Checks the import section of every `.wasm` file in `dist`.
pub fn check(dist: &Path) -> Result<(), XtaskError> {
    for wasm in find_wasm(dist)? {
        check_module(&wasm)?;
    }
    Ok(())
}

fn check_module(wasm: &Path) -> Result<(), XtaskError> {
    let bytes = std::fs::read(wasm).map_err(|source| XtaskError::Io {
        what: format!("reading {}", wasm.display()),
        source,
    })?;
    let imports = imports(&bytes)
        .map_err(|err| XtaskError::Usage(format!("{} does not parse: {err}", wasm.display())))?;
    let unexpected: Vec<String> = imports
        .iter()
        .filter(|(module, _)| !is_glue(module))
        .map(|(module, name)| format!("{module}.{name}"))
        .collect();
    if !unexpected.is_empty() {
        return Err(XtaskError::Usage(format!(
            "{} imports {} function(s) from outside wasm-bindgen's glue: {}; a dependency was \
             built for a C or WASI environment the browser does not have",
            wasm.display(),
            unexpected.len(),
            unexpected.join(", ")
        )));
    }
    say(format!(
        "{}: {} imports, all from wasm-bindgen's glue",
        wasm.display(),
        imports.len()
    ));
    Ok(())
}

/// The `.wasm` files in `dist` (their precompressed copies aside), sorted; at least one.
pub fn find_wasm(dist: &Path) -> Result<Vec<PathBuf>, XtaskError> {
    let entries = std::fs::read_dir(dist).map_err(|source| XtaskError::Io {
        what: format!("listing {}", dist.display()),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    if found.is_empty() {
        return Err(XtaskError::Missing(format!(
            "no .wasm file in {}: the app build did not produce one",
            dist.display()
        )));
    }
    found.sort();
    Ok(found)
}

/// Every import of a module as (module, name).
fn imports(bytes: &[u8]) -> Result<Vec<(String, String)>, wasmparser::BinaryReaderError> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ImportSection(section) = payload? {
            for import in section.into_imports() {
                let import = import?;
                out.push((import.module.to_owned(), import.name.to_owned()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing one function `() -> ()` from each `(module, name)`.
    fn module(imports: &[(&str, &str)]) -> Vec<u8> {
        fn name(out: &mut Vec<u8>, text: &str) {
            out.push(u8::try_from(text.len()).expect("short name"));
            out.extend_from_slice(text.as_bytes());
        }
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        // Type section: one type, func () -> ().
        wasm.extend_from_slice(&[1, 4, 1, 0x60, 0, 0]);
        let mut section = vec![u8::try_from(imports.len()).expect("few imports")];
        for (module, field) in imports {
            name(&mut section, module);
            name(&mut section, field);
            section.extend_from_slice(&[0x00, 0x00]); // a function of type 0
        }
        wasm.push(2);
        wasm.push(u8::try_from(section.len()).expect("a short section"));
        wasm.extend_from_slice(&section);
        wasm
    }

    fn dist_with(tag: &str, wasm: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-wasm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary dist");
        std::fs::write(dir.join("burrow-app_bg.wasm"), wasm).expect("write the module");
        std::fs::write(dir.join("burrow-app_bg.wasm.gz"), b"not looked at").expect("write a copy");
        dir
    }

    #[test]
    fn imports_are_read_from_the_import_section() {
        let wasm = module(&[("wbg", "__wbg_log_1"), ("env", "abort")]);
        assert_eq!(
            imports(&wasm).expect("parses"),
            [
                ("wbg".to_owned(), "__wbg_log_1".to_owned()),
                ("env".to_owned(), "abort".to_owned())
            ]
        );
    }

    #[test]
    fn glue_imports_pass() {
        let dist = dist_with(
            "ok",
            &module(&[
                ("./burrow-app_bg.js", "__wbg_a"),
                ("wbg", "__wbg_b"),
                ("./__wasm_split.js", "__wasm_split_load_session"),
            ]),
        );
        std::fs::write(
            dist.join("burrow-app-split_session.wasm"),
            module(&[("__wasm_split", "__indirect_function_table")]),
        )
        .expect("write a split module");
        check(&dist).expect("only wasm-bindgen glue and the split's link");
        let _ = std::fs::remove_dir_all(dist);
    }

    #[test]
    fn an_env_import_fails_and_is_named() {
        let dist = dist_with(
            "env",
            &module(&[("./burrow-app_bg.js", "__wbg_a"), ("env", "clock_gettime")]),
        );
        let err = check(&dist).expect_err("env is not the glue").to_string();
        assert!(err.contains("env.clock_gettime"), "{err}");
        assert!(!err.contains("__wbg_a"), "{err}");
        for module in [
            "./x/y_bg.js",
            "./_bg.js",
            "burrow-app_bg.js",
            "wasi_snapshot_preview1",
        ] {
            assert!(!is_glue(module), "{module}");
        }
        let _ = std::fs::remove_dir_all(dist);
    }

    #[test]
    fn a_split_module_is_checked_too() {
        let dist = dist_with("split", &module(&[("wbg", "__wbg_b")]));
        std::fs::write(
            dist.join("burrow-app-split_session.wasm"),
            module(&[("env", "abort")]),
        )
        .expect("write a split module");
        let err = check(&dist)
            .expect_err("the split module imports env")
            .to_string();
        assert!(
            err.contains("split_session") && err.contains("env.abort"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dist);
    }

    #[test]
    fn a_broken_module_fails() {
        let dist = dist_with("broken", b"\0asm\x01\0\0\0\x02\x09garbage");
        assert!(check(&dist).is_err());
        let _ = std::fs::remove_dir_all(dist);
    }
}
