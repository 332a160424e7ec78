//! State the background task publishes and the [`crate::Client`] handles
//! read: session details, counters, the event and push channels, and the
//! error that ended the client.
//!
//! The task is the only writer of everything protocol-related; the handles
//! only read snapshots, so the locks here are held for a copy and never
//! across an await.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use guildhall_protocol::pb;
use tokio::sync::{broadcast, mpsc};

use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::stats::Counters;

/// Events kept for a slow subscriber before it starts missing some.
const EVENT_CAPACITY: usize = 256;

/// What the last login (or resume) established.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub player_id: Option<String>,
    pub token: Option<String>,
    pub token_expires_at_ms: u64,
    pub resume_window_ms: u64,
}

pub(crate) struct Shared {
    pub session: Mutex<SessionInfo>,
    pub logged_in: AtomicBool,
    pub last_seq: AtomicU64,
    pub stats: Counters,
    /// Created by the first subscriber: a bot that never watches events
    /// does not pay for the channel's ring buffer.
    events: Mutex<Option<broadcast::Sender<ClientEvent>>>,
    /// The receiving end of the pushes until the application takes it.
    pub pushes: Mutex<Option<mpsc::UnboundedReceiver<pb::Push>>>,
    pub pushes_taken: AtomicBool,
    /// Set once the task ended: what every later call fails with.
    pub terminal: Mutex<Option<ClientError>>,
}

impl Shared {
    pub fn new(pushes: mpsc::UnboundedReceiver<pb::Push>) -> Self {
        Self {
            session: Mutex::new(SessionInfo::default()),
            logged_in: AtomicBool::new(false),
            last_seq: AtomicU64::new(0),
            stats: Counters::default(),
            events: Mutex::new(None),
            pushes: Mutex::new(Some(pushes)),
            pushes_taken: AtomicBool::new(false),
            terminal: Mutex::new(None),
        }
    }

    pub fn emit(&self, event: ClientEvent) {
        tracing::debug!(?event, "client event");
        if let Some(tx) = self.events.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            // No current subscriber is fine.
            let _ = tx.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| broadcast::channel(EVENT_CAPACITY).0)
            .subscribe()
    }

    pub fn session(&self) -> std::sync::MutexGuard<'_, SessionInfo> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_last_seq(&self, seq: u64) {
        self.last_seq.store(seq, Ordering::Relaxed);
    }

    pub fn set_logged_in(&self, v: bool) {
        self.logged_in.store(v, Ordering::Relaxed);
    }

    /// The error a call gets once the task is gone.
    pub fn terminal(&self) -> ClientError {
        self.terminal.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| ClientError::Closed {
            status: guildhall_protocol::Status::Ok,
            reason: "client ended".into(),
        })
    }

    pub fn set_terminal(&self, err: ClientError) {
        *self.terminal.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
    }

    pub fn take_pushes(&self) -> Option<mpsc::UnboundedReceiver<pb::Push>> {
        let rx = self.pushes.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.pushes_taken.store(true, Ordering::Relaxed);
        rx
    }

    /// Keeps the untaken push queue under `max` by dropping the oldest.
    pub fn trim_untaken_pushes(&self, max: usize) {
        if self.pushes_taken.load(Ordering::Relaxed) {
            return;
        }
        if let Some(rx) = self.pushes.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            while rx.len() >= max.max(1) {
                if rx.try_recv().is_err() {
                    break;
                }
            }
        }
    }
}
