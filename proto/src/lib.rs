//! `burrow-proto`: the AWS IoT Secure Tunneling wire protocol, with no IO.
//!
//! - [`message`]: the protobuf `Message` (generated from `proto/tunnel.proto` by prost; the
//!   generated file is committed and a test checks that it is current, so no `protoc` is needed).
//! - [`codec`]: the frame codec (u16 big-endian length + `Message`) on caller buffers, with the
//!   protocol's limits as typed errors.
//! - [`endpoint`]: a sans-IO tunnel endpoint (source or destination role; V1, V2 and V3 message
//!   formats) that turns bytes, commands and the current time into bytes to send, events and the
//!   next deadline.
//! - [`frames`]: whole frames within WebSocket messages: splitting a buffer into them, and
//!   packing frames into messages of at most the protocol's size.
//! - [`handshake`]: the `/tunnel` handshake's vocabulary (subprotocols and their formats, modes,
//!   header and cookie names, the tunnel path, refusal reasons), spelled once for every peer.
//! - [`service`]: the tunneling service's own rules (what it refuses from a source or a
//!   destination), used by the local service in `burrow-server`.
//!
//! This crate deliberately owns no socket, reads no clock, spawns nothing and logs nothing, so the
//! same code runs in the browser (wasm32), in the server and in deterministic tests.

pub mod codec;
pub mod endpoint;
pub mod frames;
pub mod handshake;
pub mod message;
pub mod service;

pub use codec::{
    DataHeader, FrameDecoder, FrameError, decode_frame, encode_data_frame, encode_frame, validate,
};
pub use endpoint::{
    CloseCause, Config, ConnId, Endpoint, Event, Format, LocalError, MAX_ID, Output, PeerError,
    Role, StreamIdPlan, id_from_random,
};
pub use message::{Message, MessageType};
