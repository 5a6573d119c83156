//! The Leptos UI: the connect form (Device and Token modes), the status line (the compact bar
//! once connected), the error panel, the terminal pane (with its tabs and recording), the Files
//! panel, the open tunnels, the terminal's settings and the dialogs for host keys and
//! keyboard-interactive prompts.
//!
//! The page starts in Device mode when the service offers the tunnel API (a first `list`
//! answers, or asks for a sign-in), or when its link says `#thing=…`; else in Token mode.
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
pub mod tunnels;

use leptos::prelude::*;

use controller::Controller;
use files::{FileDrops, FilesPanel};
use form::{ConnectForm, FormRefs};
use known_hosts::KnownHostsPanel;
use prompts::{HostKeyDialog, KbdDialog, ServiceChoiceDialog};
use request::Mode;
use status_bar::{DeviceActions, ErrorPanel, NoticePanel, StatusBar};
use term_settings::TerminalSettings;
use terminal::TerminalPane;
use tunnels::TunnelsPanel;

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

    // The way in: the link's word first, else what the service offers.
    if fragment.thing.is_some() {
        refs.mode.set(Mode::Device);
    }
    if fragment.token.is_some() || fragment.thing.is_some() {
        refs.mode_chosen.set(true);
    }
    probe_offer(origin.clone(), refs, state.error);

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
            match refs.mode.get_untracked() {
                Mode::Device => controller.connect_device(refs.read(), &connect_origin),
                Mode::Token => controller.connect(refs.read(), &connect_origin, keep_scrollback),
            }
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
    let device_origin = origin.clone();
    let device = DeviceActions {
        tunnel: state.device,
        device_name: state.device_name,
        format_note: state.format_note,
        login: state.login,
        on_resend: Callback::new({
            let origin = device_origin.clone();
            move |()| {
                if let Some(controller) = controller.try_get_value() {
                    controller.resend_tokens(refs.read(), &origin);
                }
            }
        }),
        on_close: Callback::new({
            let origin = device_origin.clone();
            move |()| {
                if let Some(controller) = controller.try_get_value() {
                    controller.close_tunnel(&origin);
                }
            }
        }),
    };
    // Device mode retrying in another format: new access tokens, with the form's login.
    let retry_requests = state.retry_requests;
    let retry_origin = device_origin.clone();
    Effect::new(move |seen: Option<u64>| {
        let now = retry_requests.get();
        if seen.is_some_and(|seen| seen != now)
            && let Some(controller) = controller.try_get_value()
        {
            controller.resend_tokens(refs.read(), &retry_origin);
        }
        now
    });
    let on_join = Callback::new({
        let origin = device_origin.clone();
        move |tunnel: crate::tunnel_api::Tunnel| {
            if let Some(controller) = controller.try_get_value() {
                controller.join(refs.read(), &origin, &tunnel);
            }
        }
    });
    // Once connected, the form folds away so the terminal gets the room (the status line's
    // button shows it again); it unfolds by itself on disconnect.
    let unfolded = RwSignal::new(false);
    Effect::new(move |_| {
        if !state.status.get().is_connected() {
            unfolded.set(false);
        }
    });
    let folded = move || state.status.get().is_connected() && !unfolded.get();

    view! {
        <div class="app">
            <header class="topbar">
                <span class="brand">"Burrow"</span>
                <span class="tagline">"SSH through AWS IoT Secure Tunneling, in your browser"</span>
            </header>
            <main class="layout" class:folded=folded>
                <aside class="sidebar">
                    <ConnectForm
                        refs=refs
                        page_origin=origin.clone()
                        initial_user=fragment.user
                        initial_thing=fragment.thing
                        services=state.services
                        status=state.status
                        error=state.error
                        on_connect=on_connect
                    />
                    <TunnelsPanel page_origin=origin on_join=on_join />
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
                        device=device
                        unfolded=unfolded
                    />
                    <ErrorPanel error=state.error />
                    <NoticePanel notice=state.notice />
                    <TerminalPane controller=controller />
                    <FilesPanel controller=controller drops=drops />
                    <ServiceChoiceDialog controller=controller />
                    <HostKeyDialog controller=controller />
                    <KbdDialog controller=controller />
                </section>
            </main>
        </div>
    }
}

/// Asks the service whether it offers the tunnel API, and opens Device mode when it does (the
/// operator may have switched already: the answer then changes nothing).
#[cfg(target_arch = "wasm32")]
fn probe_offer(origin: String, refs: FormRefs, error: RwSignal<Option<String>>) {
    use crate::tunnel_api::{ApiError, Offer, offer_of};
    leptos::task::spawn_local(async move {
        let probe = crate::driver::api::list(&origin).await;
        let offer = offer_of(&probe);
        let chosen = refs.mode_chosen.try_get_untracked().unwrap_or(true);
        if offer != Offer::NotOffered && !chosen {
            let _ = refs.mode.try_set(Mode::Device);
        }
        if offer == Offer::SignInNeeded && refs.mode.try_get_untracked() == Some(Mode::Device) {
            let _ = error.try_set(Some(ApiError::Unauthenticated.user_message()));
        }
        let _ = refs.probed.try_set(true);
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn probe_offer(_origin: String, refs: FormRefs, _error: RwSignal<Option<String>>) {
    refs.probed.set(true);
}
