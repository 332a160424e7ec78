//! Logs. Written through a non-blocking, lossy writer: a burst of log lines
//! can never make a request wait on stdout, and lines that do not fit the
//! writer's buffer are dropped (and counted) rather than queued without bound.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; keep the guard alive until exit so that
/// buffered lines are written.
pub fn init(format: &str, level: &str, buffer_lines: usize) -> WorkerGuard {
    let (writer, guard) =
        NonBlockingBuilder::default().lossy(true).buffered_lines_limit(buffer_lines.max(1)).finish(std::io::stdout());
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    if format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
    guard
}
