//! The host of one entity kind: its live instances ("slots") and the task
//! that runs each instance.
//!
//! Life of an instance: a caller finds no slot for the key, creates one with a
//! fresh mailbox and spawns [`run_entity`], which loads the snapshot while the
//! first letters already queue. The task handles letters one at a time. To
//! passivate, it closes its mailbox, handles what was already queued, writes
//! its state, and only *then* removes its slot and signals `stopped`; a caller
//! whose letter bounced off the closed mailbox waits for that signal before
//! activating a new instance, so the new instance always loads the state the
//! old one wrote.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use crate::mailbox;
use crate::remote::{self, RemoteLetter, RemoteOutcome};

use crate::instance::load;
use crate::introspect::{EntityStats, KindStats};
use crate::task::run_entity;
use crate::{CallError, Entity, EntityId, Runtime};

pub(crate) type Reply<E> = oneshot::Sender<Result<<E as Entity>::Reply, CallError>>;

/// What travels in a mailbox. Boxed in the channel so that an idle mailbox's
/// first block of slots stays small whatever the size of the message type.
pub(crate) enum Letter<E: Entity> {
    Call { msg: E::Msg, reply: Option<Reply<E>> },
    Flush { done: oneshot::Sender<()> },
    Passivate,
    Snapshot { reply: oneshot::Sender<serde_json::Value> },
}

/// One live instance of an entity.
pub(crate) struct Slot<E: Entity> {
    pub tx: mailbox::Sender<Box<Letter<E>>>,
    /// Distinguishes this instance from a later one of the same key, so that a
    /// stopping instance never removes its successor's slot.
    pub(crate) gen: u64,
    /// Clock time of the last letter delivered, for idle passivation.
    pub last_active: AtomicU64,
    /// Mirrors the task's dirty flag so that a periodic flush only writes to
    /// the mailboxes of entities that have something to write.
    pub dirty: AtomicBool,
    /// Clock time at which the state became dirty (0: clean). Each instance
    /// is flushed once it has been dirty for the flush interval, so the
    /// write-behind work spreads over time instead of every dirty instance
    /// writing in the same tick.
    pub dirty_since: AtomicU64,
    /// When the instance's timer fires (clock ms); 0: no timer.
    timer_at: AtomicU64,
    stopped: AtomicBool,
    stopped_notify: Notify,
}

impl<E: Entity> Slot<E> {
    pub(crate) fn timer(&self) -> Option<u64> {
        Some(self.timer_at.load(Ordering::Relaxed)).filter(|at| *at != 0)
    }

    pub(crate) fn set_timer(&self, at: Option<u64>) {
        self.timer_at.store(at.map_or(0, |at| at.max(1)), Ordering::Relaxed);
    }

    pub async fn wait_stopped(&self) {
        loop {
            let notified = self.stopped_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stopped.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stopped_notify.notify_waiters();
    }
}

pub(crate) struct KindHost<E: Entity> {
    slots: Mutex<HashMap<Arc<str>, Arc<Slot<E>>>>,
    next_gen: AtomicU64,
}

impl<E: Entity> KindHost<E> {
    pub fn new() -> Self {
        Self { slots: Mutex::new(HashMap::new()), next_gen: AtomicU64::new(1) }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Slot<E>>> {
        self.slots.lock().expect("slots lock").get(key).cloned()
    }

    /// The live slot of `key`, activating a new instance if there is none.
    pub fn get_or_activate(self: &Arc<Self>, rt: &Runtime, key: &str) -> Result<Arc<Slot<E>>, CallError> {
        let mut slots = self.slots.lock().expect("slots lock");
        if let Some(slot) = slots.get(key) {
            return Ok(slot.clone());
        }
        if rt.is_shutting_down() {
            return Err(CallError::ShuttingDown);
        }
        if key.chars().any(char::is_control) {
            return Err(CallError::BadKey(key.to_string()));
        }
        let (tx, rx) = mailbox::channel(rt.config().mailbox_capacity);
        let slot = Arc::new(Slot {
            tx,
            gen: self.next_gen.fetch_add(1, Ordering::Relaxed),
            last_active: AtomicU64::new(rt.now_ms()),
            dirty: AtomicBool::new(false),
            dirty_since: AtomicU64::new(0),
            timer_at: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            stopped_notify: Notify::new(),
        });
        let key: Arc<str> = Arc::from(key);
        slots.insert(key.clone(), slot.clone());
        drop(slots);
        metrics::counter!("guildhall_entity_activations_total", "kind" => E::KIND).increment(1);
        tokio::spawn(run_entity(rt.clone(), self.clone(), EntityId::new(E::KIND, key), slot.clone(), rx));
        Ok(slot)
    }

    pub(crate) fn remove(&self, key: &str, gen: u64) {
        let mut slots = self.slots.lock().expect("slots lock");
        if slots.get(key).is_some_and(|s| s.gen == gen) {
            slots.remove(key);
        }
    }

    fn all(&self) -> Vec<(Arc<str>, Arc<Slot<E>>)> {
        self.slots.lock().expect("slots lock").iter().map(|(k, s)| (k.clone(), s.clone())).collect()
    }
}

/// The kind-independent face of a [`KindHost`], for maintenance and
/// introspection over every kind.
pub(crate) trait AnyHost: Send + Sync + 'static {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn stats(&self) -> KindStats;
    fn entities(&self, now_ms: u64) -> Vec<EntityStats>;
    /// Asks every instance dirty for `interval_ms` at `now_ms` (or for the
    /// kind's [`Entity::WRITE_BEHIND_MS`], if longer) to write its state
    /// (`now_ms = u64::MAX`: every dirty one); the receivers fire when done.
    fn request_flush(&self, now_ms: u64, interval_ms: u64) -> Vec<oneshot::Receiver<()>>;
    /// Asks every instance idle since before `idle_before_ms` to passivate
    /// (not those with a timer set).
    fn passivate_idle(&self, idle_before_ms: u64) -> usize;
    /// Sends its timer message to every instance whose timer is due at
    /// `now_ms`, clearing the timer; the futures finish when each is handled.
    fn fire_timers(&self, now_ms: u64) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>>;
    /// Asks every instance to passivate; the futures finish when each stopped.
    fn passivate_all(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>>;
    /// The state of a live instance as JSON; None if the key is not active.
    fn snapshot(&self, key: &str) -> Option<oneshot::Receiver<serde_json::Value>>;
    /// Delivers a letter another node sent (see [`Runtime::receive`]).
    fn receive(&self, rt: Runtime, letter: RemoteLetter) -> Pin<Box<dyn Future<Output = RemoteOutcome> + Send>>;
    /// The stored state (snapshot and parts) as JSON, read without
    /// activating; None if nothing is stored.
    fn stored_json(
        &self,
        rt: Runtime,
        key: String,
    ) -> Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, CallError>> + Send>>;
}

impl<E: Entity> AnyHost for KindHost<E> {
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn stats(&self) -> KindStats {
        let slots = self.slots.lock().expect("slots lock");
        let mut stats = KindStats { kind: E::KIND.to_string(), ..Default::default() };
        for slot in slots.values() {
            let depth = slot.tx.depth();
            stats.active += 1;
            stats.dirty += slot.dirty.load(Ordering::Relaxed) as usize;
            stats.queued += depth;
            stats.max_mailbox_depth = stats.max_mailbox_depth.max(depth);
        }
        stats
    }

    fn entities(&self, now_ms: u64) -> Vec<EntityStats> {
        self.all()
            .into_iter()
            .map(|(key, slot)| EntityStats {
                key: key.to_string(),
                mailbox_depth: slot.tx.depth(),
                dirty: slot.dirty.load(Ordering::Relaxed),
                idle_ms: now_ms.saturating_sub(slot.last_active.load(Ordering::Relaxed)),
            })
            .collect()
    }

    fn request_flush(&self, now_ms: u64, interval_ms: u64) -> Vec<oneshot::Receiver<()>> {
        let dirty_before_ms = now_ms.saturating_sub(interval_ms.max(E::WRITE_BEHIND_MS));
        let mut waits = Vec::new();
        for (_, slot) in self.all() {
            if !slot.dirty.load(Ordering::Relaxed) || slot.dirty_since.load(Ordering::Relaxed) > dirty_before_ms {
                continue;
            }
            let (done, wait) = oneshot::channel();
            // A full mailbox is busy: skip it now, it is flushed next round
            // (or when it passivates).
            if slot.tx.try_send(Box::new(Letter::Flush { done })).is_ok() {
                waits.push(wait);
            }
        }
        waits
    }

    fn passivate_idle(&self, idle_before_ms: u64) -> usize {
        let mut n = 0;
        for (_, slot) in self.all() {
            if slot.last_active.load(Ordering::Relaxed) < idle_before_ms
                && slot.timer().is_none()
                && slot.tx.try_send(Box::new(Letter::Passivate)).is_ok()
            {
                n += 1;
            }
        }
        n
    }

    fn fire_timers(&self, now_ms: u64) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        let mut handled = Vec::new();
        // A kind without timers (players: most instances of a node) is not
        // walked at all.
        if E::timer_msg().is_none() {
            return handled;
        }
        for (_, slot) in self.all() {
            let Some(at) = slot.timer().filter(|at| *at <= now_ms) else { continue };
            let Some(msg) = E::timer_msg() else { continue };
            let (reply, wait) = oneshot::channel();
            slot.set_timer(None);
            match slot.tx.try_send(Box::new(Letter::Call { msg, reply: Some(reply) })) {
                Ok(()) => handled.push(Box::pin(async move {
                    let _ = wait.await;
                }) as Pin<Box<dyn Future<Output = ()> + Send>>),
                // A full mailbox is busy: the timer fires at the next round.
                Err(_) => slot.set_timer(Some(at)),
            }
        }
        handled
    }

    fn passivate_all(&self) -> Vec<Pin<Box<dyn Future<Output = ()> + Send>>> {
        self.all()
            .into_iter()
            .map(|(_, slot)| {
                Box::pin(async move {
                    // A closed mailbox means the instance is stopping already.
                    let _ = slot.tx.send(Box::new(Letter::Passivate)).await;
                    slot.wait_stopped().await;
                }) as Pin<Box<dyn Future<Output = ()> + Send>>
            })
            .collect()
    }

    fn receive(&self, rt: Runtime, letter: RemoteLetter) -> Pin<Box<dyn Future<Output = RemoteOutcome> + Send>> {
        Box::pin(async move {
            let msg: E::Msg = remote::decode(&letter.msg)?;
            if !letter.wants_reply {
                rt.deliver_boxed::<E>(&letter.key, Box::new(Letter::Call { msg, reply: None })).await?;
                return Ok(None);
            }
            let (reply, wait) = oneshot::channel();
            rt.deliver_boxed::<E>(&letter.key, Box::new(Letter::Call { msg, reply: Some(reply) })).await?;
            let answer = wait.await.map_err(|_| CallError::Stopped)??;
            Ok(Some(remote::encode(&answer)?))
        })
    }

    fn stored_json(
        &self,
        rt: Runtime,
        key: String,
    ) -> Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, CallError>> + Send>> {
        Box::pin(async move {
            let storage_key = EntityId::new(E::KIND, Arc::from(key.as_str())).storage_key();
            let (state, version) = load::<E>(&rt, &key, &storage_key).await?;
            Ok((version > 0).then(|| state.state_json()))
        })
    }

    fn snapshot(&self, key: &str) -> Option<oneshot::Receiver<serde_json::Value>> {
        let slot = self.get(key)?;
        let (reply, wait) = oneshot::channel();
        slot.tx.try_send(Box::new(Letter::Snapshot { reply })).ok()?;
        Some(wait)
    }
}
