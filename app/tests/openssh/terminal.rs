//! The scripted side of the shell tests: a terminal that collects output (and says when a
//! text appeared or a keep-alive came back), the operator's scripted commands, and a clock.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;
use std::time::Instant;

use burrow_app::session::{TabId, UserCommand};
use burrow_app::ssh::shell::Terminal;
use futures_channel::oneshot;
use futures_util::{StreamExt, stream};

/// A terminal that collects output and confirms it parsed at once; it can tell when a text
/// appeared in the output and when a keep-alive round trip came back.
#[derive(Default)]
pub struct Collecting {
    pub output: RefCell<Vec<u8>>,
    pub rtt: Cell<Option<f64>>,
    pub rtt_seen: RefCell<Option<oneshot::Sender<()>>>,
    waiters: RefCell<Vec<(String, oneshot::Sender<()>)>>,
}

impl Collecting {
    /// Resolves once `text` is in the output.
    pub fn when_shown(&self, text: &str) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        self.waiters.borrow_mut().push((text.to_owned(), sender));
        receiver
    }
}

impl Terminal for Collecting {
    fn output(&self, _tab: TabId, data: &[u8], parsed: Box<dyn FnOnce()>) {
        self.output.borrow_mut().extend_from_slice(data);
        let shown = String::from_utf8_lossy(&self.output.borrow()).into_owned();
        let waiters: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        for (text, sender) in waiters {
            if shown.contains(&text) {
                let _ = sender.send(());
            } else {
                self.waiters.borrow_mut().push((text, sender));
            }
        }
        parsed();
    }
    fn rtt(&self, ms: f64) {
        self.rtt.set(Some(ms));
        if let Some(seen) = self.rtt_seen.borrow_mut().take() {
            let _ = seen.send(());
        }
    }
}

/// One step of a scripted operator.
pub enum Step {
    Send(UserCommand),
    WaitFor(oneshot::Receiver<()>),
}

/// The operator's commands: each step sends, or waits for something to happen first.
pub fn script(
    steps: Vec<Step>,
) -> impl futures_util::stream::FusedStream<Item = UserCommand> + Unpin {
    stream::iter(steps)
        .then(|step| async move {
            match step {
                Step::Send(command) => Some(command),
                Step::WaitFor(event) => {
                    event.await.expect("the awaited event happens");
                    None
                }
            }
        })
        .filter_map(|command| async move { command })
        .chain(stream::pending())
        .boxed_local()
        .fuse()
}

pub fn now_ms() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}
