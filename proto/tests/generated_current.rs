//! Checks that the committed `src/generated.rs` is what prost generates from `proto/tunnel.proto`.
//!
//! The schema is compiled by `protox` (pure Rust), so neither the build nor this test needs
//! `protoc`. Run with `BURROW_REGENERATE=1` to rewrite the file after changing the schema.

use std::path::Path;

#[test]
fn generated_code_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["tunnel.proto"], [root.join("proto")]).expect("schema compiles");
    let out = tempdir(root);
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(fds)
        .expect("prost generates code");
    let generated = std::fs::read_to_string(out.join("com.amazonaws.iot.securedtunneling.rs"))
        .expect("prost wrote the package file");
    let committed_path = root.join("src/generated.rs");
    if std::env::var_os("BURROW_REGENERATE").is_some() {
        std::fs::write(&committed_path, &generated).expect("write generated.rs");
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == generated,
        "src/generated.rs is stale: run `BURROW_REGENERATE=1 cargo test -p burrow-proto --test generated_current`"
    );
}

fn tempdir(root: &Path) -> std::path::PathBuf {
    let dir = root
        .parent()
        .expect("proto/ has a parent")
        .join("target")
        .join("burrow-proto-gen")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
