//! The two client transports behind one interface: TCP with length-prefixed
//! frames, and WebSocket with one binary message per envelope. The connection
//! logic above never knows which one it talks to.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use guildhall_protocol::{FrameCodec, FrameError, OutFrame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
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
    /// Closes the stream (best effort).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
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

    async fn close(&mut self) {
        let _ = self.stream.get_mut().shutdown().await;
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

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }
}
