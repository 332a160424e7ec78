//! Remembered results: a session keeps the results of recent requests by
//! client id, so that a request re-sent after a reconnect is answered with
//! its first result and never runs twice.

use std::sync::Arc;

use bytes::Bytes;
use guildhall_protocol::{OutFrame, Status};

use super::Session;

/// A final answer to a request, as remembered for retransmissions.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: Status,
    pub message: String,
    pub payload: Bytes,
}

impl Answer {
    pub fn ok(payload: Bytes) -> Self {
        Self { status: Status::Ok, message: String::new(), payload }
    }

    pub fn err(status: Status, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), payload: Bytes::new() }
    }

    /// The response frame for request `id` with sequence number `seq` (0:
    /// unsequenced, before login). Its payload is shared, not copied.
    pub fn frame(&self, id: u64, seq: u64) -> OutFrame {
        OutFrame::response(id, seq, self.status, &self.message, &self.payload)
    }
}

/// What a connection should do about a request id.
#[derive(Debug, PartialEq)]
pub enum Begin {
    /// New: run it, then call [`Session::finish_request`].
    Execute,
    /// Seen and finished: send this first result again.
    Replay(Arc<Answer>),
    /// Seen and still running (on a connection that dropped): its answer
    /// will be sent when it finishes.
    InProgress,
    /// Not remembered: answered and acknowledged (the client has the
    /// answer), or older than the remembered window. Never runs again.
    TooOld,
    /// Remembered, but this request is another one (another method or
    /// payload) under the same id: refused, since answering it with the
    /// first request's result would say that something ran which did not.
    Mismatch,
}

/// A request the session remembers, by the client's id.
#[derive(Debug)]
pub(super) struct Remembered {
    pub id: u64,
    /// What the request was ([`fingerprint`]), so that a re-send is told
    /// from another request under a reused id.
    pub fingerprint: u64,
    pub outcome: Outcome,
}

/// A 64-bit FNV-1a hash of a request's method and payload. Not a defence
/// against a hostile client (its own session is all it could confuse), a
/// check that a re-send is the request it claims to be.
pub fn fingerprint(method: &str, payload: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in method.bytes().chain([0xff]).chain(payload.iter().copied()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[derive(Debug)]
pub(super) enum Outcome {
    Running,
    /// Answered with the response of sequence number `seq`: kept whole for
    /// a client that retries because it never got it.
    Done {
        answer: Arc<Answer>,
        seq: u64,
    },
}

/// Places for results a session keeps after acknowledgements emptied them.
/// An acknowledged result is forgotten, not kept as a marker: the client
/// has its answer, and a re-sent id at or below the highest seen is refused
/// all the same (`Begin::TooOld`). A session then holds the one or two
/// results in flight, not the last eight (256 bytes of every session's heap
/// in a profile). Acks ride on requests, so when the next request comes its
/// ack has emptied the results first: one place is in use, rarely two.
pub(super) const RESULTS_KEPT: usize = 2;

impl Session {
    /// Registers request `id`, whose method and payload have `fingerprint`,
    /// and says what to do with it.
    pub fn begin_request(&self, id: u64, fingerprint: u64) -> Begin {
        let mut st = self.lock();
        if let Some(r) = st.results.iter().find(|r| r.id == id) {
            return match &r.outcome {
                _ if r.fingerprint != fingerprint => Begin::Mismatch,
                Outcome::Running => Begin::InProgress,
                Outcome::Done { answer, .. } => Begin::Replay(answer.clone()),
            };
        }
        if id <= st.highest_request {
            return Begin::TooOld;
        }
        st.highest_request = id;
        let limit = self.limits.remembered_results;
        if limit > 0 {
            // Make room first, so the deque never outgrows the limit's capacity.
            while st.results.len() >= limit {
                st.results.pop_front();
            }
            st.results.push_back(Remembered { id, fingerprint, outcome: Outcome::Running });
        }
        Begin::Execute
    }

    /// Remembers the result of request `id` and sends it.
    pub fn finish_request(&self, id: u64, answer: Answer) -> u64 {
        let seq = self.emit_response(id, &answer);
        let mut st = self.lock();
        let acked = st.acked;
        if let Some(i) = st.results.iter().position(|r| r.id == id) {
            if seq != 0 && seq <= acked {
                // Acknowledged already (a resume reported it): nothing to keep.
                st.results.remove(i);
            } else {
                st.results[i].outcome = Outcome::Done { answer: Arc::new(answer), seq };
            }
        }
        seq
    }
}
