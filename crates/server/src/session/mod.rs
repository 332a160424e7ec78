//! Sessions: what survives a dropped connection.
//!
//! A session belongs to one logged-in player. Every message the server sends
//! it (responses and pushes) gets the next sequence number and stays in the
//! replay buffer until the client acknowledges it, so that a client that
//! reconnects within the resume window gets what it missed. The session also
//! remembers the results of recent requests by client id: a request re-sent
//! after a reconnect is answered with its first result and never runs twice.
//!
//! A connection *attaches* to a session (login or resume) and writes whatever
//! the session has queued past what it already wrote. Only one connection is
//! attached at a time; a newer one replaces it.
//!
//! The parts: the replay buffer and sequencing (`replay`), remembered
//! request results (`results`), subscriptions and delivery of published
//! events (`subscribe`), and the node's registry of sessions (`registry`).

mod registry;
mod replay;
mod results;
mod subscribe;
#[cfg(test)]
mod tests;

pub use registry::Sessions;
pub use results::{fingerprint, Answer, Begin};
pub use subscribe::{Convert, Delivery, Resubscribe};

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use guildhall_entity::{PubSub, Subscription};
use guildhall_protocol::{OutFrame, Status};
use tokio::sync::Notify;

use replay::forget_acknowledged;
use results::Remembered;
use subscribe::SessionSubscriber;

/// Bounds of one session's memory.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Unacknowledged messages kept for replay.
    pub replay_buffer: usize,
    /// Request results remembered for retransmissions.
    pub remembered_results: usize,
    /// Stream subscriptions (the market's offer stream) deliver at most one
    /// push per this many milliseconds per session; the rest are dropped.
    /// A stream to thousands of sessions must not cost a push per event per
    /// session. 0: every event.
    pub stream_push_interval_ms: u64,
}

/// What an attached connection should write next.
#[derive(Debug)]
pub enum Pending {
    /// Encoded envelopes, in sequence order (possibly none).
    Frames(Vec<OutFrame>),
    /// Another connection attached to the session since: stop quietly.
    Replaced,
    /// The session ended: tell the client why and close.
    Ended(Status, String),
}

/// Why a connection could not attach (resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// The session ended (expired, taken over, logged out).
    Ended(Status, String),
    /// The client missed messages that are no longer buffered.
    ReplayGap { last_seq: u64, oldest: u64 },
    /// The client claims messages the session never sent.
    AheadOfServer { last_seq: u64, sent: u64 },
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Sent or queued messages not yet acknowledged, oldest first.
    outbox: VecDeque<OutFrame>,
    /// Highest seq handed to the attached connection.
    written: u64,
    /// Highest seq the client acknowledged.
    acked: u64,
    /// Messages up to this seq were evicted unacknowledged (buffer full).
    evicted_upto: u64,
    results: VecDeque<Remembered>,
    /// Highest request id seen; ids at or below it that are not in `results`
    /// are too old to answer.
    highest_request: u64,
    conn: Option<u64>,
    detached_at_ms: Option<u64>,
    ended: Option<(Status, String)>,
    /// (slot, subscription): a slot ("player", "guild") holds at most one
    /// topic, so following a guild change replaces the old guild's topic.
    subscriptions: Vec<(&'static str, Subscription)>,
    /// The session's subscriber for ordinary topics and the one for streams,
    /// made on first use and shared by all its subscriptions of that sort:
    /// one allocation per session rather than one per topic.
    subscriber: Option<Arc<SessionSubscriber>>,
    stream_subscriber: Option<Arc<SessionSubscriber>>,
}

pub struct Session {
    pub id: u64,
    pub player_id: Arc<str>,
    limits: SessionLimits,
    state: Mutex<State>,
    /// Wakes the attached connection when there is something to write.
    notify: Notify,
}

impl Session {
    fn new(id: u64, player_id: Arc<str>, limits: SessionLimits) -> Self {
        Self {
            id,
            player_id,
            limits,
            state: Mutex::new(State {
                next_seq: 1,
                outbox: VecDeque::new(),
                written: 0,
                acked: 0,
                evicted_upto: 0,
                results: VecDeque::new(),
                highest_request: 0,
                conn: None,
                detached_at_ms: None,
                ended: None,
                subscriptions: Vec::new(),
                subscriber: None,
                stream_subscriber: None,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("session lock")
    }

    /// Waits until something was queued (or the session changed hands, or
    /// the server began to stop).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Wakes the connection attached to this session (or the next one to
    /// wait, if it is busy): it looks at the stop signal when woken.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Attaches connection `conn`, which has seen everything up to
    /// `last_seq`; returns the highest seq that will be replayed to it.
    pub fn attach(&self, conn: u64, last_seq: u64) -> Result<u64, AttachError> {
        let mut st = self.lock();
        if let Some((status, reason)) = &st.ended {
            return Err(AttachError::Ended(*status, reason.clone()));
        }
        // A claim beyond what was sent is refused, not rounded down: taken
        // as it was, it acknowledged (and so dropped) every message the
        // client never got.
        if last_seq > st.next_seq - 1 {
            return Err(AttachError::AheadOfServer { last_seq, sent: st.next_seq - 1 });
        }
        if last_seq < st.evicted_upto {
            return Err(AttachError::ReplayGap { last_seq, oldest: st.evicted_upto + 1 });
        }
        let replaced = st.conn.replace(conn).is_some_and(|old| old != conn);
        st.detached_at_ms = None;
        st.written = last_seq;
        if last_seq > st.acked {
            st.acked = last_seq;
            forget_acknowledged(&mut st);
        }
        let replay_to = st.next_seq - 1;
        drop(st);
        if replaced {
            // Wake the old connection so it notices and stops.
            self.notify.notify_waiters();
        }
        Ok(replay_to)
    }

    /// Connection `conn` is gone; the resume window starts now.
    pub fn detach(&self, conn: u64, now_ms: u64) {
        let mut st = self.lock();
        if st.conn == Some(conn) {
            st.conn = None;
            st.detached_at_ms = Some(now_ms);
        }
    }

    /// What connection `conn` should write now.
    pub fn pending(&self, conn: u64) -> Pending {
        let mut st = self.lock();
        if let Some((status, reason)) = &st.ended {
            return Pending::Ended(*status, reason.clone());
        }
        if st.conn != Some(conn) {
            return Pending::Replaced;
        }
        let written = st.written;
        let frames: Vec<OutFrame> = st.outbox.iter().filter(|f| f.seq() > written).cloned().collect();
        st.written = st.next_seq - 1;
        Pending::Frames(frames)
    }

    /// When the session lost its connection, if it has none now.
    pub fn detached_at_ms(&self) -> Option<u64> {
        self.lock().detached_at_ms
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// Ends the session: its connection is told why, its subscriptions go.
    fn end(&self, status: Status, reason: &str, pubsub: &PubSub) {
        let subs = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return;
            }
            st.ended = Some((status, reason.to_string()));
            st.outbox.clear();
            st.results.clear();
            std::mem::take(&mut st.subscriptions)
        };
        for (_, subscription) in subs {
            pubsub.unsubscribe(&subscription);
        }
        self.notify.notify_waiters();
        // notify_waiters wakes only current waiters; a permit covers a
        // connection that is busy right now.
        self.notify.notify_one();
    }
}
