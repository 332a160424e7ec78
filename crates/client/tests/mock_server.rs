//! The client against a scripted mock server on a real socket.
//!
//! Each test plays the server side by hand with [`RawConnection`], so it can
//! lose a response, replay out of turn, send duplicates or close with a
//! status exactly where the protocol is delicate, and check what the client
//! sends back (resume point, acks, re-sent ids). No sleeps: every wait ends
//! when the awaited message or event arrives; `WAIT` only turns a hang into a
//! failure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use guildhall_client::pb::{self, envelope::Kind};
use guildhall_client::{method, Client, ClientConfig, ClientError, ClientEvent, RawConnection, Status};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 64 * 1024;

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn config(addr: SocketAddr) -> ClientConfig {
    ClientConfig { request_timeout: Duration::from_secs(5), ..ClientConfig::tcp(addr) }
}

/// The server side of one connection.
struct Peer {
    conn: RawConnection,
    peer: SocketAddr,
    /// Acks received so far, in order.
    acks: Vec<u64>,
}

impl Peer {
    async fn accept(l: &TcpListener) -> Peer {
        let (stream, peer) = timeout(WAIT, l.accept()).await.expect("client connects").unwrap();
        Peer { conn: RawConnection::from_tcp(stream, MAX_FRAME), peer, acks: Vec::new() }
    }

    async fn recv(&mut self) -> Option<Kind> {
        timeout(WAIT, self.conn.recv()).await.expect("client sends in time").expect("valid envelope")
    }

    /// The next request, recording acks on the way.
    async fn request(&mut self) -> pb::Request {
        loop {
            match self.recv().await.expect("connection open") {
                Kind::Request(r) => return r,
                Kind::Ack(a) => self.acks.push(a.seq),
                other => panic!("expected a request, got {other:?}"),
            }
        }
    }

    /// Waits for an Ack of at least `seq`; returns it.
    async fn ack_at_least(&mut self, seq: u64) -> u64 {
        if let Some(a) = self.acks.iter().copied().find(|a| *a >= seq) {
            return a;
        }
        loop {
            match self.recv().await.expect("connection open") {
                Kind::Ack(a) => {
                    self.acks.push(a.seq);
                    if a.seq >= seq {
                        return a.seq;
                    }
                }
                Kind::Ping(p) => self.conn.send(Kind::Pong(pb::Pong { nonce: p.nonce })).await.unwrap(),
                other => panic!("expected an ack, got {other:?}"),
            }
        }
    }

    async fn respond(&mut self, id: u64, seq: u64, payload: impl Message) {
        let payload = Bytes::from(payload.encode_to_vec());
        let r = pb::Response { id, seq, status: Status::Ok as i32, message: String::new(), payload };
        self.conn.send(Kind::Response(r)).await.unwrap();
    }

    async fn refuse(&mut self, id: u64, seq: u64, status: Status, message: &str) {
        let r = pb::Response { id, seq, status: status as i32, message: message.into(), payload: Bytes::new() };
        self.conn.send(Kind::Response(r)).await.unwrap();
    }

    async fn push(&mut self, seq: u64, text: &str) {
        let event = pb::Event { kind: Some(pb::event::Kind::Notice(pb::Notice { text: text.into() })) };
        self.conn.send(Kind::Push(pb::Push { seq, topic: "player/p1".into(), event: Some(event) })).await.unwrap();
    }

    /// Answers the login the client must send now with seq `seq`.
    async fn login(&mut self, seq: u64, resume_window_ms: u64) -> u64 {
        let req = self.request().await;
        assert_eq!(req.method, method::LOGIN);
        let login = pb::LoginRequest::decode(req.payload).unwrap();
        assert!(login.credential.is_some());
        let resp = pb::LoginResponse {
            player_id: "p1".into(),
            token: "tok-1".into(),
            token_expires_at_ms: 1,
            resume_window_ms,
            created: true,
            player: Some(pb::Player { player_id: "p1".into(), ..Default::default() }),
        };
        self.respond(req.id, seq, resp).await;
        req.id
    }

    /// Reads the client's resume request; returns (id, last_seq).
    async fn resume_request(&mut self) -> (u64, u64) {
        let req = self.request().await;
        assert_eq!(req.method, method::RESUME);
        let r = pb::ResumeRequest::decode(req.payload).unwrap();
        assert_eq!(r.token, "tok-1");
        (req.id, r.last_seq)
    }
}

async fn wait_event(events: &mut broadcast::Receiver<ClientEvent>, want: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let e = timeout(WAIT, events.recv()).await.expect("event in time").expect("event channel open");
        if want(&e) {
            return e;
        }
    }
}

fn notice(p: &pb::Push) -> &str {
    match p.event.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(pb::event::Kind::Notice(n)) => &n.text,
        other => panic!("not a notice: {other:?}"),
    }
}

#[tokio::test]
async fn a_lost_response_is_replayed_on_resume_and_delivered_once() {
    let (l, addr) = listener().await;
    let local: IpAddr = "127.0.0.2".parse().unwrap();
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        assert_eq!(c1.peer.ip(), local, "bound to the configured source address");
        c1.login(1, 5_000).await;
        let battle = c1.request().await;
        assert_eq!((battle.id, battle.method.as_str()), (2, method::BATTLE));
        assert_eq!(battle.ack, 1, "the login answer acknowledged on the next request");
        c1.push(2, "hello").await;
        // The server executed it, but the connection dies before the answer.
        drop(c1);

        let mut c2 = Peer::accept(&l).await;
        assert_eq!(c2.peer.ip(), local, "reconnects bind too");
        let (id, last_seq) = c2.resume_request().await;
        assert!(id > 2, "a fresh id for the resume");
        assert_eq!(last_seq, 2, "login response and push were received");
        let won = pb::BattleResponse { won: true, gold_earned: 7, ..Default::default() };
        c2.respond(2, 3, won.clone()).await; // replayed answer
        c2.push(2, "hello").await; // a second copy: must be dropped
        c2.respond(id, 4, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 3 }).await;
        assert_eq!(c2.ack_at_least(4).await, 4, "resume acknowledged");
        c2.respond(2, 5, won).await; // same id again, new seq: must not reach the caller twice
                                     // A ping answered means everything before it was read.
        c2.conn.send(Kind::Ping(pb::Ping { nonce: 77 })).await.unwrap();
        loop {
            match c2.recv().await.expect("connection open") {
                Kind::Pong(p) if p.nonce == 77 => break,
                Kind::Ack(a) => c2.acks.push(a.seq),
                other => panic!("expected the pong, got {other:?}"),
            }
        }
        c2
    });

    let client = Client::connect(ClientConfig { local_addr: Some(local), ..config(addr) }).await.unwrap();
    let mut events = client.events();
    let mut pushes = client.pushes();
    let login = client.login_device("dev-1").await.unwrap();
    assert_eq!((login.player_id.as_str(), client.player_id().as_deref()), ("p1", Some("p1")));
    assert_eq!(client.token().as_deref(), Some("tok-1"));
    assert_eq!(client.last_seq(), 1);

    let battle = client.battle().await.unwrap();
    assert_eq!(battle.gold_earned, 7);
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, ClientEvent::Resumed { .. })).await,
        ClientEvent::Resumed { replayed: 1 }
    );
    let _c2 = server.await.unwrap();
    assert_eq!(client.last_seq(), 5);

    let push = pushes.recv().await.unwrap();
    assert_eq!((push.seq, notice(&push)), (2, "hello"));
    assert!(pushes.try_recv().is_err(), "the replayed copy was dropped");
    let stats = client.stats();
    assert_eq!((stats.reconnects, stats.resumes, stats.retransmits), (1, 1, 0));
    assert_eq!(stats.duplicates, 2, "one push copy, one response copy");
    assert_eq!(stats.pushes, 1);
    assert_eq!(stats.errors, 0);
}

#[tokio::test]
async fn an_unanswered_request_is_resent_with_its_original_id_after_resume() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        let req = c1.request().await;
        assert_eq!((req.id, req.method.as_str()), (2, method::OPEN_CHEST));
        drop(c1); // never executed

        let mut c2 = Peer::accept(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 1);
        c2.respond(id, 2, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 1 }).await;
        let again = c2.request().await;
        assert_eq!((again.id, again.method.as_str()), (2, method::OPEN_CHEST), "same id, same method");
        assert_eq!(c2.acks.last(), Some(&2), "acked the resume before re-sending");
        c2.respond(2, 3, pb::OpenChestResponse { cards: vec![], gold: 99 }).await;
        // A later call gets a new id, above every earlier one.
        let next = c2.request().await;
        assert_eq!((next.id, next.method.as_str()), (id + 1, method::PLAYER_GET));
        c2.respond(next.id, 4, pb::GetPlayerResponse::default()).await;
        c2
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    client.login_device("dev-1").await.unwrap();
    assert_eq!(client.open_chest().await.unwrap().gold, 99);
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, ClientEvent::Resumed { .. })).await,
        ClientEvent::Resumed { replayed: 0 }
    );
    client.get_player().await.unwrap();
    server.await.unwrap();
    assert_eq!(client.stats().retransmits, 1);
    assert_eq!(client.last_seq(), 4);
}

#[tokio::test]
async fn send_and_drop_resolves_once_from_the_replay() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        let req = c1.request().await;
        assert_eq!(req.method, method::UPGRADE_CARD);
        assert_eq!(pb::UpgradeCardRequest::decode(req.payload).unwrap().kind, 3);
        assert_eq!(c1.recv().await, None, "the client dropped the connection after writing");

        let mut c2 = Peer::accept(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 1);
        let card = pb::Card { kind: 3, level: 2, ..Default::default() };
        c2.respond(req.id, 2, pb::UpgradeCardResponse { card: Some(card), gold: 10 }).await;
        c2.respond(id, 3, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 2 }).await;
        c2.ack_at_least(3).await;
        c2
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    client.login_device("dev-1").await.unwrap();
    let resp: pb::UpgradeCardResponse =
        client.send_and_drop(method::UPGRADE_CARD, &pb::UpgradeCardRequest { kind: 3 }).await.unwrap();
    assert_eq!(resp.card.unwrap().level, 2);
    wait_event(&mut events, |e| matches!(e, ClientEvent::Resumed { replayed: 1 })).await;
    server.await.unwrap();
    assert_eq!(client.stats().retransmits, 0, "answered by the replay, nothing re-sent");
}

#[tokio::test]
async fn an_expired_session_fails_pending_calls_and_the_app_can_log_in_again() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        c1.push(2, "one").await;
        let req = c1.request().await;
        assert_eq!(req.method, method::PLAYER_GET);
        drop(c1);

        let mut c2 = Peer::accept(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 2);
        c2.refuse(id, 0, Status::SessionExpired, "session ended; log in again").await;
        // The connection stays; the application logs in again on it.
        c2.login(1, 5_000).await;
        c2
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    let mut pushes = client.take_pushes().unwrap();
    assert!(client.take_pushes().is_none(), "one receiver");
    client.login_device("dev-1").await.unwrap();
    let err = client.get_player().await.unwrap_err();
    assert!(matches!(err, ClientError::SessionLost { status: Status::SessionExpired, .. }), "{err:?}");
    assert_eq!(err.status(), Some(Status::SessionExpired));
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, ClientEvent::SessionLost(..))).await,
        ClientEvent::SessionLost(Status::SessionExpired, "session ended; log in again".into())
    );
    assert!(!client.is_logged_in());
    assert_eq!(client.stats().session_losses, 1);

    client.login_device("dev-1").await.unwrap();
    assert!(client.is_logged_in());
    assert_eq!(client.last_seq(), 1, "a new session counts from 1");
    assert_eq!(notice(&pushes.recv().await.unwrap()), "one");
    server.await.unwrap();
}

#[tokio::test]
async fn a_taken_over_session_ends_the_client_without_reconnecting() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        c1.request().await;
        let close = pb::Close { status: Status::SessionTakenOver as i32, reason: "logged in on another device".into() };
        c1.conn.send(Kind::Close(close)).await.unwrap();
        drop(c1);
        l
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    client.login_device("dev-1").await.unwrap();
    let err = client.battle().await.unwrap_err();
    assert!(matches!(err, ClientError::Closed { status: Status::SessionTakenOver, .. }), "{err:?}");
    assert_eq!(
        wait_event(&mut events, |e| matches!(e, ClientEvent::CloseReceived(..))).await,
        ClientEvent::CloseReceived(Status::SessionTakenOver, "logged in on another device".into())
    );
    wait_event(&mut events, |e| matches!(e, ClientEvent::Closed(Status::SessionTakenOver, _))).await;
    let later = client.get_player().await.unwrap_err();
    assert_eq!(later.status(), Some(Status::SessionTakenOver), "{later:?}");
    assert!(client.is_closed());
    assert_eq!(client.stats().reconnects, 0);
    let l = server.await.unwrap();
    // Nothing knocked again.
    assert!(timeout(Duration::from_millis(50), l.accept()).await.is_err());
}

#[tokio::test]
async fn pings_are_answered_and_acks_come_every_16_messages() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        c1.conn.send(Kind::Ping(pb::Ping { nonce: 42 })).await.unwrap();
        assert_eq!(c1.recv().await, Some(Kind::Pong(pb::Pong { nonce: 42 })));
        for seq in 2..=21 {
            c1.push(seq, &format!("n{seq}")).await;
        }
        assert_eq!(c1.ack_at_least(1).await, 16, "after 16 messages: the login answer and 15 pushes");
        // The client's own ping.
        match c1.recv().await {
            Some(Kind::Ping(p)) => c1.conn.send(Kind::Pong(pb::Pong { nonce: p.nonce })).await.unwrap(),
            other => panic!("expected a ping, got {other:?}"),
        }
        c1
    });

    // A long ack interval: only the every-16 rule acknowledges here.
    let client = Client::connect(ClientConfig { ack_interval: Duration::from_secs(60), ..config(addr) }).await.unwrap();
    let mut pushes = client.pushes();
    client.login_device("dev-1").await.unwrap();
    for seq in 2..=21 {
        let p = timeout(WAIT, pushes.recv()).await.unwrap().unwrap();
        assert_eq!(p.seq, seq, "in order");
    }
    let rtt = client.ping().await.unwrap();
    assert!(rtt < WAIT);
    let _server_side = server.await.unwrap();
    assert_eq!(client.last_seq(), 21);
}

#[tokio::test]
async fn acknowledgements_ride_on_requests() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        for seq in 2..=4 {
            c1.push(seq, "x").await;
        }
        let get = c1.request().await;
        assert_eq!(get.method, method::PLAYER_GET);
        assert_eq!(get.ack, 4, "the request acknowledges the login answer and the pushes");
        c1.respond(get.id, 5, pb::GetPlayerResponse::default()).await;
        let again = c1.request().await;
        assert_eq!(again.ack, 5, "and the next one the answer before it");
        c1.respond(again.id, 6, pb::GetPlayerResponse::default()).await;
        assert!(c1.acks.is_empty(), "no Ack frame of its own: {:?}", c1.acks);
        c1
    });
    // A long ack interval and fewer than 16 messages: only requests acknowledge.
    let client = Client::connect(ClientConfig { ack_interval: Duration::from_secs(60), ..config(addr) }).await.unwrap();
    let mut pushes = client.pushes();
    client.login_device("dev-1").await.unwrap();
    for _ in 2..=4 {
        timeout(WAIT, pushes.recv()).await.unwrap().unwrap();
    }
    client.get_player().await.unwrap();
    client.get_player().await.unwrap();
    let _c1 = server.await.unwrap();
}

#[tokio::test]
async fn unacknowledged_messages_are_acked_within_the_interval() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        assert_eq!(c1.ack_at_least(1).await, 1);
        for seq in 2..=4 {
            c1.push(seq, "x").await;
        }
        assert_eq!(c1.ack_at_least(4).await, 4, "the timer acknowledges without 16 messages");
        c1
    });
    let client =
        Client::connect(ClientConfig { ack_interval: Duration::from_millis(50), ..config(addr) }).await.unwrap();
    let mut pushes = client.pushes();
    client.login_device("dev-1").await.unwrap();
    for _ in 2..=4 {
        pushes.recv().await.unwrap();
    }
    let _c1 = server.await.unwrap();
}

#[tokio::test]
async fn reconnecting_gives_up_when_the_resume_window_has_passed() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 300).await;
        c1.request().await;
        // The whole server goes away.
        drop(l);
        drop(c1);
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    client.login_device("dev-1").await.unwrap();
    let err = client.get_player().await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    match wait_event(&mut events, |e| matches!(e, ClientEvent::ReconnectFailed { .. })).await {
        ClientEvent::ReconnectFailed { attempts } => assert!(attempts >= 1),
        _ => unreachable!(),
    }
    assert!(!client.is_logged_in());
    server.await.unwrap();
}

#[tokio::test]
async fn a_pre_login_close_fails_the_call_and_the_next_call_connects_again() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.request().await;
        let close = pb::Close { status: Status::ServerFull as i32, reason: "full".into() };
        c1.conn.send(Kind::Close(close)).await.unwrap();
        drop(c1);
        let mut c2 = Peer::accept(&l).await;
        c2.login(1, 5_000).await;
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    let err = client.login_device("dev-1").await.unwrap_err();
    assert!(matches!(&err, ClientError::Closed { status: Status::ServerFull, reason } if reason == "full"), "{err:?}");
    client.login_device("dev-1").await.unwrap();
    wait_event(&mut events, |e| matches!(e, ClientEvent::Connected)).await;
    server.await.unwrap();
}

#[tokio::test]
async fn timeouts_refusals_and_pipelined_calls() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        let slow = c1.request().await; // not answered in time
        let a = c1.request().await;
        let b = c1.request().await;
        assert_eq!((slow.id, a.id.min(b.id), a.id.max(b.id)), (2, 3, 4));
        // Out of order, with the late answer to the timed-out call in between.
        let (battle, chest) = if a.method == method::BATTLE { (a, b) } else { (b, a) };
        c1.refuse(chest.id, 2, Status::RateLimited, "over 20 requests per second").await;
        c1.respond(slow.id, 3, pb::GetPlayerResponse::default()).await;
        c1.respond(battle.id, 4, pb::BattleResponse { gold_earned: 1, ..Default::default() }).await;
        c1
    });

    let client =
        Client::connect(ClientConfig { request_timeout: Duration::from_millis(300), ..config(addr) }).await.unwrap();
    client.login_device("dev-1").await.unwrap();
    assert!(matches!(client.get_player().await, Err(ClientError::Timeout)));
    let (battle, chest) = tokio::join!(client.battle(), client.open_chest());
    assert_eq!(battle.unwrap().gold_earned, 1);
    let err = chest.unwrap_err();
    assert_eq!(err.status(), Some(Status::RateLimited));
    assert_eq!(err.message(), Some("over 20 requests per second"));
    let _c1 = server.await.unwrap();
    let stats = client.stats();
    assert_eq!((stats.requests, stats.errors, stats.timeouts), (4, 2, 1));
}

#[tokio::test]
async fn oversized_requests_are_refused_locally() {
    let (l, addr) = listener().await;
    let client = Client::connect(ClientConfig { max_frame: 1024, ..config(addr) }).await.unwrap();
    let _c1 = Peer::accept(&l).await;
    let big = pb::LoginRequest { credential: Some(pb::login_request::Credential::DeviceId("x".repeat(2000))) };
    let err = client.call::<_, pb::LoginResponse>(method::LOGIN, &big).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn the_client_works_over_websocket_and_resumes_there_too() {
    let (l, addr) = listener().await;
    let url = format!("ws://{addr}/");
    async fn accept_ws(l: &TcpListener) -> Peer {
        let (stream, peer) = timeout(WAIT, l.accept()).await.unwrap().unwrap();
        let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        Peer { conn: RawConnection::from_ws(ws, MAX_FRAME), peer, acks: Vec::new() }
    }
    let server = tokio::spawn(async move {
        let mut c1 = accept_ws(&l).await;
        c1.login(1, 5_000).await;
        let req = c1.request().await;
        assert_eq!(req.method, method::BATTLE);
        drop(c1);
        let mut c2 = accept_ws(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 1);
        c2.respond(id, 2, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 1 }).await;
        let again = c2.request().await;
        assert_eq!(again.id, req.id);
        c2.respond(again.id, 3, pb::BattleResponse { won: true, ..Default::default() }).await;
        c2
    });
    let client = Client::connect(ClientConfig::ws(url)).await.unwrap();
    client.login_device("dev-1").await.unwrap();
    assert!(client.battle().await.unwrap().won);
    let _c2 = server.await.unwrap();
    assert_eq!(client.stats().resumes, 1);
}

#[tokio::test]
async fn without_auto_reconnect_a_drop_fails_calls_and_resume_is_manual() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        c1.push(2, "before").await;
        while let Some(k) = c1.recv().await {
            assert!(matches!(k, Kind::Ack(_)), "{k:?}");
        }

        let mut c2 = Peer::accept(&l).await; // lazily, for the next call
        let req = c2.request().await;
        assert_eq!(req.method, method::PLAYER_GET);
        c2.refuse(req.id, 0, Status::Unauthenticated, "log in first").await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 2);
        c2.push(3, "missed").await;
        c2.respond(id, 4, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 3 }).await;
        c2.ack_at_least(4).await;
        c2
    });

    let client = Client::connect(ClientConfig { auto_reconnect: false, ..config(addr) }).await.unwrap();
    let mut events = client.events();
    let mut pushes = client.pushes();
    client.login_device("dev-1").await.unwrap();
    assert_eq!(notice(&pushes.recv().await.unwrap()), "before");
    client.drop_connection().await;
    wait_event(&mut events, |e| matches!(e, ClientEvent::Disconnected)).await;
    assert!(client.is_logged_in(), "the session is still resumable by hand");
    let err = client.get_player().await.unwrap_err();
    assert_eq!(err.status(), Some(Status::Unauthenticated));
    let resumed = client.resume().await.unwrap();
    assert_eq!(resumed.replayed_to, 3);
    assert_eq!(notice(&pushes.recv().await.unwrap()), "missed");
    wait_event(&mut events, |e| matches!(e, ClientEvent::Resumed { replayed: 1 })).await;
    server.await.unwrap();
    assert_eq!(client.stats().reconnects, 0, "nothing automatic");
}

#[tokio::test]
async fn a_server_shutdown_close_is_followed_by_reconnect_and_resume() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        let close = pb::Close { status: Status::ShuttingDown as i32, reason: "server is shutting down".into() };
        c1.conn.send(Kind::Close(close)).await.unwrap();
        drop(c1);
        let mut c2 = Peer::accept(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 1);
        c2.respond(id, 2, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 1 }).await;
        c2
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    client.login_device("dev-1").await.unwrap();
    let mut seen = Vec::new();
    loop {
        let e = wait_event(&mut events, |_| true).await;
        let done = matches!(e, ClientEvent::Resumed { .. });
        seen.push(e);
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            ClientEvent::LoggedIn { player_id: "p1".into() },
            ClientEvent::CloseReceived(Status::ShuttingDown, "server is shutting down".into()),
            ClientEvent::Disconnected,
            ClientEvent::Connected,
            ClientEvent::Resumed { replayed: 0 },
        ]
    );
    let _c2 = server.await.unwrap();
    assert!(client.is_logged_in());
}

#[tokio::test]
async fn a_sequence_gap_is_repaired_by_resuming() {
    let (l, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut c1 = Peer::accept(&l).await;
        c1.login(1, 5_000).await;
        c1.push(3, "third").await; // seq 2 went missing
        assert_eq!(c1.recv().await, None, "the client resynchronises on a new connection");
        let mut c2 = Peer::accept(&l).await;
        let (id, last_seq) = c2.resume_request().await;
        assert_eq!(last_seq, 1, "resumes from before the hole");
        c2.push(2, "second").await;
        c2.push(3, "third").await;
        c2.respond(id, 4, pb::ResumeResponse { player_id: "p1".into(), replayed_to: 3 }).await;
        c2
    });

    let client = Client::connect(config(addr)).await.unwrap();
    let mut events = client.events();
    let mut pushes = client.pushes();
    client.login_device("dev-1").await.unwrap();
    wait_event(&mut events, |e| matches!(e, ClientEvent::Resumed { replayed: 2 })).await;
    assert_eq!(notice(&pushes.recv().await.unwrap()), "second");
    assert_eq!(notice(&pushes.recv().await.unwrap()), "third");
    assert!(pushes.try_recv().is_err());
    assert_eq!(client.last_seq(), 4);
    let _c2 = server.await.unwrap();
}

#[tokio::test]
async fn dropping_every_handle_closes_the_connection() {
    let (l, addr) = listener().await;
    let client = Client::connect(config(addr)).await.unwrap();
    let mut c1 = Peer::accept(&l).await;
    let clone = client.clone();
    drop(client);
    drop(clone);
    assert_eq!(c1.recv().await, None);
}
