//! Device mode's steps around a session: open a tunnel for a thing through the tunnel API,
//! wait for the device to join, then start the session with the source token (never shown,
//! never stored); after a drop, **Send new access tokens** (rotate ALL, wait, resume with the
//! scrollback kept); **Close tunnel**; **Join** a tunnel opened elsewhere (rotate SOURCE).
//!
//! The decisions (what to check first, when to poll, what each failure says) are plain Rust in
//! `tunnel_api` and `request`; this module only sequences the browser calls. Each flow carries
//! the controller's generation number: a disconnect or a newer flow makes it stop quietly.
//! The tunnel stays open on a disconnect (it can be joined or resumed); only Close closes it.
//!
//! The message format: a device is tried in what worked for it before (`tunnel_api::formats`),
//! else in the form's choice (V3 by default); when V3 gets no SSH banner and nothing is
//! remembered, the page sends new access tokens, retries in V1 and remembers V1, saying so in
//! the status line.

use std::rc::Rc;

use leptos::prelude::*;

use super::Controller;
#[cfg(target_arch = "wasm32")]
use crate::components::request::device_values;
use crate::components::request::{DevicePlan, FormValues, check_device, check_username};
use crate::components::status::Status;
use crate::session::SessionError;
use crate::tunnel_api::formats;
use crate::tunnel_api::wait::DeviceError;

/// The tunnel Device mode works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTunnel {
    /// Its id.
    pub tunnel_id: String,
    /// What was opened (thing and services).
    pub plan: DevicePlan,
}

/// How a flow gets its token.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
enum Tokens {
    /// Open a new tunnel for the plan.
    Open,
    /// Rotate the tunnel's tokens: SOURCE (join) or ALL (resend).
    Rotate(crate::tunnel_api::ClientMode),
}

impl Controller {
    /// Device mode's Connect: checks the form, opens a tunnel for the thing, waits for the
    /// device, then connects.
    pub fn connect_device(self: &Rc<Self>, values: FormValues, page_origin: &str) {
        let plan = match check_device(&values) {
            Ok(plan) => plan,
            Err(err) => {
                self.state.error.set(Some(err.user_message()));
                return;
            }
        };
        self.state.format_note.set(None);
        self.run_device_flow(values, page_origin, plan, None, Tokens::Open, false);
    }

    /// The shell runs: remember the format that worked for the device.
    pub(super) fn device_connected(&self) {
        if let (Some(tunnel), Some(format)) = (
            self.state.device.get_untracked(),
            self.state.device_format.get_untracked(),
        ) {
            formats::remember(&tunnel.plan.thing, format);
        } else if let Some((device, format)) = self.token_device.borrow().as_ref() {
            formats::remember(device, *format);
        }
    }

    /// A Device-mode session ended with `outcome`: whether it is retried in another format
    /// (then remembered for the device, and named in the status line).
    pub(super) fn device_fallback(&self, outcome: &Result<(), SessionError>) -> bool {
        let (Some(tunnel), Some(format), Err(err)) = (
            self.state.device.get_untracked(),
            self.state.device_format.get_untracked(),
            outcome,
        ) else {
            return false;
        };
        let thing = &tunnel.plan.thing;
        match formats::fallback(err, format, formats::remembered(thing)) {
            Some(next) => {
                formats::remember(thing, next);
                self.state.format_note.set(Some(formats::retry_note(thing)));
                true
            }
            None => false,
        }
    }

    /// **Send new access tokens**: new tokens for both ends of the current tunnel (the device
    /// gets its own by notification), then the session resumes in the same terminal.
    pub fn resend_tokens(self: &Rc<Self>, values: FormValues, page_origin: &str) {
        let Some(tunnel) = self.state.device.get_untracked() else {
            return;
        };
        self.run_device_flow(
            values,
            page_origin,
            tunnel.plan,
            Some(tunnel.tunnel_id),
            Tokens::Rotate(crate::tunnel_api::ClientMode::All),
            true,
        );
    }

    /// **Join**: a new source token for a tunnel opened elsewhere, then connect to it.
    pub fn join(
        self: &Rc<Self>,
        values: FormValues,
        page_origin: &str,
        tunnel: &crate::tunnel_api::Tunnel,
    ) {
        let mut values = values;
        values.thing = tunnel.thing_name.clone().unwrap_or_default();
        let plan = DevicePlan {
            thing: values.thing.clone(),
            services: tunnel.services.clone(),
        };
        if let Err(err) = check_username(&values.username) {
            self.state.error.set(Some(err.user_message()));
            return;
        }
        self.run_device_flow(
            values,
            page_origin,
            plan,
            Some(tunnel.tunnel_id.clone()),
            Tokens::Rotate(crate::tunnel_api::ClientMode::Source),
            false,
        );
    }

    /// **Close tunnel**: ends the session (if any) and closes the tunnel on the service, which
    /// ends the device's side too.
    pub fn close_tunnel(self: &Rc<Self>, page_origin: &str) {
        let Some(tunnel) = self.state.device.get_untracked() else {
            return;
        };
        self.disconnect();
        self.close_on_service(page_origin.to_owned(), tunnel);
    }

    #[cfg(target_arch = "wasm32")]
    fn close_on_service(self: &Rc<Self>, origin: String, tunnel: DeviceTunnel) {
        let state = self.state;
        leptos::task::spawn_local(async move {
            match crate::driver::api::close(&origin, &tunnel.tunnel_id).await {
                Ok(()) => {
                    let _ = state.device.try_set(None);
                    let _ = state.notice.try_set(Some(format!(
                        "The tunnel for {} is closed.",
                        tunnel.plan.thing
                    )));
                }
                Err(err) => {
                    let _ = state.error.try_set(Some(err.user_message()));
                }
            }
        });
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn close_on_service(self: &Rc<Self>, _origin: String, _tunnel: DeviceTunnel) {
        self.state
            .error
            .set(Some("Tunnels are closed only in a browser.".to_owned()));
    }

    /// Takes the page into a Device-mode flow: a new generation, the status naming the device.
    fn begin_device_flow(self: &Rc<Self>, plan: &DevicePlan) -> u64 {
        // The terminal's script arrives while the tunnel is opened and the device awaited.
        crate::term::preload();
        let generation = self.take_over();
        let state = self.state;
        state.error.set(None);
        state.notice.set(None);
        state.device_name.set(Some(plan.thing.clone()));
        state.status.set(Status::OpeningTunnel);
        generation
    }

    /// Whether the flow of `generation` is still the page's current one.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn still(&self, generation: u64) -> bool {
        self.generation.get() == generation
    }

    /// A flow failed before any session started.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    fn device_failed(&self, generation: u64, err: &DeviceError) {
        if self.still(generation) {
            self.state.status.set(Status::Ended);
            self.state.error.set(Some(err.user_message()));
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn run_device_flow(
        self: &Rc<Self>,
        _values: FormValues,
        _page_origin: &str,
        plan: DevicePlan,
        _tunnel_id: Option<String>,
        _tokens: Tokens,
        _keep_scrollback: bool,
    ) {
        self.begin_device_flow(&plan);
        self.state.status.set(Status::Ended);
        self.state
            .error
            .set(Some("Device mode runs only in a browser.".to_owned()));
    }

    #[cfg(target_arch = "wasm32")]
    fn run_device_flow(
        self: &Rc<Self>,
        values: FormValues,
        page_origin: &str,
        plan: DevicePlan,
        tunnel_id: Option<String>,
        tokens: Tokens,
        keep_scrollback: bool,
    ) {
        let generation = self.begin_device_flow(&plan);
        let rotating_all = matches!(tokens, Tokens::Rotate(crate::tunnel_api::ClientMode::All));
        let controller = Rc::clone(self);
        let origin = page_origin.to_owned();
        leptos::task::spawn_local(async move {
            match flow::tokens(&origin, &plan, tunnel_id, tokens).await {
                Err(err) => controller.device_failed(generation, &err),
                Ok((tunnel, token)) => {
                    if !controller.still(generation) {
                        return;
                    }
                    controller.state.device.set(Some(tunnel.clone()));
                    controller.state.status.set(Status::WaitingForDevice);
                    let wait = if rotating_all {
                        crate::tunnel_api::wait::DeviceWait::after_rotation(&plan.thing)
                    } else {
                        crate::tunnel_api::wait::DeviceWait::new(&plan.thing)
                    };
                    let joined = flow::wait_for_device(&origin, &tunnel.tunnel_id, &wait, || {
                        controller.still(generation)
                    })
                    .await;
                    match joined {
                        Err(err) => controller.device_failed(generation, &err),
                        Ok(false) => {}
                        Ok(true) => {
                            let helper =
                                crate::components::endpoint::default_cookie_helper(&origin);
                            let mut values = device_values(values, &plan, token, helper);
                            let chosen =
                                crate::components::request::parse_format(values.format.trim())
                                    .unwrap_or_default();
                            let format =
                                formats::first_try(formats::remembered(&plan.thing), chosen);
                            values.format = formats::word_of(format).to_owned();
                            controller.start(values, &origin, keep_scrollback);
                            controller.state.device_format.set(Some(format));
                        }
                    }
                }
            }
        });
    }
}

/// The browser calls of the flows.
#[cfg(target_arch = "wasm32")]
mod flow {
    use std::time::Duration;

    use gloo_timers::future::TimeoutFuture;
    use zeroize::Zeroizing;

    use super::{DeviceTunnel, Tokens};
    use crate::components::request::DevicePlan;
    use crate::driver::api;
    use crate::tunnel_api::wait::{DeviceError, DeviceWait, Next};

    /// The tunnel and the page's token: a new tunnel, or new tokens for an existing one.
    pub async fn tokens(
        origin: &str,
        plan: &DevicePlan,
        tunnel_id: Option<String>,
        tokens: Tokens,
    ) -> Result<(DeviceTunnel, Zeroizing<String>), DeviceError> {
        let (tunnel_id, token) = match (tokens, tunnel_id) {
            (Tokens::Rotate(mode), Some(id)) => {
                let rotated = api::rotate(origin, &id, mode).await?;
                (id, rotated.source_access_token)
            }
            _ => {
                let opened = api::open(origin, &plan.thing, plan.services.clone()).await?;
                (opened.tunnel_id, opened.source_access_token)
            }
        };
        Ok((
            DeviceTunnel {
                tunnel_id,
                plan: plan.clone(),
            },
            token,
        ))
    }

    /// Polls describe until the device is connected (`true`), the flow was superseded
    /// (`false`), or the wait fails.
    pub async fn wait_for_device(
        origin: &str,
        tunnel_id: &str,
        wait: &DeviceWait,
        still: impl Fn() -> bool,
    ) -> Result<bool, DeviceError> {
        let started = js_sys::Date::now();
        loop {
            let answer = api::describe(origin, tunnel_id).await;
            if !still() {
                return Ok(false);
            }
            let elapsed = Duration::from_millis((js_sys::Date::now() - started).max(0.0) as u64);
            match wait.on_describe(answer, elapsed) {
                Next::Connected => return Ok(true),
                Next::Fail(err) => return Err(err),
                Next::PollAfter(pause) => {
                    TimeoutFuture::new(u32::try_from(pause.as_millis()).unwrap_or(500)).await;
                    if !still() {
                        return Ok(false);
                    }
                }
            }
        }
    }
}
