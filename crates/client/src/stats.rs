//! Counters of one client, for bots' reports and for tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a client's counters (from [`crate::Client::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Calls made (login, logout and resume included).
    pub requests: u64,
    /// Calls that returned an error (refusals included).
    pub errors: u64,
    /// Calls that timed out (also counted in `errors`).
    pub timeouts: u64,
    /// Connections re-established after a drop.
    pub reconnects: u64,
    /// Sessions resumed successfully.
    pub resumes: u64,
    /// Sessions lost (resume refused).
    pub session_losses: u64,
    /// Requests re-sent after a resume.
    pub retransmits: u64,
    /// Pushes received (each once).
    pub pushes: u64,
    /// Messages dropped as second copies (seq already seen, or a response to
    /// a request already answered).
    pub duplicates: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub reconnects: AtomicU64,
    pub resumes: AtomicU64,
    pub session_losses: AtomicU64,
    pub retransmits: AtomicU64,
    pub pushes: AtomicU64,
    pub duplicates: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&self.requests),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            reconnects: get(&self.reconnects),
            resumes: get(&self.resumes),
            session_losses: get(&self.session_losses),
            retransmits: get(&self.retransmits),
            pushes: get(&self.pushes),
            duplicates: get(&self.duplicates),
        }
    }
}
