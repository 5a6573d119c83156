//! The terminal's settings in the sidebar: typeahead (auto, always, off), how predicted
//! characters look, and whether the cursor blinks. Changes apply to the terminal at once and are
//! remembered in the browser ([`Settings::save`]).

use std::rc::Rc;

use leptos::prelude::*;

use super::controller::Controller;
use crate::term::settings::Settings;
use crate::term::typeahead::{Mode, Style};

/// The settings box.
#[component]
pub fn TerminalSettings(
    /// The page's controller (it holds the terminal and the settings signal).
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let settings = controller.with_value(|c| c.state.settings);
    let change = move |update: &dyn Fn(&mut Settings)| {
        let mut next = settings.get_untracked();
        update(&mut next);
        settings.set(next);
        next.save();
        if let Some(controller) = controller.try_get_value() {
            for term in controller.tabs().terms() {
                term.apply_settings(next);
            }
        }
    };
    let modes = [
        (Mode::Auto, "on slow links (round trip above 30 ms)"),
        (Mode::Always, "always"),
        (Mode::Off, "off"),
    ];
    let styles = [
        (Style::Underline, "underlined"),
        (Style::Dim, "dim"),
        (Style::Plain, "like the echo"),
    ];
    view! {
        <fieldset class="term-settings">
            <legend>"Terminal"</legend>
            <label for="typeahead">"Show keys before the device echoes them " <span class="hint">"(typeahead)"</span></label>
            <select
                id="typeahead"
                data-testid="typeahead"
                on:change=move |ev| {
                    if let Some(mode) = Mode::parse(&event_target_value(&ev)) {
                        change(&|s: &mut Settings| s.typeahead = mode);
                    }
                }
            >
                {modes
                    .into_iter()
                    .map(|(mode, text)| view! {
                        <option value=mode.as_str() selected=move || settings.get().typeahead == mode>{text}</option>
                    })
                    .collect_view()}
            </select>
            <label for="typeahead-style">"Predicted characters look"</label>
            <select
                id="typeahead-style"
                data-testid="typeahead-style"
                on:change=move |ev| {
                    if let Some(style) = Style::parse(&event_target_value(&ev)) {
                        change(&|s: &mut Settings| s.style = style);
                    }
                }
            >
                {styles
                    .into_iter()
                    .map(|(style, text)| view! {
                        <option value=style.as_str() selected=move || settings.get().style == style>{text}</option>
                    })
                    .collect_view()}
            </select>
            <label class="check">
                <input
                    type="checkbox"
                    data-testid="cursor-blink"
                    prop:checked=move || settings.get().cursor_blink
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        change(&|s: &mut Settings| s.cursor_blink = on);
                    }
                />
                " Blinking cursor"
            </label>
        </fieldset>
    }
}
