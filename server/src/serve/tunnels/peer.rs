//! The registry's handle on a connected peer: its frame queue, its close signal, and the
//! bounded overflow for frames the service makes itself while the queue is full.

use super::*;

/// Why a close frame is sent to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// The close reason text (at most 123 bytes).
    pub reason: String,
}

impl CloseReason {
    pub(crate) fn new(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: burrow_proto::service::truncate_reason(reason),
        }
    }

    pub(super) fn tunnel_closed() -> Self {
        Self::new(CLOSE_NORMAL, TUNNEL_CLOSED_REASON)
    }
}

/// The registry's handle on a connected peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerHandle {
    /// Unique per WebSocket connection.
    pub id: u64,
    /// Whole frames for the peer (the peer's writer regroups them into WebSocket messages).
    pub frames: mpsc::Sender<Batch>,
    /// Set to close the peer's WebSocket with this code and reason.
    pub close: watch::Sender<Option<CloseReason>>,
    /// Service frames waiting for room in `frames`.
    pub overflow: Arc<Mutex<Overflow>>,
}

impl PeerHandle {
    pub(super) fn close(&self, reason: CloseReason) {
        self.close.send_replace(Some(reason));
    }

    /// Queues service-originated frames without waiting: if the queue is full they wait in
    /// the peer's overflow, which one short task at a time hands on (so the caller, holding a
    /// lock, never blocks, and a peer that does not read costs at most one task and
    /// [`MAX_OVERFLOW`] bytes). A peer whose overflow would grow past that is closed.
    pub(super) fn push(&self, frames: Vec<u8>) {
        if frames.is_empty() {
            return;
        }
        let mut overflow = lock(&self.overflow);
        if overflow.frames.is_empty() && !overflow.flushing {
            match self.frames.try_send(Batch::service(frames)) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(batch)) => overflow.frames = batch.frames,
            }
        } else if overflow.frames.len() + frames.len() > MAX_OVERFLOW {
            drop(overflow);
            tracing::warn!(peer = self.id, "peer does not read: closing it");
            self.close(CloseReason::new(CLOSE_PROTOCOL_ERROR, "Peer does not read"));
            return;
        } else {
            overflow.frames.extend_from_slice(&frames);
        }
        if overflow.flushing {
            return;
        }
        overflow.flushing = true;
        let tx = self.frames.clone();
        let shared = self.overflow.clone();
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut overflow = lock(&shared);
                    if overflow.frames.is_empty() {
                        overflow.flushing = false;
                        return;
                    }
                    std::mem::take(&mut overflow.frames)
                };
                if tx.send(Batch::service(batch)).await.is_err() {
                    let mut overflow = lock(&shared);
                    overflow.frames.clear();
                    overflow.flushing = false;
                    return;
                }
            }
        });
    }

    /// Service frames waiting behind a full queue (for tests).
    #[cfg(test)]
    fn overflow_len(&self) -> usize {
        lock(&self.overflow).frames.len()
    }
}

/// Service frames for a peer whose queue was full (see [`PeerHandle::push`]).
#[derive(Debug, Default)]
pub(crate) struct Overflow {
    frames: Vec<u8>,
    /// Whether a task is handing `frames` on.
    flushing: bool,
}

/// Bytes of service frames a peer may have waiting behind its full queue.
const MAX_OVERFLOW: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pushing_to_a_full_queue_costs_one_task_and_bounded_memory() {
        let (tx, mut rx) = mpsc::channel(1);
        let (close, close_rx) = watch::channel(None);
        let peer = PeerHandle {
            id: 7,
            frames: tx,
            close,
            overflow: Arc::default(),
        };
        peer.push(vec![0]);
        // The queue is full now: 200 more pushes wait in one overflow, in order.
        for i in 1..=200u8 {
            peer.push(vec![i]);
        }
        assert!(lock(&peer.overflow).flushing);
        assert!(peer.overflow_len() <= 200);
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(alive <= 1, "{alive} tasks for one slow peer");
        let mut got = Vec::new();
        while got.len() < 201 {
            let batch = rx.recv().await.expect("frames");
            got.extend_from_slice(&batch.frames);
        }
        assert_eq!(got, (0..=200u8).collect::<Vec<_>>());
        assert!(close_rx.borrow().is_none());

        // A peer that never reads: past the bound it is closed, and nothing more is kept.
        for _ in 0..4 {
            peer.push(vec![0; 40_000]);
        }
        assert!(peer.overflow_len() <= MAX_OVERFLOW);
        assert_eq!(
            close_rx.borrow().as_ref().map(|r| r.code),
            Some(CLOSE_PROTOCOL_ERROR)
        );
    }
}
