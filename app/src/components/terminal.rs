//! The terminal pane: the tab strip, the element the tabs' xterm.js terminals render into, and
//! the search box (Ctrl+Shift+F, on the shown tab).
//!
//! Once the element is in the page it is handed to the controller, which opens the first tab's
//! [`crate::term::Term`] in it when the first session starts and owns the terminals
//! ([`super::tabs::TabSet`]); they are dropped (and xterm.js disposed) when the pane leaves the
//! page. Until then the pane shows a hint in place of a terminal.

use std::rc::Rc;

use leptos::html;
use leptos::prelude::*;

use super::controller::Controller;
use super::tabs::TabBar;

/// Where the terminal lives, plus its search box.
#[component]
pub fn TerminalPane(
    /// The page's controller.
    controller: StoredValue<Rc<Controller>, LocalStorage>,
) -> impl IntoView {
    let host = NodeRef::<html::Div>::new();
    let search_open = RwSignal::new(false);
    let search_input = NodeRef::<html::Input>::new();
    let search_miss = RwSignal::new(false);
    // Files dropped onto the terminal are uploaded by the Files panel.
    let drops = use_context::<super::files::FileDrops>();
    // Before the first session there is no terminal (xterm.js is fetched when one starts): the
    // pane shows what to do instead.
    let tabs = controller.with_value(|c| c.tabs().state.tabs);

    Effect::new(move |created: Option<bool>| {
        if created == Some(true) {
            return true;
        }
        let Some(element) = host.get() else {
            return false;
        };
        let Some(controller) = controller.try_get_value() else {
            return false;
        };
        let element: web_sys::HtmlElement = (*element).clone();
        controller.attach_pane(element, Rc::new(move || search_open.set(true)));
        true
    });
    on_cleanup(move || {
        if let Some(controller) = controller.try_get_value() {
            controller.shut_down();
        }
    });

    // Focus the search field whenever the box opens (and fetch the search addon, the first time).
    Effect::new(move |_| {
        if search_open.get()
            && let Some(input) = search_input.get()
        {
            if let Some(term) = controller.try_get_value().and_then(|c| c.term()) {
                term.prepare_search();
            }
            let _ = input.focus();
            input.select();
        }
    });

    let term = move || controller.try_get_value().and_then(|c| c.term());
    let find = move |backwards: bool| {
        let needle = search_input
            .get_untracked()
            .map(|i| i.value())
            .unwrap_or_default();
        if let Some(term) = term() {
            let empty = needle.is_empty();
            term.find(&needle, backwards, move |found| {
                // The pane may be gone once the addon has loaded.
                let _ = search_miss.try_set(!empty && !found);
            });
        }
    };
    let close_search = move || {
        search_open.set(false);
        search_miss.set(false);
        if let Some(term) = term() {
            term.clear_search();
            term.focus();
        }
    };

    view! {
        <TabBar controller=controller />
        <div
            class="terminal-pane"
            on:dragover=move |ev| if let Some(drops) = drops { drops.dragover(&ev) }
            on:drop=move |ev| if let Some(drops) = drops { drops.drop_files(&ev) }
        >
            <Show when=move || search_open.get()>
                <div class="search" role="search">
                    <input
                        type="search"
                        placeholder="Search the terminal"
                        aria-label="Search the terminal"
                        data-testid="search"
                        class:miss=move || search_miss.get()
                        node_ref=search_input
                        on:keydown=move |ev| match ev.key().as_str() {
                            "Enter" => {
                                ev.prevent_default();
                                find(ev.shift_key());
                            }
                            "Escape" => {
                                ev.prevent_default();
                                close_search();
                            }
                            _ => {}
                        }
                    />
                    <button type="button" title="Previous match (Shift+Enter)" on:click=move |_| find(true)>"↑"</button>
                    <button type="button" title="Next match (Enter)" on:click=move |_| find(false)>"↓"</button>
                    <button type="button" title="Close (Esc)" on:click=move |_| close_search()>"✕"</button>
                </div>
            </Show>
            <Show when=move || tabs.get().is_empty()>
                <p class="terminal-hint" data-testid="terminal-hint">
                    "Burrow — fill in the form and press Connect; the terminal opens here. \
                     Ctrl+Shift+F searches, Ctrl+Shift+C copies."
                </p>
            </Show>
            <div class="terminal-tabs" node_ref=host></div>
            <button
                type="button"
                class="search-toggle"
                title="Search (Ctrl+Shift+F)"
                aria-label="Search"
                on:click=move |_| search_open.update(|open| *open = !*open)
            >
                "⌕"
            </button>
        </div>
    }
}
