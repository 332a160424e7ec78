//! The registry of a node's sessions, by id and by player: opening (with
//! takeover of a player's older session), lookup, ending and expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use guildhall_entity::{PubSub, Runtime};
use guildhall_protocol::Status;

use super::{Convert, Session, SessionLimits};

/// All sessions of this node.
pub struct Sessions {
    limits: SessionLimits,
    by_id: Mutex<HashMap<u64, Arc<Session>>>,
    by_player: Mutex<HashMap<Arc<str>, u64>>,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self { limits, by_id: Mutex::new(HashMap::new()), by_player: Mutex::new(HashMap::new()) }
    }

    /// Opens a new session for `player_id`, subscribed to `topics`. An older
    /// session of the same player is taken over: ended with
    /// SESSION_TAKEN_OVER, which closes its connection.
    pub fn open(
        &self,
        session_id: u64,
        player_id: &str,
        topics: &[(&'static str, String)],
        runtime: &Runtime,
        convert: Convert,
    ) -> Arc<Session> {
        let pubsub = runtime.pubsub();
        let session = Arc::new(Session::new(session_id, Arc::from(player_id), self.limits));
        for (slot, topic) in topics {
            session.resubscribe(slot, Some(topic.clone()), runtime, convert);
        }
        let old = {
            let mut by_player = self.by_player.lock().expect("sessions lock");
            by_player.insert(session.player_id.clone(), session_id)
        };
        self.by_id.lock().expect("sessions lock").insert(session_id, session.clone());
        if let Some(old) = old.filter(|old| *old != session_id) {
            self.end(old, Status::SessionTakenOver, "logged in on another device", pubsub);
        }
        metrics::counter!("guildhall_sessions_opened_total").increment(1);
        session
    }

    pub fn get(&self, session_id: u64) -> Option<Arc<Session>> {
        self.by_id.lock().expect("sessions lock").get(&session_id).cloned()
    }

    /// The live session of a player, if any.
    pub fn of_player(&self, player_id: &str) -> Option<Arc<Session>> {
        let id = *self.by_player.lock().expect("sessions lock").get(player_id)?;
        self.get(id)
    }

    /// Ends and forgets a session.
    pub fn end(&self, session_id: u64, status: Status, reason: &str, pubsub: &PubSub) {
        let Some(session) = self.by_id.lock().expect("sessions lock").remove(&session_id) else {
            return;
        };
        {
            let mut by_player = self.by_player.lock().expect("sessions lock");
            if by_player.get(&session.player_id) == Some(&session_id) {
                by_player.remove(&session.player_id);
            }
        }
        session.end(status, reason, pubsub);
    }

    /// Whether a detached session's resume window has passed.
    pub fn is_expired(session: &Session, now_ms: u64, window_ms: u64) -> bool {
        session.detached_at_ms().is_some_and(|at| now_ms.saturating_sub(at) >= window_ms)
    }

    /// Ends every session whose connection has been gone for the resume
    /// window; returns how many.
    pub fn expire(&self, now_ms: u64, window_ms: u64, pubsub: &PubSub) -> usize {
        let expired: Vec<u64> = self
            .by_id
            .lock()
            .expect("sessions lock")
            .values()
            .filter(|s| Self::is_expired(s, now_ms, window_ms))
            .map(|s| s.id)
            .collect();
        for id in &expired {
            self.end(*id, Status::SessionExpired, "resume window passed", pubsub);
        }
        metrics::counter!("guildhall_sessions_expired_total").increment(expired.len() as u64);
        expired.len()
    }

    /// Wakes every session's connection (the start of a graceful stop).
    pub fn wake_all(&self) {
        let sessions: Vec<Arc<Session>> = self.by_id.lock().expect("sessions lock").values().cloned().collect();
        for session in sessions {
            session.wake();
        }
    }

    /// Ends every session (graceful shutdown).
    pub fn end_all(&self, status: Status, reason: &str, pubsub: &PubSub) {
        let ids: Vec<u64> = self.by_id.lock().expect("sessions lock").keys().copied().collect();
        for id in ids {
            self.end(id, status, reason, pubsub);
        }
    }

    pub fn count(&self) -> usize {
        self.by_id.lock().expect("sessions lock").len()
    }

    /// Sessions without a connection (inside their resume window).
    pub fn detached(&self) -> usize {
        self.by_id.lock().expect("sessions lock").values().filter(|s| s.detached_at_ms().is_some()).count()
    }
}
