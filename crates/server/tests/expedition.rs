//! Expeditions through the real client: sign-up, points from battles, live
//! standings, the end of the period, rewards paid exactly once (also across a
//! restart in the middle of paying), and the next period beginning.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{start_on, TestServer, WAIT};
use guildhall_client::{Client, ClientConfig};
use guildhall_game::expedition::{reward_for_rank, Expedition, ExpeditionMsg, ExpeditionReply, SEASON};
use guildhall_game::{Player, PlayerMsg};
use guildhall_protocol::pb::{self, Status};
use guildhall_store::{MemoryStore, Store};

const PERIOD_SECS: u64 = 3600; // longer than the clock moves for mana in these tests

fn config(payouts_per_tick: usize) -> guildhall_server::Config {
    let mut c = common::config();
    c.expedition_period_secs = PERIOD_SECS;
    c.expedition_payouts_per_tick = payouts_per_tick;
    c
}

/// A logged-in player in the guild labelled `label`: the first one founds
/// it (and leads it), the others join. Returns the client, the player id
/// and the guild's id.
async fn member(
    ts: &TestServer,
    device: &str,
    label: &str,
    guilds: &mut HashMap<String, String>,
) -> (Client, String, String) {
    let c = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    let id = c.login_device(&common::device_id(device)).await.unwrap().player_id;
    let guild = match guilds.get(label) {
        Some(g) => {
            assert!(c.guild_join(g).await.unwrap().joined);
            g.clone()
        }
        None => {
            let created = c.guild_create(&format!("Guild {label}"), &label.to_uppercase(), "en", true).await.unwrap();
            let g = created.guild.unwrap().summary.unwrap().guild_id;
            guilds.insert(label.to_string(), g.clone());
            g
        }
    };
    (c, id, guild)
}

async fn gems(c: &Client) -> u64 {
    c.get_player().await.unwrap().player.unwrap().gems
}

/// Battles `n` times (moving the clock for mana) and returns the points won.
async fn battle(ts: &TestServer, c: &Client, n: usize) -> u64 {
    let mut points = 0;
    for _ in 0..n {
        ts.clock.advance(Duration::from_secs(15));
        points += c.battle().await.unwrap().points as u64;
    }
    points
}

/// Points are cast from battles: once the casts are delivered, the hub's
/// next answer counts them.
async fn wait_points(ts: &TestServer, guild: &str, points: u64) {
    ts.server.runtime().settle().await;
    let status = ts
        .server
        .runtime()
        .call::<Expedition>(SEASON, ExpeditionMsg::Status { guild: Some(guild.into()) })
        .await
        .unwrap()
        .unwrap();
    let ExpeditionReply::Status(status) = status else { panic!("{status:?}") };
    let mine = status.standings.iter().find(|s| s.guild == guild).expect("signed up");
    assert_eq!(mine.points, points, "{guild} points");
}

async fn next_standings(pushes: &mut tokio::sync::mpsc::UnboundedReceiver<pb::Push>) -> pb::Event {
    loop {
        let push = tokio::time::timeout(WAIT, pushes.recv()).await.expect("push in time").unwrap();
        let event = push.event.unwrap();
        if matches!(event.kind, Some(pb::event::Kind::ExpeditionStandings(_) | pb::event::Kind::ExpeditionEnded(_))) {
            return event;
        }
    }
}

#[tokio::test]
async fn a_period_signs_up_scores_pushes_standings_pays_by_rank_and_starts_again() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ts = start_on(config(100), store.clone(), Default::default()).await;
    let hub_version = || async { store.get(b"e/expedition/season").await.unwrap().map(|r| r.version) };

    let loner = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    loner.login_device("no-guild-device").await.unwrap();
    let err = loner.expedition_sign_up().await.unwrap_err();
    assert!(err.is_status(Status::ExpeditionNoGuild), "{err}");

    let mut guilds = HashMap::new();
    let (a1, _, ga) = member(&ts, "a1", "ga", &mut guilds).await;
    let mut a1_pushes = a1.pushes();
    let (a2, _, _) = member(&ts, "a2", "ga", &mut guilds).await;
    let (b1, _, gb) = member(&ts, "b1", "gb", &mut guilds).await;
    let (_idle, _, _) = member(&ts, "b-idle", "gb", &mut guilds).await;

    let err = a2.expedition_sign_up().await.unwrap_err();
    assert!(err.is_status(Status::ExpeditionNotOfficer), "a plain member cannot sign up: {err}");
    let up = a1.expedition_sign_up().await.unwrap();
    assert_eq!((up.period, up.bracket), (1, 0));
    let written = hub_version().await;
    assert!(written.is_some(), "a sign-up is durable before its reply");
    assert_eq!(a1.expedition_sign_up().await.unwrap().bracket, 0, "idempotent for the guild");
    assert_eq!(hub_version().await, written, "a repeated sign-up writes nothing");
    b1.expedition_sign_up().await.unwrap();

    let a_points = battle(&ts, &a1, 3).await + battle(&ts, &a2, 3).await;
    let b_points = battle(&ts, &b1, 1).await;
    wait_points(&ts, &ga, a_points).await;
    wait_points(&ts, &gb, b_points).await;
    assert!(a_points > b_points, "six battles outscore one");

    // Standings are pushed on the tick.
    ts.server.maintain().await;
    let event = next_standings(&mut a1_pushes).await;
    let Some(pb::event::Kind::ExpeditionStandings(s)) = event.kind else { panic!("{event:?}") };
    assert_eq!(
        s.standings.iter().map(|s| (s.guild_id.clone(), s.rank)).collect::<Vec<_>>(),
        [(ga.clone(), 1), (gb.clone(), 2)]
    );
    let status = a1.expedition_status().await.unwrap();
    assert!(status.signed_up);
    assert_eq!(status.standings[0].points, a_points);

    let before = (gems(&a1).await, gems(&a2).await, gems(&b1).await, gems(&_idle).await);
    ts.clock.advance(Duration::from_secs(PERIOD_SECS));
    ts.server.maintain().await; // ends the period, writes the plan
    let event = next_standings(&mut a1_pushes).await;
    assert!(matches!(event.kind, Some(pb::event::Kind::ExpeditionEnded(_))), "{event:?}");
    // The hub's timer fires once a second of the injected clock.
    ts.clock.advance(Duration::from_secs(1));
    ts.server.maintain().await; // pays
    ts.clock.advance(Duration::from_secs(1));
    ts.server.maintain().await; // nothing left to pay
    let after = (gems(&a1).await, gems(&a2).await, gems(&b1).await, gems(&_idle).await);
    assert_eq!(after.0 - before.0, reward_for_rank(1));
    assert_eq!(after.1 - before.1, reward_for_rank(1));
    assert_eq!(after.2 - before.2, reward_for_rank(2));
    assert_eq!(after.3, before.3, "a member who did not score is not paid");

    let next = a1.expedition_status().await.unwrap();
    assert_eq!(next.period, 2, "the next period began by itself");
    assert!(!next.signed_up);
    assert_eq!(next.last_results[0].guild_id, ga);
}

#[tokio::test]
async fn rewards_are_paid_exactly_once_across_a_restart_during_the_payout() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ts = start_on(config(2), store.clone(), Default::default()).await;
    let clock = ts.clock.clone();
    let mut guilds = HashMap::new();
    let mut members = Vec::new();
    let mut guild = String::new();
    for i in 0..5 {
        let (c, id, g) = member(&ts, &format!("pay-{i}"), "gpay", &mut guilds).await;
        members.push((c, id));
        guild = g;
    }
    members[0].0.expedition_sign_up().await.unwrap();
    let mut total = 0;
    for (c, _) in &members {
        total += battle(&ts, c, 1).await;
    }
    wait_points(&ts, &guild, total).await;
    let mut before = Vec::new();
    for (c, _) in &members {
        before.push(gems(c).await);
    }

    clock.advance(Duration::from_secs(PERIOD_SECS));
    ts.server.maintain().await; // plan written
    clock.advance(Duration::from_secs(1));
    ts.server.maintain().await; // two of five paid
    let state = ts.server.runtime().state_json("expedition", "season").await.unwrap().unwrap();
    assert_eq!(state["payouts"]["1"].as_array().unwrap().iter().filter(|p| p["paid"] == true).count(), 2);
    ts.server.shutdown().await;

    let ts = start_on(config(2), store, clock).await;
    for _ in 0..5 {
        ts.clock.advance(Duration::from_secs(1));
        ts.server.maintain().await; // the rest, then nothing
    }
    let state = ts.server.runtime().state_json("expedition", "season").await.unwrap().unwrap();
    assert!(state["payouts"].as_object().unwrap().is_empty(), "plan complete");
    assert_eq!(state["gems_paid"], 5 * reward_for_rank(1));
    for (i, (_, id)) in members.iter().enumerate() {
        let p = ts.server.runtime().state_json("player", id).await.unwrap().unwrap();
        assert_eq!(p["gems"].as_u64().unwrap() - before[i], reward_for_rank(1), "member {i} paid exactly once");
    }
    // Even a repeated payment order (the crash window between paying and
    // marking paid) pays nothing more: the transaction id was applied.
    let id = &members[0].1;
    let change = guildhall_game::Change { gems: 100, kind: guildhall_game::ChangeKind::Reward, ..Default::default() };
    let again = PlayerMsg::Apply { tx: format!("expedition/1/{id}"), change, notify: false, notice: None };
    ts.server.runtime().call::<Player>(id, again).await.unwrap().unwrap();
    let p = ts.server.runtime().state_json("player", id).await.unwrap().unwrap();
    assert_eq!(p["gems"].as_u64().unwrap() - before[0], reward_for_rank(1));
}

#[tokio::test]
async fn sign_ups_and_points_survive_a_restart_and_numbering_goes_on() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let ts = start_on(config(100), store.clone(), Default::default()).await;
    let clock = ts.clock.clone();
    let mut guilds = HashMap::new();
    let (a1, _, ga) = member(&ts, "r-a1", "ra", &mut guilds).await;
    let (b1, _, gb) = member(&ts, "r-b1", "rb", &mut guilds).await;
    a1.expedition_sign_up().await.unwrap();
    b1.expedition_sign_up().await.unwrap();
    let a_points = battle(&ts, &a1, 2).await;
    wait_points(&ts, &ga, a_points).await;
    // The sign-ups are parts of the hub; the points wait for its
    // write-behind, and a graceful stop writes them.
    ts.server.shutdown().await;
    drop((a1, b1));

    let ts = start_on(config(100), store, clock).await;
    wait_points(&ts, &ga, a_points).await;
    wait_points(&ts, &gb, 0).await;
    let (c1, _, gc) = member(&ts, "r-c1", "rc", &mut guilds).await;
    let up = c1.expedition_sign_up().await.unwrap();
    assert_eq!(up.bracket, 0, "a third sign-up joins the first bracket");
    let status = c1.expedition_status().await.unwrap();
    assert_eq!(
        status.standings.iter().map(|s| (s.guild_id.clone(), s.rank)).collect::<Vec<_>>(),
        [(ga, 1), (gb, 2), (gc, 3)],
        "ranked by points, then in sign-up order across the restart"
    );
}
