//! The known-hosts panel: export the host keys the page remembers in OpenSSH `known_hosts`
//! format (to keep or to share with a colleague), and import such a text.
//!
//! Host keys are public, so the text is shown in a plain text area. An import either stores all
//! of its lines or, when one line is malformed, none, and says which line is wrong.

use leptos::html;
use leptos::prelude::*;

use crate::ssh::known_hosts;

/// What the last export or import did, for the panel's note.
fn import_note(result: &Result<usize, known_hosts::KnownHostsError>) -> String {
    match result {
        Ok(0) => "Nothing new: every key was already known.".to_owned(),
        Ok(1) => "Imported 1 host key.".to_owned(),
        Ok(n) => format!("Imported {n} host keys."),
        Err(err) => format!("Nothing imported: {err}."),
    }
}

/// The note after an export.
fn export_note(text: &str) -> String {
    match text.lines().filter(|line| !line.trim().is_empty()).count() {
        0 => "No host keys are remembered yet.".to_owned(),
        1 => "1 host key, in known_hosts format.".to_owned(),
        n => format!("{n} host keys, in known_hosts format."),
    }
}

/// The panel, under the connect form.
#[component]
pub fn KnownHostsPanel() -> impl IntoView {
    let text = NodeRef::<html::Textarea>::new();
    let note = RwSignal::new(None::<String>);
    let on_export = move |_| {
        let exported = known_hosts::export();
        if let Some(area) = text.get_untracked() {
            area.set_value(&exported);
        }
        note.set(Some(export_note(&exported)));
    };
    let on_import = move |_| {
        let Some(area) = text.get_untracked() else {
            return;
        };
        let input = area.value();
        if input.trim().is_empty() {
            note.set(Some(
                "Paste known_hosts lines into the box first.".to_owned(),
            ));
            return;
        }
        note.set(Some(import_note(&known_hosts::import(&input))));
    };
    view! {
        <details class="advanced known-hosts">
            <summary>"Known hosts"</summary>
            <p class="hint">
                "Host keys this browser trusts, one OpenSSH known_hosts line each. Export to keep \
                 them; paste lines and import to trust keys ahead of the first connection."
            </p>
            <textarea
                rows="4"
                spellcheck="false"
                aria-label="Known hosts"
                data-testid="known-hosts-text"
                placeholder="target ssh-ed25519 AAAA…"
                node_ref=text
            ></textarea>
            <div class="actions">
                <button type="button" class="small" data-testid="known-hosts-export" on:click=on_export>
                    "Export"
                </button>
                <button type="button" class="small" data-testid="known-hosts-import" on:click=on_import>
                    "Import"
                </button>
            </div>
            <Show when=move || note.with(Option::is_some)>
                <p class="hint" data-testid="known-hosts-note">{move || note.get()}</p>
            </Show>
        </details>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_count_keys_and_name_the_bad_line() {
        assert_eq!(export_note(""), "No host keys are remembered yet.");
        assert_eq!(
            export_note("a ssh-ed25519 AAAA\n"),
            "1 host key, in known_hosts format."
        );
        assert_eq!(
            export_note("a x y\nb x y\n\n"),
            "2 host keys, in known_hosts format."
        );
        assert_eq!(
            import_note(&Ok(0)),
            "Nothing new: every key was already known."
        );
        assert_eq!(import_note(&Ok(3)), "Imported 3 host keys.");
        let err = known_hosts::KnownHostsError::Line {
            line: 2,
            reason: "not a key".into(),
        };
        assert_eq!(
            import_note(&Err(err)),
            "Nothing imported: line 2: not a key."
        );
    }
}
