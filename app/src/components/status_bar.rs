//! The status line above the terminal (step, round trip, bytes, Disconnect / Reconnect) and the
//! error panel.

use leptos::prelude::*;

use super::status::{Status, details};
use crate::session::Stats;

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
) -> impl IntoView {
    let can_reconnect = move || started_once.get() && !status.get().is_active();
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
                <span class="label">{move || status.get().label()}</span>
                <Show when=move || status.get() != Status::Idle>
                    <span class="figures">{move || details(&stats.get())}</span>
                </Show>
            </div>
            <div class="status-actions">
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
