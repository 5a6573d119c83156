//! Frames within WebSocket messages: [`split`] walks the whole frames of a buffer, and
//! [`Packer`] groups frames into messages of at most [`MAX_WS_MESSAGE_LEN`] bytes, each message
//! starting and ending at a frame boundary.
//!
//! The protocol lets a WebSocket message carry several frames (and the service re-groups them
//! as it likes), so every peer needs both directions: the endpoint packs what it writes, and the
//! local service splits what it reads and packs what it forwards. Both live here once. Neither
//! decodes a frame's body; [`crate::codec`] does that.

use std::collections::VecDeque;

use crate::codec::{LENGTH_PREFIX_LEN, MAX_WS_MESSAGE_LEN};

/// The whole length (prefix included) of the frame whose length prefix starts `buf`, or `None`
/// when `buf` is shorter than a prefix.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    match buf {
        [hi, lo, ..] => Some(LENGTH_PREFIX_LEN + usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// The whole frames at the start of `buf`, in order (see [`Frames`]).
pub fn split(buf: &[u8]) -> Frames<'_> {
    Frames { rest: buf }
}

/// An iterator over whole frames (length prefix included); what is left after the last whole
/// frame (a partial frame, or nothing) is [`Frames::rest`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Frames<'a> {
    /// The bytes after the whole frames yielded so far.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = frame_len(self.rest)?;
        if len > self.rest.len() {
            return None;
        }
        let (frame, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(frame)
    }
}

/// Frames grouped into WebSocket messages of at most [`MAX_WS_MESSAGE_LEN`] bytes, oldest first.
#[derive(Debug, Default)]
pub struct Packer {
    /// Finished messages, oldest first.
    ready: VecDeque<Vec<u8>>,
    /// Bytes in `ready`.
    ready_bytes: usize,
    /// The message being filled; never over [`MAX_WS_MESSAGE_LEN`].
    current: Vec<u8>,
}

impl Packer {
    /// Makes room for one frame of `frame_len` bytes in the current message and returns the
    /// message, for the caller to append exactly that frame to.
    ///
    /// `hint` is how many bytes the caller expects to append soon (so a large send allocates
    /// each message once); it never makes a message longer than the limit.
    pub fn room(&mut self, frame_len: usize, hint: usize) -> &mut Vec<u8> {
        if self.current.len() + frame_len > MAX_WS_MESSAGE_LEN {
            let full = std::mem::take(&mut self.current);
            self.ready_bytes += full.len();
            self.ready.push_back(full);
        }
        if self.current.capacity() - self.current.len() < frame_len {
            let want = hint
                .max(frame_len)
                .min(MAX_WS_MESSAGE_LEN - self.current.len());
            self.current.reserve(want);
        }
        &mut self.current
    }

    /// Adds a run of frames. A trailing partial frame (which a caller holding whole frames never
    /// has) is kept as it is, at the end of the current message.
    pub fn push_frames(&mut self, frames: &[u8]) {
        let mut whole = split(frames);
        for frame in whole.by_ref() {
            self.room(frame.len(), frames.len())
                .extend_from_slice(frame);
        }
        let rest = whole.rest();
        if !rest.is_empty() {
            self.room(rest.len(), rest.len()).extend_from_slice(rest);
        }
    }

    /// The next message to send, oldest first (the one being filled last).
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        if let Some(msg) = self.ready.pop_front() {
            self.ready_bytes -= msg.len();
            return Some(msg);
        }
        if self.current.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.current))
        }
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.ready_bytes + self.current.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body_len: usize, fill: u8) -> Vec<u8> {
        let mut out = u16::try_from(body_len)
            .expect("small body")
            .to_be_bytes()
            .to_vec();
        out.resize(LENGTH_PREFIX_LEN + body_len, fill);
        out
    }

    #[test]
    fn split_yields_whole_frames_and_leaves_the_partial_one() {
        let buf = [frame(3, 1), frame(0, 2), frame(5, 3)].concat();
        let mut frames = split(&buf[..buf.len() - 2]);
        assert_eq!(frames.next(), Some(&frame(3, 1)[..]));
        assert_eq!(frames.next(), Some(&frame(0, 2)[..]));
        assert_eq!(frames.next(), None);
        assert_eq!(frames.rest(), &frame(5, 3)[..5]);
        assert_eq!(split(&[7]).next(), None);
        assert_eq!(frame_len(&[0, 9]), Some(11));
        assert_eq!(frame_len(&[0]), None);
    }

    #[test]
    fn packing_keeps_frames_whole_and_messages_small() {
        let frames: Vec<Vec<u8>> = (0..9).map(|i| frame(60_000, i)).collect();
        let mut packer = Packer::default();
        packer.push_frames(&frames[..3].concat());
        packer.push_frames(&frames[3..].concat());
        assert_eq!(packer.len(), frames.iter().map(Vec::len).sum::<usize>());
        let mut out = Vec::new();
        let mut messages = 0;
        while let Some(m) = packer.pop() {
            assert!(m.len() <= MAX_WS_MESSAGE_LEN);
            let mut whole = split(&m);
            assert_eq!(whole.by_ref().count() * 60_002, m.len());
            assert!(whole.rest().is_empty());
            out.extend_from_slice(&m);
            messages += 1;
        }
        assert_eq!(out, frames.concat());
        assert_eq!(messages, 5);
        assert!(packer.is_empty());
    }
}
