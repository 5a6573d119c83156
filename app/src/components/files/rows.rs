//! The Files panel's rows: a directory entry (open, download, rename, delete) and a transfer
//! (figures, outcome, Cancel). A transfer's row is one element for the transfer's whole life,
//! its figures reactive, so its Cancel button stays clickable while the figures change.

use leptos::prelude::*;

use super::{Panel, Row, RowState};
use crate::files::progress;
use crate::ssh::sftp::{self, Entry, Kind};

#[component]
pub(super) fn FileRowView(panel: Panel, entry: Entry) -> impl IntoView {
    let is_dir = entry.kind == Kind::Dir;
    let name = entry.name.clone();
    let open_entry = entry.clone();
    let open = move |_| {
        if open_entry.kind == Kind::Dir {
            panel.navigate(sftp::join(&panel.path.get_untracked(), &open_entry.name));
        }
    };
    let download_entry = entry.clone();
    let rename_entry = entry.clone();
    let delete_entry = entry.clone();
    view! {
        <tr data-testid="file-row" data-name=name.clone() data-kind=if is_dir { "dir" } else { "file" }>
            <td class="file-name">
                {if is_dir {
                    view! { <button type="button" class="link" data-testid="file-open" on:click=open>{format!("{name}/")}</button> }.into_any()
                } else {
                    view! { <span>{name.clone()}</span> }.into_any()
                }}
            </td>
            <td class="file-size">{if is_dir { String::new() } else { progress::bytes(entry.size) }}</td>
            <td class="file-time">{progress::time(entry.mtime)}</td>
            <td class="file-mode">{progress::mode(entry.mode)}</td>
            <td class="file-actions">
                {(entry.kind == Kind::File).then(|| view! {
                    <button type="button" class="small" data-testid="file-download" title="Download"
                        on:click=move |_| panel.download(download_entry.clone())>"↓"</button>
                })}
                <button type="button" class="small" data-testid="file-rename" title="Rename"
                    on:click=move |_| panel.rename(rename_entry.clone())>"✎"</button>
                <button type="button" class="small" data-testid="file-delete" title="Delete"
                    on:click=move |_| panel.delete(delete_entry.clone())>"Delete"</button>
            </td>
        </tr>
    }
}

/// One transfer's row. Keyed by id, it stays the same element while its figures change, so
/// its Cancel button can be clicked while the transfer runs.
#[component]
pub(super) fn TransferView(panel: Panel, id: u64, label: String, name: String) -> impl IntoView {
    let row = Memo::new(move |_| {
        panel
            .transfers
            .with(|rows| rows.iter().find(|r| r.id == id).cloned())
    });
    // The state and its message change once or twice; the figures on every progress tick.
    let state = Memo::new(move |_| {
        row.with(|row| match row.as_ref().map(|row| &row.state) {
            Some(RowState::Running) => ("running", None),
            Some(RowState::Done) | None => ("done", Some("Done.".to_owned())),
            Some(RowState::Cancelled(text)) => ("cancelled", Some(text.clone())),
            Some(RowState::Failed(text)) => ("failed", Some(text.clone())),
        })
    });
    view! {
        <li class="transfer" data-testid="transfer" data-state=move || state.get().0 data-name=name>
            <span class="transfer-name">{label}</span>
            <span class="transfer-figures" data-testid="transfer-figures">{move || row.with(|row| row.as_ref().map(Row::figures))}</span>
            {move || state.get().1.map(|text| view! { <span class="transfer-message" data-testid="transfer-message">{text}</span> })}
            <Show when=move || state.get().0 == "running">
                <button type="button" class="small" data-testid="transfer-cancel" on:click=move |_| panel.cancel(id)>"Cancel"</button>
            </Show>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Row, RowState};

    #[test]
    fn a_row_shows_bytes_percent_speed_and_time_left() {
        let mut row = Row {
            id: 1,
            name: "big.bin".into(),
            upload: true,
            total: 50_000_000,
            done: 12_500_000,
            speed: Some(2_500_000.0),
            eta: Some(15.0),
            state: RowState::Running,
        };
        assert_eq!(row.figures(), "12 MB of 50 MB · 25% · 2.5 MB/s · 0:15 left");
        row.state = RowState::Done;
        row.done = row.total;
        assert_eq!(row.figures(), "50 MB of 50 MB · 100%");
    }
}
