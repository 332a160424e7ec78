//! Shared harness of the integration tests: a real server on port 0 with an
//! injected clock, and a raw frame-level connection for tests that must send
//! exact bytes.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use guildhall_entity::ManualClock;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::{decode_envelope, encode_frame, FrameCodec};
use guildhall_server::{Config, Listeners, Server, ServerOptions};
use guildhall_store::{MemoryStore, Store};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

/// Upper bound for any single wait on the network in a test. Waits end as
/// soon as the awaited event happens; this only turns a hang into a failure.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: Server,
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
}

impl TestServer {
    pub fn tcp(&self) -> SocketAddr {
        self.server.tcp_addr()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.server.ws_addr().expect("ws listener"))
    }
}

/// A test configuration: ephemeral ports, fixed secret.
pub fn config() -> Config {
    Config::for_tests()
}

pub async fn start(config: Config) -> TestServer {
    start_on(config, Arc::new(MemoryStore::new()), ManualClock::default()).await
}

/// Starts a server over `store` with `clock`, with background maintenance
/// off: tests move the clock and call `maintain()` themselves.
pub async fn start_on(config: Config, store: Arc<dyn Store>, clock: ManualClock) -> TestServer {
    let listeners = Listeners::bind(&config).await.expect("bind port 0");
    let options =
        ServerOptions { clock: Arc::new(clock.clone()), store: Some(store.clone()), background_maintenance: false };
    let server = Server::start(config, listeners, options).await.expect("server starts");
    TestServer { server, clock, store }
}

/// A frame-level TCP connection: sends exact bytes, reads envelopes.
pub struct Raw {
    reader: FramedRead<OwnedReadHalf, FrameCodec>,
    writer: OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        Self { reader: FramedRead::new(r, FrameCodec::new(1 << 20)), writer: w }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    pub async fn send(&mut self, kind: Kind) {
        let frame = encode_frame(kind);
        self.send_bytes(&frame).await;
    }

    pub async fn request(&mut self, id: u64, method: &str, payload: impl Message) {
        self.send(Kind::Request(pb::Request {
            id,
            method: method.into(),
            payload: payload.encode_to_vec().into(),
            ack: 0,
        }))
        .await;
    }

    /// The next envelope, or None when the server closed the stream.
    pub async fn recv(&mut self) -> Option<Kind> {
        let frame = tokio::time::timeout(WAIT, self.reader.next()).await.expect("server answers in time")?;
        let frame: Bytes = frame.ok()?;
        Some(decode_envelope(&frame).expect("server sends valid envelopes"))
    }

    /// The next response, skipping pings and pushes.
    pub async fn response(&mut self) -> pb::Response {
        loop {
            match self.recv().await.expect("connection open") {
                Kind::Response(r) => return r,
                Kind::Ping(_) | Kind::Push(_) => continue,
                other => panic!("expected a response, got {other:?}"),
            }
        }
    }

    /// The response to request `id`, skipping everything else (such as a
    /// duplicate answer to an earlier id, which a client drops by id).
    pub async fn response_to(&mut self, id: u64) -> pb::Response {
        loop {
            let r = self.response().await;
            if r.id == id {
                return r;
            }
        }
    }

    /// Reads until the server's Close, returning it; then the stream ends.
    pub async fn close_reason(&mut self) -> pb::Close {
        loop {
            match self.recv().await {
                Some(Kind::Close(c)) => return c,
                Some(_) => continue,
                None => panic!("stream ended without a Close envelope"),
            }
        }
    }

    /// True once the server closed the stream (after any Close envelope).
    pub async fn closed(&mut self) -> bool {
        loop {
            match self.recv().await {
                None => return true,
                Some(_) => continue,
            }
        }
    }

    pub async fn login(&mut self, id: u64, device: &str) -> pb::LoginResponse {
        let req = pb::LoginRequest { credential: Some(pb::login_request::Credential::DeviceId(device_id(device))) };
        self.request(id, guildhall_protocol::method::LOGIN, req).await;
        let resp = self.response().await;
        assert_eq!(resp.status(), pb::Status::Ok, "{}", resp.message);
        pb::LoginResponse::decode(resp.payload).expect("LoginResponse")
    }
}

pub fn status_of(resp: &pb::Response) -> pb::Status {
    pb::Status::try_from(resp.status).unwrap_or(pb::Status::Internal)
}

/// Waits until the server has `n` open connections (for example until it
/// noticed that a client went away), failing after [`WAIT`].
pub async fn connections(ts: &TestServer, n: usize) {
    tokio::time::timeout(WAIT, ts.server.wait_for_connections(n)).await.expect("connection count reached in time");
}

/// Restarts the server while `tasks` (requests the clients are making) are in
/// flight: lets them run for `yields` scheduler turns, stops the server
/// gracefully, closes the clients, waits for every task (any outcome is fine
/// for a cut request), then starts a new server on the same store and clock
/// and runs one maintenance pass so that hubs finish what was cut. The
/// callers log their players in again on the returned server.
pub async fn restart_mid_flight<T: Send + 'static>(
    ts: TestServer,
    config: Config,
    clients: &[Arc<guildhall_client::Client>],
    tasks: Vec<tokio::task::JoinHandle<T>>,
    yields: u64,
) -> TestServer {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    let (store, clock) = (ts.store.clone(), ts.clock.clone());
    ts.server.shutdown().await;
    for c in clients {
        c.close().await;
    }
    for t in tasks {
        let _ = t.await.expect("the task itself does not panic");
    }
    let ts = start_on(config, store, clock).await;
    ts.server.maintain().await;
    ts
}

/// A valid device id (10 to 128 printable bytes) made from a test's short
/// name for a player.
pub fn device_id(name: &str) -> String {
    format!("test-device-{name}")
}
