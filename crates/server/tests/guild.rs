//! Issue 3, guild area: guilds, roles, chat, help requests and the guild
//! directory, through the real client SDK against a real server with an
//! injected clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start, start_on, TestServer, WAIT};
use guildhall_client::{Client, ClientConfig, ClientError};
use guildhall_entity::Clock;
use guildhall_game::guild::{Guild, GuildMsg, GuildReply, HELP_LIFETIME_MS};
use guildhall_game::{Change, ChangeKind, Player, PlayerMsg};
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, event::Kind, Status};
use guildhall_store::{MemoryStore, Store};
use tokio::sync::mpsc::UnboundedReceiver;

struct P {
    client: Client,
    pushes: UnboundedReceiver<pb::Push>,
    id: String,
}

async fn player(ts: &TestServer, device: &str) -> P {
    let client = Client::connect(ClientConfig::tcp(ts.tcp())).await.unwrap();
    // Taken before login, so that no push is missed.
    let pushes = client.pushes();
    let id = client.login_device(&common::device_id(device)).await.unwrap().player_id;
    P { client, pushes, id }
}

fn refused<T: std::fmt::Debug>(r: Result<T, ClientError>, status: Status) {
    match r {
        Err(e) if e.is_status(status) => {}
        other => panic!("expected {status:?}, got {other:?}"),
    }
}

/// The next push whose event matches `want`, skipping others.
async fn push_where<T>(pushes: &mut UnboundedReceiver<pb::Push>, want: impl Fn(Kind) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let push = tokio::time::timeout_at(deadline, pushes.recv()).await.expect("push in time").expect("pushes open");
        if let Some(t) = push.event.and_then(|e| e.kind).and_then(&want) {
            return t;
        }
    }
}

/// Mints cards for a test player (a fixture, as chests would).
async fn grant(ts: &TestServer, player: &str, kind: u32, n: i64) {
    let change = Change { cards: vec![(kind, n)], kind: ChangeKind::Reward, ..Change::default() };
    let tx = format!("test/grant/{player}/{kind}/{n}/{}", ts.clock.now_ms());
    let msg = PlayerMsg::Apply { tx, change, notify: false, notice: None };
    ts.server.runtime().call::<Player>(player, msg).await.unwrap().unwrap();
}

async fn me(p: &P) -> pb::Player {
    p.client.get_player().await.unwrap().player.unwrap()
}

fn count_of(p: &pb::Player, kind: u32) -> u32 {
    p.cards.iter().find(|c| c.kind == kind).map_or(0, |c| c.count)
}

fn all_cards(p: &pb::Player) -> u32 {
    p.cards.iter().map(|c| c.count).sum()
}

async fn create(p: &P, name: &str, tag: &str, open: bool) -> String {
    let r = p.client.guild_create(name, tag, "en", open).await.unwrap();
    r.guild.unwrap().summary.unwrap().guild_id
}

async fn search(p: &P, prefix: &str) -> Vec<pb::GuildSummary> {
    let req = pb::GuildSearchRequest { prefix: prefix.into(), ..Default::default() };
    p.client.guild_search(req).await.unwrap().guilds
}

/// The directory is updated by casts: once they are delivered, a search
/// (queued behind them) shows their effect.
async fn directory_shows(ts: &TestServer, p: &P, prefix: &str, want: impl Fn(&[pb::GuildSummary]) -> bool) {
    ts.server.runtime().settle().await;
    let found = search(p, prefix).await;
    assert!(want(&found), "the directory does not show the expected listing for {prefix:?}: {found:?}");
}

#[tokio::test]
async fn create_charges_gold_and_refuses_taken_names_tags_and_the_poor() {
    let ts = start(common::config()).await;
    let mut a = player(&ts, "founder").await;
    let b = player(&ts, "rival").await;

    let created = a.client.guild_create("Dragons", "DRG", "en", true).await.unwrap();
    let guild = created.guild.unwrap();
    let summary = guild.summary.unwrap();
    assert_eq!((summary.members, summary.capacity, summary.open), (1, 30, true));
    assert_eq!(guild.members[0].role, pb::GuildRole::GuildLeader as i32);
    assert_eq!(created.player.as_ref().unwrap().gold, 400, "100 gold burnt");
    assert_eq!(me(&a).await.guild_id, summary.guild_id);
    let joined = push_where(&mut a.pushes, |k| match k {
        Kind::GuildMemberJoined(j) => Some(j),
        _ => None,
    })
    .await;
    assert_eq!(joined.player_id, a.id);

    refused(a.client.guild_create("Another", "ANO", "en", true).await, Status::AlreadyInGuild);
    refused(b.client.guild_create("dRaGoNs", "XYZ", "en", true).await, Status::GuildNameTaken);
    refused(b.client.guild_create("Wyrms", "drg", "en", true).await, Status::GuildTagTaken);
    refused(b.client.guild_create("x", "XY", "en", true).await, Status::InvalidGuildInput);

    // Not enough gold: nothing is charged and the name stays free.
    let burn = Change { gold: -450, kind: ChangeKind::Burn, ..Change::default() };
    let msg = PlayerMsg::Apply { tx: "test/burn".into(), change: burn, notify: false, notice: None };
    ts.server.runtime().call::<Player>(&b.id, msg).await.unwrap().unwrap();
    refused(b.client.guild_create("Paupers", "PAU", "en", true).await, Status::NotEnoughGold);
    assert_eq!(me(&b).await.gold, 50);
    assert_eq!(me(&b).await.guild_id, "");
    let c = player(&ts, "third").await;
    create(&c, "Paupers", "PAU", true).await;
}

#[tokio::test]
async fn open_guilds_take_members_at_once_and_members_get_pushes() {
    let ts = start(common::config()).await;
    let mut a = player(&ts, "leader").await;
    let mut b = player(&ts, "joiner").await;
    let id = create(&a, "Open House", "OPEN", true).await;

    let r = b.client.guild_join(&id).await.unwrap();
    assert!(r.joined);
    assert_eq!(r.guild.unwrap().members.len(), 2);
    assert_eq!(me(&b).await.guild_id, id);
    let j = push_where(&mut a.pushes, |k| match k {
        Kind::GuildMemberJoined(j) if j.player_id != a.id => Some(j),
        _ => None,
    })
    .await;
    assert_eq!((j.player_id.as_str(), j.guild_id.as_str()), (b.id.as_str(), id.as_str()));
    // The joiner's own session follows the guild's topic too.
    push_where(&mut b.pushes, |k| matches!(k, Kind::GuildChanged(g) if g.guild_id == id).then_some(())).await;
    push_where(&mut b.pushes, |k| matches!(k, Kind::GuildMemberJoined(_)).then_some(())).await;

    b.client.guild_chat_post("hello guild").await.unwrap();
    let chat = push_where(&mut a.pushes, |k| match k {
        Kind::GuildChat(c) => c.message,
        _ => None,
    })
    .await;
    assert_eq!((chat.player_id.as_str(), chat.text.as_str()), (b.id.as_str(), "hello guild"));

    a.client.guild_promote(&b.id).await.unwrap();
    let role = push_where(&mut b.pushes, |k| match k {
        Kind::GuildRoleChanged(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!((role.player_id.as_str(), role.role), (b.id.as_str(), pb::GuildRole::GuildOfficer as i32));

    assert!(b.client.guild_join(&id).await.unwrap().joined, "joining one's own guild again is a no-op");
    refused(b.client.guild_join("g999").await, Status::GuildNotFound);
    refused(b.client.guild_join("not-an-id").await, Status::GuildNotFound);
}

#[tokio::test]
async fn closed_guilds_take_members_by_approved_request() {
    let ts = start(common::config()).await;
    let mut a = player(&ts, "gatekeeper").await;
    let b = player(&ts, "applicant").await;
    let mut c = player(&ts, "rejected").await;
    let id = create(&a, "Closed Circle", "CLO", false).await;

    let r = b.client.guild_join(&id).await.unwrap();
    assert!(!r.joined, "a request, not a membership");
    assert_eq!(me(&b).await.guild_id, "");
    let req = push_where(&mut a.pushes, |k| match k {
        Kind::GuildJoinRequested(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(req.player_id, b.id);
    c.client.guild_join(&id).await.unwrap();
    let g = a.client.guild_get("").await.unwrap().guild.unwrap();
    assert_eq!(g.join_requests, vec![b.id.clone(), c.id.clone()]);

    // Only officers decide; B is not even a member.
    refused(b.client.guild_decide_join(&c.id, true).await, Status::NotGuildMember);
    let g = a.client.guild_decide_join(&b.id, true).await.unwrap().guild.unwrap();
    assert_eq!(g.members.len(), 2);
    assert_eq!(me(&b).await.guild_id, id);
    refused(b.client.guild_decide_join(&c.id, true).await, Status::NoGuildPermission);

    a.client.guild_decide_join(&c.id, false).await.unwrap();
    assert_eq!(me(&c).await.guild_id, "");
    let notice = push_where(&mut c.pushes, |k| match k {
        Kind::Notice(n) => Some(n.text),
        _ => None,
    })
    .await;
    assert!(notice.contains("declined"), "{notice}");
    refused(a.client.guild_decide_join(&c.id, true).await, Status::JoinRequestNotFound);
}

#[tokio::test]
async fn a_full_guild_refuses_joins_and_leaves_the_recommendations() {
    let ts = start(common::config()).await;
    let a = player(&ts, "full-leader").await;
    let id = create(&a, "Packed", "PACK", true).await;
    let roomy = player(&ts, "roomy-leader").await;
    let roomy_id = create(&roomy, "Roomy", "ROOM", true).await;
    let mut members = Vec::new();
    for i in 1..30 {
        let p = player(&ts, &format!("member-{i}")).await;
        assert!(p.client.guild_join(&id).await.unwrap().joined);
        members.push(p);
    }
    let late = player(&ts, "latecomer").await;
    refused(late.client.guild_join(&id).await, Status::GuildFull);
    assert_eq!(me(&late).await.guild_id, "");

    directory_shows(&ts, &late, "pack", |g| g.len() == 1 && g[0].members == 30).await;
    let req = pb::GuildSearchRequest { has_room: true, ..Default::default() };
    let with_room = late.client.guild_search(req).await.unwrap().guilds;
    assert_eq!(with_room.iter().map(|g| g.guild_id.as_str()).collect::<Vec<_>>(), [roomy_id.as_str()]);
    let rec = late.client.guild_recommend("en", 10).await.unwrap().guilds;
    assert_eq!(rec.iter().map(|g| g.guild_id.as_str()).collect::<Vec<_>>(), [roomy_id.as_str()]);
}

#[tokio::test]
async fn leadership_passes_on_and_the_last_member_disbands() {
    let ts = start(common::config()).await;
    let a = player(&ts, "old-leader").await;
    let b = player(&ts, "senior-member").await;
    let mut c = player(&ts, "officer").await;
    let id = create(&a, "Succession", "SUC", true).await;
    b.client.guild_join(&id).await.unwrap();
    c.client.guild_join(&id).await.unwrap();
    a.client.guild_promote(&c.id).await.unwrap();

    // The officer, though younger than B, takes over.
    let left = a.client.guild_leave().await.unwrap();
    assert_eq!((left.new_leader_id.as_str(), left.disbanded), (c.id.as_str(), false));
    assert_eq!(me(&a).await.guild_id, "");
    let ev = push_where(&mut c.pushes, |k| match k {
        Kind::GuildMemberLeft(l) => Some(l),
        _ => None,
    })
    .await;
    assert_eq!((ev.player_id.as_str(), ev.new_leader_id.as_str()), (a.id.as_str(), c.id.as_str()));
    refused(a.client.guild_leave().await, Status::NotGuildMember);

    // No officer left: the longest-serving member.
    let left = c.client.guild_leave().await.unwrap();
    assert_eq!(left.new_leader_id, b.id);
    let g = b.client.guild_get("").await.unwrap().guild.unwrap();
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].role, pb::GuildRole::GuildLeader as i32);
    directory_shows(&ts, &b, "succ", |g| g.len() == 1 && g[0].members == 1).await;

    let left = b.client.guild_leave().await.unwrap();
    assert!(left.disbanded);
    refused(b.client.guild_join(&id).await, Status::GuildNotFound);
    directory_shows(&ts, &b, "succ", |g| g.is_empty()).await;
    // The name is free again.
    create(&a, "Succession", "SUC", true).await;
}

#[tokio::test]
async fn kick_promote_and_demote_follow_the_roles() {
    let ts = start(common::config()).await;
    let a = player(&ts, "boss").await;
    let b = player(&ts, "helper").await;
    let mut c = player(&ts, "victim").await;
    let d = player(&ts, "other-officer").await;
    let outsider = player(&ts, "outsider").await;
    let id = create(&a, "Hierarchy", "HIER", true).await;
    for p in [&b, &c, &d] {
        p.client.guild_join(&id).await.unwrap();
    }

    refused(b.client.guild_kick(&c.id).await, Status::NoGuildPermission);
    refused(b.client.guild_promote(&c.id).await, Status::NoGuildPermission);
    refused(outsider.client.guild_kick(&c.id).await, Status::NotGuildMember);
    a.client.guild_promote(&b.id).await.unwrap();
    refused(a.client.guild_promote(&b.id).await, Status::GuildRoleUnchanged);
    a.client.guild_promote(&d.id).await.unwrap();
    refused(b.client.guild_promote(&c.id).await, Status::NoGuildPermission);

    // Officers kick members, not officers nor the leader.
    refused(b.client.guild_kick(&d.id).await, Status::NoGuildPermission);
    refused(b.client.guild_kick(&a.id).await, Status::NoGuildPermission);
    let g = b.client.guild_kick(&c.id).await.unwrap().guild.unwrap();
    assert_eq!(g.members.len(), 3);
    assert_eq!(me(&c).await.guild_id, "");
    let ev = push_where(&mut c.pushes, |k| match k {
        Kind::GuildMemberLeft(l) => Some(l),
        _ => None,
    })
    .await;
    assert_eq!(ev.kicked_by, b.id);
    refused(b.client.guild_kick(&c.id).await, Status::NotGuildMember);
    refused(c.client.guild_chat_post("let me back").await, Status::NotGuildMember);

    a.client.guild_demote(&d.id).await.unwrap();
    refused(a.client.guild_demote(&d.id).await, Status::GuildRoleUnchanged);
    refused(a.client.guild_demote(&a.id).await, Status::GuildRoleUnchanged);
    refused(a.client.guild_kick(&a.id).await, Status::NoGuildPermission);
    a.client.guild_kick(&b.id).await.unwrap();
    assert_eq!(me(&b).await.guild_id, "");
}

#[tokio::test]
async fn chat_keeps_the_last_hundred_and_is_rate_limited_on_the_clock() {
    let mut config = common::config();
    config.rate_limit_burst = 1000;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = guildhall_entity::ManualClock::default();
    let ts = start_on(config.clone(), store.clone(), clock.clone()).await;
    let a = player(&ts, "chatty").await;
    let outsider = player(&ts, "lurker").await;
    let id = create(&a, "Chatters", "CHAT", true).await;

    for i in 0..5 {
        a.client.guild_chat_post(&format!("burst {i}")).await.unwrap();
    }
    refused(a.client.guild_chat_post("one too many").await, Status::ChatRateLimited);
    ts.clock.advance(Duration::from_millis(9_999));
    refused(a.client.guild_chat_post("still too soon").await, Status::ChatRateLimited);
    ts.clock.advance(Duration::from_millis(1));
    a.client.guild_chat_post("allowed again").await.unwrap();

    refused(a.client.guild_chat_post(&"x".repeat(281)).await, Status::ChatTooLong);
    a.client.guild_chat_post(&"é".repeat(280)).await.unwrap();
    refused(a.client.guild_chat_post("   ").await, Status::InvalidGuildInput);
    refused(outsider.client.guild_chat_post("hi").await, Status::NotGuildMember);
    refused(outsider.client.guild_chat_history(0).await, Status::NotGuildMember);

    ts.clock.advance(Duration::from_secs(10));
    for i in 0..110 {
        ts.clock.advance(Duration::from_secs(2));
        a.client.guild_chat_post(&format!("msg {i}")).await.unwrap();
    }
    let history = a.client.guild_chat_history(0).await.unwrap().messages;
    assert_eq!(history.len(), 100);
    assert_eq!(history[0].text, "msg 10");
    assert_eq!(history[99].text, "msg 109");
    assert!(history.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    let last3 = a.client.guild_chat_history(3).await.unwrap().messages;
    assert_eq!(last3.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["msg 107", "msg 108", "msg 109"]);
    // Issue 15: the guild holds a screen's worth in memory; the rest is read
    // from the store when asked for, after a restart too.
    let state = ts.server.runtime().state_json("guild", &id).await.unwrap().unwrap();
    assert_eq!(state["chat_in_memory"].as_array().unwrap().len(), 20, "{}", state["chat_in_memory"]);
    a.client.close().await;
    ts.server.shutdown().await;
    let ts = start_on(config, store, clock).await;
    let a = player(&ts, "chatty").await;
    assert_eq!(a.client.guild_chat_history(0).await.unwrap().messages, history, "the same hundred after a restart");
    ts.clock.advance(Duration::from_secs(30 * 24 * 3600 - 1));
    let kept = a.client.guild_chat_history(0).await.unwrap().messages;
    assert_eq!((kept.len(), kept[0].text.as_str()), (1, "msg 109"), "older than 30 days: not shown");
}

#[tokio::test]
async fn help_requests_are_filled_by_guildmates_who_earn_a_reward() {
    let ts = start(common::config()).await;
    let mut a = player(&ts, "needy").await;
    let b = player(&ts, "generous-1").await;
    let c = player(&ts, "generous-2").await;
    let d = player(&ts, "too-late").await;
    let id = create(&a, "Helpers", "HELP", true).await;
    for p in [&b, &c, &d] {
        p.client.guild_join(&id).await.unwrap();
    }
    grant(&ts, &b.id, 0, 3).await; // B: 4 Fireballs
    grant(&ts, &c.id, 0, 4).await; // C: 5 Fireballs
    grant(&ts, &d.id, 0, 2).await;
    let before: u32 = [all_cards(&me(&a).await), all_cards(&me(&b).await), all_cards(&me(&c).await)].iter().sum();
    let (gold_b, gold_c) = (me(&b).await.gold, me(&c).await.gold);

    refused(a.client.guild_help_ask(15, 1).await, Status::CardNotRequestable);
    let asked = a.client.guild_help_ask(0, 5).await.unwrap().request.unwrap();
    assert_eq!((asked.kind, asked.wanted, asked.received), (0, 5, 0));
    refused(a.client.guild_help_ask(1, 1).await, Status::HelpAlreadyOpen);
    refused(a.client.guild_help_donate(&a.id, 1).await, Status::CannotDonateToSelf);
    refused(b.client.guild_help_donate(&a.id, 10).await, Status::NotEnoughCards);

    let first = b.client.guild_help_donate(&a.id, 3).await.unwrap();
    assert_eq!((first.donated, first.reward_gold), (3, 30));
    assert_eq!(first.request.as_ref().unwrap().received, 3);
    assert_eq!(first.player.as_ref().unwrap().gold, gold_b + 30);
    let notice = push_where(&mut a.pushes, |k| match k {
        Kind::Notice(n) => Some(n.text),
        _ => None,
    })
    .await;
    assert!(notice.contains("donated 3"), "{notice}");

    // C offers 5 but only 2 are still needed.
    let second = c.client.guild_help_donate(&a.id, 5).await.unwrap();
    assert_eq!((second.donated, second.reward_gold), (2, 20));
    let closed = push_where(&mut a.pushes, |k| match k {
        Kind::GuildHelpClosed(h) => Some(h),
        _ => None,
    })
    .await;
    assert_eq!(closed.reason, pb::GuildHelpCloseReason::HelpFilled as i32);
    assert_eq!(closed.request.unwrap().received, 5);
    refused(d.client.guild_help_donate(&a.id, 1).await, Status::HelpRequestClosed);

    let (pa, pb_, pc) = (me(&a).await, me(&b).await, me(&c).await);
    assert_eq!(count_of(&pa, 0), 1 + 5);
    assert_eq!((count_of(&pb_, 0), count_of(&pc, 0)), (1, 3));
    assert_eq!((pb_.gold, pc.gold), (gold_b + 30, gold_c + 20));
    assert_eq!(all_cards(&pa) + all_cards(&pb_) + all_cards(&pc), before, "no card created or lost");
    assert!(a.client.guild_get("").await.unwrap().guild.unwrap().help.is_empty());

    // One request per 8 hours, even once the first is filled.
    refused(a.client.guild_help_ask(1, 1).await, Status::HelpCooldown);
    ts.clock.advance(Duration::from_millis(8 * 3600 * 1000));
    a.client.guild_help_ask(1, 1).await.unwrap();
}

#[tokio::test]
async fn help_requests_expire_when_the_clock_moves() {
    let ts = start(common::config()).await;
    let mut a = player(&ts, "patient").await;
    let b = player(&ts, "slow").await;
    let id = create(&a, "Sloths", "SLOW", true).await;
    b.client.guild_join(&id).await.unwrap();
    a.client.guild_help_ask(1, 3).await.unwrap();
    assert_eq!(b.client.guild_get("").await.unwrap().guild.unwrap().help.len(), 1);

    ts.clock.advance(Duration::from_millis(HELP_LIFETIME_MS));
    ts.server.maintain().await;
    let closed = push_where(&mut a.pushes, |k| match k {
        Kind::GuildHelpClosed(h) => Some(h),
        _ => None,
    })
    .await;
    assert_eq!(closed.reason, pb::GuildHelpCloseReason::HelpExpired as i32);
    assert!(b.client.guild_get("").await.unwrap().guild.unwrap().help.is_empty());
    refused(b.client.guild_help_donate(&a.id, 1).await, Status::HelpRequestClosed);
}

#[tokio::test]
async fn a_donation_interrupted_by_a_restart_completes_without_losing_cards() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let clock = guildhall_entity::ManualClock::default();
    let ts = start_on(common::config(), store.clone(), clock.clone()).await;
    let a = player(&ts, "restart-requester").await;
    let b = player(&ts, "restart-donor").await;
    let id = create(&a, "Phoenix", "PHX", true).await;
    b.client.guild_join(&id).await.unwrap();
    grant(&ts, &b.id, 2, 3).await;
    a.client.guild_help_ask(2, 4).await.unwrap();
    let (before_a, before_b) = (me(&a).await, me(&b).await);
    let before = all_cards(&before_a) + all_cards(&before_b);

    // The donation's intent is recorded and its first step (cards taken from
    // the donor) applied, then the server stops before the cards are given.
    let rt = ts.server.runtime().clone();
    let prepare = GuildMsg::PrepareDonation { donor: b.id.clone(), requester: a.id.clone(), count: 3 };
    let n = match rt.call::<Guild>(&id, prepare).await.unwrap().unwrap() {
        GuildReply::Prepared { n } => n,
        other => panic!("{other:?}"),
    };
    let take = Change { cards: vec![(2, -3)], ..Change::default() };
    let tx = format!("guild/{id}/donation/{n}/take");
    let msg = PlayerMsg::Apply { tx, change: take, notify: false, notice: None };
    rt.call::<Player>(&b.id, msg).await.unwrap().unwrap();
    let state = rt.state_json("guild", &id).await.unwrap().unwrap();
    assert_eq!(state["pending"].as_object().unwrap().len(), 1, "the intent is in the guild's state");
    // The directory learns (by a cast) when to wake the guild.
    rt.settle().await;
    let dir = rt.state_json("guild_directory", "all").await.unwrap().unwrap();
    let woken = dir["wakeups"].get(&id).is_some();
    assert!(woken, "the directory holds the guild's wake-up");
    a.client.close().await;
    b.client.close().await;
    drop(rt);
    ts.server.shutdown().await;

    let ts = start_on(common::config(), store, clock).await;
    ts.clock.advance(Duration::from_secs(10));
    ts.server.maintain().await;
    let a = player(&ts, "restart-requester").await;
    let b = player(&ts, "restart-donor").await;
    let (after_a, after_b) = (me(&a).await, me(&b).await);
    assert_eq!(count_of(&after_a, 2), count_of(&before_a, 2) + 3, "the requester got the cards");
    assert_eq!(count_of(&after_b, 2), count_of(&before_b, 2) - 3);
    assert_eq!(after_b.gold, before_b.gold + 30, "the donor got the reward once");
    assert_eq!(all_cards(&after_a) + all_cards(&after_b), before, "no card created or lost");
    let state = ts.server.runtime().state_json("guild", &id).await.unwrap().unwrap();
    assert!(state["pending"].as_object().unwrap().is_empty(), "nothing left in escrow");
    let view = a.client.guild_get("").await.unwrap().guild.unwrap();
    assert_eq!(view.help[0].received, 3);
    // Members and help requests are stored as parts: both came back.
    let members: Vec<_> = view.members.iter().map(|m| m.player_id.as_str()).collect();
    assert_eq!(members, [a.id.as_str(), b.id.as_str()], "the members, in order of joining");
    assert_eq!(view.help.len(), 1);

    // Ticking again applies nothing twice.
    ts.clock.advance(Duration::from_secs(60));
    ts.server.maintain().await;
    assert_eq!(me(&b).await.gold, before_b.gold + 30);

    // A late ContinueDonation gets the remembered outcome, kept without the
    // donor's profile (a whole card collection per outcome grew the heap).
    let late = ts.server.runtime().call::<Guild>(&id, GuildMsg::ContinueDonation { n }).await.unwrap();
    match late {
        Ok(GuildReply::Donated(d)) => {
            assert_eq!((d.donated, d.reward_gold), (3, 30));
            assert!(d.donor.is_none(), "remembered without the donor's profile");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_directory_searches_by_prefix_and_filters_and_follows_membership() {
    let ts = start(common::config()).await;
    let a = player(&ts, "dir-a").await;
    let b = player(&ts, "dir-b").await;
    let c = player(&ts, "dir-c").await;
    let seeker = player(&ts, "seeker").await;
    let id_a = create(&a, "Moon Knights", "MOON", true).await;
    let id_b = create(&b, "moonlight", "LITE", false).await;
    let r = c.client.guild_create("Sun Guard", "SUN", "de", true).await.unwrap();
    let id_c = r.guild.unwrap().summary.unwrap().guild_id;

    directory_shows(&ts, &seeker, "MOON", |g| g.len() == 2).await;
    let found = search(&seeker, "moon").await;
    assert_eq!(found.iter().map(|g| g.guild_id.as_str()).collect::<Vec<_>>(), [id_a.as_str(), id_b.as_str()]);
    let open = seeker
        .client
        .guild_search(pb::GuildSearchRequest { prefix: "moon".into(), open_only: true, ..Default::default() })
        .await
        .unwrap()
        .guilds;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].name, "Moon Knights");
    let german = seeker
        .client
        .guild_search(pb::GuildSearchRequest { language: "de".into(), ..Default::default() })
        .await
        .unwrap()
        .guilds;
    assert_eq!(german.iter().map(|g| g.guild_id.as_str()).collect::<Vec<_>>(), [id_c.as_str()]);
    assert_eq!(search(&seeker, "").await.len(), 3);
    assert!(search(&seeker, "moonz").await.is_empty());

    // Same language first, open before closed.
    let rec = seeker.client.guild_recommend("de", 10).await.unwrap().guilds;
    assert_eq!(
        rec.iter().map(|g| g.guild_id.as_str()).collect::<Vec<_>>(),
        [id_c.as_str(), id_a.as_str(), id_b.as_str()]
    );

    // Membership changes reach the directory.
    seeker.client.guild_join(&id_a).await.unwrap();
    directory_shows(&ts, &seeker, "moon k", |g| g.len() == 1 && g[0].members == 2).await;
    let rec = seeker.client.guild_recommend("en", 10).await.unwrap().guilds;
    assert!(rec.iter().all(|g| g.guild_id != id_a), "not the player's own guild");
    let min2 = seeker
        .client
        .guild_search(pb::GuildSearchRequest { min_members: 2, ..Default::default() })
        .await
        .unwrap()
        .guilds;
    assert_eq!(min2.len(), 1);
    seeker.client.guild_leave().await.unwrap();
    directory_shows(&ts, &seeker, "moon k", |g| g.len() == 1 && g[0].members == 1).await;
}

/// Issue 14, defects 5 and 6: text other players read is refused when it is
/// invisible, direction-changing or full of control characters, never cut;
/// names are stored in NFC and unique under a proper case fold.
#[tokio::test]
async fn names_descriptions_and_chat_refuse_invisible_spoofing_and_control_text() {
    let ts = start(common::config()).await;
    let a = player(&ts, "text-a").await;
    let b = player(&ts, "text-b").await;
    let c = player(&ts, "text-c").await;
    let create_with = |p: &P, name: &str, tag: &str, description: String| {
        let req = pb::GuildCreateRequest {
            name: name.into(),
            tag: tag.into(),
            language: "en".into(),
            open: true,
            description,
        };
        let client = p.client.clone();
        async move { client.call::<_, pb::GuildCreateResponse>(method::GUILD_CREATE, &req).await }
    };
    for (name, code) in
        [("\u{200B}\u{200B}\u{200B}", "U+200B"), ("Evil\u{202E}gnp", "U+202E"), ("\u{3164}\u{3164}\u{3164}", "U+3164")]
    {
        let err = a.client.guild_create(name, "BAD", "en", true).await.expect_err(name);
        assert!(err.is_status(Status::InvalidGuildInput), "{name:?}: {err}");
        assert!(err.to_string().contains(code), "the refusal names the character: {err}");
    }
    let long = "é".repeat(501);
    refused(create_with(&a, "Long Winded", "LONG", long).await, Status::InvalidGuildInput);
    assert_eq!(me(&a).await.gold, 500, "a refused creation charges nothing");

    let description = format!("{}\nWelcome!", "é".repeat(491));
    let created = create_with(&a, "Cafe\u{301}", "CAFE", description.clone()).await.unwrap().guild.unwrap();
    assert_eq!(created.summary.unwrap().name, "Caf\u{e9}", "stored in NFC");
    assert_eq!(created.description, description, "500 characters are kept whole");
    refused(b.client.guild_create("CAF\u{c9}", "CAF2", "en", true).await, Status::GuildNameTaken);
    create(&b, "Stra\u{df}e", "STR", true).await;
    refused(c.client.guild_create("STRASSE", "STR2", "en", true).await, Status::GuildNameTaken);
    assert_eq!(search(&c, "strass").await.len(), 1, "a prefix folds like the names");

    for text in ["nul\0here", "\u{1b}[31mred alert", "bell\u{7}", "\u{2066}hidden"] {
        refused(a.client.guild_chat_post(text).await, Status::InvalidGuildInput);
    }
    a.client.guild_chat_post("two\nlines \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}").await.unwrap();
    let history = a.client.guild_chat_history(0).await.unwrap().messages;
    assert_eq!(history.len(), 1, "only the clean message was kept");
}
