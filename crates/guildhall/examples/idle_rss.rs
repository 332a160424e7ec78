//! Benchmark: server RSS per idle, connected, logged-in player.
//!
//! Starts the release `guildhall` binary (a separate process, embedded default
//! store in a temp dir), reads its RSS when idle, logs in N players with the
//! real client (spread over several loopback source addresses), lets them sit
//! idle, and reads the RSS again. Prints the raw figures, per transport:
//! `tcp`, `ws` or `both` (one fresh server each, TCP first).
//!
//! cargo build --release -p guildhall --bin guildhall --example idle_rss
//! ./target/release/examples/idle_rss [players] [concurrency] [tcp|ws|both]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guildhall_client::{Client, ClientConfig};
use tokio::sync::Semaphore;

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let players: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let transports: &[&str] = match args.get(3).map(String::as_str).unwrap_or("tcp") {
        "both" => &["tcp", "ws"],
        "ws" => &["ws"],
        _ => &["tcp"],
    };
    let mut results = Vec::new();
    for &transport in transports {
        results.push((transport, measure(transport, players, concurrency).await));
    }
    if let [(_, tcp), (_, ws)] = results[..] {
        println!("websocket - tcp: {:.0} bytes per idle player", ws - tcp);
    }
}

/// Bytes of server RSS per idle logged-in player over `transport`.
async fn measure(transport: &str, players: usize, concurrency: usize) -> f64 {
    let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("guildhall");
    let dir = tempfile::tempdir().unwrap();
    let ws_listen = if transport == "ws" { "127.0.0.1:0" } else { "" };
    let mut child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ws-listen",
            ws_listen,
            "--admin-listen",
            "",
            "--log-level",
            "warn",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("GUILDHALL_SECRET", "bench")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run target/release/guildhall (build it first)");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tcp, ws): (SocketAddr, String) = loop {
        let line = lines.next().unwrap().unwrap();
        // The listening line, in the default (JSON) log format.
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["message"] == "guildhall listening" {
            break (json["tcp"].as_str().unwrap().parse().unwrap(), json["ws"].as_str().unwrap().to_string());
        }
    };
    std::thread::spawn(move || for _ in lines {});
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(pid, "VmRSS:");
    println!("[{transport}] server pid {pid}, idle RSS {idle} KiB");

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(players);
    for i in 0..players {
        let permit = gate.clone().acquire_owned().await.unwrap();
        // Source addresses 127.0.0.2 .. 127.0.0.9: more ephemeral ports than one address has.
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8));
        let endpoint = if transport == "ws" { ClientConfig::ws(format!("ws://{ws}/")) } else { ClientConfig::tcp(tcp) };
        tasks.push(tokio::spawn(async move {
            let config = ClientConfig { local_addr: Some(local), ..endpoint };
            let client = Client::connect(config).await.expect("connect");
            client.login_device(&format!("rss-bench-{i}")).await.expect("login");
            drop(permit);
            client
        }));
    }
    let mut clients = Vec::with_capacity(players);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let login_secs = started.elapsed().as_secs_f64();
    println!("[{transport}] {players} players logged in in {login_secs:.1} s");
    // Let acknowledgements land and the replay buffers empty.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let loaded = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");
    let per_player = (loaded - idle) as f64 * 1024.0 / players as f64;
    println!("[{transport}] loaded RSS {loaded} KiB (peak {peak} KiB)");
    println!("[{transport}] RSS per idle logged-in player: {per_player:.0} bytes ({:.2} KiB)", per_player / 1024.0);
    let _ = child.kill();
    let _ = child.wait();
    drop(clients);
    per_player
}
