//! One raw connection to a Guildhall server, over TCP or WebSocket.
//!
//! [`Connection`] knows framing and nothing else: no ids, no sequence numbers,
//! no acks, no reconnects. The [`crate::Client`] task owns one at a time and
//! builds the session protocol on top. It is public because tests of the
//! server must be able to send *exact* frames (an oversized announcement, a
//! frame that is not an envelope, a request with a chosen id) and read what
//! comes back; [`RawConnection`] is the name to use for that.
//!
//! Memory matters: a bot process holds thousands of connections, mostly idle.
//! So the TCP read buffer starts at 256 bytes (it grows for a large frame and
//! is given back afterwards), frames are written with one `write_all` and no
//! write buffer, and the WebSocket read buffer is 4 KiB instead of
//! tungstenite's 128 KiB.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::{decode_envelope, encode_envelope, FrameCodec, FrameError, DEFAULT_MAX_FRAME};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::FramedRead;

use crate::config::Endpoint;
use crate::error::ClientError;

/// Read buffer of an idle TCP connection (as the server does).
const IDLE_READ_BUFFER: usize = 256;
/// Eagerly allocated WebSocket read buffer.
const WS_READ_BUFFER: usize = 4 * 1024;

/// The name under which tests use [`Connection`] to speak the wire protocol
/// by hand.
pub type RawConnection = Connection;

/// A framed connection: each [`send`](Connection::send) is one envelope, each
/// [`recv`](Connection::recv) returns one.
pub struct Connection {
    io: Io,
    max_frame: usize,
}

enum Io {
    Tcp(FramedRead<TcpStream, FrameCodec>),
    // Boxed: the WebSocket state is much larger than the TCP one.
    Ws(Box<WebSocketStream<TcpStream>>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("transport", &if self.is_ws() { "ws" } else { "tcp" })
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

/// Opens a TCP stream to `addr`, from `local` if given (any port), with
/// Nagle off: requests are small and latency-bound.
pub(crate) async fn tcp_stream(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = local {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn ws_config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

/// Whether an I/O error just means "the peer is gone", which `recv` reports
/// as the end of the stream like a clean close.
fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe)
}

impl Connection {
    /// Connects to `endpoint`, from source address `local` if given, with
    /// frames up to `max_frame` bytes in both directions.
    pub async fn connect(endpoint: &Endpoint, local: Option<IpAddr>, max_frame: usize) -> Result<Self, ClientError> {
        match endpoint {
            Endpoint::Tcp(addr) => Self::connect_tcp_with(*addr, local, max_frame).await,
            Endpoint::Ws(url) => Self::connect_ws_with(url, local, max_frame).await,
        }
    }

    /// Connects over TCP with the default maximum frame (64 KiB).
    pub async fn connect_tcp(addr: SocketAddr) -> Result<Self, ClientError> {
        Self::connect_tcp_with(addr, None, DEFAULT_MAX_FRAME).await
    }

    /// Connects over TCP from source address `local` (e.g. one of
    /// 127.0.0.x, to spread many connections over several source addresses).
    pub async fn connect_tcp_with(
        addr: SocketAddr,
        local: Option<IpAddr>,
        max_frame: usize,
    ) -> Result<Self, ClientError> {
        let stream = tcp_stream(addr, local).await?;
        Ok(Self::from_tcp(stream, max_frame))
    }

    /// Connects to a `ws://host:port/` URL with the default maximum frame.
    pub async fn connect_ws(url: &str) -> Result<Self, ClientError> {
        Self::connect_ws_with(url, None, DEFAULT_MAX_FRAME).await
    }

    /// Connects to a `ws://host:port/` URL from source address `local`.
    /// `wss://` is not supported (no TLS in this SDK).
    pub async fn connect_ws_with(url: &str, local: Option<IpAddr>, max_frame: usize) -> Result<Self, ClientError> {
        let request = url.into_client_request()?;
        let uri = request.uri();
        if uri.scheme_str() != Some("ws") {
            return Err(ClientError::Protocol(format!("unsupported websocket url {url:?}: use ws://host:port/")));
        }
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Protocol(format!("websocket url {url:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        let mut last_err = io::Error::new(io::ErrorKind::NotFound, format!("{host} resolves to no address"));
        let mut stream = None;
        for addr in tokio::net::lookup_host((host.as_str(), port)).await? {
            match tcp_stream(addr, local).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let stream = stream.ok_or(ClientError::io(last_err))?;
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config(max_frame))).await?;
        Ok(Self::from_ws(ws, max_frame))
    }

    /// Wraps an established TCP stream (either side: a test's mock server
    /// can speak frames with this too).
    pub fn from_tcp(stream: TcpStream, max_frame: usize) -> Self {
        let reader = FramedRead::with_capacity(stream, FrameCodec::new(max_frame), IDLE_READ_BUFFER);
        Self { io: Io::Tcp(reader), max_frame }
    }

    /// Wraps an established WebSocket stream (client or server side).
    pub fn from_ws(ws: WebSocketStream<TcpStream>, max_frame: usize) -> Self {
        Self { io: Io::Ws(Box::new(ws)), max_frame }
    }

    /// True for a WebSocket connection.
    pub fn is_ws(&self) -> bool {
        matches!(self.io, Io::Ws(_))
    }

    /// The largest frame this connection sends or accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    fn stream(&self) -> &TcpStream {
        match &self.io {
            Io::Tcp(r) => r.get_ref(),
            Io::Ws(ws) => ws.get_ref(),
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream().local_addr()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream().peer_addr()
    }

    /// Sends one envelope. Refuses (without sending) an envelope over the
    /// maximum frame size.
    pub async fn send(&mut self, kind: Kind) -> Result<(), ClientError> {
        let body = encode_envelope(kind);
        if body.len() > self.max_frame {
            return Err(FrameError::TooLarge { len: body.len(), max: self.max_frame }.into());
        }
        self.send_body(body).await
    }

    /// Sends `body` as one frame as it is, whatever it holds: on TCP with a
    /// correct length prefix, on WebSocket as one binary message. For tests
    /// of malformed envelopes. No size check.
    pub async fn send_body(&mut self, body: impl Into<Bytes>) -> Result<(), ClientError> {
        let body: Bytes = body.into();
        match &mut self.io {
            Io::Tcp(r) => {
                let mut frame = BytesMut::with_capacity(4 + body.len());
                frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
                frame.extend_from_slice(&body);
                r.get_mut().write_all(&frame).await?;
            }
            Io::Ws(ws) => ws.send(WsMessage::Binary(body)).await?,
        }
        Ok(())
    }

    /// Writes `bytes` exactly as given. On TCP they go to the socket with no
    /// framing at all (a test can announce a 10 MiB frame, or split a frame
    /// in two writes); on WebSocket they become one binary message, the only
    /// unit that transport has.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        match &mut self.io {
            Io::Tcp(r) => r.get_mut().write_all(bytes).await?,
            Io::Ws(ws) => ws.send(WsMessage::Binary(Bytes::copy_from_slice(bytes))).await?,
        }
        Ok(())
    }

    /// Sends `Request{id, method, payload}` with an already encoded payload.
    pub async fn send_request(&mut self, id: u64, method: &str, payload: impl Into<Bytes>) -> Result<(), ClientError> {
        let payload: Bytes = payload.into();
        self.send(Kind::Request(pb::Request { id, method: method.to_string(), payload, ack: 0 })).await
    }

    /// Sends a request whose payload is `message`, encoded here.
    pub async fn send_message<M: prost::Message>(
        &mut self,
        id: u64,
        method: &str,
        message: &M,
    ) -> Result<(), ClientError> {
        self.send_request(id, method, message.encode_to_vec()).await
    }

    /// The next frame body, undecoded; `Ok(None)` when the peer closed the
    /// stream (cleanly or by reset). Cancel-safe.
    pub async fn recv_frame(&mut self) -> Result<Option<Bytes>, ClientError> {
        match &mut self.io {
            Io::Tcp(reader) => {
                let frame = match reader.next().await {
                    None => return Ok(None),
                    Some(Ok(frame)) => frame,
                    Some(Err(FrameError::Io(e))) if is_disconnect(&e) => return Ok(None),
                    Some(Err(e)) => return Err(e.into()),
                };
                // Give back a buffer that grew for a large frame.
                let buf = reader.read_buffer_mut();
                if buf.is_empty() && buf.capacity() > 4 * IDLE_READ_BUFFER {
                    *buf = BytesMut::with_capacity(IDLE_READ_BUFFER);
                }
                Ok(Some(frame))
            }
            Io::Ws(ws) => loop {
                match ws.next().await {
                    None => return Ok(None),
                    Some(Ok(WsMessage::Binary(b))) => return Ok(Some(b)),
                    Some(Ok(WsMessage::Close(_))) => return Ok(None),
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => continue,
                    Some(Ok(WsMessage::Text(_))) => {
                        return Err(ClientError::Protocol("unexpected websocket text message".into()))
                    }
                    Some(Err(
                        tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake),
                    )) => return Ok(None),
                    Some(Err(tungstenite::Error::Io(e))) if is_disconnect(&e) => return Ok(None),
                    Some(Err(e)) => return Err(e.into()),
                }
            },
        }
    }

    /// The next envelope; `Ok(None)` when the peer closed the stream.
    /// Cancel-safe, so it can sit in a `select!`.
    pub async fn recv(&mut self) -> Result<Option<Kind>, ClientError> {
        match self.recv_frame().await? {
            None => Ok(None),
            Some(frame) => Ok(Some(decode_envelope(&frame)?)),
        }
    }

    /// Same as [`recv`](Self::recv): the next decoded envelope.
    pub async fn recv_envelope(&mut self) -> Result<Option<Kind>, ClientError> {
        self.recv().await
    }

    /// [`recv`](Self::recv) with a deadline: [`ClientError::Timeout`] when
    /// nothing arrives within `wait`.
    pub async fn recv_timeout(&mut self, wait: Duration) -> Result<Option<Kind>, ClientError> {
        tokio::time::timeout(wait, self.recv()).await.map_err(|_| ClientError::Timeout)?
    }

    /// Reads until the response to request `id`, answering pings and
    /// skipping everything else (pushes, other responses). A `Close` or the
    /// end of the stream is an error ([`ClientError::Closed`] /
    /// [`ClientError::Disconnected`]).
    pub async fn wait_response(&mut self, id: u64) -> Result<pb::Response, ClientError> {
        loop {
            match self.recv().await? {
                Some(Kind::Response(r)) if r.id == id => return Ok(r),
                Some(Kind::Ping(p)) => self.send(Kind::Pong(pb::Pong { nonce: p.nonce })).await?,
                Some(Kind::Close(c)) => {
                    return Err(ClientError::Closed {
                        status: crate::error::status_from_wire(c.status),
                        reason: c.reason,
                    })
                }
                Some(_) => continue,
                None => return Err(ClientError::Disconnected),
            }
        }
    }

    /// Sends a request and waits for its response (see
    /// [`wait_response`](Self::wait_response)).
    pub async fn request<M: prost::Message>(
        &mut self,
        id: u64,
        method: &str,
        message: &M,
    ) -> Result<pb::Response, ClientError> {
        self.send_message(id, method, message).await?;
        self.wait_response(id).await
    }

    /// Closes the connection politely: WebSocket close handshake, or TCP
    /// write shutdown (FIN). Best effort.
    pub async fn shutdown(&mut self) {
        match &mut self.io {
            Io::Tcp(r) => {
                let _ = r.get_mut().shutdown().await;
            }
            Io::Ws(ws) => {
                let _ = WebSocketStream::close(ws, None).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (Connection, Connection) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(Connection::connect_tcp(addr), listener.accept());
        (client.unwrap(), Connection::from_tcp(accepted.unwrap().0, DEFAULT_MAX_FRAME))
    }

    #[tokio::test]
    async fn envelopes_cross_a_tcp_connection_even_when_written_in_pieces() {
        let (mut client, mut server) = pair().await;
        client.send(Kind::Ping(pb::Ping { nonce: 7 })).await.unwrap();
        assert_eq!(server.recv().await.unwrap(), Some(Kind::Ping(pb::Ping { nonce: 7 })));

        let frame = guildhall_protocol::encode_frame(Kind::Ack(pb::Ack { seq: 42 }));
        client.send_bytes(&frame[..3]).await.unwrap();
        client.send_bytes(&frame[3..]).await.unwrap();
        assert_eq!(server.recv().await.unwrap(), Some(Kind::Ack(pb::Ack { seq: 42 })));

        client.send_message(5, "player.get", &pb::GetPlayerRequest {}).await.unwrap();
        match server.recv().await.unwrap() {
            Some(Kind::Request(r)) => assert_eq!((r.id, r.method.as_str()), (5, "player.get")),
            other => panic!("{other:?}"),
        }
        client.shutdown().await;
        assert_eq!(server.recv().await.unwrap(), None, "end of stream");
    }

    #[tokio::test]
    async fn oversized_and_malformed_frames_are_reported() {
        let (mut client, mut server) = pair().await;
        let big = pb::Request { id: 1, method: "x".into(), payload: vec![0u8; DEFAULT_MAX_FRAME].into(), ack: 0 };
        assert!(matches!(client.send(Kind::Request(big)).await, Err(ClientError::Protocol(_))));
        client.send_body(&b"\xff\xff\xff"[..]).await.unwrap();
        assert!(server.recv().await.is_err(), "garbage body does not decode");
        client.send_bytes(&(10u32 << 20).to_be_bytes()).await.unwrap();
        assert!(matches!(server.recv().await, Err(ClientError::Protocol(_))), "10 MiB announcement refused");
    }

    #[tokio::test]
    async fn a_source_address_can_be_chosen() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let local: IpAddr = "127.0.0.3".parse().unwrap();
        let (client, accepted) =
            tokio::join!(Connection::connect_tcp_with(addr, Some(local), DEFAULT_MAX_FRAME), listener.accept());
        assert_eq!(client.unwrap().local_addr().unwrap().ip(), local);
        assert_eq!(accepted.unwrap().1.ip(), local);
    }

    #[tokio::test]
    async fn websocket_messages_carry_one_envelope_each() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            let mut conn = Connection::from_ws(ws, DEFAULT_MAX_FRAME);
            let Some(Kind::Ping(p)) = conn.recv().await.unwrap() else { panic!("expected a ping") };
            conn.send(Kind::Pong(pb::Pong { nonce: p.nonce })).await.unwrap();
            conn.shutdown().await;
        });
        let mut client = Connection::connect_ws(&url).await.unwrap();
        assert!(client.is_ws());
        client.send(Kind::Ping(pb::Ping { nonce: 9 })).await.unwrap();
        assert_eq!(client.recv().await.unwrap(), Some(Kind::Pong(pb::Pong { nonce: 9 })));
        assert_eq!(client.recv().await.unwrap(), None);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn only_plain_ws_urls_are_accepted() {
        assert!(matches!(Connection::connect_ws("wss://example.invalid/").await, Err(ClientError::Protocol(_))));
    }
}
