//! Sessions: what survives a dropped connection.
//!
//! A session belongs to one logged-in player. Every message the server sends
//! it (responses and pushes) gets the next sequence number and stays in the
//! replay buffer until the client acknowledges it, so that a client that
//! reconnects within the resume window gets what it missed. The session also
//! remembers the results of recent requests by client id: a request re-sent
//! after a reconnect is answered with its first result and never runs twice.
//!
//! A connection *attaches* to a session (login or resume) and writes whatever
//! the session has queued past what it already wrote. Only one connection is
//! attached at a time; a newer one replaces it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use guildhall_entity::{Event, PubSub, Runtime, Subscriber, Subscription};
use guildhall_protocol::{OutFrame, PushBody, Status};
use tokio::sync::Notify;

/// A final answer to a request, as remembered for retransmissions.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: Status,
    pub message: String,
    pub payload: Bytes,
}

impl Answer {
    pub fn ok(payload: Bytes) -> Self {
        Self { status: Status::Ok, message: String::new(), payload }
    }

    pub fn err(status: Status, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), payload: Bytes::new() }
    }

    /// The response frame for request `id` with sequence number `seq` (0:
    /// unsequenced, before login). Its payload is shared, not copied.
    pub fn frame(&self, id: u64, seq: u64) -> OutFrame {
        OutFrame::response(id, seq, self.status, &self.message, &self.payload)
    }
}

/// Bounds of one session's memory.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Unacknowledged messages kept for replay.
    pub replay_buffer: usize,
    /// Request results remembered for retransmissions.
    pub remembered_results: usize,
    /// Stream subscriptions (the market's offer stream) deliver at most one
    /// push per this many milliseconds per session; the rest are dropped.
    /// A stream to thousands of sessions must not cost a push per event per
    /// session. 0: every event.
    pub stream_push_interval_ms: u64,
}

/// What a connection should do about a request id.
#[derive(Debug, PartialEq)]
pub enum Begin {
    /// New: run it, then call [`Session::finish_request`].
    Execute,
    /// Seen and finished: send this first result again.
    Replay(Arc<Answer>),
    /// Seen and still running (on a connection that dropped): its answer
    /// will be sent when it finishes.
    InProgress,
    /// Not remembered: answered and acknowledged (the client has the
    /// answer), or older than the remembered window. Never runs again.
    TooOld,
}

/// What an attached connection should write next.
#[derive(Debug)]
pub enum Pending {
    /// Encoded envelopes, in sequence order (possibly none).
    Frames(Vec<OutFrame>),
    /// Another connection attached to the session since: stop quietly.
    Replaced,
    /// The session ended: tell the client why and close.
    Ended(Status, String),
}

/// Why a connection could not attach (resume).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// The session ended (expired, taken over, logged out).
    Ended(Status, String),
    /// The client missed messages that are no longer buffered.
    ReplayGap { last_seq: u64, oldest: u64 },
}

#[derive(Debug)]
enum Outcome {
    Running,
    /// Answered with the response of sequence number `seq`: kept whole for
    /// a client that retries because it never got it.
    Done {
        answer: Arc<Answer>,
        seq: u64,
    },
}

/// Places for results a session keeps after acknowledgements emptied them.
/// An acknowledged result is forgotten, not kept as a marker: the client
/// has its answer, and a re-sent id at or below the highest seen is refused
/// all the same (`Begin::TooOld`). A session then holds the one or two
/// results in flight, not the last eight (256 bytes of every session's heap
/// in a profile). Acks ride on requests, so when the next request comes its
/// ack has emptied the results first: one place is in use, rarely two.
const RESULTS_KEPT: usize = 2;

/// Replay-buffer places a session keeps after a burst is acknowledged: its
/// response and a push or two between acks.
const OUTBOX_KEPT: usize = 2;

/// The client has everything up to `acked`: forget what it can no longer ask
/// for again.
fn forget_acknowledged(st: &mut State) {
    let acked = st.acked;
    while st.outbox.front().is_some_and(|f| f.seq() <= acked) {
        st.outbox.pop_front();
    }
    give_back(&mut st.outbox, OUTBOX_KEPT);
    st.results.retain(|(_, outcome)| !matches!(outcome, Outcome::Done { seq, .. } if *seq <= acked));
    give_back(&mut st.results, RESULTS_KEPT);
}

/// A burst (a busy guild chat, a long pause between acks) grows a session's
/// queues; keeping their peak capacity cost every session ~1.4 KB in a heap
/// profile. Once the burst is acknowledged and the queue nearly empty, it
/// goes back to `kept` places.
fn give_back<T>(queue: &mut VecDeque<T>, kept: usize) {
    if queue.capacity() > kept && queue.len() <= kept / 2 {
        queue.shrink_to(kept);
    }
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Sent or queued messages not yet acknowledged, oldest first.
    outbox: VecDeque<OutFrame>,
    /// Highest seq handed to the attached connection.
    written: u64,
    /// Highest seq the client acknowledged.
    acked: u64,
    /// Messages up to this seq were evicted unacknowledged (buffer full).
    evicted_upto: u64,
    results: VecDeque<(u64, Outcome)>,
    /// Highest request id seen; ids at or below it that are not in `results`
    /// are too old to answer.
    highest_request: u64,
    conn: Option<u64>,
    detached_at_ms: Option<u64>,
    ended: Option<(Status, String)>,
    /// (slot, subscription): a slot ("player", "guild") holds at most one
    /// topic, so following a guild change replaces the old guild's topic.
    subscriptions: Vec<(&'static str, Subscription)>,
    /// The session's subscriber for ordinary topics and the one for streams,
    /// made on first use and shared by all its subscriptions of that sort:
    /// one allocation per session rather than one per topic.
    subscriber: Option<Arc<SessionSubscriber>>,
    stream_subscriber: Option<Arc<SessionSubscriber>>,
}

/// What a session does with one published event.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// The push to send, if any: its topic and event, encoded once for
    /// every session the event reaches.
    pub push: Option<PushBody>,
    /// A subscription to change first (e.g. the player joined a guild).
    pub resubscribe: Option<Resubscribe>,
}

/// Replace the topic of a subscription slot (`None`: drop the slot).
#[derive(Debug, Clone)]
pub struct Resubscribe {
    pub slot: &'static str,
    pub topic: Option<String>,
}

/// Converts events into deliveries; supplied by the wire edge.
pub type Convert = fn(&Event) -> Delivery;

pub struct Session {
    pub id: u64,
    pub player_id: Arc<str>,
    limits: SessionLimits,
    state: Mutex<State>,
    /// Wakes the attached connection when there is something to write.
    notify: Notify,
}

impl Session {
    fn new(id: u64, player_id: Arc<str>, limits: SessionLimits) -> Self {
        Self {
            id,
            player_id,
            limits,
            state: Mutex::new(State {
                next_seq: 1,
                outbox: VecDeque::new(),
                written: 0,
                acked: 0,
                evicted_upto: 0,
                results: VecDeque::new(),
                highest_request: 0,
                conn: None,
                detached_at_ms: None,
                ended: None,
                subscriptions: Vec::new(),
                subscriber: None,
                stream_subscriber: None,
            }),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("session lock")
    }

    /// Waits until something was queued (or the session changed hands, or
    /// the server began to stop).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Wakes the connection attached to this session (or the next one to
    /// wait, if it is busy): it looks at the stop signal when woken.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Sequences, buffers and queues one server message.
    fn emit(&self, build: impl FnOnce(u64) -> OutFrame) -> u64 {
        let mut st = self.lock();
        if st.ended.is_some() {
            return 0;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let frame = build(seq);
        st.outbox.push_back(frame);
        while st.outbox.len() > self.limits.replay_buffer {
            // The client is not acknowledging: keep memory bounded. If it
            // resumes from before this point it must log in again.
            let evicted = st.outbox.pop_front().expect("non-empty");
            st.evicted_upto = evicted.seq();
        }
        drop(st);
        // notify_one stores a permit when the connection is busy, so a
        // message queued between its check and its wait is not missed.
        self.notify.notify_one();
        seq
    }

    pub fn emit_response(&self, id: u64, answer: &Answer) -> u64 {
        // The frame shares the answer's payload with `results`.
        self.emit(|seq| answer.frame(id, seq))
    }

    /// Queues a push whose body (topic and event) may be shared with other
    /// sessions: only the envelope head with this session's seq is its own.
    pub fn emit_push(&self, body: &PushBody) -> u64 {
        self.emit(|seq| OutFrame::push(seq, body))
    }

    /// Registers request `id` and says what to do with it.
    pub fn begin_request(&self, id: u64) -> Begin {
        let mut st = self.lock();
        if let Some((_, outcome)) = st.results.iter().find(|(rid, _)| *rid == id) {
            return match outcome {
                Outcome::Running => Begin::InProgress,
                Outcome::Done { answer, .. } => Begin::Replay(answer.clone()),
            };
        }
        if id <= st.highest_request {
            return Begin::TooOld;
        }
        st.highest_request = id;
        let limit = self.limits.remembered_results;
        if limit > 0 {
            // Make room first, so the deque never outgrows the limit's capacity.
            while st.results.len() >= limit {
                st.results.pop_front();
            }
            st.results.push_back((id, Outcome::Running));
        }
        Begin::Execute
    }

    /// Remembers the result of request `id` and sends it.
    pub fn finish_request(&self, id: u64, answer: Answer) -> u64 {
        let seq = self.emit_response(id, &answer);
        let mut st = self.lock();
        let acked = st.acked;
        if let Some(i) = st.results.iter().position(|(rid, _)| *rid == id) {
            if seq != 0 && seq <= acked {
                // Acknowledged already (a resume reported it): nothing to keep.
                st.results.remove(i);
            } else {
                st.results[i].1 = Outcome::Done { answer: Arc::new(answer), seq };
            }
        }
        seq
    }

    /// The client received everything up to `seq`.
    pub fn ack(&self, seq: u64) {
        let mut st = self.lock();
        let seq = seq.min(st.next_seq - 1);
        if seq > st.acked {
            st.acked = seq;
            forget_acknowledged(&mut st);
        }
    }

    /// Attaches connection `conn`, which has seen everything up to
    /// `last_seq`; returns the highest seq that will be replayed to it.
    pub fn attach(&self, conn: u64, last_seq: u64) -> Result<u64, AttachError> {
        let mut st = self.lock();
        if let Some((status, reason)) = &st.ended {
            return Err(AttachError::Ended(*status, reason.clone()));
        }
        let last_seq = last_seq.min(st.next_seq - 1);
        if last_seq < st.evicted_upto {
            return Err(AttachError::ReplayGap { last_seq, oldest: st.evicted_upto + 1 });
        }
        let replaced = st.conn.replace(conn).is_some_and(|old| old != conn);
        st.detached_at_ms = None;
        st.written = last_seq;
        if last_seq > st.acked {
            st.acked = last_seq;
            forget_acknowledged(&mut st);
        }
        let replay_to = st.next_seq - 1;
        drop(st);
        if replaced {
            // Wake the old connection so it notices and stops.
            self.notify.notify_waiters();
        }
        Ok(replay_to)
    }

    /// Connection `conn` is gone; the resume window starts now.
    pub fn detach(&self, conn: u64, now_ms: u64) {
        let mut st = self.lock();
        if st.conn == Some(conn) {
            st.conn = None;
            st.detached_at_ms = Some(now_ms);
        }
    }

    /// What connection `conn` should write now.
    pub fn pending(&self, conn: u64) -> Pending {
        let mut st = self.lock();
        if let Some((status, reason)) = &st.ended {
            return Pending::Ended(*status, reason.clone());
        }
        if st.conn != Some(conn) {
            return Pending::Replaced;
        }
        let written = st.written;
        let frames: Vec<OutFrame> = st.outbox.iter().filter(|f| f.seq() > written).cloned().collect();
        st.written = st.next_seq - 1;
        Pending::Frames(frames)
    }

    /// When the session lost its connection, if it has none now.
    pub fn detached_at_ms(&self) -> Option<u64> {
        self.lock().detached_at_ms
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended.is_some()
    }

    /// Unacknowledged messages held (for introspection and memory tests).
    pub fn buffered(&self) -> usize {
        self.lock().outbox.len()
    }

    /// Ends the session: its connection is told why, its subscriptions go.
    fn end(&self, status: Status, reason: &str, pubsub: &PubSub) {
        let subs = {
            let mut st = self.lock();
            if st.ended.is_some() {
                return;
            }
            st.ended = Some((status, reason.to_string()));
            st.outbox.clear();
            st.results.clear();
            std::mem::take(&mut st.subscriptions)
        };
        for (_, subscription) in subs {
            pubsub.unsubscribe(&subscription);
        }
        self.notify.notify_waiters();
        // notify_waiters wakes only current waiters; a permit covers a
        // connection that is busy right now.
        self.notify.notify_one();
    }
}

impl Session {
    /// Subscribes slot `slot` to `topic`, replacing what the slot held.
    pub fn resubscribe(
        self: &Arc<Self>,
        slot: &'static str,
        topic: Option<String>,
        runtime: &Runtime,
        convert: Convert,
    ) {
        self.subscribe_slot(slot, topic, runtime, convert, false)
    }

    /// Like [`Session::resubscribe`], for a high-volume stream: its pushes
    /// are thinned to one per `stream_push_interval_ms` per session.
    pub fn resubscribe_stream(
        self: &Arc<Self>,
        slot: &'static str,
        topic: Option<String>,
        runtime: &Runtime,
        convert: Convert,
    ) {
        self.subscribe_slot(slot, topic, runtime, convert, true)
    }

    fn subscribe_slot(
        self: &Arc<Self>,
        slot: &'static str,
        topic: Option<String>,
        runtime: &Runtime,
        convert: Convert,
        stream: bool,
    ) {
        let mut st = self.lock();
        if st.ended.is_some() {
            return;
        }
        if let Some(i) = st.subscriptions.iter().position(|(s, _)| *s == slot) {
            if topic.as_deref() == Some(&*st.subscriptions[i].1.topic) {
                return;
            }
            let (_, old) = st.subscriptions.swap_remove(i);
            runtime.pubsub().unsubscribe(&old);
        }
        if let Some(topic) = topic {
            let throttle_ms = if stream { self.limits.stream_push_interval_ms } else { 0 };
            let which = if stream { &mut st.stream_subscriber } else { &mut st.subscriber };
            let sub = which
                .get_or_insert_with(|| {
                    Arc::new(SessionSubscriber {
                        session: Arc::downgrade(self),
                        runtime: runtime.clone(),
                        convert,
                        throttle_ms,
                        pushed_at: AtomicU64::new(0),
                    })
                })
                .clone();
            let subscription = runtime.pubsub().subscribe(&topic, sub);
            // A session follows a handful of topics: no room to spare.
            st.subscriptions.reserve_exact(1);
            st.subscriptions.push((slot, subscription));
        }
    }

    /// Topics this session is subscribed to.
    pub fn topics(&self) -> Vec<String> {
        self.lock().subscriptions.iter().map(|(_, s)| s.topic.to_string()).collect()
    }
}

/// Pub/sub delivery into a session: the event becomes a sequenced push.
struct SessionSubscriber {
    session: std::sync::Weak<Session>,
    /// To follow subscription changes (a guild joined) from inside delivery.
    runtime: Runtime,
    convert: Convert,
    /// Non-zero for stream subscriptions: the session's minimum interval
    /// between stream pushes. Checked first, before even the session is
    /// reached, so a thinned event costs two loads: a market topic has
    /// thousands of subscribers, most of them thinned.
    throttle_ms: u64,
    /// Clock time of the last stream push (0: none yet). The session's
    /// stream subscriptions share this subscriber, so the interval holds
    /// across all the kinds it follows.
    pushed_at: AtomicU64,
}

impl std::fmt::Debug for SessionSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSubscriber").field("throttle_ms", &self.throttle_ms).finish_non_exhaustive()
    }
}

impl Subscriber for SessionSubscriber {
    fn deliver(&self, event: &Event) {
        if self.throttle_ms > 0 {
            let now = self.runtime.now_ms();
            let last = self.pushed_at.load(Ordering::Relaxed);
            if last != 0 && now.saturating_sub(last) < self.throttle_ms {
                // Looked up once: a registry lookup per thinned event showed
                // in the round-5 profile.
                static THINNED: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
                THINNED.get_or_init(|| metrics::counter!("guildhall_stream_pushes_thinned_total")).increment(1);
                return;
            }
            self.pushed_at.store(now.max(1), Ordering::Relaxed);
        }
        let Some(session) = self.session.upgrade() else { return };
        // Converted once per event, shared by every subscribed session.
        let delivery = event.derived(self.convert);
        if let Some(Resubscribe { slot, topic }) = delivery.resubscribe {
            session.resubscribe(slot, topic, &self.runtime, self.convert);
        }
        if let Some(push) = delivery.push {
            session.emit_push(&push);
        }
    }
}

/// All sessions of this node.
pub struct Sessions {
    limits: SessionLimits,
    by_id: Mutex<HashMap<u64, Arc<Session>>>,
    by_player: Mutex<HashMap<Arc<str>, u64>>,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self { limits, by_id: Mutex::new(HashMap::new()), by_player: Mutex::new(HashMap::new()) }
    }

    /// Opens a new session for `player_id`, subscribed to `topics`. An older
    /// session of the same player is taken over: ended with
    /// SESSION_TAKEN_OVER, which closes its connection.
    pub fn open(
        &self,
        session_id: u64,
        player_id: &str,
        topics: &[(&'static str, String)],
        runtime: &Runtime,
        convert: Convert,
    ) -> Arc<Session> {
        let pubsub = runtime.pubsub();
        let session = Arc::new(Session::new(session_id, Arc::from(player_id), self.limits));
        for (slot, topic) in topics {
            session.resubscribe(slot, Some(topic.clone()), runtime, convert);
        }
        let old = {
            let mut by_player = self.by_player.lock().expect("sessions lock");
            by_player.insert(session.player_id.clone(), session_id)
        };
        self.by_id.lock().expect("sessions lock").insert(session_id, session.clone());
        if let Some(old) = old.filter(|old| *old != session_id) {
            self.end(old, Status::SessionTakenOver, "logged in on another device", pubsub);
        }
        metrics::counter!("guildhall_sessions_opened_total").increment(1);
        session
    }

    pub fn get(&self, session_id: u64) -> Option<Arc<Session>> {
        self.by_id.lock().expect("sessions lock").get(&session_id).cloned()
    }

    /// The live session of a player, if any.
    pub fn of_player(&self, player_id: &str) -> Option<Arc<Session>> {
        let id = *self.by_player.lock().expect("sessions lock").get(player_id)?;
        self.get(id)
    }

    /// Ends and forgets a session.
    pub fn end(&self, session_id: u64, status: Status, reason: &str, pubsub: &PubSub) {
        let Some(session) = self.by_id.lock().expect("sessions lock").remove(&session_id) else {
            return;
        };
        {
            let mut by_player = self.by_player.lock().expect("sessions lock");
            if by_player.get(&session.player_id) == Some(&session_id) {
                by_player.remove(&session.player_id);
            }
        }
        session.end(status, reason, pubsub);
    }

    /// Whether a detached session's resume window has passed.
    pub fn is_expired(session: &Session, now_ms: u64, window_ms: u64) -> bool {
        session.detached_at_ms().is_some_and(|at| now_ms.saturating_sub(at) >= window_ms)
    }

    /// Ends every session whose connection has been gone for the resume
    /// window; returns how many.
    pub fn expire(&self, now_ms: u64, window_ms: u64, pubsub: &PubSub) -> usize {
        let expired: Vec<u64> = self
            .by_id
            .lock()
            .expect("sessions lock")
            .values()
            .filter(|s| Self::is_expired(s, now_ms, window_ms))
            .map(|s| s.id)
            .collect();
        for id in &expired {
            self.end(*id, Status::SessionExpired, "resume window passed", pubsub);
        }
        metrics::counter!("guildhall_sessions_expired_total").increment(expired.len() as u64);
        expired.len()
    }

    /// Wakes every session's connection (the start of a graceful stop).
    pub fn wake_all(&self) {
        let sessions: Vec<Arc<Session>> = self.by_id.lock().expect("sessions lock").values().cloned().collect();
        for session in sessions {
            session.wake();
        }
    }

    /// Ends every session (graceful shutdown).
    pub fn end_all(&self, status: Status, reason: &str, pubsub: &PubSub) {
        let ids: Vec<u64> = self.by_id.lock().expect("sessions lock").keys().copied().collect();
        for id in ids {
            self.end(id, status, reason, pubsub);
        }
    }

    pub fn count(&self) -> usize {
        self.by_id.lock().expect("sessions lock").len()
    }

    /// Sessions without a connection (inside their resume window).
    pub fn detached(&self) -> usize {
        self.by_id.lock().expect("sessions lock").values().filter(|s| s.detached_at_ms().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_protocol::decode_envelope;
    use guildhall_protocol::pb::{self, envelope::Kind};

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
        assert_eq!(s.begin_request(5), Begin::Execute);
        assert_eq!(s.begin_request(5), Begin::InProgress);
        let first = Answer::ok(Bytes::from_static(b"first"));
        s.finish_request(5, first.clone());
        assert_eq!(s.begin_request(5), Begin::Replay(Arc::new(first)));
        assert_eq!(s.begin_request(4), Begin::TooOld, "never seen, but older than the newest");
        for id in 6..=8 {
            assert_eq!(s.begin_request(id), Begin::Execute);
        }
        assert_eq!(s.begin_request(5), Begin::TooOld, "forgotten after the window");
    }

    #[test]
    fn an_acknowledged_answer_is_forgotten_but_its_request_still_runs_once() {
        let s = Session::new(1, "p".into(), limits());
        s.attach(10, 0).unwrap();
        assert_eq!(s.begin_request(1), Begin::Execute);
        let seq = s.finish_request(1, Answer::ok(Bytes::from_static(b"big answer")));
        assert_eq!(s.begin_request(2), Begin::Execute);
        let seq2 = s.finish_request(2, Answer::ok(Bytes::from_static(b"second")));
        s.ack(seq);
        assert_eq!(s.begin_request(1), Begin::TooOld, "the client has it: not kept, not run again");
        assert_eq!(s.begin_request(2), Begin::Replay(Arc::new(Answer::ok(Bytes::from_static(b"second")))));
        // A resume that reports the second as seen acknowledges it too.
        s.attach(11, seq2).unwrap();
        assert_eq!(s.begin_request(2), Begin::TooOld);
    }

    #[test]
    fn acknowledged_results_give_their_places_back() {
        let s = Session::new(1, "p".into(), SessionLimits { remembered_results: 8, ..limits() });
        s.attach(10, 0).unwrap();
        let mut last = 0;
        for id in 1..=8 {
            assert_eq!(s.begin_request(id), Begin::Execute);
            last = s.finish_request(id, Answer::ok(Bytes::from_static(b"x")));
        }
        assert!(s.lock().results.capacity() >= 8);
        s.ack(last);
        let st = s.lock();
        assert!(st.results.is_empty(), "every answer acknowledged: nothing to remember");
        assert!(st.results.capacity() <= RESULTS_KEPT, "capacity {}", st.results.capacity());
    }

    fn runtime() -> Runtime {
        Runtime::builder(
            Arc::new(guildhall_store::MemoryStore::new()),
            Arc::new(guildhall_entity::ManualClock::default()),
        )
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
}
