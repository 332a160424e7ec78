//! State shared by every connection of the server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use guildhall_entity::{Clock, Runtime};
use tokio::sync::watch;

use crate::auth::TokenSigner;
use crate::refusal_log::{LogBudget, LINES_PER_SEC};
use crate::session::Sessions;
use crate::Config;

pub struct Shared {
    pub config: Config,
    pub runtime: Runtime,
    pub sessions: Sessions,
    pub signer: TokenSigner,
    pub clock: Arc<dyn Clock>,
    /// Flips to true when the server begins a graceful stop.
    pub shutdown: watch::Receiver<bool>,
    /// Open client connections; a watch so that a caller can wait for a
    /// count (tests, graceful stop) instead of polling.
    pub connections: watch::Sender<usize>,
    /// Worst timer lateness since the last maintenance tick, in µs.
    pub lag_max_us: AtomicU64,
    /// The ration of refusal log lines.
    pub refusal_log: LogBudget,
    next_conn_id: AtomicU64,
}

impl Shared {
    pub fn new(
        config: Config,
        runtime: Runtime,
        sessions: Sessions,
        signer: TokenSigner,
        clock: Arc<dyn Clock>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            runtime,
            sessions,
            signer,
            clock,
            shutdown,
            connections: watch::channel(0).0,
            lag_max_us: AtomicU64::new(0),
            refusal_log: LogBudget::new(LINES_PER_SEC),
            next_conn_id: AtomicU64::new(1),
        }
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}
