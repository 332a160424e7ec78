//! The WebSocket port's HTTP side: the upgrade handshake, done here rather
//! than by the WebSocket library so that a request that is not a WebSocket
//! upgrade gets an HTTP answer saying what is wrong (the library drops the
//! socket without a word), and so that the connection's buffers are sized
//! for many idle players.
//!
//! The WebSocket endpoint is `ws://host:port/` (path `/`); every envelope is
//! one binary message.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// The one path the WebSocket endpoint answers on.
pub const WS_PATH: &str = "/";

/// Largest request head (request line and headers) read.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send its whole upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Buffer the WebSocket library reads into between messages. Its default,
/// 128 KiB, is allocated and zero-filled for every connection, which made a
/// WebSocket player cost over 100 KiB more than a TCP one. Client messages
/// are small requests; a larger one grows the buffer as it needs.
const READ_BUFFER: usize = 256;

/// Messages a connection gathers before writing them: a batch of envelopes
/// goes out in one write, as over TCP (the connection flushes after each
/// batch, so nothing waits for the buffer to fill). The buffer grows only as
/// large as the batches it holds.
const WRITE_BUFFER: usize = 64 * 1024;

/// The WebSocket settings of a connection: messages and frames up to
/// `max_frame` bytes (the envelope, as over TCP) and small buffers.
pub fn config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}

/// Reads the upgrade request and either answers `101 Switching Protocols`
/// and returns the WebSocket, or answers an HTTP error and returns `None`.
pub async fn accept(mut stream: TcpStream, max_frame: usize) -> Option<WebSocketStream<TcpStream>> {
    let head = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(Refusal { status, reason })) => {
            respond(&mut stream, status, reason).await;
            return None;
        }
        Err(_) => {
            respond(&mut stream, "408 Request Timeout", "the upgrade request did not arrive in time").await;
            return None;
        }
    };
    let (key, leftover) = match check(&head) {
        Ok(x) => x,
        Err(Refusal { status, reason }) => {
            respond(&mut stream, status, reason).await;
            return None;
        }
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(answer.as_bytes()).await.ok()?;
    let leftover = head[leftover..].to_vec();
    Some(WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(config(max_frame))).await)
}

/// Why an upgrade request was refused: an HTTP status line's code and text,
/// and a plain-text body.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    status: &'static str,
    reason: &'static str,
}

fn refuse<T>(status: &'static str, reason: &'static str) -> Result<T, Refusal> {
    Err(Refusal { status, reason })
}

/// Reads up to the end of the request head (and whatever came with it).
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Refusal> {
    let mut head = Vec::with_capacity(512);
    loop {
        if head.len() >= MAX_HEAD {
            return refuse("431 Request Header Fields Too Large", "the request head is over 8 KiB");
        }
        head.reserve(512);
        let before = head.len();
        match stream.read_buf(&mut head).await {
            Ok(0) | Err(_) => return refuse("400 Bad Request", "the request ended before its head did"),
            Ok(_) => {}
        }
        // The end may straddle two reads.
        if head[before.saturating_sub(3)..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
    }
}

/// Checks a complete request head; returns the client's key and where the
/// bytes after the head begin.
fn check(head: &[u8]) -> Result<(String, usize), Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let end = match req.parse(head) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) | Err(_) => return refuse("400 Bad Request", "not an HTTP/1.1 request"),
    };
    if req.method != Some("GET") {
        return refuse("405 Method Not Allowed", "the WebSocket endpoint takes GET with an upgrade");
    }
    let path = req.path.unwrap_or("");
    if path.split('?').next() != Some(WS_PATH) {
        return refuse("404 Not Found", "the WebSocket endpoint is at path /");
    }
    let header = |name: &str| {
        req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return refuse(
            "426 Upgrade Required",
            "this port speaks WebSocket: upgrade to it at ws://host:port/ and send binary protobuf envelopes",
        );
    }
    if header("sec-websocket-version") != Some("13") {
        return refuse("426 Upgrade Required", "WebSocket version 13 is required");
    }
    match header("sec-websocket-key") {
        Some(key) if !key.trim().is_empty() => Ok((key.trim().to_string(), end)),
        _ => refuse("400 Bad Request", "Sec-WebSocket-Key is missing"),
    }
}

/// Answers an HTTP error and closes (best effort: the peer may be gone).
async fn respond(stream: &mut TcpStream, status: &str, reason: &str) {
    let version = if status.starts_with("426") { "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n" } else { "" };
    let answer = format!(
        "HTTP/1.1 {status}\r\n{version}Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    #[test]
    fn an_upgrade_is_accepted_and_anything_else_says_why_not() {
        let with_extra = format!("{UPGRADE}\u{82}");
        assert_eq!(check(with_extra.as_bytes()), Ok(("dGhlIHNhbXBsZSBub25jZQ==".into(), UPGRADE.len())));
        let status = |head: &str| check(head.as_bytes()).unwrap_err().status;
        assert_eq!(status("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "426 Upgrade Required");
        assert_eq!(status(&UPGRADE.replace("GET / ", "GET /chat ")), "404 Not Found");
        assert_eq!(status(&UPGRADE.replace("GET", "POST")), "405 Method Not Allowed");
        assert_eq!(status(&UPGRADE.replace("Version: 13", "Version: 8")), "426 Upgrade Required");
        assert_eq!(status(&UPGRADE.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "")), "400 Bad Request");
        assert_eq!(status("\u{16}\u{3}\u{1}junk\r\n\r\n"), "400 Bad Request");
    }
}
