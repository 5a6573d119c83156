//! Entry point of the browser app: mounts the UI and nothing else.
fn main() {}
