//! Topics that entities and sessions subscribe to.
//!
//! A subscriber is a callback rather than a channel so that a session does
//! not need a task or a queue of its own per subscription: it appends the
//! event to its replay buffer and wakes its connection. Payloads are bytes
//! (the publisher's serialised domain event) so that an event can cross to
//! another node unchanged.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// One published event.
#[derive(Debug)]
pub struct Event {
    pub topic: Arc<str>,
    pub payload: Bytes,
    /// What subscribers derive from the payload, computed by the first one
    /// and shared by the rest: an event to a thousand subscribers is decoded
    /// once, not a thousand times.
    derived: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Event {
    pub fn new(topic: Arc<str>, payload: Bytes) -> Self {
        Self { topic, payload, derived: OnceLock::new() }
    }

    /// The value `derive` makes of this event, computed once per event and
    /// cloned for every later subscriber asking for the same type.
    /// Subscribers that ask for the same type must derive it the same way
    /// (the first result is the one everybody gets); a subscriber asking for
    /// another type than the cached one computes its own.
    pub fn derived<T: Any + Clone + Send + Sync>(&self, derive: impl Fn(&Event) -> T) -> T {
        let cached = self.derived.get_or_init(|| Box::new(derive(self)));
        match cached.downcast_ref::<T>() {
            Some(value) => value.clone(),
            None => derive(self),
        }
    }
}

/// Receives events of the topics it subscribed to. Called on the publisher's
/// task: implementations must be quick and must not block.
pub trait Subscriber: Send + Sync + 'static {
    fn deliver(&self, event: &Event);
}

/// Identifies one subscription, to unsubscribe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

/// What [`PubSub::subscribe`] hands back, to unsubscribe with. `topic` is
/// the table's own copy of the name: a thousand sessions following one
/// topic hold one string between them, not a thousand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: Arc<str>,
    pub id: SubscriptionId,
}

/// A topic's subscribers. Shared copy-on-write: a publish takes the list
/// with one reference count instead of cloning every entry (a market topic
/// has thousands), and a (un)subscribe during a publish copies it once.
type Subs = Arc<Vec<(SubscriptionId, Arc<dyn Subscriber>)>>;

/// Carries published events to subscribers on other nodes: the seam the
/// cluster's pub/sub plugs into. It hears which topics this node follows,
/// so that an event crosses to a node once, and only to nodes that follow
/// its topic, however many subscribers each has there.
pub trait Fanout: Send + Sync + 'static {
    /// `topic` gained its first subscriber on this node (`true`) or lost
    /// its last (`false`).
    fn interest(&self, _topic: &str, _interested: bool) {}
    /// An event published on this node: carry it to the other nodes that
    /// follow its topic, where it is handed to [`PubSub::deliver_local`].
    fn publish(&self, topic: &str, payload: &Bytes);
}

/// A node alone: events stay on it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFanout;

impl Fanout for LocalFanout {
    fn publish(&self, _topic: &str, _payload: &Bytes) {}
}

/// The topic table of one node.
pub struct PubSub {
    topics: Mutex<HashMap<Arc<str>, Subs>>,
    next_id: AtomicU64,
    fanout: Arc<dyn Fanout>,
}

impl Default for PubSub {
    fn default() -> Self {
        Self::with_fanout(Arc::new(LocalFanout))
    }
}

impl PubSub {
    pub fn new() -> Self {
        Self::default()
    }

    /// A topic table whose publishes also reach other nodes through `fanout`.
    pub fn with_fanout(fanout: Arc<dyn Fanout>) -> Self {
        Self { topics: Mutex::new(HashMap::new()), next_id: AtomicU64::new(0), fanout }
    }

    pub fn subscribe(&self, topic: &str, subscriber: Arc<dyn Subscriber>) -> Subscription {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut topics = self.topics.lock().expect("pubsub lock");
        let (topic, first) = match topics.get_key_value(topic).map(|(name, _)| name.clone()) {
            Some(name) => {
                if let Some(subs) = topics.get_mut(&name) {
                    Arc::make_mut(subs).push((id, subscriber));
                }
                (name, false)
            }
            None => {
                let name: Arc<str> = Arc::from(topic);
                topics.insert(name.clone(), Arc::new(vec![(id, subscriber)]));
                (name, true)
            }
        };
        drop(topics);
        if first {
            self.fanout.interest(&topic, true);
        }
        Subscription { topic, id }
    }

    pub fn unsubscribe(&self, subscription: &Subscription) {
        let mut topics = self.topics.lock().expect("pubsub lock");
        let mut last = false;
        if let Some(subs) = topics.get_mut(&subscription.topic) {
            if let Some(i) = subs.iter().position(|(sid, _)| *sid == subscription.id) {
                Arc::make_mut(subs).swap_remove(i);
            }
            if subs.is_empty() {
                topics.remove(&subscription.topic);
                last = true;
            }
        }
        drop(topics);
        if last {
            self.fanout.interest(&subscription.topic, false);
        }
    }

    /// Delivers to every current subscriber of `topic`, on this node and
    /// (through the fanout) on the others; returns how many here.
    pub fn publish(&self, topic: &str, payload: Bytes) -> usize {
        self.fanout.publish(topic, &payload);
        self.deliver_local(topic, payload)
    }

    /// Delivers to this node's subscribers of `topic` only: for an event
    /// that another node published.
    pub fn deliver_local(&self, topic: &str, payload: Bytes) -> usize {
        // Take the list out of the lock so that a subscriber that
        // (un)subscribes from inside `deliver` cannot deadlock; it then
        // changes a copy, and this publish goes on with the list it took.
        let (topic, subs) = {
            let topics = self.topics.lock().expect("pubsub lock");
            match topics.get_key_value(topic) {
                Some((t, subs)) => (t.clone(), subs.clone()),
                None => return 0,
            }
        };
        let event = Event::new(topic, payload);
        for (_, sub) in subs.iter() {
            sub.deliver(&event);
        }
        metrics::counter!("guildhall_pubsub_deliveries_total").increment(subs.len() as u64);
        subs.len()
    }

    /// Number of topics with at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.topics.lock().expect("pubsub lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Mutex<Vec<String>>);
    impl Subscriber for Collect {
        fn deliver(&self, event: &Event) {
            self.0.lock().unwrap().push(format!("{}:{}", event.topic, String::from_utf8_lossy(&event.payload)));
        }
    }

    #[test]
    fn derived_values_are_computed_once_per_event_and_per_type() {
        let e = Event::new(Arc::from("t"), Bytes::from_static(b"x"));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let derive = |ev: &Event| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ev.payload.len()
        };
        assert_eq!(e.derived(derive), 1);
        assert_eq!(e.derived(derive), 1);
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1, "computed once");
        assert_eq!(e.derived(|ev: &Event| ev.topic.to_string()), "t", "another type is computed, not mistaken");
    }

    #[test]
    fn publish_reaches_subscribers_of_the_topic_only() {
        let ps = PubSub::new();
        let a = Arc::new(Collect(Mutex::new(vec![])));
        let b = Arc::new(Collect(Mutex::new(vec![])));
        let ida = ps.subscribe("guild/1", a.clone());
        let idb = ps.subscribe("guild/2", b.clone());
        let again = ps.subscribe("guild/2", b.clone());
        assert!(Arc::ptr_eq(&idb.topic, &again.topic), "one copy of a topic's name");
        ps.unsubscribe(&again);
        assert_eq!(ps.publish("guild/1", Bytes::from_static(b"hi")), 1);
        assert_eq!(ps.publish("guild/3", Bytes::from_static(b"nobody")), 0);
        ps.unsubscribe(&ida);
        assert_eq!(ps.publish("guild/1", Bytes::from_static(b"gone")), 0);
        assert_eq!(*a.0.lock().unwrap(), vec!["guild/1:hi".to_string()]);
        assert!(b.0.lock().unwrap().is_empty());
        assert_eq!(ps.topic_count(), 1);
    }

    /// Subscribes a newcomer and unsubscribes itself when it first hears an
    /// event, as a session following a guild change does.
    struct Mover {
        ps: Arc<PubSub>,
        me: Mutex<Option<Subscription>>,
        newcomer: Arc<Collect>,
        heard: Mutex<Vec<String>>,
    }
    impl Subscriber for Mover {
        fn deliver(&self, event: &Event) {
            self.heard.lock().unwrap().push(String::from_utf8_lossy(&event.payload).into_owned());
            if let Some(me) = self.me.lock().unwrap().take() {
                self.ps.unsubscribe(&me);
                self.ps.subscribe("guild/1", self.newcomer.clone());
            }
        }
    }

    #[test]
    fn subscribers_may_change_the_table_while_an_event_is_delivered() {
        let ps = Arc::new(PubSub::new());
        let newcomer = Arc::new(Collect(Mutex::new(vec![])));
        let mover = Arc::new(Mover {
            ps: ps.clone(),
            me: Mutex::new(None),
            newcomer: newcomer.clone(),
            heard: Mutex::new(vec![]),
        });
        let stay = Arc::new(Collect(Mutex::new(vec![])));
        *mover.me.lock().unwrap() = Some(ps.subscribe("guild/1", mover.clone()));
        ps.subscribe("guild/1", stay.clone());
        assert_eq!(ps.publish("guild/1", Bytes::from_static(b"one")), 2, "the list as it was when published");
        assert_eq!(ps.publish("guild/1", Bytes::from_static(b"two")), 2, "the mover left, the newcomer came");
        assert_eq!(*mover.heard.lock().unwrap(), vec!["one".to_string()]);
        assert_eq!(*stay.0.lock().unwrap(), vec!["guild/1:one".to_string(), "guild/1:two".to_string()]);
        assert_eq!(*newcomer.0.lock().unwrap(), vec!["guild/1:two".to_string()], "not the event in flight");
    }
}
