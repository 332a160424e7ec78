use std::collections::{BTreeMap, VecDeque};

use guildhall_entity::Entity;

use super::model::*;
use super::rules::*;
use super::state::Guild;
use crate::*;

const T0: u64 = 1_767_225_600_000;

fn guild_with(members: &[(&str, GuildRole)]) -> Guild {
    let mut g = Guild { id: "g1".into(), founded: true, capacity: GUILD_CAPACITY, ..Guild::default() };
    for (p, role) in members {
        g.add_member(p, *role, T0);
    }
    g
}

#[test]
fn leadership_passes_to_the_longest_serving_officer_else_member() {
    use GuildRole::*;
    let g = guild_with(&[("lead", Leader), ("m1", Member), ("o1", Officer), ("o2", Officer)]);
    assert_eq!(g.successor().as_deref(), Some("o1"));
    let g = guild_with(&[("lead", Leader), ("m1", Member), ("m2", Member)]);
    assert_eq!(g.successor().as_deref(), Some("m1"));
    let g = guild_with(&[("lead", Leader)]);
    assert_eq!(g.successor(), None);
}

#[test]
fn chat_rate_limit_follows_the_clock() {
    let mut g = guild_with(&[("a", GuildRole::Leader)]);
    for i in 0..CHAT_RATE_MAX as u64 {
        g.take_chat_slot("a", T0 + i).unwrap();
    }
    assert_eq!(
        g.take_chat_slot("a", T0 + 100),
        Err(GuildError::ChatRateLimited {
            max: CHAT_RATE_MAX,
            window_ms: CHAT_RATE_WINDOW_MS,
            retry_at_ms: T0 + CHAT_RATE_WINDOW_MS
        }
        .into())
    );
    assert!(g.take_chat_slot("b", T0 + 100).is_ok(), "per player");
    assert!(g.take_chat_slot("a", T0 + CHAT_RATE_WINDOW_MS - 1).is_err());
    assert!(g.take_chat_slot("a", T0 + CHAT_RATE_WINDOW_MS).is_ok(), "the oldest post left the window");
}

#[test]
fn help_requests_respect_rarity_limits_and_the_cooldown() {
    let mut g = guild_with(&[("a", GuildRole::Leader)]);
    assert_eq!(g.check_help("a", 0, 50, T0), Ok(10), "commons: at most 10");
    assert_eq!(g.check_help("a", 0, 0, T0), Ok(10), "0 asks for the most");
    assert_eq!(g.check_help("a", 8, 10, T0), Ok(4), "rares: at most 4");
    assert_eq!(g.check_help("a", 15, 1, T0), Err(GuildError::CardNotRequestable(15).into()));
    assert_eq!(g.check_help("a", 99, 1, T0), Err(PlayerError::UnknownCard(99).into()));
    g.help_asked_at.insert("a".into(), T0);
    assert_eq!(
        g.check_help("a", 0, 1, T0 + HELP_COOLDOWN_MS - 1),
        Err(GuildError::HelpCooldown { ready_at_ms: T0 + HELP_COOLDOWN_MS }.into())
    );
    assert_eq!(g.check_help("a", 0, 1, T0 + HELP_COOLDOWN_MS), Ok(1));
}

#[test]
fn members_and_help_are_parts_and_an_old_inline_snapshot_moves_into_them() {
    let mut g = guild_with(&[("lead", GuildRole::Leader), ("m1", GuildRole::Member)]);
    g.chat_times.insert("lead".into(), VecDeque::from([T0]));
    let snapshot = serde_json::to_value(&g).unwrap();
    g.help_asked_at.insert("m1".into(), T0);
    for gone in ["members", "member_parts", "help", "help_parts", "chat_times", "help_asked_at"] {
        assert!(snapshot.get(gone).is_none(), "{gone} is not in the snapshot: {snapshot}");
    }
    let mut out = Vec::new();
    g.members.take_changes("m/", &mut out);
    assert_eq!(out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["m/1", "m/2"]);

    // A snapshot from before the parts: members inline, help by requester.
    let mut old = snapshot;
    old["members"] = serde_json::json!([
        {"player_id": "lead", "role": "Leader", "joined_at_ms": T0, "joined_seq": 1},
        {"player_id": "m1", "role": "Member", "joined_at_ms": T0, "joined_seq": 2}
    ]);
    old["help_asked_at"] = serde_json::json!({"m1": T0});
    old["help"] = serde_json::json!({"m1": {
        "id": 9, "requester": "m1", "kind": 0, "wanted": 3, "received": 1, "pledged": 0,
        "opened_at_ms": T0, "expires_at_ms": T0 + HELP_LIFETIME_MS, "donors": [["lead", 1]]
    }});
    let mut back: Guild = serde_json::from_value(old).unwrap();
    back.load_parts(Vec::new()).unwrap();
    assert_eq!(back.successor().as_deref(), Some("m1"));
    assert_eq!(back.help_of("m1").map(|h| (h.id, h.received)), Some((9, 1)));
    let mut out = Vec::new();
    back.take_part_changes().into_iter().for_each(|(n, _)| out.push(n));
    assert_eq!(back.help_asked_at.get("m1"), Some(T0));
    assert_eq!(out.len(), 4, "the next write stores them as parts: {out:?}");
    assert_eq!(&out[..3], ["m/1", "m/2", "h/9"]);
    assert!(out[3].starts_with("a/"), "{out:?}");
}

#[test]
fn weekly_activity_resets_and_wakeups_follow_pending_work() {
    let mut g = guild_with(&[("a", GuildRole::Leader)]);
    g.bump_activity(3, T0);
    assert_eq!(g.summary(T0).activity, 3);
    assert_eq!(g.summary(T0 + WEEK_MS).activity, 0, "a new week");
    g.bump_activity(1, T0 + WEEK_MS);
    assert_eq!(g.summary(T0 + WEEK_MS).activity, 1);
    assert_eq!(g.next_wake(T0), None);
    g.help.insert(
        1,
        HelpRequest {
            id: 1,
            requester: "a".into(),
            kind: 0,
            wanted: 3,
            received: 0,
            pledged: 0,
            opened_at_ms: T0,
            expires_at_ms: T0 + HELP_LIFETIME_MS,
            donors: vec![],
        },
    );
    assert_eq!(g.next_wake(T0), Some(T0 + HELP_LIFETIME_MS));
    g.pending.insert(
        7,
        Donation {
            n: 7,
            request_id: 1,
            donor: "b".into(),
            requester: "a".into(),
            kind: 0,
            count: 2,
            reward_gold: 20,
            step: DonationStep::Give,
            created_at_ms: T0,
            retry_at_ms: T0 + STEP_RETRY_MS,
        },
    );
    assert_eq!(g.next_wake(T0), Some(T0 + STEP_RETRY_MS));
    assert_eq!(g.escrow(), BTreeMap::from([(0, 2)]), "cards between take and give are in escrow");
}
