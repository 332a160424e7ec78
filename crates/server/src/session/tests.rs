//! Unit tests of sessions: sequencing, replay and acknowledgement, remembered
//! results, takeover and expiry in the registry, and subscriptions.

use bytes::Bytes;
use guildhall_entity::{Event, Runtime};
use guildhall_protocol::decode_envelope;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::PushBody;

use super::replay::OUTBOX_KEPT;
use super::results::RESULTS_KEPT;
use super::*;

fn limits() -> SessionLimits {
    SessionLimits { replay_buffer: 4, remembered_results: 3, stream_push_interval_ms: 0 }
}

fn seqs(p: Pending) -> Vec<u64> {
    match p {
        Pending::Frames(f) => f
            .iter()
            .map(|b| match decode_envelope(&b.to_bytes()).unwrap() {
                Kind::Response(r) => r.seq,
                Kind::Push(p) => p.seq,
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_are_sequenced_buffered_and_trimmed_by_acks() {
    let s = Session::new(1, "p".into(), limits());
    s.attach(10, 0).unwrap();
    s.emit_response(1, &Answer::ok(Bytes::new()));
    s.emit_push(&PushBody::encode("t", &pb::Event::default()));
    assert_eq!(seqs(s.pending(10)), vec![1, 2]);
    assert_eq!(seqs(s.pending(10)), Vec::<u64>::new(), "written once");
    assert_eq!(s.buffered(), 2);
    s.ack(1);
    assert_eq!(s.buffered(), 1);
    s.ack(99);
    assert_eq!(s.buffered(), 0, "acks beyond what was sent are clamped");
}

#[test]
fn a_burst_gives_its_buffer_back_once_acknowledged() {
    let s = Session::new(1, "p".into(), SessionLimits { replay_buffer: 256, ..limits() });
    s.attach(10, 0).unwrap();
    let body = PushBody::encode("t", &pb::Event::default());
    for _ in 0..100 {
        s.emit_push(&body);
    }
    assert!(s.lock().outbox.capacity() >= 100);
    s.ack(99);
    assert_eq!(s.buffered(), 1);
    assert!(s.lock().outbox.capacity() <= OUTBOX_KEPT, "{}", s.lock().outbox.capacity());
    assert_eq!(seqs(s.pending(10)), vec![100], "the rest is intact");
}

#[test]
fn a_resume_replays_what_the_client_missed() {
    let s = Session::new(1, "p".into(), limits());
    s.attach(10, 0).unwrap();
    for id in 1..=3 {
        s.emit_response(id, &Answer::ok(Bytes::new()));
    }
    let _ = s.pending(10);
    s.detach(10, 1000);
    assert_eq!(s.detached_at_ms(), Some(1000));
    s.emit_push(&PushBody::encode("t", &pb::Event::default()));
    assert_eq!(s.attach(11, 1), Ok(4));
    assert!(matches!(s.pending(10), Pending::Replaced));
    assert_eq!(seqs(s.pending(11)), vec![2, 3, 4]);
    assert_eq!(s.detached_at_ms(), None);
}

#[test]
fn an_overflowing_buffer_makes_an_old_resume_point_a_gap() {
    let s = Session::new(1, "p".into(), limits());
    s.attach(10, 0).unwrap();
    for id in 1..=6 {
        s.emit_response(id, &Answer::ok(Bytes::new()));
    }
    assert_eq!(s.buffered(), 4);
    assert_eq!(s.attach(11, 1), Err(AttachError::ReplayGap { last_seq: 1, oldest: 3 }));
    assert_eq!(s.attach(11, 2), Ok(6));
}

#[test]
fn request_ids_run_once_and_replay_their_first_result() {
    let s = Session::new(1, "p".into(), limits());
    assert_eq!(s.begin_request(5, 0), Begin::Execute);
    assert_eq!(s.begin_request(5, 0), Begin::InProgress);
    let first = Answer::ok(Bytes::from_static(b"first"));
    s.finish_request(5, first.clone());
    assert_eq!(s.begin_request(5, 0), Begin::Replay(Arc::new(first)));
    assert_eq!(s.begin_request(4, 0), Begin::TooOld, "never seen, but older than the newest");
    for id in 6..=8 {
        assert_eq!(s.begin_request(id, 0), Begin::Execute);
    }
    assert_eq!(s.begin_request(5, 0), Begin::TooOld, "forgotten after the window");
}

#[test]
fn an_acknowledged_answer_is_forgotten_but_its_request_still_runs_once() {
    let s = Session::new(1, "p".into(), limits());
    s.attach(10, 0).unwrap();
    assert_eq!(s.begin_request(1, 0), Begin::Execute);
    let seq = s.finish_request(1, Answer::ok(Bytes::from_static(b"big answer")));
    assert_eq!(s.begin_request(2, 0), Begin::Execute);
    let seq2 = s.finish_request(2, Answer::ok(Bytes::from_static(b"second")));
    s.ack(seq);
    assert_eq!(s.begin_request(1, 0), Begin::TooOld, "the client has it: not kept, not run again");
    assert_eq!(s.begin_request(2, 0), Begin::Replay(Arc::new(Answer::ok(Bytes::from_static(b"second")))));
    // A resume that reports the second as seen acknowledges it too.
    s.attach(11, seq2).unwrap();
    assert_eq!(s.begin_request(2, 0), Begin::TooOld);
}

#[test]
fn acknowledged_results_give_their_places_back() {
    let s = Session::new(1, "p".into(), SessionLimits { remembered_results: 8, ..limits() });
    s.attach(10, 0).unwrap();
    let mut last = 0;
    for id in 1..=8 {
        assert_eq!(s.begin_request(id, 0), Begin::Execute);
        last = s.finish_request(id, Answer::ok(Bytes::from_static(b"x")));
    }
    assert!(s.lock().results.capacity() >= 8);
    s.ack(last);
    let st = s.lock();
    assert!(st.results.is_empty(), "every answer acknowledged: nothing to remember");
    assert!(st.results.capacity() <= RESULTS_KEPT, "capacity {}", st.results.capacity());
}

fn runtime() -> Runtime {
    Runtime::builder(Arc::new(guildhall_store::MemoryStore::new()), Arc::new(guildhall_entity::ManualClock::default()))
        .build()
}

fn push_all(e: &Event) -> Delivery {
    Delivery { push: Some(PushBody::encode(&e.topic, &pb::Event::default())), resubscribe: None }
}

#[tokio::test]
async fn opening_a_second_session_takes_over_the_first() {
    let rt = runtime();
    let ps = rt.pubsub();
    let sessions = Sessions::new(limits());
    let a = sessions.open(1, "p", &[("player", "player/p".into())], &rt, push_all);
    a.attach(10, 0).unwrap();
    let b = sessions.open(2, "p", &[("player", "player/p".into())], &rt, push_all);
    assert!(matches!(a.pending(10), Pending::Ended(Status::SessionTakenOver, _)));
    assert!(sessions.get(1).is_none());
    assert_eq!(sessions.of_player("p").unwrap().id, 2);
    assert_eq!(ps.publish("player/p", Bytes::new()), 1, "only the new session is subscribed");
    assert_eq!(b.buffered(), 1);
}

#[tokio::test]
async fn slots_follow_topic_changes() {
    let rt = runtime();
    let sessions = Sessions::new(limits());
    let s = sessions.open(1, "p", &[("player", "player/p".into())], &rt, push_all);
    s.resubscribe("guild", Some("guild/a".into()), &rt, push_all);
    s.resubscribe("guild", Some("guild/b".into()), &rt, push_all);
    assert_eq!(s.topics(), vec!["player/p".to_string(), "guild/b".to_string()]);
    assert_eq!(rt.pubsub().publish("guild/a", Bytes::new()), 0, "the old guild's topic was dropped");
    assert_eq!(rt.pubsub().publish("guild/b", Bytes::new()), 1);
    s.resubscribe("guild", None, &rt, push_all);
    assert_eq!(rt.pubsub().topic_count(), 1);
}

#[tokio::test]
async fn stream_pushes_are_thinned_per_session_on_the_clock() {
    let clock = guildhall_entity::ManualClock::default();
    let rt = Runtime::builder(Arc::new(guildhall_store::MemoryStore::new()), Arc::new(clock.clone())).build();
    let sessions = Sessions::new(SessionLimits { stream_push_interval_ms: 5_000, ..limits() });
    let s = sessions.open(1, "p", &[], &rt, push_all);
    s.resubscribe_stream("market/1", Some("market/kind/1".into()), &rt, push_all);
    s.resubscribe_stream("market/2", Some("market/kind/2".into()), &rt, push_all);
    s.resubscribe("player", Some("player/p".into()), &rt, push_all);
    for _ in 0..10 {
        rt.pubsub().publish("market/kind/1", Bytes::new());
        rt.pubsub().publish("market/kind/2", Bytes::new());
    }
    rt.pubsub().publish("player/p", Bytes::new());
    assert_eq!(s.buffered(), 2, "one stream push, and every player push");
    clock.advance(std::time::Duration::from_millis(5_000));
    rt.pubsub().publish("market/kind/2", Bytes::new());
    assert_eq!(s.buffered(), 3, "the next stream push after the interval");
}

#[tokio::test]
async fn detached_sessions_expire_after_the_window() {
    let rt = runtime();
    let ps = rt.pubsub();
    let sessions = Sessions::new(limits());
    let s = sessions.open(1, "p", &[], &rt, push_all);
    s.attach(10, 0).unwrap();
    s.detach(10, 1_000);
    assert_eq!(sessions.expire(60_999, 60_000, ps), 0);
    assert_eq!(sessions.expire(61_000, 60_000, ps), 1);
    assert!(sessions.get(1).is_none());
    assert!(matches!(s.attach(11, 0), Err(AttachError::Ended(Status::SessionExpired, _))));
}
