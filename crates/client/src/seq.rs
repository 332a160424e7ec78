//! Tracking the server's sequence numbers.
//!
//! Every response and push of a logged-in session carries the session's next
//! `seq` (1, 2, 3...). The client remembers the highest one received without
//! a hole (`last`): a resume asks the server to replay everything after it,
//! and an Ack of it lets the server drop those messages from its replay
//! buffer. A message at or below `last` is a second copy (a replay of what
//! already arrived) and must be dropped; one beyond `last + 1` means
//! something is missing.

/// What an incoming seq means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqCheck {
    /// The next one: accepted, `last` advanced.
    Next,
    /// Already received: drop the message.
    Duplicate,
    /// Messages in between are missing; nothing was changed.
    Gap,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct SeqTracker {
    last: u64,
    acked: u64,
}

impl SeqTracker {
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Classifies `seq` (> 0) and advances on the next one.
    pub fn observe(&mut self, seq: u64) -> SeqCheck {
        if seq <= self.last {
            SeqCheck::Duplicate
        } else if seq == self.last + 1 {
            self.last = seq;
            SeqCheck::Next
        } else {
            SeqCheck::Gap
        }
    }

    /// Accepts `seq` across a gap (when resynchronising is not possible).
    pub fn jump(&mut self, seq: u64) {
        self.last = self.last.max(seq);
    }

    /// A new session started with the message numbered `seq` (a login
    /// response: sequences restart at 1 for every session).
    pub fn restart(&mut self, seq: u64) {
        self.last = seq;
        self.acked = 0;
    }

    /// Resuming a session from `last`: the server counts everything up to it
    /// as acknowledged.
    pub fn rebase(&mut self, last: u64) {
        self.last = last;
        self.acked = last;
    }

    /// Whether `every` messages arrived since the last Ack.
    pub fn ack_due(&self, every: u64) -> bool {
        self.last >= self.acked + every.max(1)
    }

    /// Whether anything is unacknowledged.
    pub fn unacked(&self) -> bool {
        self.last > self.acked
    }

    /// Records that an Ack is being sent; returns the seq to acknowledge.
    pub fn take_ack(&mut self) -> u64 {
        self.acked = self.last;
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_seqs_advance_duplicates_and_gaps_do_not() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(1), SeqCheck::Next);
        assert_eq!(t.observe(2), SeqCheck::Next);
        assert_eq!(t.observe(2), SeqCheck::Duplicate);
        assert_eq!(t.observe(1), SeqCheck::Duplicate);
        assert_eq!(t.observe(4), SeqCheck::Gap);
        assert_eq!(t.last(), 2);
        t.jump(4);
        assert_eq!(t.last(), 4);
    }

    #[test]
    fn an_ack_is_due_every_n_messages_and_restarts_with_a_session() {
        let mut t = SeqTracker::default();
        t.restart(1);
        assert!(t.unacked());
        assert_eq!(t.take_ack(), 1);
        for seq in 2..=16 {
            t.observe(seq);
            assert!(!t.ack_due(16), "seq {seq}");
        }
        t.observe(17);
        assert!(t.ack_due(16));
        assert_eq!(t.take_ack(), 17);
        assert!(!t.unacked());

        t.restart(1);
        assert_eq!(t.last(), 1, "a new session counts from 1 again");
        assert!(t.unacked());

        t.rebase(40);
        assert!(!t.unacked(), "a resume point is acknowledged by the resume itself");
    }
}
