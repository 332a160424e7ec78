//! Issue 2 acceptance through the real client SDK over real sockets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start, start_on, TestServer, WAIT};
use guildhall_client::{Client, ClientConfig, ClientError, ClientEvent};
use guildhall_game::GameEvent;
use guildhall_protocol::pb::{self, Status};
use guildhall_store::{MemoryStore, Store};
use tokio::sync::broadcast;

async fn next_event(events: &mut broadcast::Receiver<ClientEvent>, want: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let ev = tokio::time::timeout(WAIT, events.recv()).await.expect("event in time").expect("event channel");
        if want(&ev) {
            return ev;
        }
    }
}

async fn next_push(pushes: &mut tokio::sync::mpsc::UnboundedReceiver<pb::Push>) -> pb::Push {
    tokio::time::timeout(WAIT, pushes.recv()).await.expect("push in time").expect("push channel")
}

fn notice(push: &pb::Push) -> Option<&str> {
    match push.event.as_ref()?.kind.as_ref()? {
        pb::event::Kind::Notice(n) => Some(&n.text),
        _ => None,
    }
}

fn publish_notice(ts: &TestServer, player_id: &str, text: &str) -> usize {
    let topic = guildhall_game::player_topic(player_id);
    ts.server.runtime().pubsub().publish(&topic, GameEvent::Notice { text: text.into() }.encode())
}

/// Battles until mana runs out, moving the injected clock to regenerate.
async fn battle_until_level_up(ts: &TestServer, client: &Client) -> pb::BattleResponse {
    for _ in 0..200 {
        match client.battle().await {
            Ok(b) if b.leveled_up => return b,
            Ok(_) => {}
            Err(e) if e.is_status(Status::NotEnoughMana) => ts.clock.advance(Duration::from_secs(60)),
            Err(e) => panic!("battle failed: {e}"),
        }
    }
    panic!("no level-up in 200 battles");
}

#[tokio::test]
async fn a_player_plays_drops_resumes_and_gets_what_it_missed() {
    let ts = start(common::config()).await;
    let config = ClientConfig { auto_reconnect: false, ..ClientConfig::tcp(ts.tcp()) };
    let client = Client::connect(config).await.unwrap();
    let mut pushes = client.pushes();
    let login = client.login_device("hero-device").await.unwrap();
    assert!(login.created);
    assert_eq!(login.resume_window_ms, 60_000);
    let start = login.player.unwrap();
    assert_eq!((start.gold, start.gems, start.mana, start.level), (500, 50, 50, 1));

    // Chests until some card has the three copies an upgrade needs.
    let mut upgradable = None;
    for _ in 0..4 {
        let chest = client.open_chest().await.unwrap();
        assert_eq!(chest.cards.len(), 3);
        let p = client.get_player().await.unwrap().player.unwrap();
        upgradable = p.cards.iter().find(|c| c.count >= 3 && c.level == 1).map(|c| c.kind);
        if upgradable.is_some() {
            break;
        }
    }
    let kind = upgradable.expect("this device's seeded chests give three copies of a card");
    let up = client.upgrade_card(kind).await.unwrap();
    assert_eq!(up.card.unwrap().level, 2);
    let refused = client.upgrade_card(kind).await.unwrap_err();
    assert!(refused.is_status(Status::NotEnoughCards), "{refused}");

    // Levelling up pushes a notice and the new player state.
    let leveled = battle_until_level_up(&ts, &client).await;
    assert_eq!(leveled.player.as_ref().unwrap().level, 2);
    let first = next_push(&mut pushes).await;
    assert_eq!(notice(&first), Some("Level 2 reached!"));
    let second = next_push(&mut pushes).await;
    assert!(matches!(second.event.unwrap().kind, Some(pb::event::Kind::PlayerUpdated(_))));

    // The connection drops; notices arrive while the player is away.
    let mut events = client.events();
    client.drop_connection().await;
    next_event(&mut events, |e| *e == ClientEvent::Disconnected).await;
    assert_eq!(publish_notice(&ts, &login.player_id, "missed one"), 1);
    assert_eq!(publish_notice(&ts, &login.player_id, "missed two"), 1);
    let resumed = client.resume().await.unwrap();
    assert_eq!(resumed.player_id, login.player_id);
    assert_eq!(notice(&next_push(&mut pushes).await), Some("missed one"));
    assert_eq!(notice(&next_push(&mut pushes).await), Some("missed two"));

    let before = client.get_player().await.unwrap().player.unwrap();
    let after = client.get_player().await.unwrap().player.unwrap();
    assert_eq!(before, after, "reads change nothing");
    assert_eq!(client.stats().session_losses, 0);
}

#[tokio::test]
async fn a_request_whose_answer_is_lost_is_retransmitted_and_applied_once() {
    let ts = start(common::config()).await;
    let client = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    client.login_device("unlucky-device").await.unwrap();
    let mut won = 0;
    let mut results = 0;
    for _ in 0..8 {
        // The request is written, then the connection is cut: the client
        // reconnects, resumes, and re-sends it with its original id.
        let battle: pb::BattleResponse =
            client.send_and_drop(guildhall_protocol::method::BATTLE, &pb::BattleRequest {}).await.unwrap();
        results += 1;
        won += battle.won as u64;
        let p = battle.player.unwrap();
        assert_eq!(p.battles, results, "each battle ran exactly once");
    }
    let p = client.get_player().await.unwrap().player.unwrap();
    assert_eq!((p.battles, p.wins), (8, won));
    assert!(client.stats().resumes >= 8);
    let chest: pb::OpenChestResponse =
        client.send_and_drop(guildhall_protocol::method::OPEN_CHEST, &pb::OpenChestRequest {}).await.unwrap();
    let p = client.get_player().await.unwrap().player.unwrap();
    assert_eq!((p.chests_opened, p.gold), (1, chest.gold));
}

#[tokio::test]
async fn after_the_window_the_client_must_log_in_again() {
    let ts = start(common::config()).await;
    let config = ClientConfig { auto_reconnect: false, ..ClientConfig::tcp(ts.tcp()) };
    let client = Client::connect(config).await.unwrap();
    let login = client.login_device("away-too-long").await.unwrap();
    client.battle().await.unwrap();
    let mut events = client.events();
    client.drop_connection().await;
    next_event(&mut events, |e| *e == ClientEvent::Disconnected).await;
    common::connections(&ts, 0).await;

    ts.clock.advance(Duration::from_secs(61));
    ts.server.maintain().await;
    assert_eq!(ts.server.session_count(), 0);
    match client.resume().await {
        Err(ClientError::SessionLost { status: Status::SessionExpired, .. }) => {}
        other => panic!("expected SessionLost(SessionExpired), got {other:?}"),
    }
    let again = client.login_device("away-too-long").await.unwrap();
    assert_eq!(again.player_id, login.player_id);
    assert!(!again.created);
    assert_eq!(again.player.unwrap().battles, 1, "progress kept across sessions");
}

#[tokio::test]
async fn a_second_device_takes_over_and_the_first_is_told() {
    let ts = start(common::config()).await;
    let phone = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    let mut phone_events = phone.events();
    phone.login_device("shared-account").await.unwrap();
    let tablet = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    tablet.login_device("shared-account").await.unwrap();

    let ev = next_event(&mut phone_events, |e| matches!(e, ClientEvent::Closed(..))).await;
    assert!(matches!(ev, ClientEvent::Closed(Status::SessionTakenOver, _)), "{ev:?}");
    let err = phone.get_player().await.unwrap_err();
    assert_eq!(err.status(), Some(Status::SessionTakenOver));
    assert!(tablet.open_chest().await.is_ok());
    assert_eq!(ts.server.session_count(), 1);
}

#[tokio::test]
async fn websocket_clients_play_and_resume_like_tcp_ones() {
    let ts = start(common::config()).await;
    let client = Client::connect(ClientConfig::ws(ts.ws_url())).await.unwrap();
    let login = client.login_device("browser-device").await.unwrap();
    client.open_chest().await.unwrap();
    let battle: pb::BattleResponse =
        client.send_and_drop(guildhall_protocol::method::BATTLE, &pb::BattleRequest {}).await.unwrap();
    assert_eq!(battle.player.unwrap().battles, 1);
    let p = client.get_player().await.unwrap().player.unwrap();
    assert_eq!((p.player_id, p.chests_opened, p.battles), (login.player_id, 1, 1));
}

#[tokio::test]
async fn a_graceful_stop_and_restart_loses_nothing() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let mut config = common::config();
    config.flush_interval_ms = 3_600_000; // nothing is flushed by time
    let ts = start_on(config.clone(), store.clone(), Default::default()).await;
    let clock = ts.clock.clone();
    let mut before = Vec::new();
    for i in 0..5 {
        let c = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
        c.login_device(&format!("restart-device-{i}")).await.unwrap();
        c.open_chest().await.unwrap(); // durable
        for _ in 0..3 {
            c.battle().await.unwrap(); // write-behind only
        }
        before.push((c.clone(), c.get_player().await.unwrap().player.unwrap()));
    }
    let (first, _) = &before[0];
    let mut events = first.events();
    // One more that has not logged in: it waits for the stop signal itself,
    // where a connection in a session hears of it through its session.
    let mut anonymous = common::Raw::connect(ts.tcp()).await;
    anonymous.send(pb::envelope::Kind::Ping(pb::Ping { nonce: 7 })).await;
    assert_eq!(anonymous.recv().await, Some(pb::envelope::Kind::Pong(pb::Pong { nonce: 7 })), "served");
    ts.server.shutdown().await;
    let ev = next_event(&mut events, |e| matches!(e, ClientEvent::CloseReceived(..))).await;
    // The connection's own stop, not the end of the sessions after the
    // drain ("server stopped"), which is all a connection deaf to the stop
    // signal would get.
    assert_eq!(ev, ClientEvent::CloseReceived(Status::ShuttingDown, "server is shutting down".into()));
    let close = anonymous.close_reason().await;
    assert_eq!((close.status(), close.reason.as_str()), (Status::ShuttingDown, "server is shutting down"));

    let ts = start_on(config, store, clock).await;
    for (i, (_, was)) in before.iter().enumerate() {
        let c = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
        let login = c.login_device(&format!("restart-device-{i}")).await.unwrap();
        assert_eq!(login.player.as_ref(), Some(was), "state identical after the restart");
    }
}

#[tokio::test]
async fn admin_http_shows_health_metrics_and_entities() {
    let ts = start(common::config()).await;
    let admin = ts.server.admin_addr().unwrap();
    let client = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    let mut pushes = client.pushes();
    let login = client.login_device("inspected-device").await.unwrap();
    client.open_chest().await.unwrap();
    assert!(client.guild_chat_post("nobody hears").await.is_err(), "not in a guild");

    let (status, body) = http(admin, "GET", "/healthz", "").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = http(admin, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("guildhall_logins_total"), "{body}");
    assert!(body.contains("guildhall_request_seconds_bucket{"), "request latency as a bucketed histogram: {body}");
    // Issue 14, defect 8: every family says what it is; no gauge is named
    // like a counter; request errors name the method and the status.
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (family, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(body.contains(&format!("# HELP {family} ")), "no HELP for {family}");
        assert!(!(kind == "gauge" && family.ends_with("_total")), "gauge {family} ends in _total");
    }
    // Other tests in this process share the recorder: look for this one's.
    let chat_errors = |l: &&str| l.starts_with("guildhall_request_errors_total{") && l.contains("guild.chat_post");
    let errors = body.lines().find(chat_errors).expect("request errors by method");
    assert!(errors.contains("method=\"guild.chat_post\"") && errors.contains("status=\""), "{errors}");
    let (_, body) = http(admin, "GET", "/entities", "").await;
    let kinds: serde_json::Value = serde_json::from_str(&body).unwrap();
    let player = kinds["kinds"].as_array().unwrap().iter().find(|k| k["kind"] == "player").expect("player kind");
    assert_eq!(player["active"], 1);
    let (_, body) = http(admin, "GET", "/entities/player", "").await;
    assert!(body.contains(&login.player_id));
    let (status, body) = http(admin, "GET", &format!("/entities/player/{}", login.player_id), "").await;
    assert_eq!(status, 200);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["gold"], 400);
    assert_eq!(state["chests_opened"], 1);
    let (status, _) = http(admin, "GET", "/entities/player/nobody", "").await;
    assert_eq!(status, 404);
    let (status, _) = http(admin, "GET", "/entities/dragon", "").await;
    assert_eq!(status, 404);

    let (status, body) =
        http(admin, "POST", &format!("/players/{}/notice", login.player_id), "server restarts at noon").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"delivered_to\":1"));
    assert_eq!(notice(&next_push(&mut pushes).await), Some("server restarts at noon"));
}

/// Issue 14, defect 7: an operator's ban revokes every token, refuses logins
/// with BANNED and closes the live session, which the SDK does not resume;
/// lifting it lets the device log in again, but old tokens stay revoked.
#[tokio::test]
async fn a_ban_closes_the_session_refuses_logins_and_revokes_tokens_until_lifted() {
    let ts = start(common::config()).await;
    let admin = ts.server.admin_addr().unwrap();
    let bystander = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    bystander.login_device(&common::device_id("bystander")).await.unwrap();
    let client = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    let mut events = client.events();
    let device = common::device_id("rule-breaker");
    let login = client.login_device(&device).await.unwrap();
    let ban = format!("/players/{}/ban", login.player_id);

    assert_eq!(http(admin, "POST", &ban, " ").await.0, 400, "a ban needs a reason");
    assert_eq!(http(admin, "POST", "/players/nobody-at-all/ban", "typo").await.0, 404, "no account is created");
    let (status, body) = http(admin, "POST", &ban, "selling accounts").await;
    assert_eq!(status, 200, "{body}");
    match next_event(&mut events, |e| matches!(e, ClientEvent::Closed(..))).await {
        ClientEvent::Closed(status, reason) => {
            assert_eq!(status, Status::Banned);
            assert!(reason.contains("selling accounts"), "{reason}");
        }
        _ => unreachable!(),
    }
    assert_eq!(client.get_player().await.unwrap_err().status(), Some(Status::Banned));
    assert_eq!(client.stats().reconnects, 0, "a banned session is not resumed");

    let again = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    let refused = again.login_device(&device).await.unwrap_err();
    assert_eq!(refused.status(), Some(Status::Banned), "{refused:?}");
    assert!(refused.to_string().contains("selling accounts"), "{refused}");
    let refused = again.login_token(&login.token).await.unwrap_err();
    assert_eq!(refused.status(), Some(Status::Banned), "{refused:?}");
    bystander.get_player().await.expect("other players never notice");

    let (status, body) = http(admin, "DELETE", &ban, "").await;
    assert_eq!(status, 200, "{body}");
    let stale = again.login_token(&login.token).await.unwrap_err();
    assert_eq!(stale.status(), Some(Status::TokenRevoked), "tokens revoked by the ban stay revoked");
    let back = again.login_device(&device).await.unwrap();
    assert_eq!(back.player_id, login.player_id);
}

/// A minimal HTTP/1.1 exchange (the tests need no HTTP client library).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out)).await.unwrap().unwrap();
    let status = out.split(' ').nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}
