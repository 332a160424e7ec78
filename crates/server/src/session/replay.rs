//! The replay buffer: every message a session sends gets the next sequence
//! number and stays buffered until the client acknowledges it, so that a
//! resume can replay what the client missed.

use std::collections::VecDeque;

use guildhall_protocol::{OutFrame, PushBody};

use super::results::{Outcome, RESULTS_KEPT};
use super::{Answer, Session, State};

/// Replay-buffer places a session keeps after a burst is acknowledged: its
/// response and a push or two between acks.
pub(super) const OUTBOX_KEPT: usize = 2;

/// The client has everything up to `acked`: forget what it can no longer ask
/// for again.
pub(super) fn forget_acknowledged(st: &mut State) {
    let acked = st.acked;
    while st.outbox.front().is_some_and(|f| f.seq() <= acked) {
        st.outbox.pop_front();
    }
    give_back(&mut st.outbox, OUTBOX_KEPT);
    st.results.retain(|r| !matches!(r.outcome, Outcome::Done { seq, .. } if seq <= acked));
    give_back(&mut st.results, RESULTS_KEPT);
}

/// A burst (a busy guild chat, a long pause between acks) grows a session's
/// queues; keeping their peak capacity cost every session ~1.4 KB in a heap
/// profile. Once the burst is acknowledged and the queue nearly empty, it
/// goes back to `kept` places.
fn give_back<T>(queue: &mut VecDeque<T>, kept: usize) {
    if queue.capacity() > kept && queue.len() <= kept / 2 {
        queue.shrink_to(kept);
    }
}

impl Session {
    /// Sequences, buffers and queues one server message.
    fn emit(&self, build: impl FnOnce(u64) -> OutFrame) -> u64 {
        let mut st = self.lock();
        if st.ended.is_some() {
            return 0;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let frame = build(seq);
        st.outbox.push_back(frame);
        while st.outbox.len() > self.limits.replay_buffer {
            // The client is not acknowledging: keep memory bounded. If it
            // resumes from before this point it must log in again.
            let evicted = st.outbox.pop_front().expect("non-empty");
            st.evicted_upto = evicted.seq();
        }
        drop(st);
        // notify_one stores a permit when the connection is busy, so a
        // message queued between its check and its wait is not missed.
        self.notify.notify_one();
        seq
    }

    pub fn emit_response(&self, id: u64, answer: &Answer) -> u64 {
        // The frame shares the answer's payload with `results`.
        self.emit(|seq| answer.frame(id, seq))
    }

    /// Queues a push whose body (topic and event) may be shared with other
    /// sessions: only the envelope head with this session's seq is its own.
    pub fn emit_push(&self, body: &PushBody) -> u64 {
        self.emit(|seq| OutFrame::push(seq, body))
    }

    /// The client received everything up to `seq`.
    pub fn ack(&self, seq: u64) {
        let mut st = self.lock();
        let seq = seq.min(st.next_seq - 1);
        if seq > st.acked {
            st.acked = seq;
            forget_acknowledged(&mut st);
        }
    }

    /// Unacknowledged messages held (for introspection and memory tests).
    pub fn buffered(&self) -> usize {
        self.lock().outbox.len()
    }
}
