//! Subscriptions and delivery: a session follows a few pub/sub topics, one
//! per slot, and every event published on them becomes a sequenced push
//! (thinned for high-volume streams).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use guildhall_entity::{Event, Runtime, Subscriber};
use guildhall_protocol::PushBody;

use super::Session;

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
pub(super) struct SessionSubscriber {
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
                // Looked up once: a registry lookup per thinned event shows
                // in a CPU profile under load.
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
