//! The two client transports behind one interface: TCP with length-prefixed
//! frames, and WebSocket with one binary message per envelope. The connection
//! logic above never knows which one it talks to.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use guildhall_protocol::{FrameCodec, FrameError, OutFrame};
use std::time::Duration;

use guildhall_protocol::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::FramedRead;

/// Read buffer of a connection between frames. Small, because an idle
/// connection should cost little memory; it grows for a large frame and is
/// given back after it.
const IDLE_READ_BUFFER: usize = 256;

/// Why a frame could not be received.
#[derive(Debug)]
pub enum RecvError {
    /// A frame over the maximum size.
    TooLarge { len: usize, max: usize },
    /// Not something this protocol carries (e.g. a WebSocket text message).
    Protocol(String),
    /// The stream broke (reset, truncated frame at end of stream...).
    Io(io::Error),
}

pub trait Transport: Send + 'static {
    /// The next frame body (an encoded envelope); `None` when the peer
    /// closed cleanly. Must be cancel-safe: it sits in a `select!`.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Bytes>, RecvError>> + Send;
    /// Sends envelopes, coalesced into as few writes as possible.
    fn send(&mut self, envelopes: &[OutFrame]) -> impl Future<Output = io::Result<()>> + Send;
    /// Closes the stream (best effort), saying why where the transport has
    /// a way to (`None`: a normal close). Then it lingers a moment, reading
    /// and dropping what the peer still sends until it closes too: a socket
    /// closed with unread input is reset, and a reset can make the peer's
    /// system discard the Close it had not yet read.
    fn close(&mut self, why: Option<(Status, &str)>) -> impl Future<Output = ()> + Send;
    /// The peer's address, for log lines.
    fn peer_addr(&self) -> Option<std::net::SocketAddr>;
}

/// How long a closing connection waits for the peer to close its side.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes a closing connection reads and drops at most while it lingers.
const LINGER_BYTES: usize = 256 * 1024;

/// Shuts the write side (the peer reads an end of stream after what was
/// sent) and drains the read side until the peer closes, [`LINGER`] passes
/// or [`LINGER_BYTES`] were dropped.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    // On the heap: a buffer in this future would be part of every
    // connection's task, idle or not.
    let mut scratch = vec![0u8; 4096];
    let drain = async {
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// The WebSocket close code for a close status: 1009 for a message too
/// big, 1002 for a malformed one, 1001 (going away) when the server stops
/// or the session moved to another connection, 1013 (try again later) when
/// the server is full, 1008 (policy) for the other refusals.
pub fn ws_close_code(status: Status) -> CloseCode {
    match status {
        Status::FrameTooLarge => CloseCode::Size,
        Status::MalformedFrame => CloseCode::Protocol,
        Status::ShuttingDown | Status::SessionTakenOver => CloseCode::Away,
        Status::ServerFull => CloseCode::Again,
        Status::Ok => CloseCode::Normal,
        _ => CloseCode::Policy,
    }
}

/// A close reason fits a control frame: 123 bytes at most, cut at a
/// character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

/// Reads and writes go through the one stream, unsplit: a connection's task
/// never reads and writes at the same time (it writes between reads), and
/// the owned halves of a split cost an `Arc` per connection.
pub struct TcpTransport {
    stream: FramedRead<TcpStream, FrameCodec>,
}

impl TcpTransport {
    pub fn new(stream: TcpStream, max_frame: usize) -> Self {
        Self { stream: FramedRead::with_capacity(stream, FrameCodec::new(max_frame), IDLE_READ_BUFFER) }
    }
}

impl Transport for TcpTransport {
    async fn recv(&mut self) -> Result<Option<Bytes>, RecvError> {
        let frame = match self.stream.next().await {
            None => return Ok(None),
            Some(Ok(frame)) => frame,
            Some(Err(FrameError::TooLarge { len, max })) => return Err(RecvError::TooLarge { len, max }),
            Some(Err(FrameError::Io(e))) => return Err(RecvError::Io(e)),
        };
        let buf = self.stream.read_buffer_mut();
        if buf.is_empty() && buf.capacity() > 4 * IDLE_READ_BUFFER {
            *buf = BytesMut::with_capacity(IDLE_READ_BUFFER);
        }
        Ok(Some(frame))
    }

    async fn send(&mut self, envelopes: &[OutFrame]) -> io::Result<()> {
        let total: usize = envelopes.iter().map(|e| 4 + e.len()).sum();
        let mut buf = Vec::with_capacity(total);
        for e in envelopes {
            e.write_to(&mut buf, true);
        }
        self.stream.get_mut().write_all(&buf).await
    }

    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.get_ref().peer_addr().ok()
    }

    async fn close(&mut self, _why: Option<(Status, &str)>) {
        // The Close envelope already said why.
        linger(self.stream.get_mut()).await;
    }
}

pub struct WsTransport {
    ws: WebSocketStream<TcpStream>,
}

impl WsTransport {
    pub fn new(ws: WebSocketStream<TcpStream>) -> Self {
        Self { ws }
    }
}

impl Transport for WsTransport {
    async fn recv(&mut self) -> Result<Option<Bytes>, RecvError> {
        loop {
            match self.ws.next().await {
                None => return Ok(None),
                Some(Ok(Message::Binary(b))) => return Ok(Some(b)),
                Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => {
                    return Err(RecvError::Protocol("text messages are not supported: send binary envelopes".into()))
                }
                Some(Err(tungstenite::Error::Capacity(e))) => {
                    return Err(match e {
                        tungstenite::error::CapacityError::MessageTooLong { size, max_size } => {
                            RecvError::TooLarge { len: size, max: max_size }
                        }
                        other => RecvError::Protocol(other.to_string()),
                    })
                }
                Some(Err(tungstenite::Error::Protocol(e))) => return Err(RecvError::Protocol(e.to_string())),
                Some(Err(e)) => return Err(RecvError::Io(io::Error::other(e))),
            }
        }
    }

    async fn send(&mut self, envelopes: &[OutFrame]) -> io::Result<()> {
        for e in envelopes {
            self.ws.feed(Message::Binary(e.to_bytes())).await.map_err(io::Error::other)?;
        }
        self.ws.flush().await.map_err(io::Error::other)
    }

    fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.ws.get_ref().peer_addr().ok()
    }

    async fn close(&mut self, why: Option<(Status, &str)>) {
        let frame = match why {
            Some((status, reason)) => CloseFrame { code: ws_close_code(status), reason: close_reason(reason).into() },
            None => CloseFrame { code: CloseCode::Normal, reason: "".into() },
        };
        // Sends the close frame unless the close handshake already ran.
        let _ = tokio::time::timeout(LINGER, self.ws.close(Some(frame))).await;
        linger(self.ws.get_mut()).await;
    }
}
