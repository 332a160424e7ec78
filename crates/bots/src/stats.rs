//! What the swarm measures, shared by every bot: latency per method (HDR
//! histograms), errors by status, connection events, and a one-second window
//! for the live line and the ramp.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to 60 s, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub struct Stats {
    pub connected: AtomicI64,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub resumes: AtomicU64,
    /// Pushes the players received (each once), added when a client closes.
    pub pushes: AtomicU64,
    pub reconnects: AtomicU64,
    pub drops: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Whole-run latency per method.
    methods: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    /// Errors by status name (or "timeout", "disconnected" ...).
    error_kinds: Mutex<BTreeMap<String, u64>>,
    /// Latency of the current one-second window, all methods.
    window: Mutex<Histogram<u64>>,
    /// Last connect failure, to name what ran out.
    pub last_connect_error: Mutex<Option<String>>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            connected: AtomicI64::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            drops: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            methods: Mutex::new(BTreeMap::new()),
            error_kinds: Mutex::new(BTreeMap::new()),
            window: Mutex::new(histogram()),
            last_connect_error: Mutex::new(None),
        }
    }
}

impl Stats {
    pub fn record(&self, method: &'static str, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.methods.lock().expect("stats").entry(method).or_insert_with(histogram).saturating_record(micros);
        self.window.lock().expect("stats").saturating_record(micros);
    }

    pub fn error(&self, kind: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.error_kinds.lock().expect("stats").entry(kind).or_default() += 1;
    }

    /// Takes the one-second window: (count, p50, p99) in milliseconds.
    pub fn take_window(&self) -> (u64, f64, f64) {
        let mut w = self.window.lock().expect("stats");
        let out = (w.len(), w.value_at_quantile(0.5) as f64 / 1000.0, w.value_at_quantile(0.99) as f64 / 1000.0);
        w.reset();
        out
    }

    pub fn methods(&self) -> BTreeMap<&'static str, Histogram<u64>> {
        self.methods.lock().expect("stats").clone()
    }

    pub fn error_kinds(&self) -> BTreeMap<String, u64> {
        self.error_kinds.lock().expect("stats").clone()
    }
}
