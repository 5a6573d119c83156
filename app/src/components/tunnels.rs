//! The **Open tunnels** panel: the service's open tunnels (thing, services, age, time left,
//! whether the device is connected), each with **Join** (new source token, then connect), for
//! a tunnel opened from another page or by the CLI.
//!
//! The list is read from the tunnel API when the panel opens and on Refresh; it is not kept
//! live. Times come from the service's clock against the browser's, so they are approximate.

use leptos::prelude::*;

use crate::tunnel_api::{Tunnel, TunnelStatus, format_span};

/// One row's words: `(services, age, time left, device)`.
pub fn row_words(tunnel: &Tunnel, now_secs: f64) -> (String, String, String, &'static str) {
    let services = if tunnel.services.is_empty() {
        "—".to_owned()
    } else {
        tunnel.services.join(", ")
    };
    let age = format_span(now_secs - tunnel.created_at);
    let left = format_span(tunnel.expires_at - now_secs);
    let device = if tunnel.destination_connected {
        "connected"
    } else {
        "not connected"
    };
    (services, age, left, device)
}

/// The open tunnels among a list answer.
pub fn open_only(tunnels: Vec<Tunnel>) -> Vec<Tunnel> {
    tunnels
        .into_iter()
        .filter(|tunnel| tunnel.status == TunnelStatus::Open)
        .collect()
}

/// The panel.
#[component]
pub fn TunnelsPanel(
    /// The page's origin (where the API is).
    page_origin: String,
    /// Join pressed on a row.
    on_join: Callback<Tunnel>,
) -> impl IntoView {
    let rows = RwSignal::new(Vec::<Tunnel>::new());
    let note = RwSignal::new(None::<String>);
    let now = RwSignal::new(0.0_f64);
    let refresh = move || {
        let origin = page_origin.clone();
        load(origin, rows, note, now);
    };
    let on_toggle = {
        let refresh = refresh.clone();
        move |ev: web_sys::Event| {
            use wasm_bindgen::JsCast;
            let open = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|details| details.has_attribute("open"));
            if open {
                refresh();
            }
        }
    };
    view! {
        <details class="advanced tunnels" data-testid="tunnels" on:toggle=on_toggle>
            <summary>"Open tunnels"</summary>
            <div class="actions">
                <button type="button" class="small" data-testid="tunnels-refresh" on:click=move |_| refresh()>
                    "Refresh"
                </button>
            </div>
            <Show when=move || note.with(Option::is_some)>
                <p class="hint" data-testid="tunnels-note">{move || note.get()}</p>
            </Show>
            <ul class="tunnel-list">
                <For
                    each=move || rows.get()
                    key=|tunnel| tunnel.tunnel_id.clone()
                    children=move |tunnel| {
                        let (services, age, left, device) = row_words(&tunnel, now.get_untracked());
                        let thing = tunnel.thing_name.clone().unwrap_or_else(|| "(no thing)".to_owned());
                        let id = tunnel.tunnel_id.clone();
                        let thing_attr = thing.clone();
                        view! {
                            <li class="tunnel-row" data-testid="tunnel-row" data-tunnel-id=id data-thing=thing_attr>
                                <span class="thing">{thing}</span>
                                <span class="hint">{format!("{services} · opened {age} ago · {left} left · device {device}")}</span>
                                <button type="button" class="small" data-testid="tunnel-join" on:click=move |_| on_join.run(tunnel.clone())>
                                    "Join"
                                </button>
                            </li>
                        }
                    }
                />
            </ul>
        </details>
    }
}

#[cfg(target_arch = "wasm32")]
fn load(
    origin: String,
    rows: RwSignal<Vec<Tunnel>>,
    note: RwSignal<Option<String>>,
    now: RwSignal<f64>,
) {
    leptos::task::spawn_local(async move {
        let answer = crate::driver::api::list(&origin).await;
        let _ = now.try_set(js_sys::Date::now() / 1000.0);
        match answer {
            Ok(tunnels) => {
                let open = open_only(tunnels);
                let _ = note.try_set(open.is_empty().then(|| "No open tunnels.".to_owned()));
                let _ = rows.try_set(open);
            }
            Err(err) => {
                let _ = rows.try_set(Vec::new());
                let _ = note.try_set(Some(err.user_message()));
            }
        }
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn load(
    _origin: String,
    _rows: RwSignal<Vec<Tunnel>>,
    note: RwSignal<Option<String>>,
    _now: RwSignal<f64>,
) {
    note.set(Some(
        "The tunnel list is read only in a browser.".to_owned(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(id: &str, status: TunnelStatus) -> Tunnel {
        Tunnel {
            tunnel_id: id.into(),
            status,
            thing_name: Some("pump-7".into()),
            services: vec!["SSH".into()],
            source_connected: false,
            destination_connected: true,
            created_at: 1000.0,
            expires_at: 1000.0 + 12.0 * 3600.0,
        }
    }

    #[test]
    fn rows_say_age_time_left_and_the_device() {
        let words = row_words(&tunnel("t", TunnelStatus::Open), 1000.0 + 600.0);
        assert_eq!(
            words,
            (
                "SSH".to_owned(),
                "10 min".to_owned(),
                "11 h 50 min".to_owned(),
                "connected"
            )
        );
        let open = open_only(vec![
            tunnel("a", TunnelStatus::Open),
            tunnel("b", TunnelStatus::Closed),
        ]);
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].tunnel_id, "a");
    }
}
