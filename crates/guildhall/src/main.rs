//! `guildhall`: the binary. `serve` runs a node (the server library);
//! `demo` runs a node and a swarm of bots against it. The only crate that
//! links both, so that the server library never links the load generator.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use guildhall_server::{telemetry, Config, Listeners, Server, ServerOptions};

#[derive(Parser)]
#[command(name = "guildhall", version, about = "Guildhall: a backend for persistent-world mobile games")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server (the default command).
    Serve(Box<ServeArgs>),
    /// See Guildhall work: a server on the embedded store with bots playing
    /// it, live progress; stops on Ctrl-C or after its duration.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Number of bots.
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Bots started per second.
    #[arg(long, default_value_t = 100.0)]
    spawn_rate: f64,
    /// Data directory of the demo's embedded store.
    #[arg(long, default_value = "guildhall-demo-data")]
    data_dir: PathBuf,
    /// Length of an expedition "week" in the demo, seconds.
    #[arg(long, default_value_t = 60)]
    expedition_period_secs: u64,
    /// Write the bots' report here (JSON, and HTML beside it).
    #[arg(long, default_value = "guildhall-demo-report.json")]
    report: PathBuf,
}

/// Flags override environment variables, which override the config file.
#[derive(Args, Default)]
struct ServeArgs {
    /// TOML config file (keys as in README.md, "Configuration").
    #[arg(long, env = "GUILDHALL_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the embedded store.
    #[arg(long, env = "GUILDHALL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Storage backend: fjall (default), redb or memory.
    #[arg(long, env = "GUILDHALL_STORE")]
    store: Option<String>,
    /// Cache of the embedded store, MiB.
    #[arg(long, env = "GUILDHALL_STORE_CACHE_MIB")]
    store_cache_mib: Option<usize>,
    /// Memtable of the fjall store, MiB.
    #[arg(long, env = "GUILDHALL_STORE_MEMTABLE_MIB")]
    store_memtable_mib: Option<usize>,
    /// First-level tables of the fjall store merged at once.
    #[arg(long, env = "GUILDHALL_STORE_L0_TABLES")]
    store_l0_tables: Option<u8>,
    /// TCP client listener address.
    #[arg(long, env = "GUILDHALL_LISTEN")]
    listen: Option<String>,
    /// WebSocket client listener address ("" disables it).
    #[arg(long, env = "GUILDHALL_WS_LISTEN")]
    ws_listen: Option<String>,
    /// Admin HTTP listener address ("" disables it).
    #[arg(long, env = "GUILDHALL_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Maximum concurrent client connections.
    #[arg(long, env = "GUILDHALL_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Maximum frame size in bytes.
    #[arg(long, env = "GUILDHALL_MAX_FRAME")]
    max_frame: Option<usize>,
    /// Seconds a session outlives its dropped connection.
    #[arg(long, env = "GUILDHALL_RESUME_WINDOW_SECS")]
    resume_window_secs: Option<u64>,
    /// Longest time dirty state stays unwritten, in milliseconds.
    #[arg(long, env = "GUILDHALL_FLUSH_INTERVAL_MS")]
    flush_interval_ms: Option<u64>,
    /// Least time between two store commits, in milliseconds (group commit).
    #[arg(long, env = "GUILDHALL_COMMIT_INTERVAL_MS")]
    commit_interval_ms: Option<u64>,
    /// Longest a write-behind commit waits for an fsync, in milliseconds (0: every commit syncs).
    #[arg(long, env = "GUILDHALL_SYNC_INTERVAL_MS")]
    sync_interval_ms: Option<u64>,
    /// Requests per second allowed per connection.
    #[arg(long, env = "GUILDHALL_RATE_LIMIT_PER_SEC")]
    rate_limit_per_sec: Option<u32>,
    /// Length of an expedition period in seconds (a game "week").
    #[arg(long, env = "GUILDHALL_EXPEDITION_PERIOD_SECS")]
    expedition_period_secs: Option<u64>,
    /// Tokio worker threads (0: one per core but one, at least one).
    #[arg(long, env = "GUILDHALL_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Log format: json or text.
    #[arg(long, env = "GUILDHALL_LOG_FORMAT")]
    log_format: Option<String>,
    /// Log filter (e.g. info, debug, guildhall_server=debug).
    #[arg(long, env = "GUILDHALL_LOG")]
    log_level: Option<String>,
    /// Log lines buffered before lines are dropped.
    #[arg(long, env = "GUILDHALL_LOG_BUFFER_LINES")]
    log_buffer_lines: Option<usize>,
}

/// The defaults of `serve`'s options (flags, environment and the config
/// file override them, in that order) and the one setting only the
/// environment holds.
fn serve_defaults() -> String {
    let c = Config::default();
    format!(
        "Defaults: --listen {} --ws-listen {} --admin-listen {} --data-dir {} --store {} --max-connections {} \
         --max-frame {} (bytes of one envelope, not counting the 4-byte length prefix) --resume-window-secs {} \
         --flush-interval-ms {} --commit-interval-ms {} --sync-interval-ms {} --rate-limit-per-sec {} \
         --expedition-period-secs {} --worker-threads {} --log-format {} --log-level {} --log-buffer-lines {}.\n\n\
         GUILDHALL_SECRET (environment only, never a flag: flags show in `ps`): the HMAC secret of session \
         tokens; unset, a random one per start, so tokens do not survive a restart.",
        c.listen,
        c.ws_listen,
        c.admin_listen,
        c.data_dir.display(),
        c.store,
        c.max_connections,
        c.max_frame,
        c.resume_window_secs,
        c.flush_interval_ms,
        c.commit_interval_ms,
        c.sync_interval_ms,
        c.rate_limit_per_sec,
        c.expedition_period_secs,
        c.worker_threads,
        c.log_format,
        c.log_level,
        c.log_buffer_lines,
    )
}

impl ServeArgs {
    fn into_config(self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        // The secret is read from the environment only: a flag would show in `ps`.
        if let Ok(secret) = std::env::var("GUILDHALL_SECRET") {
            c.secret = Some(secret);
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            data_dir,
            store,
            store_cache_mib,
            store_memtable_mib,
            store_l0_tables,
            listen,
            ws_listen,
            admin_listen,
            max_connections,
            max_frame,
            resume_window_secs,
            flush_interval_ms,
            commit_interval_ms,
            sync_interval_ms,
            rate_limit_per_sec,
            expedition_period_secs,
            worker_threads,
            log_format,
            log_level,
            log_buffer_lines
        );
        Ok(c)
    }
}

fn main() -> std::process::ExitCode {
    guildhall_server::alloc::limit_arenas();
    // `serve --help` lists the defaults from the one place they live.
    let command = Cli::command().mut_subcommand("serve", |c| c.after_help(serve_defaults()));
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Demo(demo)) => return run_demo(demo),
        None => ServeArgs::default(),
    };
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("guildhall: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let _log_guard = telemetry::init(&config.log_format, &config.log_level, config.log_buffer_lines);
    let rt = runtime(&config);
    match rt.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "guildhall failed");
            eprintln!("guildhall: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The server's runtime, with [`Config::resolved_worker_threads`] workers.
fn runtime(config: &Config) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.resolved_worker_threads())
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listeners = Listeners::bind(&config).await?;
    let json = config.log_format == "json";
    let server = Server::start(config, listeners, ServerOptions::default()).await?;
    // One line for scripts and tests to find the bound addresses: JSON
    // when the logs are, so that every line on stdout parses alike.
    let tcp = server.tcp_addr().to_string();
    let ws = server.ws_addr().map(|a| a.to_string()).unwrap_or_default();
    let admin = server.admin_addr().map(|a| a.to_string()).unwrap_or_default();
    if json {
        println!(r#"{{"level":"INFO","message":"guildhall listening","tcp":"{tcp}","ws":"{ws}","admin":"{admin}"}}"#);
    } else {
        println!("guildhall listening tcp={tcp} ws={ws} admin={admin}");
    }
    wait_for_stop_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn run_demo(args: DemoArgs) -> std::process::ExitCode {
    let config = Config {
        data_dir: args.data_dir,
        listen: "127.0.0.1:0".into(),
        ws_listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        expedition_period_secs: args.expedition_period_secs,
        log_format: "text".into(),
        log_level: "warn".into(),
        ..Config::default()
    };
    let _log_guard = telemetry::init(&config.log_format, &config.log_level, config.log_buffer_lines);
    let rt = runtime(&config);
    rt.block_on(async move {
        let listeners = match Listeners::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("guildhall demo: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let data_dir = config.data_dir.clone();
        let server = match Server::start(config, listeners, ServerOptions::default()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("guildhall demo: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        println!(
            "guildhall demo: server on tcp={} (admin http://{}/entities), data in {}; {} bots for {} s; Ctrl-C stops",
            server.tcp_addr(),
            server.admin_addr().map(|a| a.to_string()).unwrap_or_default(),
            data_dir.display(),
            args.players,
            args.duration
        );
        let swarm = guildhall_bots::SwarmConfig {
            targets: vec![server.tcp_addr()],
            players: args.players,
            spawn_rate: args.spawn_rate,
            duration: std::time::Duration::from_secs(args.duration),
            source_addrs: guildhall_bots::loopback_sources(4),
            seed: 1,
            report: Some(args.report),
            device_prefix: "demo".into(),
            server_pid: Some(std::process::id()),
            ..guildhall_bots::SwarmConfig::default()
        };
        let bots = tokio::spawn(guildhall_bots::run(swarm));
        tokio::select! {
            _ = wait_for_stop_signal() => println!("guildhall demo: stopping"),
            r = bots => if let Ok(Ok(report)) = r {
                println!("guildhall demo: {} requests, {} errors, peak {} players", report.requests, report.errors, report.peak_players);
            },
        }
        server.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}
