//! Where to connect and how the client behaves.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use guildhall_protocol::DEFAULT_MAX_FRAME;

use crate::backoff::Backoff;

/// The server address and transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP with 4-byte big-endian length-prefixed frames.
    Tcp(SocketAddr),
    /// WebSocket, one binary message per envelope: `ws://host:port/`.
    Ws(String),
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Tcp(addr)
    }
}

/// Client settings. Build with [`ClientConfig::tcp`] / [`ClientConfig::ws`]
/// (or [`ClientConfig::new`]) and adjust fields, or use struct update syntax
/// over [`Default`] (which points at the server's default TCP port on
/// localhost).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    /// How long a call waits for its result, reconnects included. Default 10 s.
    pub request_timeout: Duration,
    /// Reconnect and resume the session after a dropped connection (default
    /// true). Off, a drop fails the pending calls with
    /// [`crate::ClientError::Disconnected`]; [`crate::Client::resume`] can
    /// still re-attach to the session by hand.
    pub auto_reconnect: bool,
    /// Reconnect attempts after one drop before giving up. `None` (default):
    /// as many as fit in the resume window, which bounds them anyway.
    pub max_reconnect_attempts: Option<u32>,
    /// Delays between reconnect attempts.
    pub backoff: Backoff,
    /// How long one connection attempt (TCP + WebSocket handshake) may take.
    /// Default 5 s.
    pub connect_timeout: Duration,
    /// Source address to bind before connecting (port chosen by the
    /// system). Bots spread over 127.0.0.x to get more than one source
    /// address' worth of ephemeral ports.
    pub local_addr: Option<IpAddr>,
    /// Largest frame sent or accepted (default 64 KiB, as the server).
    pub max_frame: usize,
    /// Send an Ack after this many sequenced messages (default 16).
    pub ack_every: u64,
    /// Send an Ack at least this often while something is unacknowledged
    /// (default 10 s). Requests carry an ack of their own, so this only
    /// matters for a player who receives pushes without acting; a longer
    /// interval means fewer frames, a shorter one a smaller replay buffer on
    /// the server.
    pub ack_interval: Duration,
    /// Resume window assumed when the server did not say (it does in
    /// `LoginResponse.resume_window_ms`). Default 60 s.
    pub default_resume_window: Duration,
    /// Pushes kept while nobody took the receiver of
    /// [`crate::Client::take_pushes`]; older ones are dropped so that an
    /// application that never reads pushes does not grow without bound.
    /// Default 4096.
    pub max_buffered_pushes: usize,
}

impl ClientConfig {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            request_timeout: Duration::from_secs(10),
            auto_reconnect: true,
            max_reconnect_attempts: None,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            local_addr: None,
            max_frame: DEFAULT_MAX_FRAME,
            ack_every: 16,
            ack_interval: Duration::from_secs(10),
            default_resume_window: Duration::from_secs(60),
            max_buffered_pushes: 4096,
        }
    }

    /// TCP to `addr`, defaults otherwise.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::new(Endpoint::Tcp(addr))
    }

    /// WebSocket to `url` (`ws://host:port/`), defaults otherwise.
    pub fn ws(url: impl Into<String>) -> Self {
        Self::new(Endpoint::Ws(url.into()))
    }
}

impl Default for ClientConfig {
    /// TCP to 127.0.0.1:7350, the server's default listener.
    fn default() -> Self {
        Self::tcp(SocketAddr::from(([127, 0, 0, 1], 7350)))
    }
}
