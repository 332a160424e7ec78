//! Log lines for refusals that close a connection (and for rate-limited
//! requests), so that an operator sees who misbehaves: each names the peer
//! address, the status and the reason. A flood of bad connections must not
//! fill the disk, so the lines are rationed per second; what the ration
//! leaves out is still counted (`guildhall_connection_refusals_unlogged_total`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use guildhall_protocol::Status;

/// Refusal log lines per second at most.
pub const LINES_PER_SEC: u32 = 20;

/// A ration of log lines per second of the injected clock. Approximate
/// under contention (two threads may both start a new second), which is
/// enough for a log ration.
#[derive(Debug)]
pub struct LogBudget {
    per_sec: u32,
    second: AtomicU64,
    used: AtomicU32,
}

impl LogBudget {
    pub fn new(per_sec: u32) -> Self {
        Self { per_sec, second: AtomicU64::new(0), used: AtomicU32::new(0) }
    }

    /// Whether one more line may be written at `now_ms`.
    pub fn take(&self, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        if self.second.swap(second, Ordering::Relaxed) != second {
            self.used.store(0, Ordering::Relaxed);
        }
        self.used.fetch_add(1, Ordering::Relaxed) < self.per_sec
    }
}

/// Logs a refusal of `peer`, if the budget allows: at warn for input that
/// breaks the protocol or floods, at info for timeouts and a full server.
pub fn log(budget: &LogBudget, now_ms: u64, peer: Option<SocketAddr>, status: Status, reason: &str) {
    if !budget.take(now_ms) {
        metrics::counter!("guildhall_connection_refusals_unlogged_total").increment(1);
        return;
    }
    metrics::counter!("guildhall_connection_refusals_logged_total").increment(1);
    let peer = peer.map(|p| p.to_string()).unwrap_or_default();
    let status = status.as_str_name();
    match status {
        "FRAME_TOO_LARGE" | "MALFORMED_FRAME" | "RATE_LIMITED" => {
            tracing::warn!(peer, status, reason, "client refused")
        }
        _ => tracing::info!(peer, status, reason, "client refused"),
    }
}

/// Whether closing with `status` is a refusal of the client worth a log
/// line (not a normal end: logout, shutdown, takeover).
pub fn is_refusal(status: Status) -> bool {
    matches!(
        status,
        Status::FrameTooLarge
            | Status::MalformedFrame
            | Status::IdleTimeout
            | Status::LoginTimeout
            | Status::ServerFull
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_so_many_lines_a_second_then_waits_for_the_next() {
        let budget = LogBudget::new(3);
        assert_eq!((0..5).map(|_| budget.take(10_000)).collect::<Vec<_>>(), [true, true, true, false, false]);
        assert!(!budget.take(10_999), "still the same second");
        assert!(budget.take(11_000), "a new second, a new ration");
    }
}
