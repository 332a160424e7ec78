//! The help text of every metric family on `/metrics`, described once when
//! the recorder is installed: an operator reading the scrape, or a
//! dashboard tool, learns what each family counts without the source.
//!
//! A family missing here is caught by the admin test that checks every
//! `# TYPE` line has a `# HELP` line.

/// (name, help) of the counters.
const COUNTERS: &[(&str, &str)] = &[
    ("guildhall_accept_errors_total", "Errors accepting a client connection (e.g. out of file descriptors)."),
    ("guildhall_connections_closed_total", "Connections the server closed, by the Close status (reason) it sent."),
    ("guildhall_connections_refused_total", "Connections refused at the connection cap (SERVER_FULL)."),
    ("guildhall_connection_refusals_logged_total", "Refusals that closed a connection and were written to the log."),
    (
        "guildhall_connection_refusals_unlogged_total",
        "Refusals that closed a connection but were left out of the log by its rate limit.",
    ),
    ("guildhall_entity_activations_total", "Entity instances activated (loaded or created), by kind."),
    (
        "guildhall_entity_panics_total",
        "Entity handlers that panicked (the instance restarts from its last write), by kind.",
    ),
    ("guildhall_entity_passivations_total", "Idle entity instances written and dropped from memory, by kind."),
    ("guildhall_entity_stale_writes_total", "Entity writes refused because a newer version was stored, by kind."),
    ("guildhall_entity_writes_total", "Entity snapshots written to the store, by kind."),
    ("guildhall_entity_written_bytes_total", "Bytes of entity snapshots written to the store, by kind."),
    ("guildhall_logins_total", "Successful logins."),
    ("guildhall_pubsub_deliveries_total", "Events delivered to subscribers."),
    ("guildhall_request_errors_total", "Requests answered with an error, by method and status."),
    ("guildhall_requests_replayed_total", "Re-sent requests answered from the remembered result."),
    ("guildhall_resumes_total", "Successful session resumes."),
    ("guildhall_sessions_expired_total", "Sessions ended because their resume window passed."),
    ("guildhall_sessions_opened_total", "Sessions opened by a login."),
    ("guildhall_store_batches_total", "Write batches committed to the store."),
    ("guildhall_store_syncs_total", "Store commits synced to disk (fsync)."),
    ("guildhall_store_compactions_total", "Compactions the store engine completed since start."),
    (
        "guildhall_stream_pushes_thinned_total",
        "Market offer-stream pushes left out to keep one per session per interval.",
    ),
];

/// (name, help) of the gauges.
const GAUGES: &[(&str, &str)] = &[
    ("guildhall_connections", "Open client connections (TCP and WebSocket)."),
    ("guildhall_entities_active", "Entity instances in memory, by kind."),
    ("guildhall_entities_dirty", "Entity instances with changes not yet written, by kind."),
    ("guildhall_heap_held_bytes", "Bytes the allocator holds from the system."),
    ("guildhall_heap_in_use_bytes", "Bytes of the heap in use."),
    ("guildhall_runtime_lag_max_ms", "Largest delay of the runtime's lag probe over the last period, in ms."),
    ("guildhall_sessions", "Sessions alive (attached or within their resume window)."),
    ("guildhall_store_compaction_seconds", "Time the store engine has spent compacting since start, in seconds."),
    ("guildhall_store_write_buffer_bytes", "Bytes in the store engine's write buffers (memtables)."),
    ("guildhall_store_outstanding_flushes", "Memtables sealed and waiting to be flushed."),
    ("guildhall_store_tables", "Tables (files) of the store engine."),
    ("guildhall_store_l0_tables", "Tables in the store engine's first level."),
    ("guildhall_store_disk_bytes", "Bytes the store's tables take on disk."),
];

/// (name, help) of the histograms.
const HISTOGRAMS: &[(&str, &str)] = &[
    ("guildhall_request_seconds", "Time from a request's arrival to its answer, by method."),
    ("guildhall_runtime_lag_seconds", "Delay of the runtime's lag probe: how late a task woke."),
    ("guildhall_store_batch_size", "Writes per committed store batch."),
];

/// Describes every family to the installed recorder.
pub fn describe() {
    for &(name, help) in COUNTERS {
        metrics::describe_counter!(name, help);
    }
    for &(name, help) in GAUGES {
        metrics::describe_gauge!(name, help);
    }
    for &(name, help) in HISTOGRAMS {
        metrics::describe_histogram!(name, help);
    }
}

/// Whether a store statistic is a counter (its name ends in `_total`) to
/// publish as one, rather than a gauge.
pub fn is_counter(name: &str) -> bool {
    name.ends_with("_total")
}
