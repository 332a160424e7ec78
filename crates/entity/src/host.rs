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
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use guildhall_store::{SideWrite, StoreError, Version, WriteOp};
use tokio::sync::{oneshot, Notify};

use crate::mailbox;
use crate::remote::{self, RemoteLetter, RemoteOutcome};

use crate::introspect::{EntityStats, KindStats};
use crate::{CallError, Ctx, Entity, EntityId, Runtime};

pub(crate) type Reply<E> = oneshot::Sender<Result<<E as Entity>::Reply, CallError>>;

/// Most calls handled before one shared durable write (see `run_entity`):
/// bounds how long the first of them waits for its reply.
const MAX_CALLS_PER_WRITE: usize = 64;

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
    gen: u64,
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
    fn timer(&self) -> Option<u64> {
        Some(self.timer_at.load(Ordering::Relaxed)).filter(|at| *at != 0)
    }

    fn set_timer(&self, at: Option<u64>) {
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

    fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stopped_notify.notify_waiters();
    }
}

/// Frees an instance's slot when its task ends, however it ends: normally,
/// after a panic, or when the runtime drops the task. Without it a panic
/// left the slot taken, and every later letter to the entity waited in a
/// mailbox nobody read until its call timed out.
struct SlotGuard<E: Entity> {
    host: Arc<KindHost<E>>,
    slot: Arc<Slot<E>>,
    key: Arc<str>,
}

impl<E: Entity> Drop for SlotGuard<E> {
    fn drop(&mut self) {
        self.host.remove(&self.key, self.slot.gen);
        self.slot.mark_stopped();
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

    fn remove(&self, key: &str, gen: u64) {
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
        for (_, slot) in self.all() {
            let Some(at) = slot.timer().filter(|at| *at <= now_ms) else { continue };
            let Some(msg) = E::timer_msg() else {
                slot.set_timer(None);
                continue;
            };
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

/// The storage key of part `name` of the entity stored under `storage_key`.
/// The NUL byte cannot occur in an entity key, so parts never collide with
/// another entity's snapshot, and one prefix scan finds them all.
fn part_key(storage_key: &[u8], name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(storage_key.len() + 1 + name.len());
    key.extend_from_slice(storage_key);
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Loads the instance's snapshot (and parts), or creates fresh state if none
/// is stored.
async fn load<E: Entity>(rt: &Runtime, key: &str, storage_key: &[u8]) -> Result<(E, Version), CallError> {
    let fail = |e: String| CallError::Load(format!("{}/{key}: {e}", E::KIND));
    let (mut state, version) = match rt.store().get(storage_key).await {
        Ok(Some(record)) => serde_json::from_slice::<E>(&record.value)
            .map(|state| (state, record.version))
            .map_err(|e| fail(format!("snapshot does not decode: {e}")))?,
        Ok(None) => (E::create(key, rt.now_ms()), 0),
        Err(e) => return Err(fail(e.to_string())),
    };
    if E::HAS_PARTS && version > 0 {
        let prefix = part_key(storage_key, "");
        let records = rt.store().scan_prefix(&prefix).await.map_err(|e| fail(e.to_string()))?;
        let parts = records
            .into_iter()
            .map(|(k, r)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), r.value))
            .collect();
        state.load_parts(parts).map_err(|e| fail(format!("parts do not decode: {e}")))?;
    }
    Ok((state, version))
}

/// [`load`] as a boxed [`Instance`], ready for its task.
async fn load_instance<E: Entity>(rt: &Runtime, id: &EntityId) -> Result<Box<Instance<E>>, CallError> {
    let storage_key = id.storage_key();
    let (state, version) = load::<E>(rt, &id.key, &storage_key).await?;
    Ok(Box::new(Instance {
        state,
        version,
        dirty: version == 0,
        storage_key,
        parts: Default::default(),
        inflight: None,
    }))
}

/// The state of one instance as its task sees it.
struct Instance<E: Entity> {
    state: E,
    /// Version of the stored snapshot this state derives from; the next write
    /// is conditional on it.
    version: Version,
    dirty: bool,
    storage_key: Vec<u8>,
    /// Part changes not yet written, newest per name (see
    /// [`Entity::take_part_changes`]).
    parts: Parts,
    /// The write-behind write handed to the flusher and not confirmed yet.
    inflight: Option<Box<Inflight>>,
}

type Parts = std::collections::BTreeMap<String, Option<Vec<u8>>>;

/// A write-behind write in the flusher's hands. The instance does not wait
/// for it: it goes on handling letters, and the next write is conditional
/// on the version this one will produce. Waiting made every request that
/// reached a player while its periodic write was being committed wait for
/// that commit, a few milliseconds to tens under load: a steady share of
/// all requests, and the p99 (BENCHMARKS.md, round 12).
struct Inflight {
    result: oneshot::Receiver<Result<Version, StoreError>>,
    /// The version the write is conditional on.
    expected: Version,
    /// Its part changes, taken back if the write fails.
    parts: Parts,
    /// A flush waiting for this write to be on disk.
    done: Option<oneshot::Sender<()>>,
}

fn stale_error(expected: Version, actual: Version) -> CallError {
    CallError::Persist {
        reason: format!("stale instance: wrote against version {expected}, store has {actual}"),
        stale: true,
    }
}

impl<E: Entity> Instance<E> {
    /// The conditional write of the current state and part changes.
    fn write_op(&self) -> Result<WriteOp, CallError> {
        let value = serde_json::to_vec(&self.state)
            .map_err(|e| CallError::Persist { reason: format!("snapshot does not encode: {e}"), stale: false })?;
        let side = self
            .parts
            .iter()
            .map(|(name, value)| SideWrite { key: part_key(&self.storage_key, name), value: value.clone() })
            .collect();
        let op = WriteOp::Put { key: self.storage_key.clone(), value, expected: self.version, side };
        // Per kind, to tell which entities make the store's write volume (an
        // LSM store rewrites it in compaction: BENCHMARKS.md, "Long runs").
        metrics::counter!("guildhall_entity_written_bytes_total", "kind" => E::KIND)
            .increment(op.payload_bytes() as u64);
        metrics::counter!("guildhall_entity_writes_total", "kind" => E::KIND).increment(1);
        Ok(op)
    }

    fn mark_clean(&mut self, slot: &Slot<E>) {
        self.dirty = false;
        slot.dirty.store(false, Ordering::Relaxed);
        slot.dirty_since.store(0, Ordering::Relaxed);
    }

    fn mark_dirty(&mut self, rt: &Runtime, slot: &Slot<E>) {
        if !self.dirty {
            slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
        }
        self.dirty = true;
        slot.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the state conditionally on `version` and waits for the commit
    /// (durable-before-reply, passivation).
    async fn persist(&mut self, rt: &Runtime, slot: &Slot<E>) -> Result<(), CallError> {
        // A failed write-behind left the state dirty again: this write covers it.
        if let Err(e @ CallError::Persist { stale: true, .. }) = self.settle(rt, slot).await {
            return Err(e);
        }
        let op = self.write_op()?;
        match rt.flusher().write(op).await {
            Ok(v) => {
                self.parts.clear();
                self.version = v;
                self.mark_clean(slot);
                Ok(())
            }
            Err(StoreError::Conflict { expected, actual }) => {
                metrics::counter!("guildhall_entity_stale_writes_total", "kind" => E::KIND).increment(1);
                Err(stale_error(expected, actual))
            }
            Err(e) => Err(CallError::Persist { reason: e.to_string(), stale: false }),
        }
    }

    /// Write-behind: hands the state to the flusher without waiting (see
    /// [`Inflight`]); `done` is answered once it is on disk. At most one such
    /// write is in flight: the caller settles the previous one first.
    fn submit(&mut self, rt: &Runtime, slot: &Slot<E>, done: Option<oneshot::Sender<()>>) -> Result<(), CallError> {
        debug_assert!(self.inflight.is_none());
        let op = self.write_op()?;
        let expected = self.version;
        let result = rt.flusher().submit(op);
        self.inflight = Some(Box::new(Inflight { result, expected, parts: std::mem::take(&mut self.parts), done }));
        self.version = expected + 1;
        self.mark_clean(slot);
        Ok(())
    }

    /// Takes in the outcome of the write in flight.
    fn confirm(
        &mut self,
        outcome: Result<Result<Version, StoreError>, oneshot::error::RecvError>,
        rt: &Runtime,
        slot: &Slot<E>,
    ) -> Result<(), CallError> {
        let Some(f) = self.inflight.take() else { return Ok(()) };
        let outcome = outcome.unwrap_or_else(|_| Err(StoreError::Backend("flusher dropped the write".into())));
        let result = match outcome {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict { expected, actual }) => {
                metrics::counter!("guildhall_entity_stale_writes_total", "kind" => E::KIND).increment(1);
                Err(stale_error(expected, actual))
            }
            Err(e) => {
                // Not written (a backend failure applies none of a batch):
                // the state is dirty again, with the parts it carried under
                // any newer change of the same part.
                self.version = f.expected;
                for (name, value) in f.parts {
                    self.parts.entry(name).or_insert(value);
                }
                self.mark_dirty(rt, slot);
                Err(CallError::Persist { reason: e.to_string(), stale: false })
            }
        };
        if let Some(done) = f.done {
            let _ = done.send(());
        }
        result
    }

    /// Waits for the write in flight, if any, and takes in its outcome.
    async fn settle(&mut self, rt: &Runtime, slot: &Slot<E>) -> Result<(), CallError> {
        let Some(f) = self.inflight.as_mut() else { return Ok(()) };
        let outcome = (&mut f.result).await;
        self.confirm(outcome, rt, slot)
    }
}

/// Logs a failed write-behind; true if it failed because the instance is stale.
fn write_behind_stale(id: &EntityId, result: Result<(), CallError>) -> bool {
    match result {
        Ok(()) => false,
        Err(e) => {
            tracing::warn!(entity = %id, error = %e, "write-behind failed");
            e.is_stale()
        }
    }
}

/// What one step of an instance's task works on: the instance, its
/// mailbox, and the letter set aside while batching (see [`handle_letter`]).
struct Step<'a, E: Entity> {
    rt: &'a Runtime,
    slot: &'a Slot<E>,
    id: &'a EntityId,
    inst: &'a mut Instance<E>,
    rx: &'a mut mailbox::Receiver<Box<Letter<E>>>,
    deferred: &'a mut Option<Box<Letter<E>>>,
}

/// Handles a call and the calls queued behind it that share its write (see
/// the comment inside), then answers them all; returns whether the instance
/// turned out stale. Part of the step [`handle_letter`], boxed by the
/// caller, so that an idle instance's task does not carry this step's
/// locals (a player's task was 1,256 bytes with them inline, 992 without,
/// in a debug build).
async fn run_calls<E: Entity>(step: Step<'_, E>, msg: E::Msg, reply: Option<Reply<E>>) -> bool {
    let Step { rt, slot, id, inst, rx, deferred } = step;
    // Calls already queued behind a durable one are handled before it is
    // written, and share its write: one snapshot and one commit for the
    // batch instead of one each. A hub that many players call (the guild
    // directory) keeps up this way when commits are paced
    // (`commit_interval`). Every reply waits for the write, as it would have
    // waited in the mailbox anyway.
    let mut batch: Vec<(Option<Reply<E>>, E::Reply, bool)> = Vec::new();
    let mut next = Some((msg, reply));
    let mut durable = false;
    let mut stop = false;
    while let Some((msg, reply)) = next.take() {
        let mut ctx = Ctx::new(id.clone(), rt.clone(), slot.timer());
        // Inline: this whole step is boxed by the caller.
        let answer = inst.state.handle(msg, &mut ctx).await;
        slot.set_timer(ctx.timer);
        let part_changes = if E::HAS_PARTS { inst.state.take_part_changes() } else { Vec::new() };
        let parts_changed = !part_changes.is_empty();
        inst.parts.extend(part_changes);
        if ctx.changed || parts_changed {
            if !inst.dirty {
                slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
            }
            inst.dirty = true;
            slot.dirty.store(true, Ordering::Relaxed);
        }
        durable |= ctx.durable;
        batch.push((reply, answer, ctx.durable));
        if ctx.stop {
            stop = true;
            break;
        }
        if !durable || batch.len() >= MAX_CALLS_PER_WRITE {
            break;
        }
        if let Some(letter) = rx.try_recv() {
            match *letter {
                Letter::Call { msg, reply } => next = Some((msg, reply)),
                other => *deferred = Some(Box::new(other)),
            }
        }
    }
    let written = if !durable {
        Ok(())
    } else if inst.dirty {
        inst.persist(rt, slot).await
    } else {
        // Unchanged, but what it answers from may be in a write-behind not
        // yet on disk: wait for it (and write again if it failed).
        match inst.settle(rt, slot).await {
            Err(CallError::Persist { stale: false, .. }) => inst.persist(rt, slot).await,
            other => other,
        }
    };
    let stale = written.as_ref().is_err_and(CallError::is_stale);
    for (reply, answer, wanted_durable) in batch {
        let result = match &written {
            // A stale instance's answers are void: newer state exists.
            Err(e) if stale || wanted_durable => Err(e.clone()),
            _ => Ok(answer),
        };
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
    if stop && !stale {
        rx.close();
    }
    stale
}

/// Handles one letter; returns whether the instance turned out stale. Boxed
/// by the caller, like [`run_calls`].
async fn handle_letter<E: Entity>(step: Step<'_, E>, letter: Box<Letter<E>>) -> bool {
    match *letter {
        Letter::Call { msg, reply } => run_calls(step, msg, reply).await,
        Letter::Flush { done } => {
            let Step { rt, slot, id, inst, .. } = step;
            // The previous write-behind, committed long ago as a rule.
            if write_behind_stale(id, inst.settle(rt, slot).await) {
                let _ = done.send(());
                return true;
            }
            if !inst.dirty {
                let _ = done.send(());
            } else if let Err(e) = inst.submit(rt, slot, Some(done)) {
                tracing::warn!(entity = %id, error = %e, "flush failed");
            }
            false
        }
        Letter::Passivate => {
            step.rx.close();
            false
        }
        Letter::Snapshot { reply } => {
            let _ = reply.send(step.inst.state.state_json());
            false
        }
    }
}

/// An instance's task. A function returning an `async move` block rather
/// than an `async fn`: an `async fn` keeps its arguments twice in its future
/// (as captured and as locals), 72 bytes here.
#[allow(clippy::manual_async_fn)] // deliberately not an `async fn`: see above
fn run_entity<E: Entity>(
    rt: Runtime,
    host: Arc<KindHost<E>>,
    id: EntityId,
    slot: Arc<Slot<E>>,
    mut rx: mailbox::Receiver<Box<Letter<E>>>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let guard = SlotGuard { host, slot: slot.clone(), key: id.key.clone() };
        // The key lives in `id` only: every local kept across an await is a
        // place in this task's future. The instance is boxed: inline, it and
        // the load's result (moved into it) each took their own place in this
        // task's future for as long as the task lives (a player's task future
        // was 984 bytes, 312 of them the instance and 248 the result;
        // `-Zprint-type-sizes`).
        let mut inst = match Box::pin(load_instance::<E>(&rt, &id)).await {
            Ok(inst) => inst,
            Err(e) => {
                tracing::error!(entity = %id, error = %e, "activation failed");
                rx.close();
                while let Some(letter) = rx.recv().await {
                    if let Letter::Call { reply: Some(reply), .. } = *letter {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                return;
            }
        };
        slot.dirty.store(inst.dirty, Ordering::Relaxed);
        if inst.dirty {
            slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
        }
        {
            // In a scope of its own: dropped by `drop(ctx)`, it still held a
            // place in the task's future until the end of the function.
            let mut ctx = Ctx::new(id.clone(), rt.clone(), None);
            inst.state.activated(&mut ctx);
            slot.set_timer(ctx.timer);
        }
        if E::HAS_PARTS {
            // Loading may have changed parts (a migration from an older layout).
            let changes = inst.state.take_part_changes();
            if !changes.is_empty() {
                inst.parts.extend(changes);
                inst.dirty = true;
                slot.dirty.store(true, Ordering::Relaxed);
                slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
            }
        }

        // Set when another instance wrote newer state: this one must not write again.
        let mut stale = false;
        // Set when a step panicked: this state must not be written at all.
        let mut panicked = false;
        // A letter taken from the mailbox while batching that was not a call.
        let mut deferred: Option<Box<Letter<E>>> = None;
        loop {
            let letter = match (deferred.take(), inst.inflight.as_mut()) {
                (Some(letter), _) => letter,
                (None, Some(f)) => tokio::select! {
                    outcome = &mut f.result => {
                        if write_behind_stale(&id, inst.confirm(outcome, &rt, &slot)) {
                            stale = true;
                            break;
                        }
                        continue;
                    }
                    letter = rx.recv() => match letter {
                        Some(letter) => letter,
                        None => break,
                    },
                },
                (None, None) => match rx.recv().await {
                    Some(letter) => letter,
                    None => break,
                },
            };
            // The letter stays boxed until the step: opened here, its message
            // would take room in this task's future for as long as it lives.
            let step = Step { rt: &rt, slot: &slot, id: &id, inst: &mut inst, rx: &mut rx, deferred: &mut deferred };
            match AssertUnwindSafe(Box::pin(handle_letter(step, letter))).catch_unwind().await {
                Ok(false) => {}
                Ok(true) => {
                    stale = true;
                    break;
                }
                Err(panic) => {
                    panicked = true;
                    tracing::error!(entity = %id, panic = panic_text(&*panic), "handler panicked: the entity restarts from its stored state");
                    metrics::counter!("guildhall_entity_panics_total", "kind" => E::KIND).increment(1);
                    break;
                }
            }
        }

        if panicked {
            // The state may be half changed: it is dropped unwritten, and a
            // fresh instance loads what the store holds. The calls of the
            // panicked step heard `Stopped` when their reply senders dropped;
            // the calls queued behind them go to the fresh instance, so that
            // one bad message costs only its own caller. The write-behind in
            // flight finishes first, so that the fresh instance loads it.
            rx.close();
            let mut queued = Vec::new();
            while let Some(letter) = rx.try_recv() {
                if matches!(*letter, Letter::Call { .. }) {
                    queued.push(letter);
                }
            }
            let _ = Box::pin(inst.settle(&rt, &slot)).await;
            drop(guard);
            Box::pin(redeliver(&rt, &id, queued)).await;
            return;
        } else if stale {
            tracing::warn!(entity = %id, "stepping down: a newer instance wrote this entity");
            rx.close();
            while let Some(letter) = rx.recv().await {
                if let Letter::Call { reply: Some(reply), .. } = *letter {
                    let _ = reply.send(Err(CallError::Stopped));
                }
            }
        } else {
            // The write-behind in flight first: had it failed, the state would
            // be dirty again, and a newer instance would make it stale.
            let stale = write_behind_stale(&id, Box::pin(inst.settle(&rt, &slot)).await);
            // Passivation: the last write. Retried because nothing else will
            // write this state once the instance is gone.
            for attempt in 1..=3 {
                if stale || !inst.dirty {
                    break;
                }
                match Box::pin(inst.persist(&rt, &slot)).await {
                    Ok(()) => break,
                    Err(e @ CallError::Persist { stale: true, .. }) => {
                        tracing::warn!(entity = %id, error = %e, "final write refused: newer state exists");
                        break;
                    }
                    Err(e) => {
                        tracing::error!(entity = %id, error = %e, attempt, "final write failed");
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
        metrics::counter!("guildhall_entity_passivations_total", "kind" => E::KIND).increment(1);
    }
}

/// Hands letters to a fresh instance of `id` (see the panic case of
/// [`run_entity`]); one that cannot be delivered is dropped, which tells its
/// caller the entity stopped.
async fn redeliver<E: Entity>(rt: &Runtime, id: &EntityId, letters: Vec<Box<Letter<E>>>) {
    for letter in letters {
        if let Err(e) = rt.deliver_boxed::<E>(&id.key, letter).await {
            tracing::warn!(entity = %id, error = %e, "a letter queued behind a panic was not delivered");
        }
    }
}

/// The message of a caught panic, for the log.
fn panic_text(panic: &(dyn Any + Send)) -> &str {
    panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?")
}
