//! Questions the session asks the operator: which of the tunnel's services to open (when it
//! offers several and the form names none), trust a host key seen for the first time, and
//! keyboard-interactive prompts (one-time codes, password prompts of PAM).
//!
//! Answers to keyboard-interactive prompts are read from their inputs only on submit, into
//! [`Zeroizing`] strings, and the inputs are emptied at once.

use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use zeroize::Zeroizing;

use super::controller::Controller;

/// The first-use host key question.
#[component]
pub fn HostKeyDialog(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let question = controller.with_value(|c| c.state.host_key);
    let answer = move |trust: bool| {
        if let Some(controller) = controller.try_get_value() {
            controller.answer_host_key(trust);
        }
    };
    view! {
        <Show when=move || question.with(Option::is_some)>
            <div class="dialog-backdrop">
                <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="hostkey-title" data-testid="hostkey-dialog">
                    <h2 id="hostkey-title">"New host key"</h2>
                    <p>
                        "The device " <strong>{move || question.with(|q| q.as_ref().map(|q| q.target.clone()))}</strong>
                        " presents a " {move || question.with(|q| q.as_ref().map(|q| q.algorithm.clone()))}
                        " key this browser has not seen before. Compare its fingerprint with the one the device shows ("
                        <code>"ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"</code> ")."
                    </p>
                    <p class="hint" data-testid="hostkey-scope">
                        {move || question.with(|q| q.as_ref().map(|q| scope_note(&q.target)))}
                    </p>
                    <p class="fingerprint" data-testid="hostkey-fingerprint">
                        {move || question.with(|q| q.as_ref().map(|q| q.fingerprint.clone()))}
                    </p>
                    <div class="actions">
                        <button type="button" class="danger" data-testid="hostkey-reject" on:click=move |_| answer(false)>
                            "Reject"
                        </button>
                        <button type="button" class="primary" data-testid="hostkey-accept" on:click=move |_| answer(true)>
                            "Trust and connect"
                        </button>
                    </div>
                </div>
            </div>
        </Show>
    }
}

/// The tunnel offers several services and the form named none: the tunnel waits (its token is
/// spent) while the operator picks one.
#[component]
pub fn ServiceChoiceDialog(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let choice = controller.with_value(|c| c.state.service_choice);
    let answer = move |service: Option<String>| {
        if let Some(controller) = controller.try_get_value() {
            controller.answer_service(service);
        }
    };
    view! {
        <Show when=move || choice.with(Option::is_some)>
            <div class="dialog-backdrop">
                <div class="dialog" role="dialog" aria-modal="true" aria-labelledby="service-choice-title" data-testid="service-choice">
                    <h2 id="service-choice-title">"Which service?"</h2>
                    <p>
                        "This tunnel offers several services. Choose the one to connect to (Burrow speaks SSH to it); \
                         the tunnel waits meanwhile."
                    </p>
                    <div class="actions service-options">
                        {move || {
                            choice
                                .with(|c| c.clone().unwrap_or_default())
                                .into_iter()
                                .map(|id| {
                                    let chosen = id.clone();
                                    let label = id.clone();
                                    view! {
                                        <button
                                            type="button"
                                            class="primary"
                                            data-testid="service-option"
                                            data-service=id
                                            on:click=move |_| answer(Some(chosen.clone()))
                                        >
                                            {label}
                                        </button>
                                    }
                                })
                                .collect_view()
                        }}
                    </div>
                    <div class="actions">
                        <button type="button" data-testid="service-choice-cancel" on:click=move |_| answer(None)>
                            "Cancel"
                        </button>
                    </div>
                </div>
            </div>
        </Show>
    }
}

/// Where an accepted key will be remembered, in words.
pub fn scope_note(target: &str) -> String {
    if crate::ssh::known_hosts::is_device_target(target) {
        format!("Trusted, it is remembered for the device {target} on every tunnel to it.")
    } else {
        "No device name is known: the key can be remembered for this tunnel only (give the \
         Device name in the form to remember it for the device)."
            .to_owned()
    }
}

/// A keyboard-interactive round.
#[component]
pub fn KbdDialog(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let question = controller.with_value(|c| c.state.kbd);
    let answers = NodeRef::<html::Div>::new();
    let submit = move || {
        let mut values = Vec::new();
        if let Some(container) = answers.get_untracked()
            && let Ok(inputs) = container.query_selector_all("input[data-testid=\"kbd-prompt\"]")
        {
            for index in 0..inputs.length() {
                let Some(input) = inputs
                    .item(index)
                    .and_then(|node| node.dyn_into::<web_sys::HtmlInputElement>().ok())
                else {
                    continue;
                };
                values.push(Zeroizing::new(input.value()));
                input.set_value("");
            }
        }
        if let Some(controller) = controller.try_get_value() {
            controller.answer_kbd(Some(values));
        }
    };
    let cancel = move || {
        if let Some(controller) = controller.try_get_value() {
            controller.answer_kbd(None);
        }
    };
    view! {
        <Show when=move || question.with(Option::is_some)>
            <div class="dialog-backdrop">
                <form
                    class="dialog"
                    role="dialog"
                    aria-modal="true"
                    data-testid="kbd-dialog"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        submit();
                    }
                >
                    <h2>
                        {move || {
                            question.with(|q| match q {
                                Some(q) if !q.name.is_empty() => q.name.clone(),
                                _ => "The device asks".to_owned(),
                            })
                        }}
                    </h2>
                    <p class="instructions">{move || question.with(|q| q.as_ref().map(|q| q.instructions.clone()))}</p>
                    <div class="prompts" node_ref=answers>
                        {move || {
                            question
                                .with(|q| q.as_ref().map(|q| q.prompts.clone()).unwrap_or_default())
                                .into_iter()
                                .enumerate()
                                .map(|(index, (prompt, echo))| {
                                    let id = format!("kbd-prompt-{index}");
                                    view! {
                                        <label for=id.clone()>{prompt}</label>
                                        <input
                                            id=id
                                            type=if echo { "text" } else { "password" }
                                            autocomplete="off"
                                            autofocus=index == 0
                                            data-testid="kbd-prompt"
                                        />
                                    }
                                })
                                .collect_view()
                        }}
                    </div>
                    <div class="actions">
                        <button type="button" on:click=move |_| cancel()>"Cancel"</button>
                        <button type="submit" class="primary" data-testid="kbd-submit">"Send"</button>
                    </div>
                </form>
            </div>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::scope_note;

    #[test]
    fn the_scope_says_device_or_this_tunnel_only() {
        assert!(scope_note("pump-7").contains("for the device pump-7"));
        assert!(scope_note("ws://h:1/tunnel:t-1/SSH").contains("this tunnel only"));
    }
}
