//! The Leptos UI. Holds no session logic.
use leptos::prelude::*;

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    view! { <p>"Burrow"</p> }
}
