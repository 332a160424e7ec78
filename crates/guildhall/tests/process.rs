//! The real binary on the embedded store (fjall): a graceful SIGTERM and a
//! SIGKILL, each followed by a restart on the same data directory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use guildhall_client::{Client, ClientConfig};
use guildhall_protocol::pb;

struct Proc {
    child: Child,
    tcp: SocketAddr,
}

/// A failing test must not leave a server running (it would also hold the
/// test runner's stderr open).
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `guildhall serve` on ephemeral ports and reads its listening line.
fn spawn(data_dir: &Path, flush_interval_ms: u64) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ws-listen", "", "--admin-listen", ""])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--flush-interval-ms", &flush_interval_ms.to_string(), "--log-level", "warn"])
        .env("GUILDHALL_SECRET", "process-test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("guildhall binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The default log format is JSON, the listening line included.
    let tcp = loop {
        let line = lines.next().expect("server prints its addresses").unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if json["message"] == "guildhall listening" {
            break json["tcp"].as_str().unwrap().parse().unwrap();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Proc { child, tcp }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig}");
}

/// What must survive, ignoring mana (it regenerates on the real clock).
fn durable_view(p: &pb::Player) -> (u64, u64, u32, u64, Vec<pb::Card>, u64, u64, u64) {
    (p.gold, p.gems, p.level, p.experience, p.cards.clone(), p.chests_opened, p.battles, p.wins)
}

async fn play(tcp: SocketAddr, device: &str, chests: usize, battles: usize) -> (Client, pb::Player) {
    let c = Client::connect(ClientConfig::tcp(tcp)).await.unwrap();
    c.login_device(&format!("process-test-{device}")).await.unwrap();
    for _ in 0..chests {
        c.open_chest().await.unwrap();
    }
    for _ in 0..battles {
        c.battle().await.unwrap();
    }
    let p = c.get_player().await.unwrap().player.unwrap();
    (c, p)
}

async fn login(tcp: SocketAddr, device: &str) -> pb::Player {
    let c = Client::connect(ClientConfig::tcp(tcp)).await.unwrap();
    c.login_device(&format!("process-test-{device}")).await.unwrap().player.unwrap()
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_the_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Write-behind far in the future: only the graceful stop can save battles.
    let mut server = spawn(dir.path(), 3_600_000);
    let mut before = Vec::new();
    for i in 0..3 {
        let (c, p) = play(server.tcp, &format!("term-{i}"), 1, 4).await;
        before.push((c, p));
    }
    signal(&server.child, "-TERM");
    // Blocking here is fine: nothing on this runtime needs to run meanwhile.
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful exit, got {status:?}");

    let server = spawn(dir.path(), 3_600_000);
    for (i, (_, was)) in before.iter().enumerate() {
        let now = login(server.tcp, &format!("term-{i}")).await;
        assert_eq!(durable_view(&now), durable_view(was), "player {i} identical after SIGTERM + restart");
    }
}

#[tokio::test]
async fn sigkill_loses_nothing_confirmed_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn(dir.path(), 3_600_000);
    // Battles first, then a chest: the chest's durable write carries the
    // whole state, so everything up to it is confirmed durable.
    let (c, at_chest) = play(server.tcp, "killed", 0, 3).await;
    c.open_chest().await.unwrap();
    let at_chest = {
        let p = c.get_player().await.unwrap().player.unwrap();
        assert_eq!(p.battles, at_chest.battles);
        p
    };
    // Then write-behind-only progress that no flush will have reached.
    for _ in 0..4 {
        c.battle().await.unwrap();
    }
    let latest = c.get_player().await.unwrap().player.unwrap();
    signal(&server.child, "-KILL");
    let _ = server.child.wait();

    let server = spawn(dir.path(), 3_600_000);
    let now = login(server.tcp, "killed").await;
    assert_eq!(now.chests_opened, 1);
    assert_eq!(now.cards, at_chest.cards, "the durable chest's cards survived");
    assert!(
        now.battles >= at_chest.battles && now.battles <= latest.battles,
        "durable progress kept, at most the unflushed tail lost: {} in [{}, {}]",
        now.battles,
        at_chest.battles,
        latest.battles
    );
    assert_eq!(durable_view(&now), durable_view(&at_chest), "with no flush due, exactly the durable state");
}

/// Logging never blocks a request: the binary logs at debug level into a
/// pipe that nobody reads, with a writer buffer of 100 lines, while 3,000
/// connections each make it log a line; a player then still logs in and
/// plays. A logger that waited for stdout would hang at the 64 KiB the pipe
/// holds plus the buffer.
#[tokio::test]
async fn a_flood_of_log_lines_into_a_stuck_stdout_does_not_stop_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_guildhall"))
        .args(["serve", "--listen", "127.0.0.1:0", "--ws-listen", "", "--admin-listen", ""])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--log-level", "debug", "--log-format", "json", "--log-buffer-lines", "100"])
        .env("GUILDHALL_SECRET", "process-test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("guildhall binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // In JSON mode every line is JSON, the listening line included, with
    // fields as plain values (issue 14, defect 8).
    let tcp: SocketAddr = loop {
        let line = lines.next().expect("server prints its addresses").unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(!line.contains("Some("), "a field printed as a Rust value: {line}");
        if json["message"] == "guildhall listening" {
            assert_eq!(json["ws"], "", "the WebSocket listener is off");
            break json["tcp"].as_str().unwrap().parse().unwrap();
        }
    };
    // Held, never read again: the pipe fills and stays full.
    let _stuck = lines;
    let proc = Proc { child, tcp };

    let flood = async {
        for _ in 0..3000 {
            let mut s = tokio::net::TcpStream::connect(proc.tcp).await.unwrap();
            // A frame announcing 4 GiB: closed with FRAME_TOO_LARGE, and one
            // debug line ("closing connection") per connection.
            s.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        }
        let (c, p) = play(proc.tcp, "log-flood", 1, 3).await;
        assert_eq!(p.battles, 3);
        c
    };
    let c = tokio::time::timeout(std::time::Duration::from_secs(60), flood)
        .await
        .expect("the server kept answering while its stdout was stuck");
    assert!(c.get_player().await.is_ok());
}
