use super::*;

const T0: u64 = 1_767_225_600_000;

#[test]
fn brackets_fill_up_to_eight_in_sign_up_order() {
    let mut e = Expedition::new(T0);
    for i in 0..17 {
        let b = e.sign_up(&format!("g{i}"));
        assert_eq!(b, i / 8);
    }
    assert_eq!(e.sign_up("g3"), 0, "signing up twice changes nothing");
    assert_eq!((e.bracket_count(), e.signed_up()), (3, 17));
    assert_eq!(e.standings(2).len(), 1);
}

#[test]
fn standings_pushes_spread_over_the_round_each_bracket_at_most_once_a_round() {
    let mut e = Expedition::new(T0);
    let brackets = 90u32;
    let changed_all = |e: &mut Expedition| e.changed.extend(0..brackets);
    changed_all(&mut e);
    // The first tick pushes whatever changed.
    assert_eq!(e.standings_due(T0).len(), brackets as usize);
    // Then a second at a time: every bracket changes every second, and
    // each second pushes only the brackets of its slot.
    let mut pushes = vec![0u32; brackets as usize];
    for s in 1..=60u64 {
        changed_all(&mut e);
        let due = e.standings_due(T0 + s * 1000);
        assert_eq!(due.len(), (brackets as u64 / STANDINGS_SLOTS) as usize, "second {s}: {due:?}");
        for b in due {
            assert_eq!(
                (b as u64) % STANDINGS_SLOTS,
                (T0 / 1000 + s) % STANDINGS_SLOTS,
                "bracket {b} in its own second"
            );
            pushes[b as usize] += 1;
        }
    }
    assert!(pushes.iter().all(|&n| n == 2), "once a round, two rounds: {pushes:?}");
    // Within the same second, nothing more; a bracket that did not change
    // is not pushed in its second.
    assert!(e.standings_due(T0 + 60 * 1000 + 500).is_empty());
    e.changed.clear();
    e.changed.insert(5);
    let mut at = T0 + 60 * 1000;
    let mut seen = 0;
    for _ in 0..STANDINGS_SLOTS {
        at += 1000;
        seen += e.standings_due(at).len();
    }
    assert_eq!(seen, 1, "pushed once, in its second");
    // Ticks two seconds apart serve both seconds' brackets; after a
    // whole round without a tick, every changed bracket is due.
    changed_all(&mut e);
    assert_eq!(e.standings_due(at + 2000).len(), 2 * (brackets as u64 / STANDINGS_SLOTS) as usize);
    changed_all(&mut e);
    assert_eq!(e.standings_due(at + 2000 + STANDINGS_PUSH_MS).len(), brackets as usize);
}

#[test]
fn standings_rank_by_points_then_sign_up_order() {
    let mut e = Expedition::new(T0);
    for g in ["a", "b", "c"] {
        e.sign_up(g);
    }
    e.add_points("b", "p1", 10);
    e.add_points("c", "p2", 10);
    e.add_points("a", "p3", 3);
    assert!(!e.add_points("zzz", "p4", 100), "not signed up: ignored");
    let s = e.standings(0);
    assert_eq!(
        s.iter().map(|s| (s.guild.as_str(), s.points, s.rank)).collect::<Vec<_>>(),
        vec![("b", 10, 1), ("c", 10, 2), ("a", 3, 3)]
    );
}

#[test]
fn the_period_ends_on_time_with_a_plan_and_the_next_begins() {
    let mut e = Expedition::new(T0);
    e.period_ms = 60_000;
    e.sign_up("a");
    e.sign_up("b");
    e.add_points("a", "p1", 10);
    e.add_points("a", "p2", 2);
    e.add_points("b", "p3", 5);
    assert!(e.end_period_if_due(T0 + 59_999).is_none());
    let results = e.end_period_if_due(T0 + 60_000 + 5).unwrap();
    assert_eq!(results[0][0].guild, "a");
    assert_eq!((e.period, e.started_at_ms), (2, T0 + 60_000), "aligned to the period, not the late tick");
    assert!(e.signed_up() == 0 && e.bracket_count() == 0, "sign-ups are per period");
    assert_eq!(
        e.take_part_changes(),
        vec![("g/0".to_string(), None), ("g/1".to_string(), None)],
        "the period's entries are deleted"
    );
    let pay: Vec<_> = e.next_payments(10).into_iter().map(|(_, _, tx, p)| (tx, p.gems)).collect();
    assert_eq!(
        pay,
        vec![
            ("expedition/1/p1".to_string(), reward_for_rank(1)),
            ("expedition/1/p2".to_string(), reward_for_rank(1)),
            ("expedition/1/p3".to_string(), reward_for_rank(2)),
        ]
    );
    e.mark_paid(1, 0);
    e.mark_paid(1, 0);
    assert_eq!(e.gems_paid, reward_for_rank(1), "marking twice pays once");
    assert_eq!(e.next_payments(10).len(), 2);
    e.mark_paid(1, 1);
    e.mark_paid(1, 2);
    assert!(e.payouts.is_empty());
    // A long outage skips whole periods.
    assert!(e.end_period_if_due(T0 + 60_000 * 5 + 1).is_some());
    assert_eq!((e.period, e.started_at_ms), (3, T0 + 60_000 * 5));
}

/// Stores the hub as the runtime does: the snapshot, then the parts
/// changed since the last store.
fn store(e: &mut Expedition, parts: &mut BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    for (name, value) in e.take_part_changes() {
        match value {
            Some(v) => parts.insert(name, v),
            None => parts.remove(&name),
        };
    }
    serde_json::to_vec(e).unwrap()
}

fn load(snapshot: &[u8], parts: &BTreeMap<String, Vec<u8>>) -> Expedition {
    let mut e: Expedition = serde_json::from_slice(snapshot).unwrap();
    e.load_parts(parts.iter().map(|(n, v)| (n.clone(), v.clone())).collect()).unwrap();
    e
}

#[test]
fn a_sign_up_or_a_score_writes_one_entry_and_the_snapshot_holds_none() {
    let mut e = Expedition::new(T0);
    let mut parts = BTreeMap::new();
    for i in 0..20 {
        e.sign_up(&format!("guild-{i}"));
        e.add_points(&format!("guild-{i}"), &format!("p{i}"), 3);
    }
    store(&mut e, &mut parts);
    assert_eq!(parts.len(), 20);
    e.sign_up("late");
    let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["g/20"], "a new sign-up writes its own entry");
    e.add_points("guild-7", "p1", 5);
    let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["g/7"]);
    let snapshot = String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap();
    assert!(!snapshot.contains("guild-"), "entries live in parts only: {snapshot}");
}

#[test]
fn the_entries_survive_a_store_and_load() {
    let mut e = Expedition::new(T0);
    let mut parts = BTreeMap::new();
    for g in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
        e.sign_up(g);
    }
    e.add_points("c", "p1", 4);
    e.add_points("i", "p2", 1);
    let snapshot = store(&mut e, &mut parts);
    let back = load(&snapshot, &parts);
    assert_eq!(back.standings(0), e.standings(0));
    assert_eq!(back.standings(1), e.standings(1));
    assert_eq!((back.bracket_of("i"), back.bracket_of("c"), back.bracket_of("zz")), (Some(1), Some(0), None));
    let mut back = back;
    assert_eq!(back.sign_up("j"), 1, "numbering goes on after a load");
    assert_eq!(back.take_part_changes().into_iter().map(|(n, _)| n).collect::<Vec<_>>(), vec!["g/9"]);
}

#[test]
fn an_old_snapshot_with_inline_entries_loads_and_moves_them_into_parts() {
    let old = serde_json::json!({
        "period": 3, "started_at_ms": T0, "period_ms": 60_000, "payouts_per_tick": 200,
        "guilds": {
            "a": {"bracket": 0, "points": 5, "members": {"p1": 5}},
            "b": {"bracket": 0, "points": 5, "members": {"p2": 5}},
        },
        "brackets": [["b", "a"]],
        "changed": [0], "payouts": {}, "last_results": [], "gems_paid": 0,
    });
    let mut e = load(&serde_json::to_vec(&old).unwrap(), &BTreeMap::new());
    let s = e.standings(0);
    assert_eq!(
        s.iter().map(|s| (s.guild.as_str(), s.rank)).collect::<Vec<_>>(),
        vec![("b", 1), ("a", 2)],
        "sign-up order kept"
    );
    assert_eq!(e.entry("a").map(|x| x.members.clone()), Some(BTreeMap::from([("p1".to_string(), 5)])));
    let names: Vec<_> = e.take_part_changes().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["g/0", "g/1"], "the next write moves them into parts");
    let snapshot = String::from_utf8(serde_json::to_vec(&e).unwrap()).unwrap();
    assert!(!snapshot.contains("\"guilds\""), "and drops the inline form: {snapshot}");
}
