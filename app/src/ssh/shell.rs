//! The interactive part: open a session channel with a pty and a shell (or a command), then
//! pump output to the terminal and input and resizes to the device, with the SSH channel
//! window as backpressure. Several channels share one connection (the page's terminal tabs);
//! [`super::tabs`] runs them together with the connection's keep-alives.
//!
//! # Backpressure
//!
//! xterm.js parses what it is given asynchronously and drops input buffered past 50 MB, so
//! output must not outrun the terminal. [`pump`] counts bytes handed to
//! [`Terminal::output`] and not yet confirmed by its `parsed` callback; above
//! [`UNPARSED_LIMIT`] it stops reading the channel. russh's client adjusts the receive window
//! as it takes each data packet off the wire (its `adjust_window` hook cannot hold the adjustment
//! back), but it hands every packet to our channel queue of [`CHANNEL_BUFFER`] messages and
//! *waits* when that queue is full. So when we stop reading, the queue fills, russh's loop stops
//! reading the stream, and no more window adjustments go out: the device can send at most the
//! window it already has. Unparsed output in the page is therefore bounded, per channel, by
//! `UNPARSED_LIMIT + CHANNEL_BUFFER × MAX_PACKET_SIZE + WINDOW_SIZE` (about 4.5 MiB), and no
//! byte is dropped. Once the terminal catches up, reading resumes and so do the adjustments.
//! With several channels the bound holds for each (every tab has its own terminal, count and
//! window), so N tabs hold at most N times that; a channel that stops reading stalls russh's
//! loop, and with it the other channels, until its terminal catches up — every terminal parses
//! whether shown or not, so that is a pause, never a deadlock.
//!
//! Input never waits behind output: keystrokes are queued and written by a future of their
//! own, polled alongside the reader, so a full output path cannot deadlock typing (Ctrl-C
//! still gets through once russh's loop runs again).

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, unbounded};
use futures_util::future::{Fuse, FusedFuture, LocalBoxFuture};
use futures_util::{FutureExt, StreamExt, pin_mut, select};
use russh::client::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

pub use super::client::{CHANNEL_BUFFER, MAX_PACKET_SIZE, WINDOW_SIZE};
use super::client::{Client, Connection, ssh_error};
use super::error::SshError;
use super::link::Link;
pub use super::tabs::run;
use super::vocab::TabId;

/// Output handed to the terminal and not yet parsed, above which reading stops.
pub const UNPARSED_LIMIT: usize = 4 * 1024 * 1024;
/// Keep-alive ticks without an answer after which the device counts as gone.
pub const MISSED_KEEPALIVES: u32 = 3;
/// The terminal type announced with the pty.
pub const TERM: &str = "xterm-256color";
/// Queued input is sent in writes of at most this many bytes.
const INPUT_CHUNK: usize = 32 * 1024;

/// Where output goes and figures are reported.
pub trait Terminal {
    /// Shows `data` in `tab`; `parsed` must be called once the terminal processed it.
    fn output(&self, tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>);
    /// A keep-alive round trip, in milliseconds.
    fn rtt(&self, ms: f64);
    /// `tab`'s channel ended while others stay open (its program exited, the operator closed
    /// it, or the device refused to open it). The last channel's end is [`run`]'s result.
    fn tab_ended(&self, tab: TabId, outcome: Result<ShellEnd, SshError>) {
        let _ = (tab, outcome);
    }
}

/// What runs in the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A login shell on a pty of this size.
    Shell {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// One command, without a pty.
    Exec(String),
}

/// An open session channel running a program.
pub struct Shell {
    pub(super) handle: Rc<Handle<Client>>,
    read: ChannelReadHalf,
    write: Rc<ChannelWriteHalf<Msg>>,
    /// Messages that arrived while the requests were being answered.
    early: VecDeque<ChannelMsg>,
}

/// How the program ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellEnd {
    /// The exit status, if the server sent one.
    pub exit_status: Option<u32>,
    /// The signal that killed the program, if any.
    pub exit_signal: Option<String>,
    /// Whether the operator ended the session (or closed the tab).
    pub by_operator: bool,
}

/// Opens a session channel on an authenticated connection and starts `program`.
pub async fn open(conn: Connection, program: &Program) -> Result<Shell, SshError> {
    open_on(&Link::new(conn), program).await
}

/// Opens a session channel on `link` and starts `program`; other channels (SFTP) may share
/// the connection.
pub async fn open_on(link: &Link, program: &Program) -> Result<Shell, SshError> {
    let handle = Rc::clone(link.handle());
    let channel = link.open_session("a session channel").await?;
    let (mut read, write) = channel.split();
    let requests: &[&str] = match program {
        Program::Shell { cols, rows } => {
            write
                .request_pty(true, TERM, *cols, *rows, 0, 0, &[])
                .await
                .map_err(|err| ssh_error(&err))?;
            write
                .request_shell(true)
                .await
                .map_err(|err| ssh_error(&err))?;
            &["a terminal (pty)", "a shell"]
        }
        Program::Exec(command) => {
            write
                .exec(true, command.as_bytes())
                .await
                .map_err(|err| ssh_error(&err))?;
            &["the command"]
        }
    };
    // Replies come in request order; anything else that arrives meanwhile is kept.
    let mut early = VecDeque::new();
    let mut answered = 0;
    while answered < requests.len() {
        match read.wait().await {
            Some(ChannelMsg::Success) => answered += 1,
            Some(ChannelMsg::Failure) => {
                return Err(SshError::ChannelRefused(requests[answered].to_owned()));
            }
            Some(other) => early.push_back(other),
            None => return Err(SshError::Closed),
        }
    }
    Ok(Shell {
        handle,
        read,
        write: Rc::new(write),
        early,
    })
}

/// A write to the channel, in order.
#[derive(Debug)]
enum Op {
    Data(Vec<u8>),
    Resize(u32, u32),
}

fn start_op(
    write: &Rc<ChannelWriteHalf<Msg>>,
    op: Op,
) -> LocalBoxFuture<'static, Result<(), russh::Error>> {
    let write = Rc::clone(write);
    async move {
        match op {
            Op::Data(bytes) => write.data_bytes(bytes).await,
            Op::Resize(cols, rows) => write.window_change(cols, rows, 0, 0).await,
        }
    }
    .boxed_local()
}

fn queue_input(ops: &mut VecDeque<Op>, bytes: Vec<u8>) {
    if let Some(Op::Data(tail)) = ops.back_mut()
        && tail.len() + bytes.len() <= INPUT_CHUNK
    {
        tail.extend_from_slice(&bytes);
        return;
    }
    for chunk in bytes.chunks(INPUT_CHUNK) {
        ops.push_back(Op::Data(chunk.to_vec()));
    }
}

/// Counts output handed to the terminal until it is parsed.
struct Flow {
    tab: TabId,
    unparsed: Rc<Cell<usize>>,
    wake: futures_channel::mpsc::UnboundedSender<()>,
}

impl Flow {
    fn show(&self, terminal: &dyn Terminal, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let n = data.len();
        self.unparsed.set(self.unparsed.get() + n);
        let unparsed = Rc::clone(&self.unparsed);
        let wake = self.wake.clone();
        terminal.output(
            self.tab,
            data,
            Box::new(move || {
                unparsed.set(unparsed.get().saturating_sub(n));
                // The loop may be gone; then nobody needs waking.
                let _ = wake.unbounded_send(());
            }),
        );
    }
}

/// What the connection loop ([`super::tabs`]) asks of one channel.
#[derive(Debug)]
pub(super) enum ChannelCommand {
    /// Keystrokes for the program.
    Input(Vec<u8>),
    /// The tab's terminal has a new size.
    Resize(u32, u32),
    /// The operator closed the tab: close the channel, keep the connection.
    Close,
}

/// Pumps one channel until its program ends, the operator closes it
/// ([`ChannelCommand::Close`]), the connection ends (the command stream ends: the caller
/// disconnected), or the connection fails. Output goes to `terminal` as `tab`'s; `paused` counts the
/// channels that stopped reading because their terminal is behind (keep-alives are not missed
/// while one is: russh may be waiting for room in that channel's queue).
pub(super) async fn pump(
    shell: Shell,
    tab: TabId,
    mut commands: UnboundedReceiver<ChannelCommand>,
    terminal: &dyn Terminal,
    paused: &Cell<usize>,
) -> Result<ShellEnd, SshError> {
    let Shell {
        handle: _,
        mut read,
        write,
        mut early,
    } = shell;
    let (wake, mut woken) = unbounded::<()>();
    let flow = Flow {
        tab,
        unparsed: Rc::new(Cell::new(0)),
        wake,
    };
    let mut end = ShellEnd::default();
    let mut ops: VecDeque<Op> = VecDeque::new();
    let mut op: Fuse<LocalBoxFuture<'static, Result<(), russh::Error>>> = Fuse::terminated();
    let mut was_reading = true;
    let mut closing = false;

    let result = loop {
        if op.is_terminated()
            && let Some(next) = ops.pop_front()
        {
            op = start_op(&write, next).fuse();
        }
        let reading = flow.unparsed.get() < UNPARSED_LIMIT;
        if reading != was_reading {
            paused.set(if reading {
                paused.get().saturating_sub(1)
            } else {
                paused.get() + 1
            });
            was_reading = reading;
        }
        let message = async {
            if !reading {
                return futures_util::future::pending().await;
            }
            match early.pop_front() {
                Some(msg) => Some(msg),
                None => read.wait().await,
            }
        }
        .fuse();
        pin_mut!(message);
        select! {
            msg = message => match msg {
                Some(ChannelMsg::Data { data }) => flow.show(terminal, &data),
                Some(ChannelMsg::ExtendedData { data, .. }) => flow.show(terminal, &data),
                Some(ChannelMsg::ExitStatus { exit_status }) => end.exit_status = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    end.exit_signal = Some(format!("{signal_name:?}"));
                }
                Some(ChannelMsg::Close) => break Ok(()),
                Some(_) => {}
                None if end.exit_status.is_some() || end.exit_signal.is_some() => break Ok(()),
                None => break Err(SshError::Closed),
            },
            _ = woken.next() => {}
            command = commands.next() => match command {
                Some(ChannelCommand::Input(bytes)) => queue_input(&mut ops, bytes),
                Some(ChannelCommand::Resize(cols, rows)) => ops.push_back(Op::Resize(cols, rows)),
                Some(ChannelCommand::Close) => {
                    end.by_operator = true;
                    closing = true;
                    break Ok(());
                }
                None => {
                    end.by_operator = true;
                    break Ok(());
                }
            },
            done = op => if let Err(err) = done {
                break Err(ssh_error(&err));
            },
        }
    };
    if !was_reading {
        paused.set(paused.get().saturating_sub(1));
    }
    if closing {
        // Our end of the channel goes first, so that russh, if it waits for room in this
        // channel's queue, is released at once (russh forgets a channel it closed, so the
        // device's answering close never reaches this reader). Then ask the device to close
        // it; the connection stays up for the other channels.
        drop(read);
        let _ = write.close().await;
    } else if end.by_operator {
        // The connection is ending: read on (dropping what arrives) until it is gone. This
        // unblocks russh if it waits for room in this channel's queue, and the goodbye has
        // reached the stream once the connection's end shows here.
        while read.wait().await.is_some() {}
    }
    result.map(|()| end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_merged_and_chunked() {
        let mut ops = VecDeque::new();
        queue_input(&mut ops, b"ab".to_vec());
        queue_input(&mut ops, b"cd".to_vec());
        ops.push_back(Op::Resize(80, 24));
        queue_input(&mut ops, vec![7; INPUT_CHUNK + 10]);
        let shapes: Vec<(char, usize)> = ops
            .iter()
            .map(|op| match op {
                Op::Data(bytes) => ('d', bytes.len()),
                Op::Resize(..) => ('r', 0),
            })
            .collect();
        assert_eq!(
            shapes,
            vec![('d', 4), ('r', 0), ('d', INPUT_CHUNK), ('d', 10)]
        );
    }

    #[test]
    fn parsed_callbacks_release_the_count() {
        struct Holding(std::cell::RefCell<Vec<Box<dyn FnOnce()>>>);
        impl Terminal for Holding {
            fn output(&self, _tab: TabId, _data: &[u8], parsed: Box<dyn FnOnce()>) {
                self.0.borrow_mut().push(parsed);
            }
            fn rtt(&self, _ms: f64) {}
        }
        let (wake, mut woken) = unbounded();
        let flow = Flow {
            tab: TabId::FIRST,
            unparsed: Rc::new(Cell::new(0)),
            wake,
        };
        let term = Holding(Default::default());
        flow.show(&term, &[1; 1000]);
        flow.show(&term, &[]);
        flow.show(&term, &[2; 24]);
        assert_eq!(flow.unparsed.get(), 1024);
        let callbacks: Vec<_> = term.0.borrow_mut().drain(..).collect();
        assert_eq!(callbacks.len(), 2);
        for callback in callbacks {
            callback();
        }
        assert_eq!(flow.unparsed.get(), 0);
        assert!(woken.try_recv().is_ok());
    }

    #[test]
    fn the_documented_bound_holds() {
        let bound =
            UNPARSED_LIMIT + CHANNEL_BUFFER * MAX_PACKET_SIZE as usize + WINDOW_SIZE as usize;
        // Far below xterm.js's 50 MB write buffer.
        assert!(bound < 8 * 1024 * 1024, "{bound}");
    }
}
