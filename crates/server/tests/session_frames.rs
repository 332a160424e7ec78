//! Session guarantees checked frame by frame (no SDK in between), so that each
//! step is exact: sequence numbers, replay after resume, first-result-wins for
//! re-sent request ids, the resume window, takeover.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{start, status_of, Raw};
use guildhall_game::GameEvent;
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, envelope::Kind, Status};
use prost::Message;

async fn player(raw: &mut Raw, id: u64) -> pb::Player {
    raw.request(id, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    let resp = raw.response_to(id).await;
    assert_eq!(status_of(&resp), Status::Ok);
    pb::GetPlayerResponse::decode(resp.payload).unwrap().player.unwrap()
}

#[tokio::test]
async fn a_re_sent_request_id_gets_its_first_result_and_runs_once() {
    let ts = start(common::config()).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    let login = raw.login(1, "once").await;
    assert_eq!(login.player.as_ref().unwrap().chests_opened, 0);

    raw.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let first = raw.response().await;
    assert_eq!(status_of(&first), Status::Ok);
    raw.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let again = raw.response().await;
    assert_eq!(again.payload, first.payload, "the same cards, not a second chest");
    assert!(again.seq > first.seq, "the repeat is a new server message");

    let p = player(&mut raw, 3).await;
    assert_eq!(p.chests_opened, 1);
    assert_eq!(p.gold, 400);

    // An id below the newest that the session never saw cannot be answered.
    raw.request(1, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::DuplicateRequest);
}

#[tokio::test]
async fn another_request_under_a_remembered_id_is_refused_not_answered_with_the_first_result() {
    let ts = start(common::config()).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "reuser").await;
    raw.request(100, method::BATTLE, pb::BattleRequest {}).await;
    let battle = raw.response().await;
    assert_eq!(status_of(&battle), Status::Ok);

    // No ack in between: id 100 is remembered, and this is not its request.
    raw.request(100, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let reused = raw.response().await;
    assert_eq!(status_of(&reused), Status::RequestIdReused, "{reused:?}");
    assert!(reused.payload.is_empty(), "not the battle's bytes");
    // The same method with another payload is another request too.
    raw.request(100, method::UPGRADE_CARD, pb::UpgradeCardRequest { kind: 1 }).await;
    assert_eq!(status_of(&raw.response().await), Status::RequestIdReused);
    raw.request(101, method::UPGRADE_CARD, pb::UpgradeCardRequest { kind: 2 }).await;
    assert_eq!(status_of(&raw.response().await), Status::NotEnoughCards);
    raw.request(101, method::UPGRADE_CARD, pb::UpgradeCardRequest { kind: 3 }).await;
    assert_eq!(status_of(&raw.response().await), Status::RequestIdReused);
    // The true re-send still gets its first result, and nothing ran twice.
    raw.request(100, method::BATTLE, pb::BattleRequest {}).await;
    assert_eq!(raw.response().await.payload, battle.payload);
    let p = player(&mut raw, 102).await;
    assert_eq!((p.battles, p.chests_opened), (1, 0), "the chest was never opened, and the battle ran once");
}

#[tokio::test]
async fn an_ack_riding_on_a_request_counts_as_an_ack() {
    let ts = start(common::config()).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "rider").await;
    raw.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let chest = raw.response().await;
    assert_eq!(status_of(&chest), Status::Ok);

    // Unacknowledged, a re-sent id 2 gets its first result again...
    raw.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let again = raw.response().await;
    assert_eq!((status_of(&again), again.payload), (Status::Ok, chest.payload));

    // ...until a request acknowledges it: then the client has it, and the
    // server has let it go.
    let payload = pb::GetPlayerRequest {}.encode_to_vec().into();
    raw.send(Kind::Request(pb::Request { id: 3, method: method::PLAYER_GET.into(), payload, ack: again.seq })).await;
    assert_eq!(status_of(&raw.response_to(3).await), Status::Ok);
    raw.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    assert_eq!(status_of(&raw.response().await), Status::DuplicateRequest);
    assert_eq!(player(&mut raw, 4).await.chests_opened, 1);
}

#[tokio::test]
async fn resume_replays_missed_responses_and_pushes_then_dedupes_the_retry() {
    let ts = start(common::config()).await;
    let mut a = Raw::connect(ts.tcp()).await;
    let login = a.login(1, "traveller").await;
    let mut last_seq = 1; // the login response
    a.send(Kind::Ack(pb::Ack { seq: last_seq })).await;

    // A battle whose response is lost: the request is sent, the connection
    // dies before the client reads anything.
    a.request(2, method::BATTLE, pb::BattleRequest {}).await;
    // Wait until the server has answered (it buffers the answer), then cut.
    let battle = a.response().await;
    assert_eq!(status_of(&battle), Status::Ok);
    drop(a);

    // While the player is away, an operator notice arrives.
    let topic = guildhall_game::player_topic(&login.player_id);
    let delivered =
        ts.server.runtime().pubsub().publish(&topic, GameEvent::Notice { text: "welcome back".into() }.encode());
    assert_eq!(delivered, 1, "the detached session is still subscribed");

    // Resume on a new connection, claiming only the login response was seen.
    let mut b = Raw::connect(ts.tcp()).await;
    b.request(3, method::RESUME, pb::ResumeRequest { token: login.token.clone(), last_seq }).await;
    let mut replayed = Vec::new();
    let resume = loop {
        match b.recv().await.unwrap() {
            Kind::Response(r) if r.id == 3 => break r,
            Kind::Response(r) => replayed.push(("response", r.seq, r.id, r.payload)),
            Kind::Push(p) => replayed.push(("push", p.seq, 0, Bytes::new())),
            _ => {}
        }
    };
    assert_eq!(status_of(&resume), Status::Ok, "{}", resume.message);
    let resume_body = pb::ResumeResponse::decode(resume.payload.clone()).unwrap();
    assert_eq!(resume_body.replayed_to, 3);
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!((replayed[0].0, replayed[0].1, replayed[0].2), ("response", 2, 2));
    assert_eq!(replayed[0].3, battle.payload, "the replayed answer is the original");
    assert_eq!((replayed[1].0, replayed[1].1), ("push", 3));
    last_seq = resume.seq;
    assert_eq!(last_seq, 4);

    // The client, unsure, re-sends request 2: first result, not a second battle.
    b.request(2, method::BATTLE, pb::BattleRequest {}).await;
    let retry = b.response().await;
    assert_eq!(retry.payload, battle.payload);
    assert_eq!(player(&mut b, 4).await.battles, 1);
}

#[tokio::test]
async fn a_request_cut_off_mid_flight_runs_once_across_the_reconnect() {
    let ts = start(common::config()).await;
    let mut a = Raw::connect(ts.tcp()).await;
    let login = a.login(1, "cut").await;
    // Send and vanish without reading the answer.
    a.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    drop(a);

    let mut b = Raw::connect(ts.tcp()).await;
    b.request(3, method::RESUME, pb::ResumeRequest { token: login.token, last_seq: 1 }).await;
    // Whatever was replayed, re-send the unanswered request with its id.
    let mut first = None;
    loop {
        match b.recv().await.unwrap() {
            Kind::Response(r) if r.id == 3 => {
                assert_eq!(status_of(&r), Status::Ok);
                break;
            }
            Kind::Response(r) if r.id == 2 => first = Some(r.payload),
            _ => {}
        }
    }
    b.request(2, method::OPEN_CHEST, pb::OpenChestRequest {}).await;
    let retry = b.response_to(2).await;
    assert_eq!(status_of(&retry), Status::Ok);
    if let Some(first) = first {
        assert_eq!(retry.payload, first);
    }
    let p = player(&mut b, 4).await;
    assert_eq!((p.chests_opened, p.gold), (1, 400), "executed exactly once");
}

#[tokio::test]
async fn after_the_resume_window_the_session_is_gone() {
    let mut config = common::config();
    config.resume_window_secs = 60;
    let ts = start(config).await;

    let mut a = Raw::connect(ts.tcp()).await;
    let login = a.login(1, "late").await;
    drop(a);
    // The resume window starts when the server notices the drop.
    detached(&ts).await;

    // 59 s later the session can still be resumed.
    ts.clock.advance(Duration::from_secs(59));
    ts.server.maintain().await;
    let mut b = Raw::connect(ts.tcp()).await;
    b.request(2, method::RESUME, pb::ResumeRequest { token: login.token.clone(), last_seq: 1 }).await;
    assert_eq!(status_of(&b.response().await), Status::Ok);
    drop(b);
    detached(&ts).await;

    // 60 s after that drop it cannot.
    ts.clock.advance(Duration::from_secs(60));
    let mut c = Raw::connect(ts.tcp()).await;
    c.request(3, method::RESUME, pb::ResumeRequest { token: login.token.clone(), last_seq: 1 }).await;
    let resp = c.response().await;
    assert_eq!(status_of(&resp), Status::SessionExpired);
    assert!(resp.message.contains("log in again"));
    ts.server.maintain().await;
    assert_eq!(ts.server.session_count(), 0);
    assert_eq!(ts.server.runtime().pubsub().topic_count(), 0, "its subscriptions went with it");

    // Logging in again works and keeps the player's progress.
    let again = c.login(4, "late").await;
    assert_eq!(again.player_id, login.player_id);
    assert!(!again.created);
}

/// Waits until the server has seen every connection close.
async fn detached(ts: &common::TestServer) {
    common::connections(ts, 0).await;
}

#[tokio::test]
async fn a_second_device_takes_the_session_over() {
    let ts = start(common::config()).await;
    let mut phone = Raw::connect(ts.tcp()).await;
    let first = phone.login(1, "same-device-id").await;
    let mut tablet = Raw::connect(ts.tcp()).await;
    let second = tablet.login(1, "same-device-id").await;
    assert_eq!(first.player_id, second.player_id);

    let close = phone.close_reason().await;
    assert_eq!(close.status(), Status::SessionTakenOver);
    assert!(close.reason.contains("another device"));
    assert!(phone.closed().await);

    // The old token's session is over; the new one plays.
    let mut again = Raw::connect(ts.tcp()).await;
    again.request(1, method::RESUME, pb::ResumeRequest { token: first.token, last_seq: 1 }).await;
    assert_eq!(status_of(&again.response().await), Status::SessionExpired);
    assert_eq!(player(&mut tablet, 2).await.player_id, second.player_id);
    assert_eq!(ts.server.session_count(), 1);
}

/// Pings the server every `every` until it closes the connection, answering
/// its pings; returns the Close and when it came.
/// Pings every `every` until the server closes the connection; a minute of
/// (virtual) pinging without a Close fails the test rather than hanging it.
async fn ping_until_closed(raw: &mut Raw, every: Duration) -> (pb::Close, tokio::time::Instant) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(tokio::time::Instant::now() < give_up, "still open after a minute of pings");
        tokio::select! {
            kind = raw.recv() => match kind {
                Some(Kind::Pong(_) | Kind::Ping(_)) => {}
                Some(Kind::Close(close)) => return (close, tokio::time::Instant::now()),
                other => panic!("expected pongs then a Close, got {other:?}"),
            },
            _ = tokio::time::sleep(every) => raw.send(Kind::Ping(pb::Ping { nonce: 7 })).await,
        }
    }
}

// Network liveness runs on tokio's clock, paused here: the waits below are
// virtual and end when the server acts.
#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_pinged_and_a_silent_one_closed() {
    let mut config = common::config();
    config.heartbeat_secs = 1;
    config.idle_timeout_secs = 2;
    let ts = start(config).await;
    let mut raw = Raw::connect(ts.tcp()).await;
    raw.login(1, "sleepy").await;
    match raw.recv().await.unwrap() {
        Kind::Ping(_) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    let close = raw.close_reason().await;
    assert_eq!(close.status(), Status::IdleTimeout);
    assert_eq!(close.reason, "no complete frame in 2 s");
    assert_eq!(ts.server.session_count(), 1, "the session waits for a resume");
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_logs_in_is_closed_at_the_login_deadline_however_often_it_pings() {
    let mut config = common::config();
    config.login_deadline_secs = 5;
    config.heartbeat_secs = 1;
    config.idle_timeout_secs = 2;
    let ts = start(config).await;
    let start = tokio::time::Instant::now();
    let mut pinger = Raw::connect(ts.tcp()).await;
    // A refused request does not count as a login either.
    pinger.request(1, method::PLAYER_GET, pb::GetPlayerRequest {}).await;
    assert_eq!(status_of(&pinger.response().await), Status::Unauthenticated);
    let (close, at) = ping_until_closed(&mut pinger, Duration::from_millis(700)).await;
    assert_eq!(close.status(), Status::LoginTimeout, "{close:?}");
    assert_eq!(close.reason, "no login within 5 s of connecting");
    assert_eq!(at - start, Duration::from_secs(5), "closed at the deadline, not the idle timeout's");
    assert!(pinger.closed().await);
    common::connections(&ts, 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_logged_in_connection_outlives_the_login_deadline_and_a_logout_starts_a_new_one() {
    let mut config = common::config();
    config.login_deadline_secs = 5;
    let ts = start(config).await;
    let start = tokio::time::Instant::now();
    let mut raw = Raw::connect(ts.tcp()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    raw.login(1, "slow-starter").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(player(&mut raw, 2).await.chests_opened, 0, "still open 8 s after connecting");
    raw.request(3, method::LOGOUT, pb::LogoutRequest {}).await;
    assert_eq!(status_of(&raw.response_to(3).await), Status::Ok);
    let logged_out = tokio::time::Instant::now();
    assert_eq!(logged_out - start, Duration::from_secs(8));
    let (close, at) = ping_until_closed(&mut raw, Duration::from_millis(700)).await;
    assert_eq!(close.status(), Status::LoginTimeout, "{close:?}");
    assert_eq!(at - logged_out, Duration::from_secs(5));
}

#[tokio::test]
async fn a_resume_claiming_messages_never_sent_is_refused_and_the_session_survives() {
    let ts = start(common::config()).await;
    let mut a = Raw::connect(ts.tcp()).await;
    let login = a.login(1, "claimer").await;
    a.request(2, method::BATTLE, pb::BattleRequest {}).await;
    let battle = a.response().await;
    assert_eq!(battle.seq, 2);
    drop(a);

    let mut b = Raw::connect(ts.tcp()).await;
    b.request(3, method::RESUME, pb::ResumeRequest { token: login.token.clone(), last_seq: 1000 }).await;
    let refused = b.response().await;
    assert_eq!(status_of(&refused), Status::BadRequest, "{refused:?}");
    assert!(refused.message.contains("1000"), "{}", refused.message);
    // Nothing was acknowledged by the refused claim: an honest resume still
    // gets the battle's answer replayed.
    b.request(4, method::RESUME, pb::ResumeRequest { token: login.token, last_seq: 1 }).await;
    let replayed = b.response().await;
    assert_eq!((replayed.id, replayed.seq, replayed.payload), (2, 2, battle.payload));
    assert_eq!(status_of(&b.response_to(4).await), Status::Ok);
}

#[tokio::test]
async fn a_resume_on_another_connection_tells_the_first_one_its_session_was_taken_over() {
    let ts = start(common::config()).await;
    let mut a = Raw::connect(ts.tcp()).await;
    let login = a.login(1, "two-phones").await;
    let mut b = Raw::connect(ts.tcp()).await;
    b.request(1, method::RESUME, pb::ResumeRequest { token: login.token, last_seq: 1 }).await;
    assert_eq!(status_of(&b.response_to(1).await), Status::Ok);
    let close = a.close_reason().await;
    assert_eq!(close.status(), Status::SessionTakenOver, "{close:?}");
    assert!(a.closed().await);
    // The session plays on, on the second connection.
    b.request(2, method::BATTLE, pb::BattleRequest {}).await;
    assert_eq!(status_of(&b.response().await), Status::Ok);
}
