//! The browser WebSocket, owned: the only place in the app that touches `web_sys::WebSocket`.
//!
//! [`Socket`] opens a binary (`arraybuffer`) WebSocket with the tunnel's subprotocols and turns
//! its callbacks into [`SocketEvent`]s on a channel, so the driver can `select` over them
//! without holding any borrow across an `.await`. Dropping the socket detaches the callbacks,
//! frees their closures and closes the connection. It does not interpret the bytes.

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use js_sys::{Array, ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::error::TunnelError;

/// What the WebSocket reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEvent {
    /// The handshake succeeded.
    Open,
    /// A binary message.
    Binary(Vec<u8>),
    /// A text message (a protocol error in this protocol).
    Text,
    /// The browser's "error" event (a close event follows).
    Error,
    /// The connection closed.
    Close {
        /// The close code (1006 when it dropped without a close frame).
        code: u16,
        /// The close reason.
        reason: String,
    },
}

/// A JavaScript failure, as text.
fn js_text(value: &JsValue) -> String {
    crate::js::JsError::from_js(value).0
}

/// An open (or opening) WebSocket with its callbacks.
pub struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(Event)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Starts connecting to `url` offering `protocols`; events arrive on the returned channel.
    pub fn open(
        url: &str,
        protocols: &[&str],
    ) -> Result<(Self, UnboundedReceiver<SocketEvent>), TunnelError> {
        let list = Array::new();
        for protocol in protocols {
            list.push(&JsValue::from_str(protocol));
        }
        let ws = WebSocket::new_with_str_sequence(url, &list).map_err(|err| {
            // The URL may carry the token (direct AWS), so it is not part of the message.
            TunnelError::Browser(format!(
                "cannot open the tunnel WebSocket: {}",
                js_text(&err)
            ))
        })?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (sender, events) = unbounded();

        let on_open = {
            let sender = sender.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
                let _ = sender.unbounded_send(SocketEvent::Open);
            })
        };
        let on_message = {
            let sender: UnboundedSender<SocketEvent> = sender.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                let report = match data.dyn_into::<ArrayBuffer>() {
                    Ok(buffer) => SocketEvent::Binary(Uint8Array::new(&buffer).to_vec()),
                    Err(_) => SocketEvent::Text,
                };
                let _ = sender.unbounded_send(report);
            })
        };
        let on_error = {
            let sender = sender.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| {
                let _ = sender.unbounded_send(SocketEvent::Error);
            })
        };
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            let _ = sender.unbounded_send(SocketEvent::Close {
                code: event.code(),
                reason: event.reason(),
            });
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok((
            Self {
                ws,
                _on_open: on_open,
                _on_message: on_message,
                _on_error: on_error,
                _on_close: on_close,
            },
            events,
        ))
    }

    /// The subprotocol the service chose ("" before the handshake).
    pub fn protocol(&self) -> String {
        self.ws.protocol()
    }

    /// Sends one binary message.
    pub fn send(&self, bytes: &[u8]) -> Result<(), TunnelError> {
        self.ws.send_with_u8_array(bytes).map_err(|err| {
            TunnelError::Browser(format!("WebSocket send failed: {}", js_text(&err)))
        })
    }

    /// Closes with a normal close code and a reason (at most 123 bytes).
    pub fn close(&self, reason: &str) {
        // Closing an already closing socket is harmless; the browser only throws for bad codes.
        let _ = self.ws.close_with_code_and_reason(1000, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onerror(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() == WebSocket::CONNECTING
            || self.ws.ready_state() == WebSocket::OPEN
        {
            let _ = self.ws.close_with_code_and_reason(1000, "session ended");
        }
    }
}
