//! The status line above the terminal (step, round trip, bytes, Disconnect / Reconnect, and in
//! Device mode Send new access tokens / Close tunnel) and the error panel. Once connected it is
//! the page's compact bar: the form folds away and this line names `user@device`.

use leptos::prelude::*;

use super::controller::DeviceTunnel;
use super::status::{Status, details};
use crate::session::Stats;

/// What the status line shows of Device mode, and its two actions.
#[derive(Clone, Copy)]
pub struct DeviceActions {
    /// The tunnel Device mode works on.
    pub tunnel: RwSignal<Option<DeviceTunnel>>,
    /// The device the current attempt is for.
    pub device_name: RwSignal<Option<String>>,
    /// A word on the message format (Device mode retried in V1).
    pub format_note: RwSignal<Option<String>>,
    /// `user@device` of the session.
    pub login: RwSignal<Option<String>>,
    /// Send new access tokens pressed.
    pub on_resend: Callback<()>,
    /// Close tunnel pressed.
    pub on_close: Callback<()>,
}

/// The status line.
#[component]
pub fn StatusBar(
    /// The connection's step.
    status: RwSignal<Status>,
    /// Round trip and byte counters.
    stats: RwSignal<Stats>,
    /// Whether a session was ever started (Reconnect needs a form that was used once).
    started_once: RwSignal<bool>,
    /// Disconnect pressed.
    on_disconnect: Callback<()>,
    /// Reconnect pressed.
    on_reconnect: Callback<()>,
    /// Device mode's part.
    device: DeviceActions,
    /// Whether the operator unfolded the form while connected.
    unfolded: RwSignal<bool>,
) -> impl IntoView {
    let idle = move || !status.get().is_active();
    let in_device_tunnel = move || device.tunnel.with(Option::is_some);
    let can_reconnect = move || started_once.get() && idle() && !in_device_tunnel();
    let label = move || {
        device
            .device_name
            .with(|name| status.get().label_for(name.as_deref()))
    };
    view! {
        <div class="status-bar">
            <div
                class="status"
                role="status"
                aria-live="polite"
                data-testid="status"
                data-state=move || match status.get() {
                    Status::Idle => "idle",
                    Status::Phase(crate::session::Phase::Connected) => "connected",
                    s if s.is_active() => "connecting",
                    _ => "ended",
                }
            >
                <span class=move || format!("dot {}", status.get().tone())></span>
                <span class="label" data-testid="status-label">{label}</span>
                <Show when=move || device.format_note.with(Option::is_some)>
                    <span class="figures" data-testid="format-note">{move || device.format_note.get()}</span>
                </Show>
                <Show when=move || status.get().is_connected() && device.login.with(Option::is_some)>
                    <span class="login" data-testid="session-login">{move || device.login.get()}</span>
                </Show>
                <Show when=move || status.get() != Status::Idle>
                    <span class="figures">{move || details(&stats.get())}</span>
                </Show>
            </div>
            <div class="status-actions">
                <Show when=move || status.get().is_connected()>
                    <button
                        type="button"
                        class="small"
                        data-testid="unfold"
                        aria-pressed=move || unfolded.get().to_string()
                        on:click=move |_| unfolded.update(|u| *u = !*u)
                    >
                        {move || if unfolded.get() { "Hide form" } else { "Form & settings" }}
                    </button>
                </Show>
                <Show when=move || in_device_tunnel() && idle() && started_once.get()>
                    <button type="button" class="primary small" data-testid="resend-tokens" on:click=move |_| device.on_resend.run(())>
                        "Send new access tokens"
                    </button>
                </Show>
                <Show when=in_device_tunnel>
                    <button type="button" class="small" data-testid="close-tunnel" on:click=move |_| device.on_close.run(())>
                        "Close tunnel"
                    </button>
                </Show>
                <Show when=can_reconnect>
                    <button type="button" class="primary small" data-testid="reconnect" on:click=move |_| on_reconnect.run(())>
                        "Reconnect"
                    </button>
                </Show>
                <button
                    type="button"
                    class="small"
                    data-testid="disconnect"
                    disabled=move || !status.get().is_active() || status.get() == Status::Disconnecting
                    on:click=move |_| on_disconnect.run(())
                >
                    "Disconnect"
                </button>
            </div>
        </div>
    }
}

/// A note that is no error (e.g. the tunnel was closed).
#[component]
pub fn NoticePanel(
    /// The text to show (none: the panel is absent).
    notice: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <Show when=move || notice.with(Option::is_some)>
            <div class="notice" role="status">
                <span data-testid="notice">{move || notice.get()}</span>
            </div>
        </Show>
    }
}

/// The error panel: what went wrong, in words an operator can act on.
#[component]
pub fn ErrorPanel(
    /// The text to show (none: the panel is absent).
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    view! {
        <Show when=move || error.with(Option::is_some)>
            <div class="error" role="alert">
                <span class="error-text" data-testid="error">{move || error.get()}</span>
                <button type="button" class="dismiss" aria-label="Dismiss" on:click=move |_| error.set(None)>"✕"</button>
            </div>
        </Show>
    }
}
