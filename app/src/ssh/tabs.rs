//! The shell channels of one connection, run together: the page's terminal tabs.
//!
//! [`run_tabs`] starts with the first channel and opens more on the same connection when the
//! operator asks for a new tab ([`UserCommand::NewTab`]): no new tunnel, token or login, just
//! another `session` channel with its own pty. Each channel is pumped by
//! [`super::shell::pump`], with its own backpressure; this loop routes the operator's
//! commands to their tab, sends the connection's keep-alives, and reports each tab's end. A
//! tab closed by the operator ([`UserCommand::CloseTab`]) closes only its channel; the
//! connection ends with its last tab (or on [`UserCommand::Disconnect`]).
//!
//! # Keep-alive
//!
//! Browsers cannot send WebSocket pings and russh's timers do not run in WASM, so on every tick
//! of the caller's timer a `keepalive@openssh.com` global request (want-reply) goes out and its
//! round trip is reported. Three ticks in a row without an answer, while no channel has stopped
//! reading for its terminal (then russh's loop may be waiting, not the device), end the
//! session with a timeout.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedSender, unbounded};
use futures_util::future::{Fuse, FusedFuture, LocalBoxFuture};
use futures_util::stream::{FusedStream, FuturesUnordered};
use futures_util::{FutureExt, Stream, StreamExt, select};
use russh::Disconnect;

use super::error::SshError;
use super::link::Link;
use super::shell::{
    ChannelCommand, MISSED_KEEPALIVES, Program, Shell, ShellEnd, Terminal, open_on, pump,
};
use super::vocab::{TabId, UserCommand};

/// The channels being opened or running, each ending with its tab and outcome.
type Running<'a> = FuturesUnordered<LocalBoxFuture<'a, (TabId, Result<ShellEnd, SshError>)>>;

/// Runs `shell` as [`TabId::FIRST`] (see [`run_tabs`]).
pub async fn run<C, K>(
    shell: Shell,
    commands: &mut C,
    keepalive: &mut K,
    keepalive_secs: u32,
    terminal: &dyn Terminal,
    now_ms: &dyn Fn() -> f64,
) -> Result<ShellEnd, SshError>
where
    C: Stream<Item = UserCommand> + FusedStream + Unpin,
    K: Stream<Item = ()> + FusedStream + Unpin,
{
    run_tabs(
        TabId::FIRST,
        shell,
        commands,
        keepalive,
        keepalive_secs,
        terminal,
        now_ms,
    )
    .await
}

/// Whether a channel's failure is the connection's: anything but the device refusing to open
/// a new channel (e.g. its `MaxSessions`) means the connection is gone for every tab.
fn connection_failed(outcome: &Result<ShellEnd, SshError>) -> bool {
    matches!(outcome, Err(err) if !matches!(err, SshError::ChannelRefused(_)))
}

/// Pumps the channel `opening` gives as `tab`, once it is open.
fn start<'a>(
    tab: TabId,
    opening: LocalBoxFuture<'static, Result<Shell, SshError>>,
    tabs: &mut BTreeMap<TabId, UnboundedSender<ChannelCommand>>,
    running: &mut Running<'a>,
    terminal: &'a dyn Terminal,
    paused: &'a Cell<usize>,
) {
    let (sender, receiver) = unbounded();
    tabs.insert(tab, sender);
    running.push(
        async move {
            match opening.await {
                Ok(shell) => (tab, pump(shell, tab, receiver, terminal, paused).await),
                Err(err) => (tab, Err(err)),
            }
        }
        .boxed_local(),
    );
}

/// Runs `shell` as `first`, and the tabs opened later on the same connection, until the last
/// tab ends, the operator disconnects, or the connection fails.
///
/// `commands` carries the operator's input, resizes, new and closed tabs and disconnect;
/// `keepalive` ticks (every `keepalive_secs` seconds) send keep-alives; `now_ms` is a
/// monotonic clock in milliseconds. Tabs that end before the last are reported through
/// [`Terminal::tab_ended`]; the result is the last one's end.
pub async fn run_tabs<C, K>(
    first: TabId,
    shell: Shell,
    commands: &mut C,
    keepalive: &mut K,
    keepalive_secs: u32,
    terminal: &dyn Terminal,
    now_ms: &dyn Fn() -> f64,
) -> Result<ShellEnd, SshError>
where
    C: Stream<Item = UserCommand> + FusedStream + Unpin,
    K: Stream<Item = ()> + FusedStream + Unpin,
{
    let handle = Rc::clone(&shell.handle);
    let link = Link::from_handle(Rc::clone(&handle));
    let paused = Cell::new(0_usize);
    let mut tabs: BTreeMap<TabId, UnboundedSender<ChannelCommand>> = BTreeMap::new();
    let mut running: Running<'_> = FuturesUnordered::new();
    let (terminal, paused) = (terminal, &paused);
    start(
        first,
        futures_util::future::ready(Ok(shell)).boxed_local(),
        &mut tabs,
        &mut running,
        terminal,
        paused,
    );
    let send = |tabs: &BTreeMap<TabId, UnboundedSender<ChannelCommand>>, tab, command| {
        if let Some(sender) = tabs.get(&tab) {
            // A tab whose channel just ended has nowhere to send to.
            let _ = sender.unbounded_send(command);
        }
    };
    let mut ping: Fuse<LocalBoxFuture<'static, ()>> = Fuse::terminated();
    let mut ping_started = 0.0;
    let mut missed = 0;

    let result = loop {
        select! {
            (tab, outcome) = running.select_next_some() => {
                tabs.remove(&tab);
                if connection_failed(&outcome) || tabs.is_empty() && running.is_empty() {
                    break outcome;
                }
                terminal.tab_ended(tab, outcome);
            },
            command = commands.next() => match command {
                Some(UserCommand::Input(tab, bytes)) => {
                    send(&tabs, tab, ChannelCommand::Input(bytes));
                }
                Some(UserCommand::Resize { tab, cols, rows }) => {
                    send(&tabs, tab, ChannelCommand::Resize(cols, rows));
                }
                Some(UserCommand::NewTab { tab, cols, rows }) => {
                    if !tabs.contains_key(&tab) {
                        let link = link.clone();
                        let opening = async move {
                            open_on(&link, &Program::Shell { cols, rows }).await
                        };
                        let opening = opening.boxed_local();
                        start(tab, opening, &mut tabs, &mut running, terminal, paused);
                    }
                }
                // Its pump closes the channel and reports its end.
                Some(UserCommand::CloseTab(tab)) => {
                    if let Some(sender) = tabs.remove(&tab) {
                        let _ = sender.unbounded_send(ChannelCommand::Close);
                    }
                }
                Some(UserCommand::Disconnect) | None => {
                    break Ok(ShellEnd {
                        by_operator: true,
                        ..ShellEnd::default()
                    });
                }
            },
            _ = keepalive.next() => {
                if ping.is_terminated() {
                    missed = 0;
                    ping_started = now_ms();
                    let handle = Rc::clone(&handle);
                    ping = async move {
                        // A failed send shows up as the connection closing.
                        let _ = handle.send_ping().await;
                    }
                    .boxed_local()
                    .fuse();
                } else if paused.get() == 0 {
                    missed += 1;
                    if missed >= MISSED_KEEPALIVES {
                        break Err(SshError::Timeout {
                            what: "the device to answer SSH keep-alives".to_owned(),
                            seconds: keepalive_secs.saturating_mul(MISSED_KEEPALIVES),
                        });
                    }
                }
            },
            () = ping => {
                if !handle.is_closed() {
                    terminal.rtt(now_ms() - ping_started);
                }
            },
        }
    };
    // The remaining channels see their commands end and read on until the connection is gone.
    tabs.clear();
    // Say goodbye either way; a connection that is already gone cannot hear it.
    let _ = handle
        .disconnect(Disconnect::ByApplication, "session ended", "en")
        .await;
    // russh ends its loop once the goodbye is written, which ends every channel; driving the
    // pumps until then unblocks it if it was waiting for room in a channel's queue, so the
    // goodbye has reached the stream when this returns.
    while running.next().await.is_some() {}
    result
}
