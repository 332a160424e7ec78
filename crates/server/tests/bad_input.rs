//! Bad input: every case asserts the error the sender gets, and that another
//! connected client (the real SDK client) still plays normally afterwards.

mod common;

use std::time::Duration;

use common::{start, status_of, Raw, TestServer};
use futures_util::{SinkExt, StreamExt};
use guildhall_client::{Client, ClientConfig};
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, envelope::Kind, Status};
use prost::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// A logged-in bystander on its own connection.
async fn bystander(ts: &TestServer) -> Client {
    let client = Client::connect(ClientConfig::tcp(ts.tcp())).await.expect("bystander connects");
    client.login_device("bystander-device").await.expect("bystander logs in");
    client
}

/// The bystander can still play: proves the bad input harmed nobody else.
async fn still_plays(client: &Client) {
    let before = client.get_player().await.expect("get_player").player.unwrap();
    let chest = client.open_chest().await.expect("open_chest after bad input elsewhere");
    assert_eq!(chest.cards.len(), 3);
    assert_eq!(chest.gold, before.gold - 100);
}

#[tokio::test]
async fn random_bytes_close_only_that_connection() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    // Deterministic "random" bytes (xorshift), printed seed for replay.
    let seed = 0x9e37_79b9_7f4a_7c15u64;
    println!("seed {seed:#x}");
    let mut x = seed;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    raw.send_bytes(&junk).await;
    let close = raw.close_reason().await;
    let status = Status::try_from(close.status).unwrap();
    assert!(matches!(status, Status::FrameTooLarge | Status::MalformedFrame), "{status:?}: {}", close.reason);
    assert!(raw.closed().await);
    still_plays(&other).await;
}

#[tokio::test]
async fn a_10_mib_frame_is_refused_after_its_header() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.send_bytes(&(10u32 * 1024 * 1024).to_be_bytes()).await;
    let close = raw.close_reason().await;
    assert_eq!(close.status(), Status::FrameTooLarge);
    assert!(close.reason.contains("10485760") && close.reason.contains("65536"), "{}", close.reason);
    assert!(raw.closed().await);
    still_plays(&other).await;
}

#[tokio::test]
async fn a_truncated_frame_then_close_harms_nobody() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "truncator").await;
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[8; 10]);
    raw.send_bytes(&partial).await;
    drop(raw);
    // The truncated sender's session detaches like any dropped connection.
    still_plays(&other).await;
    assert_eq!(ts.server.session_count(), 2);
}

#[tokio::test]
async fn a_malformed_envelope_closes_with_a_reason() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.send_bytes(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await;
    let close = raw.close_reason().await;
    assert_eq!(close.status(), Status::MalformedFrame);
    assert!(close.reason.contains("not a valid envelope"), "{}", close.reason);

    // A well-formed envelope a client must not send is refused the same way.
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.send(Kind::Push(pb::Push { seq: 1, topic: "x".into(), event: None })).await;
    assert_eq!(raw.close_reason().await.status(), Status::MalformedFrame);
    still_plays(&other).await;
}

#[tokio::test]
async fn unknown_methods_and_bad_payloads_get_errors_and_the_connection_stays() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "confused").await;

    raw.request(2, "player.fly", pb::GetPlayerRequest {}).await;
    let resp = raw.response().await;
    assert_eq!((resp.id, status_of(&resp)), (2, Status::UnknownMethod));
    assert!(resp.message.contains("player.fly"));

    raw.send(Kind::Request(pb::Request {
        id: 3,
        method: method::UPGRADE_CARD.into(),
        payload: vec![0xff; 5].into(),
        ack: 0,
    }))
    .await;
    let resp = raw.response().await;
    assert_eq!((resp.id, status_of(&resp)), (3, Status::BadRequest));
    assert!(resp.message.contains("UpgradeCardRequest"), "{}", resp.message);

    raw.request(4, method::UPGRADE_CARD, pb::UpgradeCardRequest { kind: 999 }).await;
    assert_eq!(status_of(&raw.response().await), Status::UnknownCard);

    raw.request(5, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    let resp = raw.response().await;
    assert_eq!((resp.id, status_of(&resp)), (5, Status::Ok), "the connection still serves");

    // A client ping is answered.
    raw.send(Kind::Ping(pb::Ping { nonce: 77 })).await;
    loop {
        match raw.recv().await.unwrap() {
            Kind::Pong(p) => {
                assert_eq!(p.nonce, 77);
                break;
            }
            _ => continue,
        }
    }
    still_plays(&other).await;
}

#[tokio::test]
async fn game_calls_before_login_are_unauthenticated() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    for (id, m) in [(1, method::PLAYER_GET), (2, method::BATTLE), (3, method::OPEN_CHEST)] {
        raw.request(id, m, pb::GetPlayerRequest {}).await;
        let resp = raw.response().await;
        assert_eq!((resp.id, resp.seq, status_of(&resp)), (id, 0, Status::Unauthenticated));
        assert!(resp.message.contains("log in"));
    }
    raw.request(4, method::LOGOUT, pb::LogoutRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::Unauthenticated);
    // The same connection can still log in.
    let login = raw.login(5, "late").await;
    assert!(login.created);
    still_plays(&other).await;
}

#[tokio::test]
async fn tampered_and_expired_tokens_are_refused() {
    let mut config = common::config();
    config.token_ttl_secs = 3600;
    let ts = start(config).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    let login = raw.login(1, "holder").await;

    let mut tampered = login.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let mut fresh = Raw::connect(ts.tcp()).await;
    let with_token = |t: &str| pb::LoginRequest { credential: Some(pb::login_request::Credential::Token(t.into())) };
    fresh.request(1, method::LOGIN, with_token(&tampered)).await;
    assert_eq!(status_of(&fresh.response().await), Status::TokenInvalid);
    fresh.request(2, method::RESUME, pb::ResumeRequest { token: tampered, last_seq: 0 }).await;
    assert_eq!(status_of(&fresh.response().await), Status::TokenInvalid);
    fresh.request(3, method::LOGIN, with_token("not-a-token")).await;
    assert_eq!(status_of(&fresh.response().await), Status::TokenInvalid);

    // The genuine token works until it expires...
    fresh.request(4, method::LOGIN, with_token(&login.token)).await;
    let resp = fresh.response().await;
    assert_eq!(status_of(&resp), Status::Ok);
    assert_eq!(pb::LoginResponse::decode(resp.payload).unwrap().player_id, login.player_id);

    // ... and not after.
    ts.clock.advance(Duration::from_secs(3600));
    let mut late = Raw::connect(ts.tcp()).await;
    late.request(1, method::LOGIN, with_token(&login.token)).await;
    let resp = late.response().await;
    assert_eq!(status_of(&resp), Status::TokenExpired);
    assert!(resp.message.contains("expired"));
    still_plays(&other).await;
}

#[tokio::test]
async fn a_flood_over_the_rate_limit_is_refused_per_request() {
    let mut config = common::config();
    config.rate_limit_burst = 10;
    config.rate_limit_per_sec = 5;
    let ts = start(config).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "flooder").await; // takes one token
    for id in 2..=51 {
        raw.request(id, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    }
    let mut ok = 0;
    let mut limited = 0;
    for _ in 2..=51 {
        let resp = raw.response().await;
        match status_of(&resp) {
            Status::Ok => ok += 1,
            Status::RateLimited => {
                limited += 1;
                assert!(resp.message.contains("5 requests per second"));
            }
            other => panic!("{other:?}"),
        }
    }
    // The clock did not move: exactly the burst passes.
    assert_eq!((ok, limited), (9, 41));
    ts.clock.advance(Duration::from_secs(1));
    for id in 52..=57 {
        raw.request(id, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    }
    let statuses: Vec<_> = futures_collect(&mut raw, 6).await;
    assert_eq!(statuses.iter().filter(|s| **s == Status::Ok).count(), 5, "one second refills five");
    still_plays(&other).await;
}

async fn futures_collect(raw: &mut Raw, n: usize) -> Vec<Status> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status_of(&raw.response().await));
    }
    out
}

#[tokio::test]
async fn over_the_connection_cap_a_client_is_told_the_server_is_full() {
    let mut config = common::config();
    config.max_connections = 2;
    let ts = start(config).await;
    let other = bystander(&ts).await;
    let mut second = Raw::connect(ts.tcp()).await;
    second.login(1, "second").await;
    let mut third = Raw::connect(ts.tcp()).await;
    let close = third.close_reason().await;
    assert_eq!(close.status(), Status::ServerFull);
    assert!(third.closed().await);
    assert_eq!(ts.server.connection_count(), 2);
    still_plays(&other).await;
}

#[tokio::test]
async fn a_request_id_past_the_documented_bound_is_refused_and_does_not_lock_the_session() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "big-ids").await;
    raw.request(u64::MAX, method::BATTLE, pb::BattleRequest {}).await;
    let refused = raw.response().await;
    assert_eq!(status_of(&refused), Status::BadRequest, "{refused:?}");
    assert!(refused.message.contains("2^53"), "{}", refused.message);
    raw.request(1 << 53, method::BATTLE, pb::BattleRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::BadRequest);
    // The session goes on with ordinary ids, up to the bound itself.
    raw.request(2, method::BATTLE, pb::BattleRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::Ok);
    raw.request((1 << 53) - 1, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::Ok);
    still_plays(&other).await;
}

/// Issue 14, defect 7: a logout revokes every token issued before it, so a
/// token copied off the device logs in no more; a new login issues one that
/// works.
#[tokio::test]
async fn a_logout_revokes_the_token_and_a_new_login_issues_a_working_one() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let with_token = |t: &str| pb::LoginRequest { credential: Some(pb::login_request::Credential::Token(t.into())) };
    let mut phone = Raw::connect(ts.tcp()).await;
    let first = phone.login(1, "revoker").await;
    let mut copy = Raw::connect(ts.tcp()).await;
    copy.request(1, method::LOGIN, with_token(&first.token)).await;
    assert_eq!(status_of(&copy.response().await), Status::Ok, "a token logs in before the logout");
    drop(copy);

    let mut phone = Raw::connect(ts.tcp()).await;
    let second = phone.login(1, "revoker").await;
    phone.request(2, method::LOGOUT, pb::LogoutRequest {}).await;
    assert_eq!(status_of(&phone.response_to(2).await), Status::Ok);
    for token in [&first.token, &second.token] {
        let mut thief = Raw::connect(ts.tcp()).await;
        thief.request(1, method::LOGIN, with_token(token)).await;
        let resp = thief.response().await;
        assert_eq!(status_of(&resp), Status::TokenRevoked, "{}", resp.message);
        assert!(resp.message.contains("revoked"), "{}", resp.message);
    }

    let mut again = Raw::connect(ts.tcp()).await;
    let third = again.login(1, "revoker").await;
    drop(again);
    let mut later = Raw::connect(ts.tcp()).await;
    later.request(1, method::LOGIN, with_token(&third.token)).await;
    assert_eq!(status_of(&later.response().await), Status::Ok, "the new token works");
    still_plays(&other).await;
}

/// Issue 14, defect 7: a device id, an account's only credential, has 10 to
/// 128 printable ASCII bytes.
#[tokio::test]
async fn short_long_or_unprintable_device_ids_are_refused() {
    let ts = start(common::config()).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    let device = |d: String| pb::LoginRequest { credential: Some(pb::login_request::Credential::DeviceId(d)) };
    let bad = ["x".to_string(), "123456789".into(), "d".repeat(129), "has spaces in it".into(), "tab\there-12".into()];
    for (id, d) in (1..).zip(bad) {
        raw.request(id, method::LOGIN, device(d.clone())).await;
        let resp = raw.response().await;
        assert_eq!(status_of(&resp), Status::BadRequest, "{d:?}");
        assert!(resp.message.contains("device_id"), "{}", resp.message);
    }
    for (id, d) in [(10, "0123456789".to_string()), (11, "d".repeat(128))] {
        let mut ok = Raw::connect(ts.tcp()).await;
        ok.request(id, method::LOGIN, device(d.clone())).await;
        assert_eq!(status_of(&ok.response().await), Status::Ok, "{d:?}");
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(ts: &TestServer) -> Ws {
    tokio_tungstenite::connect_async(ts.ws_url()).await.expect("websocket upgrade").0
}

async fn ws_send(ws: &mut Ws, kind: Kind) {
    // The TCP frame without its 4-byte length prefix is the envelope.
    let frame = guildhall_protocol::encode_frame(kind);
    ws.send(WsMessage::Binary(frame[4..].to_vec().into())).await.expect("send");
}

/// Reads a closing WebSocket to its end: the Close envelope, the close frame
/// after it, then a clean end of stream (not a reset, which would have made
/// the peer's system discard what it had not read).
async fn ws_close_of(ws: &mut Ws) -> (pb::Close, CloseFrame) {
    let mut envelope = None;
    let frame = loop {
        match tokio::time::timeout(common::WAIT, ws.next()).await.expect("server closes in time") {
            Some(Ok(WsMessage::Binary(b))) => {
                if let Kind::Close(c) = guildhall_protocol::decode_envelope(&b).expect("envelope") {
                    envelope = Some(c);
                }
            }
            Some(Ok(WsMessage::Close(Some(frame)))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    match tokio::time::timeout(common::WAIT, ws.next()).await.expect("the stream ends") {
        None | Some(Err(WsError::ConnectionClosed)) => {}
        other => panic!("expected a clean end after the close handshake, got {other:?}"),
    }
    (envelope.expect("a Close envelope before the close frame"), frame)
}

/// Issue 14, defect 4: a message over the limit gets the Close envelope,
/// then a close frame with code 1009 and the reason, and the close
/// handshake completes.
#[tokio::test]
async fn a_websocket_message_over_the_limit_is_closed_with_1009_and_the_reason() {
    let ts = start(common::config()).await;
    let other = bystander(&ts).await;
    let mut ws = ws_connect(&ts).await;
    ws.send(WsMessage::Binary(vec![7u8; 70_000].into())).await.expect("send");
    let (close, frame) = ws_close_of(&mut ws).await;
    assert_eq!(close.status(), Status::FrameTooLarge);
    assert_eq!(frame.code, CloseCode::Size);
    assert!(frame.reason.contains("exceeds the maximum"), "{}", frame.reason);

    let mut ws = ws_connect(&ts).await;
    ws.send(WsMessage::Text("hello".into())).await.expect("send");
    let (close, frame) = ws_close_of(&mut ws).await;
    assert_eq!(close.status(), Status::MalformedFrame);
    assert_eq!(frame.code, CloseCode::Protocol);
    still_plays(&other).await;
}

/// Issue 14, defect 4: a session taken over on another connection closes
/// the first WebSocket with 1001 (going away) and the reason.
#[tokio::test]
async fn a_websocket_whose_session_is_taken_over_is_closed_with_1001() {
    let ts = start(common::config()).await;
    let login = |id| {
        let credential = Some(pb::login_request::Credential::DeviceId("ws-takeover-device".into()));
        let payload = pb::LoginRequest { credential }.encode_to_vec().into();
        Kind::Request(pb::Request { id, method: method::LOGIN.into(), payload, ack: 0 })
    };
    let mut first = ws_connect(&ts).await;
    ws_send(&mut first, login(1)).await;
    match first.next().await {
        Some(Ok(WsMessage::Binary(_))) => {}
        other => panic!("expected the login response, got {other:?}"),
    }
    let mut second = ws_connect(&ts).await;
    ws_send(&mut second, login(1)).await;
    let (close, frame) = ws_close_of(&mut first).await;
    assert_eq!(close.status(), Status::SessionTakenOver);
    assert_eq!(frame.code, CloseCode::Away);
    assert!(frame.reason.contains("another device"), "{}", frame.reason);
}

/// Issue 14, defect 4: an HTTP request on the WebSocket port that is not an
/// upgrade gets an HTTP answer that says what the port is.
#[tokio::test]
async fn a_plain_http_request_on_the_websocket_port_gets_an_http_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ts = start(common::config()).await;
    let addr = ts.server.ws_addr().expect("ws listener");
    for (request, want) in [
        ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 Upgrade Required"),
        (
            "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "HTTP/1.1 404 Not Found",
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tokio::time::timeout(common::WAIT, stream.read_to_string(&mut answer)).await.unwrap().unwrap();
        assert!(answer.starts_with(want), "{answer}");
        assert!(answer.contains("ws://host:port/") || answer.contains("path /"), "{answer}");
    }
}
