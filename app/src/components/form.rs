//! The connect form, with its two ways in: **Device** (thing name and services; the tunnel API
//! opens the tunnel) and **Token** (tunnel endpoint, cookie helper, token, service, device
//! name), then the message format and the login.
//!
//! Both modes' fields stay in the page (the hidden ones are only not shown), so switching loses
//! nothing typed.
//! Secrets (token, password, key, passphrase) are never copied into signals: they stay in their
//! `<input>`s and are read into [`Zeroizing`] strings only when Connect or Reconnect is pressed.

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use zeroize::Zeroizing;

use super::endpoint::{REGIONS, aws_data_plane_url, default_cookie_helper, region_of_input};
use super::request::{FormValues, MAX_KEY_LEN, Mode};
use super::status::Status;

/// The form's inputs; `Copy` handles, so the status bar's Reconnect can read the form too.
#[derive(Clone, Copy)]
pub struct FormRefs {
    /// The endpoint field's text (not secret; drives the region list and the AWS note).
    pub endpoint: RwSignal<String>,
    /// The way in.
    pub mode: RwSignal<Mode>,
    /// Whether the operator chose the way in (the service's offer then changes nothing).
    pub mode_chosen: RwSignal<bool>,
    /// Whether the page has learnt whether the service offers the tunnel API.
    pub probed: RwSignal<bool>,
    thing: NodeRef<html::Input>,
    services: NodeRef<html::Input>,
    device_name: NodeRef<html::Input>,
    cookie_helper: NodeRef<html::Input>,
    token: NodeRef<html::Input>,
    service: NodeRef<html::Input>,
    format: NodeRef<html::Select>,
    username: NodeRef<html::Input>,
    password: NodeRef<html::Input>,
    private_key: NodeRef<html::Textarea>,
    passphrase: NodeRef<html::Input>,
}

impl FormRefs {
    /// Handles for a form not yet rendered.
    pub fn new() -> Self {
        Self {
            endpoint: RwSignal::new(String::new()),
            mode: RwSignal::new(Mode::Token),
            mode_chosen: RwSignal::new(false),
            probed: RwSignal::new(false),
            thing: NodeRef::new(),
            services: NodeRef::new(),
            device_name: NodeRef::new(),
            cookie_helper: NodeRef::new(),
            token: NodeRef::new(),
            service: NodeRef::new(),
            format: NodeRef::new(),
            username: NodeRef::new(),
            password: NodeRef::new(),
            private_key: NodeRef::new(),
            passphrase: NodeRef::new(),
        }
    }

    /// The fields' current values.
    pub fn read(&self) -> FormValues {
        let input = |node: NodeRef<html::Input>| {
            node.get_untracked()
                .map(|el| el.value())
                .unwrap_or_default()
        };
        FormValues {
            endpoint: self.endpoint.get_untracked(),
            cookie_helper: input(self.cookie_helper),
            token: Zeroizing::new(input(self.token)),
            service: input(self.service),
            device_name: input(self.device_name),
            thing: input(self.thing),
            services: input(self.services),
            format: self
                .format
                .get_untracked()
                .map(|el| el.value())
                .unwrap_or_default(),
            username: input(self.username),
            password: Zeroizing::new(input(self.password)),
            private_key: Zeroizing::new(
                self.private_key
                    .get_untracked()
                    .map(|el| el.value())
                    .unwrap_or_default(),
            ),
            passphrase: Zeroizing::new(input(self.passphrase)),
        }
    }

    /// Whether the token field is in the page; tracked, so an effect reruns once it is.
    pub fn token_ready(&self) -> bool {
        self.token.get().is_some()
    }

    /// Fills the Token mode's device name, unless the operator typed one.
    pub fn offer_device_name(&self, name: &str) {
        if let Some(el) = self.device_name.get_untracked()
            && el.value().trim().is_empty()
        {
            el.set_value(name);
            self.suggest_format(name);
        }
    }

    /// Token mode: a device name whose format the page remembers selects that format.
    pub fn suggest_format(&self, device: &str) {
        use crate::tunnel_api::formats;
        if let (Some(format), Some(el)) = (
            formats::remembered(device.trim()),
            self.format.get_untracked(),
        ) {
            el.set_value(formats::word_of(format));
        }
    }

    /// Puts a token into the token field (from the URL fragment).
    pub fn set_token(&self, token: &str) {
        if let Some(el) = self.token.get_untracked() {
            el.set_value(token);
        }
    }
}

impl Default for FormRefs {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads the chosen key file into the key text area.
fn load_key_file(
    input: web_sys::HtmlInputElement,
    target: NodeRef<html::Textarea>,
    error: RwSignal<Option<String>>,
) {
    let Some(file) = input.files().and_then(|files| files.get(0)) else {
        return;
    };
    if file.size() > MAX_KEY_LEN as f64 {
        error.set(Some(format!(
            "The file “{}” is too large to be a private key (over {} KiB).",
            file.name(),
            MAX_KEY_LEN / 1024
        )));
        input.set_value("");
        return;
    }
    let name = file.name();
    leptos::task::spawn_local(async move {
        match wasm_bindgen_futures::JsFuture::from(file.text()).await {
            Ok(text) => {
                let text = Zeroizing::new(text.as_string().unwrap_or_default());
                if let Some(area) = target.get_untracked() {
                    area.set_value(&text);
                }
            }
            Err(_) => error.set(Some(format!("The file “{name}” could not be read."))),
        }
        // The text now lives in the text area only.
        input.set_value("");
    });
}

/// The connect form.
#[component]
pub fn ConnectForm(
    /// The form's inputs.
    refs: FormRefs,
    /// The page's origin (default endpoint and cookie helper).
    page_origin: String,
    /// A user name from the URL fragment.
    initial_user: Option<String>,
    /// A thing name from the URL fragment (Device mode).
    initial_thing: Option<String>,
    /// Service ids the tunnel offers.
    services: RwSignal<Vec<String>>,
    /// The connection's step (Connect is disabled while a session runs).
    status: RwSignal<Status>,
    /// Where problems with the key file are shown.
    error: RwSignal<Option<String>>,
    /// Called when the form is submitted.
    on_connect: Callback<()>,
) -> impl IntoView {
    let endpoint = refs.endpoint;
    let aws_region = Memo::new(move |_| region_of_input(&endpoint.get()));
    let cookie_default = default_cookie_helper(&page_origin);
    let busy = move || status.get().is_active();
    let mode = refs.mode;
    let shown = move |wanted: Mode| move || if mode.get() == wanted { "" } else { "none" };
    view! {
        <form
            class="connect-form"
            autocomplete="off"
            data-testid="connect-form"
            data-mode=move || match mode.get() { Mode::Device => "device", Mode::Token => "token" }
            data-probed=move || refs.probed.get().to_string()
            on:submit=move |ev| {
                ev.prevent_default();
                on_connect.run(());
            }
            // The operator is filling the form in: fetch the session machinery meanwhile.
            on:focusin=move |_| crate::session::preload()
        >
            <fieldset>
                <legend>"Tunnel"</legend>
                <div class="mode-switch" role="group" aria-label="Way in">
                    <button
                        type="button"
                        class="small"
                        data-testid="mode-device"
                        aria-pressed=move || (mode.get() == Mode::Device).to_string()
                        on:click=move |_| {
                            refs.mode_chosen.set(true);
                            mode.set(Mode::Device);
                        }
                    >
                        "Device"
                    </button>
                    <button
                        type="button"
                        class="small"
                        data-testid="mode-token"
                        aria-pressed=move || (mode.get() == Mode::Token).to_string()
                        on:click=move |_| {
                            refs.mode_chosen.set(true);
                            mode.set(Mode::Token);
                        }
                    >
                        "Token"
                    </button>
                </div>
                <div class="mode-fields" data-testid="device-fields" style:display=shown(Mode::Device)>
                    <label for="thing">"Thing name"</label>
                    <input
                        id="thing"
                        type="text"
                        spellcheck="false"
                        autocapitalize="off"
                        data-testid="thing"
                        placeholder="e.g. pump-7"
                        value=initial_thing.unwrap_or_default()
                        node_ref=refs.thing
                    />
                    <label for="services">"Services"</label>
                    <input
                        id="services"
                        type="text"
                        spellcheck="false"
                        data-testid="services"
                        value="SSH"
                        node_ref=refs.services
                    />
                    <p class="hint">
                        "The service opens a tunnel for the device and sends the device its token; \
                         this page gets its own and never shows it."
                    </p>
                </div>
                <div class="mode-fields" data-testid="token-fields" style:display=shown(Mode::Token)>
                <label for="endpoint">"Tunnel endpoint"</label>
                <div class="row">
                    <input
                        id="endpoint"
                        type="text"
                        inputmode="url"
                        spellcheck="false"
                        data-testid="endpoint"
                        placeholder=page_origin.clone()
                        prop:value=move || endpoint.get()
                        on:input=move |ev| endpoint.set(event_target_value(&ev))
                    />
                    <select
                        class="region"
                        aria-label="AWS region"
                        data-testid="endpoint-region"
                        prop:value=move || aws_region.get().unwrap_or_default()
                        on:change=move |ev| {
                            let region = event_target_value(&ev);
                            endpoint.set(if region.is_empty() { String::new() } else { aws_data_plane_url(&region) });
                        }
                    >
                        <option value="">"This service / custom URL"</option>
                        {REGIONS
                            .iter()
                            .map(|(code, name)| view! { <option value=*code>{format!("AWS {code} — {name}")}</option> })
                            .collect_view()}
                    </select>
                </div>
                <Show when=move || aws_region.get().is_some()>
                    <p class="note" data-testid="aws-note">
                        "Direct to AWS: the access token goes in the WebSocket URL (its "
                        <code>"access-token"</code>
                        " parameter), as the AWS console itself does. No cookie helper is used."
                    </p>
                </Show>
                <label for="cookie-helper">"Cookie helper"</label>
                <input
                    id="cookie-helper"
                    type="url"
                    spellcheck="false"
                    data-testid="cookie-helper"
                    class:muted=move || aws_region.get().is_some()
                    value=cookie_default
                    node_ref=refs.cookie_helper
                />
                <label for="token">"Source access token"</label>
                <input
                    id="token"
                    type="password"
                    spellcheck="false"
                    autocomplete="off"
                    data-testid="token"
                    placeholder="sourceAccessToken from open-tunnel"
                    node_ref=refs.token
                />
                <label for="service">"Service id " <span class="hint">"(optional)"</span></label>
                <input
                    id="service"
                    type="text"
                    spellcheck="false"
                    list="service-ids"
                    data-testid="service"
                    placeholder="e.g. SSH"
                    node_ref=refs.service
                />
                <datalist id="service-ids">
                    <For each=move || services.get() key=|id| id.clone() children=|id| view! { <option value=id></option> } />
                </datalist>
                <label for="device-name">"Device name " <span class="hint">"(its thing; keys its host key)"</span></label>
                <input
                    id="device-name"
                    type="text"
                    spellcheck="false"
                    autocapitalize="off"
                    data-testid="device-name"
                    placeholder="e.g. pump-7 (else: this tunnel only)"
                    node_ref=refs.device_name
                    on:change=move |ev| refs.suggest_format(&event_target_value(&ev))
                />
                </div>
                <label for="format">"What runs on the device " <span class="hint">"(message format)"</span></label>
                <select id="format" data-testid="format" node_ref=refs.format>
                    <option value="V3" selected=true>"localproxy 3.x or burrow agent → V3"</option>
                    <option value="V1">"AWS IoT Device Client or Greengrass → V1"</option>
                    <option value="V2">"localproxy 2.x → V2"</option>
                </select>
                <Show when=move || { services.get().len() > 1 }>
                    <p class="note" data-testid="service-choices">
                        "This tunnel offers: " {move || services.get().join(", ")}
                        ". Name one in Service id to connect to it without being asked."
                    </p>
                </Show>
            </fieldset>
            <fieldset>
                <legend>"Login"</legend>
                <label for="username">"User name"</label>
                <input
                    id="username"
                    type="text"
                    spellcheck="false"
                    autocapitalize="off"
                    data-testid="username"
                    value=initial_user.unwrap_or_default()
                    node_ref=refs.username
                />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    type="password"
                    autocomplete="off"
                    data-testid="password"
                    node_ref=refs.password
                />
                <label for="private-key">"or private key " <span class="hint">"(OpenSSH, PEM, PKCS#8, PuTTY)"</span></label>
                <textarea
                    id="private-key"
                    rows="4"
                    spellcheck="false"
                    autocomplete="off"
                    data-testid="private-key"
                    placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
                    node_ref=refs.private_key
                ></textarea>
                <input
                    type="file"
                    class="file"
                    aria-label="Private key file"
                    data-testid="private-key-file"
                    on:change=move |ev| {
                        if let Some(input) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok()) {
                            load_key_file(input, refs.private_key, error);
                        }
                    }
                />
                <label for="passphrase">"Key passphrase"</label>
                <input
                    id="passphrase"
                    type="password"
                    autocomplete="off"
                    data-testid="passphrase"
                    node_ref=refs.passphrase
                />
            </fieldset>
            <button type="submit" class="primary" data-testid="connect" disabled=busy>
                "Connect"
            </button>
        </form>
    }
}
