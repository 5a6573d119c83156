//! The interactive part: open a session channel with a pty and a shell (or a command), then
//! pump output to the terminal, input and resizes to the device, and keep-alives — with the
//! SSH channel window as backpressure.
//!
//! # Backpressure
//!
//! xterm.js parses what it is given asynchronously and drops input buffered past 50 MB, so
//! output must not outrun the terminal. [`run`] counts bytes handed to
//! [`Terminal::output`] and not yet confirmed by its `parsed` callback; above
//! [`UNPARSED_LIMIT`] it stops reading the channel. russh's client adjusts the receive window
//! as it takes each data packet off the wire (its `adjust_window` hook cannot hold the adjustment
//! back), but it hands every packet to our channel queue of [`CHANNEL_BUFFER`] messages and
//! *waits* when that queue is full. So when we stop reading, the queue fills, russh's loop stops
//! reading the stream, and no more window adjustments go out: the device can send at most the
//! window it already has. Unparsed output in the page is therefore bounded by
//! `UNPARSED_LIMIT + CHANNEL_BUFFER × MAX_PACKET_SIZE + WINDOW_SIZE` (about 6.3 MiB), and no
//! byte is dropped. Once the terminal catches up, reading resumes and so do the adjustments.
//!
//! Input never waits behind output: keystrokes are queued and written by a future of their
//! own, polled alongside the reader, so a full output path cannot deadlock typing (Ctrl-C
//! still gets through once russh's loop runs again).
//!
//! # Keep-alive
//!
//! Browsers cannot send WebSocket pings and russh's timers do not run in WASM, so on every tick
//! of the caller's timer a `keepalive@openssh.com` global request (want-reply) goes out and its
//! round trip is reported. Three ticks in a row without an answer while output is flowing end
//! the session with a timeout.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::mpsc::unbounded;
use futures_util::future::{Fuse, FusedFuture, LocalBoxFuture};
use futures_util::stream::FusedStream;
use futures_util::{FutureExt, Stream, StreamExt, pin_mut, select};
use russh::client::{Handle, Msg};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Disconnect};

pub use super::client::{CHANNEL_BUFFER, MAX_PACKET_SIZE, WINDOW_SIZE};
use super::client::{Client, Connection, ssh_error};
use super::link::Link;
use crate::session::{SessionError, UserCommand};

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
    /// Shows `data`; `parsed` must be called once the terminal processed it.
    fn output(&self, data: &[u8], parsed: Box<dyn FnOnce()>);
    /// A keep-alive round trip, in milliseconds.
    fn rtt(&self, ms: f64);
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
    handle: Rc<Handle<Client>>,
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
    /// Whether the operator ended the session.
    pub by_operator: bool,
}

/// Opens a session channel on an authenticated connection and starts `program`.
pub async fn open(conn: Connection, program: &Program) -> Result<Shell, SessionError> {
    open_on(&Link::new(conn), program).await
}

/// Opens a session channel on `link` and starts `program`; other channels (SFTP) may share
/// the connection.
pub async fn open_on(link: &Link, program: &Program) -> Result<Shell, SessionError> {
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
                return Err(SessionError::ChannelRefused(requests[answered].to_owned()));
            }
            Some(other) => early.push_back(other),
            None => return Err(SessionError::Ssh("the connection closed".to_owned())),
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
            data,
            Box::new(move || {
                unparsed.set(unparsed.get().saturating_sub(n));
                // The loop may be gone; then nobody needs waking.
                let _ = wake.unbounded_send(());
            }),
        );
    }
}

/// Runs the program until it exits, the operator disconnects, or the connection fails.
///
/// `commands` carries the operator's input, resizes and disconnect; `keepalive` ticks (every
/// `keepalive_secs` seconds) send keep-alives; `now_ms` is a monotonic clock in milliseconds.
pub async fn run<C, K>(
    shell: Shell,
    commands: &mut C,
    keepalive: &mut K,
    keepalive_secs: u32,
    terminal: &dyn Terminal,
    now_ms: &dyn Fn() -> f64,
) -> Result<ShellEnd, SessionError>
where
    C: Stream<Item = UserCommand> + FusedStream + Unpin,
    K: Stream<Item = ()> + FusedStream + Unpin,
{
    let Shell {
        handle,
        mut read,
        write,
        mut early,
    } = shell;
    let (wake, mut woken) = unbounded::<()>();
    let flow = Flow {
        unparsed: Rc::new(Cell::new(0)),
        wake,
    };
    let mut end = ShellEnd::default();
    let mut ops: VecDeque<Op> = VecDeque::new();
    let mut op: Fuse<LocalBoxFuture<'static, Result<(), russh::Error>>> = Fuse::terminated();
    let mut ping: Fuse<LocalBoxFuture<'static, ()>> = Fuse::terminated();
    let mut ping_started = 0.0;
    let mut missed = 0;

    let result = loop {
        if op.is_terminated()
            && let Some(next) = ops.pop_front()
        {
            op = start_op(&write, next).fuse();
        }
        let reading = flow.unparsed.get() < UNPARSED_LIMIT;
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
                None => break Err(SessionError::Ssh("the connection closed".to_owned())),
            },
            _ = woken.next() => {}
            command = commands.next() => match command {
                Some(UserCommand::Input(bytes)) => queue_input(&mut ops, bytes),
                Some(UserCommand::Resize { cols, rows }) => ops.push_back(Op::Resize(cols, rows)),
                Some(UserCommand::Disconnect) | None => {
                    end.by_operator = true;
                    break Ok(());
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
                } else if reading {
                    missed += 1;
                    if missed >= MISSED_KEEPALIVES {
                        break Err(SessionError::Timeout {
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
            done = op => if let Err(err) = done {
                break Err(ssh_error(&err));
            },
        }
    };
    // Say goodbye either way; a connection that is already gone cannot hear it.
    let _ = handle
        .disconnect(Disconnect::ByApplication, "session ended", "en")
        .await;
    // russh ends its loop once the goodbye is written, which closes the channel. Reading on
    // (and dropping what arrives) unblocks it if it was waiting for room in our queue, so the
    // goodbye has reached the stream when this returns.
    while read.wait().await.is_some() {}
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
            fn output(&self, _data: &[u8], parsed: Box<dyn FnOnce()>) {
                self.0.borrow_mut().push(parsed);
            }
            fn rtt(&self, _ms: f64) {}
        }
        let (wake, mut woken) = unbounded();
        let flow = Flow {
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
