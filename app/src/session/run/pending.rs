//! The session's tabs as the connection machinery keeps them: which tabs are open and at what
//! size (a new connection after a lost one reopens each, so their terminals keep going), and
//! the commands that arrive while connecting (input kept for the shells, the latest size
//! wins, a disconnect or closing the last tab ends the attempt).

use std::collections::BTreeMap;

use crate::session::{TabId, UserCommand};

/// Input typed before the shells are up is kept up to this many bytes (all tabs together).
pub const MAX_TYPED_AHEAD: usize = 64 * 1024;

/// The open tabs, and what was asked of them while no shell ran.
#[derive(Debug)]
pub struct Pending {
    input: Vec<(TabId, Vec<u8>)>,
    tabs: BTreeMap<TabId, (u32, u32)>,
}

impl Pending {
    /// The session's start: [`TabId::FIRST`] at the form's size.
    pub fn new(cols: u32, rows: u32) -> Self {
        Self {
            input: Vec::new(),
            tabs: BTreeMap::from([(TabId::FIRST, (cols, rows))]),
        }
    }

    /// Keeps the tab list current with a command the running shells got.
    pub fn track(&mut self, command: &UserCommand) {
        match command {
            UserCommand::Resize { tab, cols, rows } => {
                if let Some(size) = self.tabs.get_mut(tab) {
                    *size = (*cols, *rows);
                }
            }
            UserCommand::NewTab { tab, cols, rows } => {
                self.tabs.entry(*tab).or_insert((*cols, *rows));
            }
            UserCommand::CloseTab(tab) => {
                self.tabs.remove(tab);
            }
            UserCommand::Input(..) | UserCommand::Disconnect => {}
        }
    }

    /// A tab's shell ended by itself (the session goes on without it).
    pub fn ended(&mut self, tab: TabId) {
        self.tabs.remove(&tab);
    }

    /// Takes one command that arrived while connecting; returns `true` when it ends the
    /// session (a disconnect, or the last tab closed).
    pub fn absorb(&mut self, command: UserCommand) -> bool {
        self.track(&command);
        match command {
            UserCommand::Input(tab, bytes) => {
                if self.tabs.contains_key(&tab) {
                    let kept: usize = self.input.iter().map(|(_, bytes)| bytes.len()).sum();
                    let room = MAX_TYPED_AHEAD.saturating_sub(kept);
                    let bytes = &bytes[..bytes.len().min(room)];
                    match self.input.last_mut() {
                        Some((last, kept)) if *last == tab => kept.extend_from_slice(bytes),
                        _ if bytes.is_empty() => {}
                        _ => self.input.push((tab, bytes.to_vec())),
                    }
                }
                false
            }
            UserCommand::CloseTab(_) => self.tabs.is_empty(),
            UserCommand::Disconnect => true,
            UserCommand::Resize { .. } | UserCommand::NewTab { .. } => false,
        }
    }

    /// The tab the next connection starts with, and its size; `None` once every tab closed.
    pub fn first(&self) -> Option<(TabId, (u32, u32))> {
        self.tabs.iter().next().map(|(tab, size)| (*tab, *size))
    }

    /// The commands to replay once `first`'s shell runs: the other tabs reopened, then the
    /// typed-ahead input.
    pub fn take_commands(&mut self, first: TabId) -> Vec<UserCommand> {
        let reopen =
            self.tabs
                .iter()
                .filter(|(tab, _)| **tab != first)
                .map(|(tab, (cols, rows))| UserCommand::NewTab {
                    tab: *tab,
                    cols: *cols,
                    rows: *rows,
                });
        let typed = std::mem::take(&mut self.input)
            .into_iter()
            .map(|(tab, bytes)| UserCommand::Input(tab, bytes));
        reopen.chain(typed).collect()
    }

    /// The open tabs.
    pub fn tabs(&self) -> impl Iterator<Item = TabId> + '_ {
        self.tabs.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: TabId = TabId(2);

    #[test]
    fn input_and_the_latest_size_are_kept_per_tab() {
        let mut pending = Pending::new(80, 24);
        assert!(!pending.absorb(UserCommand::Input(TabId::FIRST, b"ls".to_vec())));
        assert!(!pending.absorb(UserCommand::Resize {
            tab: TabId::FIRST,
            cols: 100,
            rows: 30
        }));
        assert!(!pending.absorb(UserCommand::Resize {
            tab: TabId::FIRST,
            cols: 120,
            rows: 40
        }));
        assert!(!pending.absorb(UserCommand::Input(TabId::FIRST, b"\r".to_vec())));
        // Input for a tab that does not exist goes nowhere.
        assert!(!pending.absorb(UserCommand::Input(TabId(9), b"x".to_vec())));
        assert_eq!(pending.first(), Some((TabId::FIRST, (120, 40))));
        assert_eq!(
            pending.take_commands(TabId::FIRST),
            vec![UserCommand::Input(TabId::FIRST, b"ls\r".to_vec())]
        );
        assert_eq!(pending.take_commands(TabId::FIRST), vec![]);
        assert!(pending.absorb(UserCommand::Disconnect));
    }

    #[test]
    fn typed_ahead_input_is_bounded() {
        let mut pending = Pending::new(80, 24);
        pending.absorb(UserCommand::Input(
            TabId::FIRST,
            vec![b'x'; MAX_TYPED_AHEAD + 5],
        ));
        pending.absorb(UserCommand::Input(TabId::FIRST, b"more".to_vec()));
        match pending.take_commands(TabId::FIRST).as_slice() {
            [UserCommand::Input(_, bytes)] => assert_eq!(bytes.len(), MAX_TYPED_AHEAD),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_connection_reopens_every_open_tab_at_its_size() {
        let mut pending = Pending::new(80, 24);
        pending.track(&UserCommand::NewTab {
            tab: SECOND,
            cols: 90,
            rows: 20,
        });
        pending.track(&UserCommand::NewTab {
            tab: TabId(3),
            cols: 90,
            rows: 20,
        });
        pending.track(&UserCommand::Resize {
            tab: TabId(3),
            cols: 70,
            rows: 10,
        });
        pending.ended(TabId::FIRST);
        assert!(!pending.absorb(UserCommand::Input(TabId(3), b"pwd\r".to_vec())));
        assert_eq!(pending.first(), Some((SECOND, (90, 20))));
        assert_eq!(
            pending.take_commands(SECOND),
            vec![
                UserCommand::NewTab {
                    tab: TabId(3),
                    cols: 70,
                    rows: 10
                },
                UserCommand::Input(TabId(3), b"pwd\r".to_vec()),
            ]
        );
        assert_eq!(pending.tabs().collect::<Vec<_>>(), vec![SECOND, TabId(3)]);
    }

    #[test]
    fn closing_the_last_tab_ends_the_session() {
        let mut pending = Pending::new(80, 24);
        pending.track(&UserCommand::NewTab {
            tab: SECOND,
            cols: 80,
            rows: 24,
        });
        assert!(!pending.absorb(UserCommand::CloseTab(TabId::FIRST)));
        assert!(pending.absorb(UserCommand::CloseTab(SECOND)));
        assert_eq!(pending.first(), None);
    }
}
