//! `cargo xtask`: installs what is missing, builds, and runs the project's suites (placeholder).
fn main() {
    eprintln!("xtask: not built yet");
    std::process::exit(1);
}
