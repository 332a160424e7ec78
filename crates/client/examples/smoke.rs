//! Smoke test against a running server: `cargo run -p guildhall-client
//! --example smoke -- 127.0.0.1:7350 [ws://127.0.0.1:7351/]`.
//!
//! Logs in, plays a little, drops the connection on purpose (plain and in
//! the middle of a call), checks that the session resumes and every call
//! gets its one result, then checks takeover by a second device and logout.

use std::net::SocketAddr;
use std::time::Duration;

use guildhall_client::{method, pb, Client, ClientConfig, ClientError, ClientEvent, Status};
use tokio::sync::broadcast;

async fn wait_for(events: &mut broadcast::Receiver<ClientEvent>, want: fn(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("event in time").unwrap();
        if want(&e) {
            return e;
        }
    }
}

async fn run(config: ClientConfig, device: &str) -> Result<(), ClientError> {
    let label = format!("{:?}", config.endpoint);
    let client = Client::connect(config.clone()).await?;
    let mut events = client.events();
    let mut pushes = client.pushes();
    let login = client.login_device(device).await?;
    println!(
        "[{label}] login: player {} created={} window={}ms",
        login.player_id, login.created, login.resume_window_ms
    );
    println!("[{label}] last_seq after login: {}", client.last_seq());

    let player = client.get_player().await?.player.unwrap_or_default();
    println!("[{label}] gold {} mana {}/{}", player.gold, player.mana, player.mana_cap);
    match client.battle().await {
        Ok(b) => println!("[{label}] battle: won={} gold+{}", b.won, b.gold_earned),
        Err(e) => println!("[{label}] battle refused: {e}"),
    }
    match client.open_chest().await {
        Ok(c) => println!("[{label}] chest: {} cards, gold now {}", c.cards.len(), c.gold),
        Err(e) => println!("[{label}] chest refused: {e}"),
    }
    match client.upgrade_card(9999).await {
        Ok(_) => println!("[{label}] upgrade of an unknown card succeeded?!"),
        Err(e) => println!("[{label}] upgrade refused as expected: {:?} {e}", e.status()),
    }
    println!("[{label}] rtt {:?}", client.ping().await?);

    client.drop_connection().await;
    let resumed = wait_for(&mut events, |e| matches!(e, ClientEvent::Resumed { .. })).await;
    println!("[{label}] after drop: {resumed:?}, last_seq {}", client.last_seq());
    let p = client.get_player().await?;
    println!("[{label}] after resume, player.get works: gold {}", p.player.unwrap_or_default().gold);

    let r: Result<pb::BattleResponse, _> = client.send_and_drop(method::BATTLE, &pb::BattleRequest {}).await;
    println!("[{label}] send_and_drop battle -> {:?}", r.as_ref().map(|b| b.gold_earned).map_err(|e| e.to_string()));
    let resumed = wait_for(&mut events, |e| matches!(e, ClientEvent::Resumed { .. })).await;
    println!("[{label}] {resumed:?}; stats {:?}", client.stats());

    // Many calls, pipelined, across a drop.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get_player().await.map(|_| ()) })
        })
        .collect();
    client.drop_connection().await;
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => println!("[{label}] pipelined call failed: {e}"),
        }
    }
    println!("[{label}] pipelined calls across a drop: {ok}/10 ok; stats {:?}", client.stats());

    // Battles whose connection drops while they are in flight: each runs
    // exactly once (the server's battle counter matches the successes).
    let before = client.get_player().await?.player.unwrap_or_default().battles;
    let mut won_or_lost = 0;
    for round in 0..20 {
        let drop_soon = async {
            for _ in 0..round % 4 {
                tokio::task::yield_now().await;
            }
            client.drop_connection().await;
        };
        let (result, ()) = tokio::join!(client.battle(), drop_soon);
        match result {
            Ok(_) => won_or_lost += 1,
            Err(e) if e.status().is_some_and(|s| s != Status::Ok) => println!("[{label}] battle refused: {e}"),
            Err(e) => panic!("battle failed across a drop: {e}"),
        }
    }
    let after = client.get_player().await?.player.unwrap_or_default().battles;
    println!(
        "[{label}] in-flight battles: {won_or_lost} ok, server counted {}; stats {:?}",
        after - before,
        client.stats()
    );
    assert_eq!(after - before, won_or_lost, "every battle ran exactly once");

    // Another device logs in: this one is taken over.
    let other = Client::connect(config.clone()).await?;
    other.login_device(device).await?;
    let closed = wait_for(&mut events, |e| matches!(e, ClientEvent::Closed(..))).await;
    println!("[{label}] first client: {closed:?}");
    let err = client.get_player().await.unwrap_err();
    assert_eq!(err.status(), Some(Status::SessionTakenOver), "{err:?}");

    // Logout ends the session: a resume of it fails.
    let token = other.token().unwrap();
    other.logout().await?;
    let third = Client::connect(config).await?;
    let err = third
        .call::<_, pb::ResumeResponse>(method::RESUME, &pb::ResumeRequest { token, last_seq: 0 })
        .await
        .unwrap_err();
    println!("[{label}] resume after logout: {err}");
    while let Ok(p) = pushes.try_recv() {
        println!("[{label}] push #{} {}", p.seq, p.topic);
    }
    other.close().await;
    third.close().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().unwrap_or_else(|| "127.0.0.1:7350".into()).parse().expect("host:port");
    let device = format!("smoke-{}", std::process::id());
    run(ClientConfig::tcp(addr), &device).await.expect("tcp smoke");
    if let Some(url) = args.next() {
        run(ClientConfig::ws(url), &format!("{device}-ws")).await.expect("ws smoke");
    }
    println!("smoke OK");
}
