//! Entry point of the browser app: mounts the UI and nothing else.
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(burrow_app::components::App);
}
