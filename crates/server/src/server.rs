//! Starting, running and stopping a server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use guildhall_entity::{Clock, Runtime, RuntimeConfig, SystemClock};
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::{OutFrame, Status};
use guildhall_store::{FjallOptions, FjallStore, MemoryStore, RedbStore, Store};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;

use crate::auth::TokenSigner;
use crate::session::{SessionLimits, Sessions};
use crate::shared::Shared;
use crate::transport::{TcpTransport, Transport, WsTransport};
use crate::{admin, conn, ws, Config};

/// The bound sockets a server serves.
pub struct Listeners {
    pub tcp: TcpListener,
    pub ws: Option<TcpListener>,
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `config` (an empty address disables that
    /// listener; port 0 picks a free port).
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        let opt = |a: &str| (!a.is_empty()).then(|| a.to_string());
        Ok(Self {
            tcp: TcpListener::bind(&config.listen).await?,
            ws: match opt(&config.ws_listen) {
                Some(a) => Some(TcpListener::bind(a).await?),
                None => None,
            },
            admin: match opt(&config.admin_listen) {
                Some(a) => Some(TcpListener::bind(a).await?),
                None => None,
            },
        })
    }
}

/// What tests (and embedders) may inject.
pub struct ServerOptions {
    pub clock: Arc<dyn Clock>,
    /// A store to use instead of the one `config.store` names.
    pub store: Option<Arc<dyn Store>>,
    /// Run housekeeping (flush, passivation, session expiry) every second.
    /// Tests turn it off and call [`Server::maintain`] after moving the clock.
    pub background_maintenance: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { clock: Arc::new(SystemClock), store: None, background_maintenance: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(String),
    #[error("config: {0}")]
    Config(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    conn_cap: Arc<Semaphore>,
    tcp_addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
}

fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    let redb_path = config.data_dir.join("guildhall.redb");
    let fjall_path = config.data_dir.join("fjall");
    let store_error = |e: guildhall_store::StoreError| StartError::Store(e.to_string());
    match config.store.as_str() {
        "fjall" => {
            // A data directory written by the redb backend (the default
            // before fjall) must not look empty to the new default.
            if redb_path.exists() && !fjall_path.exists() {
                return Err(StartError::Config(format!(
                    "{} holds a redb store; start with --store redb (store = \"redb\") to use it",
                    config.data_dir.display()
                )));
            }
            let options = FjallOptions {
                // The cache setting bounds the block cache; reads also hit
                // the OS page cache, which is outside the process's RSS.
                cache_bytes: (config.store_cache_mib.max(1) << 20) as u64,
                // fjall's 64 MiB default held up to that much of recent
                // writes in RSS; at 8 MiB the memtables (the active one and
                // a sealed one being flushed) were still 16 MB of an 80 MB
                // heap at 8,000 players (docs/bench-log/scaling-rounds.md, "Rounds").
                memtable_bytes: (config.store_memtable_mib.max(1) << 20) as u64,
                l0_threshold: config.store_l0_tables,
            };
            Ok(Arc::new(FjallStore::open_with(&fjall_path, options).map_err(store_error)?))
        }
        "redb" => {
            let cache = config.store_cache_mib.max(1) << 20;
            Ok(Arc::new(RedbStore::open_with_cache(&redb_path, cache).map_err(store_error)?))
        }
        "memory" => Ok(Arc::new(MemoryStore::new())),
        other => {
            Err(StartError::Config(format!("unknown store {other:?} (expected \"fjall\", \"redb\" or \"memory\")")))
        }
    }
}

impl Server {
    pub async fn start(config: Config, listeners: Listeners, options: ServerOptions) -> Result<Self, StartError> {
        // Install the metrics recorder before anything records.
        admin::prometheus();
        if config.max_connections == 0 || config.max_frame < 64 {
            return Err(StartError::Config("max_connections must be > 0 and max_frame >= 64".into()));
        }
        let store = match options.store {
            Some(s) => s,
            None => open_store(&config)?,
        };
        let clock = options.clock;
        let runtime_config = RuntimeConfig {
            call_timeout: Duration::from_millis(config.call_timeout_ms),
            idle_timeout: Duration::from_secs(config.entity_idle_secs),
            flush_interval: Duration::from_millis(config.flush_interval_ms),
            commit_interval: Duration::from_millis(config.commit_interval_ms),
            sync_interval: Duration::from_millis(config.sync_interval_ms),
            ..RuntimeConfig::default()
        };
        let runtime = guildhall_game::register(Runtime::builder(store, clock.clone()).config(runtime_config)).build();
        let game_config = guildhall_game::GameConfig {
            expedition_period_ms: config.expedition_period_secs.max(1) * 1000,
            expedition_payouts_per_tick: config.expedition_payouts_per_tick.max(1),
        };
        guildhall_game::start(&runtime, &game_config).await.map_err(|e| StartError::Store(e.to_string()))?;
        let secret = match &config.secret {
            Some(s) if !s.is_empty() => s.clone(),
            _ => {
                tracing::warn!(
                    "no secret configured (GUILDHALL_SECRET): using a random one; tokens will not survive a restart"
                );
                TokenSigner::random_secret()
            }
        };
        let signer = TokenSigner::new(secret.as_bytes(), config.token_ttl_secs * 1000, clock.clone());
        let sessions = Sessions::new(SessionLimits {
            replay_buffer: config.replay_buffer.max(1),
            remembered_results: config.remembered_results.max(1),
            stream_push_interval_ms: config.stream_push_interval_ms,
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let conn_cap = Arc::new(Semaphore::new(config.max_connections));
        let shared = Arc::new(Shared::new(config, runtime, sessions, signer, clock, shutdown_rx));

        let tcp_addr = listeners.tcp.local_addr()?;
        let mut tasks = vec![tokio::spawn(accept_tcp(shared.clone(), listeners.tcp, conn_cap.clone()))];
        let ws_addr = match listeners.ws {
            Some(l) => {
                let addr = l.local_addr()?;
                tasks.push(tokio::spawn(accept_ws(shared.clone(), l, conn_cap.clone())));
                Some(addr)
            }
            None => None,
        };
        let admin_addr = match listeners.admin {
            Some(l) => {
                let addr = l.local_addr()?;
                let mut stop = shared.shutdown.clone();
                let app = admin::router(shared.clone());
                tasks.push(tokio::spawn(async move {
                    let stop = async move { stopped(&mut stop).await };
                    if let Err(e) = axum::serve(l, app).with_graceful_shutdown(stop).await {
                        tracing::error!(error = %e, "admin listener failed");
                    }
                }));
                Some(addr)
            }
            None => None,
        };
        if options.background_maintenance {
            tasks.push(tokio::spawn(watch_lag(shared.clone())));
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut stop = shared.shutdown.clone();
                let mut ticks = 0u64;
                loop {
                    tokio::select! {
                        _ = tick.tick() => maintain(&shared).await,
                        _ = stopped(&mut stop) => break,
                    }
                    ticks += 1;
                    if ticks.is_multiple_of(crate::alloc::TRIM_EVERY_SECS) {
                        // On a blocking thread: the walk over the arenas
                        // must not hold a worker.
                        let report =
                            (ticks / crate::alloc::TRIM_EVERY_SECS).is_multiple_of(crate::alloc::REPORT_EVERY_TRIMS);
                        tokio::task::spawn_blocking(move || {
                            crate::alloc::trim();
                            if report {
                                crate::alloc::report();
                            }
                        });
                    }
                }
            }));
        }
        // Addresses as plain values ("" when off), not `Some(..)` debug strings.
        let off = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%tcp_addr, ws_addr = %off(ws_addr), admin_addr = %off(admin_addr), "guildhall started");
        Ok(Self { shared, shutdown_tx, tasks, conn_cap, tcp_addr, ws_addr, admin_addr })
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    pub fn session_count(&self) -> usize {
        self.shared.sessions.count()
    }

    /// Open client connections.
    pub fn connection_count(&self) -> usize {
        *self.shared.connections.borrow()
    }

    /// Waits until exactly `n` client connections are open (for example
    /// until the server has noticed that a client went away).
    pub async fn wait_for_connections(&self, n: usize) {
        let mut rx = self.shared.connections.subscribe();
        let _ = rx.wait_for(|c| *c == n).await;
    }

    /// Housekeeping by the injected clock: expires sessions past their resume
    /// window, passivates idle entities, writes dirty ones when due.
    pub async fn maintain(&self) {
        maintain(&self.shared).await
    }

    /// Graceful stop: refuses new connections, tells every client, ends the
    /// sessions, and writes every dirty entity before returning.
    pub async fn shutdown(self) {
        tracing::info!("graceful stop: closing connections and flushing state");
        let _ = self.shutdown_tx.send(true);
        // Connections in a session do not watch the stop signal between
        // wake-ups (see `conn.rs`): wake them all to look at it.
        self.shared.sessions.wake_all();
        // Connections close within a second or so; wait for them (bounded).
        let all = self.shared.config.max_connections as u32;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.conn_cap.acquire_many(all)).await;
        for task in self.tasks {
            task.abort();
        }
        // A reason of its own: a connection still open here missed the stop
        // signal, and the graceful-stop test tells the two apart.
        self.shared.sessions.end_all(Status::ShuttingDown, "server stopped", self.shared.runtime.pubsub());
        self.shared.runtime.shutdown().await;
        tracing::info!("graceful stop complete: all state written");
    }
}

/// Resolves once the server begins its graceful stop.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// How late the runtime runs a timer: a task that wakes every 50 ms and
/// records how much later than asked it ran. A worker thread held by long
/// synchronous work, or starved of CPU, shows here before anywhere else
/// (`guildhall_runtime_lag_seconds`; `guildhall_runtime_lag_max_ms` is the
/// worst of the last second).
async fn watch_lag(shared: Arc<Shared>) {
    const PERIOD: Duration = Duration::from_millis(50);
    let mut stop = shared.shutdown.clone();
    loop {
        let asked = tokio::time::Instant::now() + PERIOD;
        tokio::select! {
            _ = tokio::time::sleep_until(asked) => {}
            _ = stopped(&mut stop) => return,
        }
        let lag = asked.elapsed();
        metrics::histogram!("guildhall_runtime_lag_seconds").record(lag.as_secs_f64());
        shared.lag_max_us.fetch_max(lag.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn maintain(shared: &Shared) {
    let now = shared.now_ms();
    shared.sessions.expire(now, shared.config.resume_window_secs * 1000, shared.runtime.pubsub());
    // The hubs' periodic work runs on their own timers, fired here for the
    // instances this node hosts.
    shared.runtime.maintain().await;
    metrics::gauge!("guildhall_sessions").set(shared.sessions.count() as f64);
    let lag_us = shared.lag_max_us.swap(0, std::sync::atomic::Ordering::Relaxed);
    metrics::gauge!("guildhall_runtime_lag_max_ms").set(lag_us as f64 / 1000.0);
    admin::prometheus().run_upkeep();
}

/// Accept failures such as EMFILE (out of file descriptors) must not spin:
/// back off briefly so that closing connections can free descriptors.
async fn accept_failed(e: std::io::Error) {
    tracing::error!(error = %e, "accept failed");
    metrics::counter!("guildhall_accept_errors_total").increment(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Accepts connections until the server stops, handing each to `serve` with
/// its place under the connection cap (or `Err` when the cap is reached).
async fn accept_loop<F, Fut>(shared: Arc<Shared>, listener: TcpListener, cap: Arc<Semaphore>, serve: F)
where
    F: Fn(Arc<Shared>, TcpStream, Result<OwnedSemaphorePermit, TryAcquireError>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut stop = shared.shutdown.clone();
    loop {
        let stream = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => { accept_failed(e).await; continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(shared.clone(), stream, cap.clone().try_acquire_owned()));
    }
}

async fn accept_tcp(shared: Arc<Shared>, listener: TcpListener, cap: Arc<Semaphore>) {
    // The task is `serve`'s future itself, not an async block around it
    // that would keep the stream, the permit and the transport a second time.
    accept_loop(shared, listener, cap, |shared, stream, permit| {
        let transport = TcpTransport::new(stream, shared.config.max_frame);
        match permit {
            Ok(permit) => Either::Left(conn::serve(shared, transport, permit)),
            Err(_) => Either::Right(refuse(shared, transport)),
        }
    })
    .await
}

async fn accept_ws(shared: Arc<Shared>, listener: TcpListener, cap: Arc<Semaphore>) {
    accept_loop(shared, listener, cap, |shared, stream, permit| async move {
        // Boxed: the handshake's buffers must not be part of the
        // connection's task for as long as it lives.
        let Some(ws) = Box::pin(ws::accept(stream, shared.config.max_frame)).await else { return };
        match permit {
            Ok(permit) => conn::serve(shared, WsTransport::new(ws), permit).await,
            Err(_) => refuse(shared, WsTransport::new(ws)).await,
        }
    })
    .await
}

/// Over the connection cap: say so and close.
async fn refuse<T: Transport>(shared: Arc<Shared>, mut t: T) {
    metrics::counter!("guildhall_connections_refused_total").increment(1);
    let reason = "server is at its connection limit; try again later";
    crate::refusal_log::log(&shared.refusal_log, shared.now_ms(), t.peer_addr(), Status::ServerFull, reason);
    let close =
        OutFrame::unsequenced(Kind::Close(pb::Close { status: Status::ServerFull as i32, reason: reason.into() }));
    let _ = tokio::time::timeout(Duration::from_secs(1), t.send(&[close])).await;
    t.close(Some((Status::ServerFull, reason))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &std::path::Path, store: &str) -> Config {
        Config { data_dir: dir.to_path_buf(), store: store.into(), ..Config::default() }
    }

    #[tokio::test]
    async fn the_default_store_refuses_a_data_dir_written_by_redb() {
        let dir = tempfile::tempdir().unwrap();
        let redb = open_store(&config_in(dir.path(), "redb")).unwrap();
        redb.put(b"k", b"v".to_vec(), 0).await.unwrap();
        drop(redb);
        let err = open_store(&config_in(dir.path(), "fjall")).err().expect("refused");
        assert!(err.to_string().contains("--store redb"), "{err}");
        // The redb data is still there, and its backend still reads it.
        let again = open_store(&config_in(dir.path(), "redb")).unwrap();
        assert_eq!(again.get(b"k").await.unwrap().map(|r| r.value), Some(b"v".to_vec()));
    }

    #[tokio::test]
    async fn an_unknown_store_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = open_store(&config_in(dir.path(), "rocks")).err().expect("refused");
        assert!(err.to_string().contains("\"rocks\""), "{err}");
        assert!(!dir.path().join("fjall").exists(), "nothing created for a refused store");
    }
}
