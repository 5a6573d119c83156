//! The phase sequence of [`super`] on browser timers (wasm32 only): from the cookie helper and
//! the tunnel through the SSH handshake and authentication to the shell and its clean end.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::{FutureExt, StreamExt, pin_mut, select, select_biased, stream};
use gloo_timers::future::{IntervalStream, TimeoutFuture};
use zeroize::Zeroizing;

use super::{PagePrompter, PageTerminal, Pending, Redial, explain, handshake_timeout, redial_note};
use crate::driver::browser::{Counters, TunnelSpec, open_tunnel};
use crate::driver::cookie::hand_over_token;
use crate::driver::url::{endpoint_label, tunnel_url};
use crate::session::target::{Destination, known_hosts_target};
use crate::session::{
    ConnectRequest, Format, Phase, SessionError, SessionHost, Stats, TunnelEndpoint, UserCommand,
};
use crate::ssh;
use crate::ssh::auth::Credentials;
use crate::ssh::shell::Program;

/// How long the cookie helper may take.
const COOKIE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long each SSH step (handshake, authentication, shell) may take, not counting the
/// operator's answers.
const SSH_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the SSH handshake may take (an SSH server speaks first, at once; a silent
/// tunnel means nobody is at the other end).
const SSH_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Keep-alive interval.
const KEEPALIVE_SECS: u32 = 15;
/// How often the status line's figures are refreshed.
const STATS_INTERVAL_MS: u32 = 1000;

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|window| window.performance())
        .map(|performance| performance.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// The session task: runs the phases, then reports the outcome exactly once.
pub async fn run(
    request: ConnectRequest,
    host: Rc<dyn SessionHost>,
    mut commands: UnboundedReceiver<UserCommand>,
) {
    let outcome = session(request, &*host, &mut commands).await;
    host.phase(Phase::Closed);
    host.ended(outcome);
}

/// Why a wait ended early.
enum Stop {
    /// The operator disconnected (or the UI dropped the session).
    Disconnected,
    /// The step failed.
    Failed(SessionError),
}

impl From<SessionError> for Stop {
    fn from(err: SessionError) -> Self {
        Stop::Failed(err)
    }
}

/// The SSH layer's errors become the session's at this boundary.
impl From<crate::ssh::error::SshError> for Stop {
    fn from(err: crate::ssh::error::SshError) -> Self {
        Stop::Failed(err.into())
    }
}

/// The driver's errors become the session's at this boundary.
impl From<crate::driver::error::TunnelError> for Stop {
    fn from(err: crate::driver::error::TunnelError) -> Self {
        Stop::Failed(err.into())
    }
}

/// Awaits `work` while watching the operator's commands and a deadline that does not run
/// out while `asking` is set.
async fn step<F: Future>(
    work: F,
    commands: &mut UnboundedReceiver<UserCommand>,
    pending: &mut Pending,
    what: &str,
    limit: Duration,
    asking: &dyn Fn() -> bool,
) -> Result<F::Output, Stop> {
    let work = work.fuse();
    pin_mut!(work);
    let millis = u32::try_from(limit.as_millis()).unwrap_or(u32::MAX);
    let mut timer = TimeoutFuture::new(millis).fuse();
    loop {
        // Biased: a disconnect wins over a step that failed at the same moment (e.g. a host
        // key question the UI cancelled because the operator disconnected).
        select_biased! {
            command = commands.next() => match command {
                Some(command) => if pending.absorb(command) {
                    return Err(Stop::Disconnected);
                },
                None => return Err(Stop::Disconnected),
            },
            output = work => return Ok(output),
            () = timer => {
                if asking() {
                    timer = TimeoutFuture::new(millis).fuse();
                } else {
                    return Err(Stop::Failed(SessionError::Timeout {
                        what: what.to_owned(),
                        seconds: u32::try_from(limit.as_secs()).unwrap_or(u32::MAX),
                    }));
                }
            }
        }
    }
}

async fn session(
    request: ConnectRequest,
    host: &dyn SessionHost,
    commands: &mut UnboundedReceiver<UserCommand>,
) -> Result<(), SessionError> {
    match phases(request, host, commands).await {
        Ok(()) | Err(Stop::Disconnected) => Ok(()),
        Err(Stop::Failed(err)) => Err(err),
    }
}

async fn phases(
    request: ConnectRequest,
    host: &dyn SessionHost,
    commands: &mut UnboundedReceiver<UserCommand>,
) -> Result<(), Stop> {
    let ConnectRequest {
        endpoint,
        cookie_helper,
        token,
        service_id,
        device,
        format,
        username,
        credential,
        cols,
        rows,
    } = request;
    let mut pending = Pending::new(cols, rows);
    let never = || false;

    // Nothing leaves the page before the form is known to be usable: a wrong passphrase
    // must not cost the single-use token. (The form checked the fields, once: `ConnectRequest`.)
    let credentials = Credentials::prepare(credential)?;
    let label = endpoint_label(&endpoint);
    let url = Zeroizing::new(tunnel_url(&endpoint, &token));

    let (destination, probe_base, aws, reconnectable) = match &endpoint {
        TunnelEndpoint::SameSite(base) => {
            host.phase(Phase::Cookie);
            let answer = step(
                hand_over_token(&cookie_helper, &token),
                commands,
                &mut pending,
                "the cookie helper",
                COOKIE_TIMEOUT,
                &never,
            )
            .await??;
            (
                Destination::from_cookie(device.as_deref(), &answer, &token),
                Some(base.clone()),
                false,
                answer.reconnectable,
            )
        }
        TunnelEndpoint::AwsRegion(_) => {
            let destination =
                device.map_or_else(|| Destination::from_token(&token), Destination::Thing);
            (destination, None, true, false)
        }
    };
    drop(token);
    host.device(format!("{username}@{}", destination.name()));

    let attempt = Attempt {
        url: &url,
        probe_base: probe_base.as_ref(),
        aws,
        format,
        service_id,
        label: &label,
        destination: &destination,
        username: &username,
        credentials: &credentials,
    };
    let mut redial = Redial::new(reconnectable);
    loop {
        let err = match attempt.run(host, commands, &mut pending, &mut redial).await {
            Err(Stop::Failed(err)) => err,
            other => return other,
        };
        let Some(pause) = redial.after(&err) else {
            return Err(err.into());
        };
        let note = redial_note(&err, pause);
        for tab in pending.tabs() {
            host.output(tab, note.as_bytes(), Box::new(|| {}));
        }
        let millis = u32::try_from(pause.as_millis()).unwrap_or(u32::MAX);
        step(
            TimeoutFuture::new(millis),
            commands,
            &mut pending,
            "the pause before reconnecting",
            pause + Duration::from_secs(5),
            &never,
        )
        .await?;
    }
}

/// What every attempt at connecting uses: the first one, and those after a lost connection.
struct Attempt<'a> {
    url: &'a str,
    probe_base: Option<&'a crate::endpoint::SiteBase>,
    aws: bool,
    format: Format,
    service_id: Option<String>,
    label: &'a str,
    destination: &'a Destination,
    username: &'a str,
    credentials: &'a Credentials,
}

impl Attempt<'_> {
    /// Tunnel, SSH handshake, authentication and shell, then the shell until it ends.
    async fn run(
        &self,
        host: &dyn SessionHost,
        commands: &mut UnboundedReceiver<UserCommand>,
        pending: &mut Pending,
        redial: &mut Redial,
    ) -> Result<(), Stop> {
        let never = || false;
        host.phase(Phase::Tunnel);
        let choosing = Cell::new(false);
        let chooser = |ids: Vec<String>| {
            host.services(ids.clone());
            let answer = host.choose_service(ids);
            choosing.set(answer.is_some());
            answer
        };
        let opened = step(
            open_tunnel(
                TunnelSpec {
                    url: self.url,
                    probe_base: self.probe_base,
                    aws: self.aws,
                    format: self.format,
                    service_id: self.service_id.clone(),
                },
                &chooser,
            ),
            commands,
            pending,
            "the tunnel",
            // open_tunnel has its own deadlines (handshake, SERVICE_IDS); this one is a
            // backstop that waits while the operator chooses a service.
            Duration::from_secs(60),
            &|| choosing.get(),
        )
        .await?;
        let (tunnel, stream) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                let err = SessionError::from(err);
                if let SessionError::UnknownService { available, .. } = &err {
                    host.services(available.clone());
                }
                return Err(err.into());
            }
        };
        let fail = |err: SessionError| {
            Stop::Failed(explain(err, tunnel.end_reason().map(SessionError::from)))
        };
        let ssh_fail = |err: crate::ssh::error::SshError| fail(err.into());

        host.phase(Phase::SshHandshake);
        let target = known_hosts_target(self.label, self.destination, &tunnel.service_id);
        let prompter = PagePrompter::new(host, target);
        let asking = || prompter.asking();
        let mut conn = match step(
            ssh::client::connect(stream, &prompter),
            commands,
            pending,
            "the SSH handshake",
            SSH_HANDSHAKE_TIMEOUT,
            &asking,
        )
        .await
        {
            Ok(result) => result.map_err(ssh_fail)?,
            Err(Stop::Failed(err)) => {
                let delivered = tunnel.counters.delivered.get();
                return Err(fail(handshake_timeout(err, delivered)));
            }
            Err(stop) => return Err(stop),
        };

        host.phase(Phase::Auth);
        step(
            ssh::auth::authenticate(&mut conn, self.username, self.credentials, &prompter),
            commands,
            pending,
            "SSH authentication",
            SSH_STEP_TIMEOUT,
            &asking,
        )
        .await?
        .map_err(ssh_fail)?;

        host.phase(Phase::Shell);
        // Every tab closed while connecting: nothing left to open.
        let Some((first, (cols, rows))) = pending.first() else {
            return Ok(());
        };
        let link = ssh::link::Link::new(conn);
        let shell = step(
            ssh::shell::open_on(&link, &Program::Shell { cols, rows }),
            commands,
            pending,
            "the shell to start",
            SSH_STEP_TIMEOUT,
            &never,
        )
        .await?
        .map_err(ssh_fail)?;

        host.phase(Phase::Connected);
        host.linked(link);
        redial.connected();
        let terminal = PageTerminal::new(host);
        // The other tabs are reopened on this connection, then typed-ahead input follows.
        let replay = pending.take_commands(first);
        let tracker = RefCell::new(&mut *pending);
        let mut all_commands = stream::iter(replay)
            .chain(commands.by_ref())
            .inspect(|command| tracker.borrow_mut().track(command))
            .fuse();
        // The first keep-alive goes out at once, so the status line shows a round trip early.
        let mut keepalive = stream::iter([()])
            .chain(IntervalStream::new(KEEPALIVE_SECS * 1000))
            .fuse();
        let result = {
            let shell_run = ssh::tabs::run_tabs(
                first,
                shell,
                &mut all_commands,
                &mut keepalive,
                KEEPALIVE_SECS,
                &terminal,
                &now_ms,
            )
            .fuse();
            let stats = report_stats(host, &tunnel.counters, &terminal.rtt).fuse();
            pin_mut!(shell_run, stats);
            select! {
                result = shell_run => result,
                never = stats => match never {},
            }
        };
        drop(all_commands);
        let pending = tracker.into_inner();
        for tab in terminal.ended.take() {
            pending.ended(tab);
        }
        result.map(|_end| ()).map_err(ssh_fail)
    }
}

/// Refreshes the status line's figures while the shell runs.
async fn report_stats(
    host: &dyn SessionHost,
    counters: &Counters,
    rtt: &Cell<Option<f64>>,
) -> std::convert::Infallible {
    let mut last = None;
    loop {
        let now = Stats {
            rtt_ms: rtt.get(),
            bytes_in: counters.bytes_in.get(),
            bytes_out: counters.bytes_out.get(),
        };
        if last != Some(now) {
            host.stats(now);
            last = Some(now);
        }
        TimeoutFuture::new(STATS_INTERVAL_MS).await;
    }
}
