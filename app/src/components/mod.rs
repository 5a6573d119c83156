//! The Leptos UI: the connect form, the status line, the error panel, the terminal pane (with
//! its tabs and recording), the
//! Files panel, the terminal's settings and the dialogs for host keys and keyboard-interactive prompts.
//!
//! Components hold no session logic: [`controller`] starts sessions and turns their reports into
//! signals; the pure parts (URL fragment, endpoint field, form checks, status wording) live in
//! their own modules with native tests.

pub mod controller;
pub mod endpoint;
pub mod files;
pub mod form;
pub mod fragment;
pub mod known_hosts;
pub mod prompts;
pub mod request;
pub mod status;
pub mod status_bar;
pub mod tabs;
pub mod term_settings;
pub mod terminal;

use leptos::prelude::*;

use controller::Controller;
use files::{FileDrops, FilesPanel};
use form::{ConnectForm, FormRefs};
use known_hosts::KnownHostsPanel;
use prompts::{HostKeyDialog, KbdDialog};
use status_bar::{ErrorPanel, StatusBar};
use term_settings::TerminalSettings;
use terminal::TerminalPane;

/// The page's origin (`scheme://host[:port]`), the default tunnel endpoint.
fn page_origin() -> String {
    web_sys::window()
        .and_then(|window| window.location().origin().ok())
        .unwrap_or_default()
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let fragment = fragment::take_from_location();
    let controller = Controller::new();
    let state = controller.state;
    let controller = StoredValue::new_local(controller);
    let refs = FormRefs::new();
    let origin = page_origin();
    // Files dropped onto the terminal go to the Files panel.
    let drops = FileDrops::new();
    provide_context(drops);

    // A token from the fragment goes straight into its (password) field once it exists.
    let fragment_token = StoredValue::new_local(fragment.token);
    Effect::new(move |_| {
        if refs.token_ready() {
            let token = fragment_token.try_update_value(Option::take).flatten();
            if let Some(token) = token {
                refs.set_token(&token);
            }
        }
    });

    let connect_origin = origin.clone();
    let connect = move |keep_scrollback: bool| {
        if let Some(controller) = controller.try_get_value() {
            controller.connect(refs.read(), &connect_origin, keep_scrollback);
        }
    };
    let on_connect = Callback::new({
        let connect = connect.clone();
        move |()| connect(false)
    });
    let on_reconnect = Callback::new(move |()| connect(true));
    let on_disconnect = Callback::new(move |()| {
        if let Some(controller) = controller.try_get_value() {
            controller.disconnect();
        }
    });

    view! {
        <div class="app">
            <header class="topbar">
                <span class="brand">"Burrow"</span>
                <span class="tagline">"SSH through AWS IoT Secure Tunneling, in your browser"</span>
            </header>
            <main class="layout">
                <aside class="sidebar">
                    <ConnectForm
                        refs=refs
                        page_origin=origin
                        initial_user=fragment.user
                        services=state.services
                        status=state.status
                        error=state.error
                        on_connect=on_connect
                    />
                    <TerminalSettings controller=controller />
                    <KnownHostsPanel />
                </aside>
                <section class="session">
                    <StatusBar
                        status=state.status
                        stats=state.stats
                        started_once=state.started_once
                        on_disconnect=on_disconnect
                        on_reconnect=on_reconnect
                    />
                    <ErrorPanel error=state.error />
                    <TerminalPane controller=controller />
                    <FilesPanel controller=controller drops=drops />
                    <HostKeyDialog controller=controller />
                    <KbdDialog controller=controller />
                </section>
            </main>
        </div>
    }
}
