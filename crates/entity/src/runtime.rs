//! The runtime: registered kinds, the directory, the store, the clock, pub/sub
//! and the flusher, behind one cheaply cloneable handle.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use guildhall_store::Store;
use tokio::sync::oneshot;

use crate::flusher::{Flusher, Pacing};
use crate::host::{AnyHost, KindHost, Letter};
use crate::introspect::{EntityStats, KindStats};
use crate::remote::{self, NoRemote, Remote, RemoteLetter, RemoteOutcome};
use crate::{CallError, Clock, Directory, Entity, Fanout, LocalDirectory, LocalFanout, Location, NodeId, PubSub};

/// Rounds of timers one maintenance fires at most (see
/// [`Runtime::maintain`]).
const TIMER_ROUNDS: usize = 4;

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// How long `call` waits for a reply.
    pub call_timeout: Duration,
    /// An instance with no letter for this long is passivated by `maintain`.
    pub idle_timeout: Duration,
    /// Dirty state is written at most this long after it changed (write-behind).
    pub flush_interval: Duration,
    /// Letters a mailbox holds before senders wait (back-pressure).
    pub mailbox_capacity: usize,
    /// Least time between the starts of two store commits (group commit):
    /// durable writes that arrive meanwhile share the next commit. Zero
    /// commits as soon as the previous commit is done.
    pub commit_interval: Duration,
    /// Longest a commit of write-behind alone stays off the disk (buffered
    /// by the OS) before a sync; commits with a durable write always sync.
    /// Zero syncs every commit.
    pub sync_interval: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            flush_interval: Duration::from_secs(5),
            mailbox_capacity: 64,
            commit_interval: Duration::ZERO,
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// Builds a [`Runtime`]; kinds are registered up front so that the kind table
/// needs no lock on the hot path.
pub struct RuntimeBuilder {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    directory: Arc<dyn Directory>,
    remote: Arc<dyn Remote>,
    fanout: Arc<dyn Fanout>,
    config: RuntimeConfig,
    hosts: HashMap<&'static str, Arc<dyn AnyHost>>,
}

impl RuntimeBuilder {
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = directory;
        self
    }

    /// How letters reach entities that the directory places on other nodes.
    pub fn remote(mut self, remote: Arc<dyn Remote>) -> Self {
        self.remote = remote;
        self
    }

    /// How published events reach subscribers on other nodes.
    pub fn fanout(mut self, fanout: Arc<dyn Fanout>) -> Self {
        self.fanout = fanout;
        self
    }

    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    pub fn register<E: Entity>(mut self) -> Self {
        self.hosts.insert(E::KIND, Arc::new(KindHost::<E>::new()));
        self
    }

    /// Starts the flusher task: call inside a tokio runtime.
    pub fn build(self) -> Runtime {
        let pacing = Pacing { commit_interval: self.config.commit_interval, sync_interval: self.config.sync_interval };
        let flusher = Flusher::spawn(self.store.clone(), pacing);
        Runtime {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                directory: self.directory,
                remote: self.remote,
                config: self.config,
                hosts: self.hosts,
                pubsub: PubSub::with_fanout(self.fanout),
                flusher,
                shutting_down: AtomicBool::new(false),
                in_flight: tokio::sync::watch::channel(0).0,
            }),
        }
    }
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    directory: Arc<dyn Directory>,
    remote: Arc<dyn Remote>,
    config: RuntimeConfig,
    hosts: HashMap<&'static str, Arc<dyn AnyHost>>,
    pubsub: PubSub,
    flusher: Flusher,
    shutting_down: AtomicBool,
    /// Spawned casts not yet in their mailbox and tracked tasks not yet
    /// done, so that [`Runtime::settle`] can wait for them instead of a
    /// caller polling.
    in_flight: tokio::sync::watch::Sender<usize>,
}

/// Handle to the entity runtime of this node. Clone freely.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// A typed reference to one entity: `call` and `cast` wherever it lives.
pub struct EntityRef<E: Entity> {
    runtime: Runtime,
    key: Arc<str>,
    _kind: PhantomData<fn() -> E>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        Self { runtime: self.runtime.clone(), key: self.key.clone(), _kind: PhantomData }
    }
}

impl<E: Entity> EntityRef<E> {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub async fn call(&self, msg: E::Msg) -> Result<E::Reply, CallError> {
        self.runtime.call::<E>(&self.key, msg).await
    }

    pub async fn cast(&self, msg: E::Msg) -> Result<(), CallError> {
        self.runtime.cast::<E>(&self.key, msg).await
    }
}

impl Runtime {
    pub fn builder(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> RuntimeBuilder {
        RuntimeBuilder {
            store,
            clock,
            directory: Arc::new(LocalDirectory),
            remote: Arc::new(NoRemote),
            fanout: Arc::new(LocalFanout),
            config: RuntimeConfig::default(),
            hosts: HashMap::new(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn pubsub(&self) -> &PubSub {
        &self.inner.pubsub
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    pub(crate) fn flusher(&self) -> &Flusher {
        &self.inner.flusher
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// A typed reference to the entity `key` of kind `E`.
    pub fn entity<E: Entity>(&self, key: &str) -> EntityRef<E> {
        EntityRef { runtime: self.clone(), key: Arc::from(key), _kind: PhantomData }
    }

    fn host<E: Entity>(&self) -> Result<Arc<KindHost<E>>, CallError> {
        let host = self.inner.hosts.get(E::KIND).ok_or_else(|| CallError::UnknownKind(E::KIND.into()))?;
        host.clone().as_any().downcast::<KindHost<E>>().map_err(|_: Arc<dyn Any + Send + Sync>| {
            CallError::UnknownKind(format!("{} (registered with another type)", E::KIND))
        })
    }

    /// Sends `msg` to entity `key` of kind `E` and waits for the reply, at
    /// most the call timeout, wherever the entity lives.
    pub async fn call<E: Entity>(&self, key: &str, msg: E::Msg) -> Result<E::Reply, CallError> {
        let deliver_and_wait = async {
            if let Location::Remote(node) = self.inner.directory.locate(E::KIND, key) {
                return Box::pin(self.call_remote::<E>(node, key, &msg)).await;
            }
            let (reply, wait) = oneshot::channel();
            self.deliver_boxed::<E>(key, Box::new(Letter::Call { msg, reply: Some(reply) })).await?;
            wait.await.map_err(|_| CallError::Stopped)?
        };
        tokio::time::timeout(self.inner.config.call_timeout, deliver_and_wait).await.unwrap_or(Err(CallError::Timeout))
    }

    /// Sends `msg` without waiting for the handler (it may still wait for
    /// mailbox space, or for the other node to take the letter).
    pub async fn cast<E: Entity>(&self, key: &str, msg: E::Msg) -> Result<(), CallError> {
        self.deliver::<E>(key, Letter::Call { msg, reply: None }).await
    }

    async fn call_remote<E: Entity>(&self, node: NodeId, key: &str, msg: &E::Msg) -> Result<E::Reply, CallError> {
        let letter =
            RemoteLetter { kind: E::KIND.into(), key: key.into(), msg: remote::encode(msg)?, wants_reply: true };
        match self.inner.remote.deliver(&node, letter).await? {
            Some(reply) => remote::decode(&reply),
            None => Err(CallError::Codec(format!("node {node} sent no reply to a call"))),
        }
    }

    /// Takes a letter that another node sent to an entity it places here,
    /// delivers it like a local one, and returns the serialised reply of a
    /// call. The cluster's transport calls this; the letter is not routed
    /// again, so two nodes that disagree on placement cannot bounce it.
    pub async fn receive(&self, letter: RemoteLetter) -> RemoteOutcome {
        let host =
            self.inner.hosts.get(letter.kind.as_str()).ok_or_else(|| CallError::UnknownKind(letter.kind.clone()))?;
        let work = host.receive(self.clone(), letter);
        tokio::time::timeout(self.inner.config.call_timeout, work).await.unwrap_or(Err(CallError::Timeout))
    }

    /// Casts from a background task and returns at once: for a handler that
    /// must tell another entity something without ever waiting on its
    /// mailbox (waiting could deadlock two entities that wait on each other).
    pub fn spawn_cast<E: Entity>(&self, key: &str, msg: E::Msg) {
        let rt = self.clone();
        let key = key.to_string();
        self.inner.in_flight.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            if let Err(e) = rt.cast::<E>(&key, msg).await {
                tracing::warn!(kind = E::KIND, key, error = %e, "spawned cast failed");
            }
            rt.inner.in_flight.send_modify(|n| *n -= 1);
        });
    }

    /// Runs `work` in the background, as a handler's follow-up that must
    /// not hold up the handler (a hub's timer that calls other hubs):
    /// [`Runtime::settle`], and so [`Runtime::maintain`], wait for it.
    pub fn spawn_tracked(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let rt = self.clone();
        self.inner.in_flight.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            work.await;
            rt.inner.in_flight.send_modify(|n| *n -= 1);
        });
    }

    /// Waits until every spawned cast is in its mailbox and every tracked
    /// task is done. A call made after this to the same entity is handled
    /// after those casts: tests use it to observe the effects of
    /// fire-and-forget messages without polling.
    pub async fn settle(&self) {
        let mut rx = self.inner.in_flight.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    async fn deliver<E: Entity>(&self, key: &str, letter: Letter<E>) -> Result<(), CallError> {
        if let Location::Remote(node) = self.inner.directory.locate(E::KIND, key) {
            let Letter::Call { msg, .. } = letter else {
                return Err(CallError::Unreachable(node));
            };
            let msg = remote::encode(&msg)?;
            let letter = RemoteLetter { kind: E::KIND.into(), key: key.into(), msg, wants_reply: false };
            return self.inner.remote.deliver(&node, letter).await.map(|_| ());
        }
        self.deliver_boxed(key, Box::new(letter)).await
    }

    /// Puts a letter in the mailbox of this node's instance of `key`,
    /// activating one if there is none.
    pub(crate) async fn deliver_boxed<E: Entity>(&self, key: &str, letter: Box<Letter<E>>) -> Result<(), CallError> {
        let host = self.host::<E>()?;
        let mut letter = letter;
        loop {
            let slot = host.get_or_activate(self, key)?;
            slot.last_active.store(self.now_ms(), Ordering::Relaxed);
            match slot.tx.send(letter).await {
                Ok(()) => return Ok(()),
                Err(bounced) => {
                    // The instance is passivating: wait until its state is
                    // written, then activate a fresh one.
                    letter = bounced;
                    slot.wait_stopped().await;
                }
            }
        }
    }

    /// Periodic housekeeping, driven by the injected clock: fires due
    /// timers, passivates idle instances and writes every instance that has
    /// been dirty for the flush interval. The server calls it every second; tests call it after moving the
    /// clock.
    pub async fn maintain(&self) {
        let now = self.now_ms();
        self.fire_timers(now).await;
        let idle_before = now.saturating_sub(self.inner.config.idle_timeout.as_millis() as u64);
        for host in self.inner.hosts.values() {
            host.passivate_idle(idle_before);
        }
        // Every instance that has been dirty for the flush interval writes
        // now; the others wait for a later tick.
        self.flush(now, self.inner.config.flush_interval.as_millis() as u64).await;
        for stats in self.kinds() {
            metrics::gauge!("guildhall_entities_active", "kind" => stats.kind.clone()).set(stats.active as f64);
            metrics::gauge!("guildhall_entities_dirty", "kind" => stats.kind).set(stats.dirty as f64);
        }
    }

    /// Fires the timers due at `now` of this node's instances and waits
    /// until their messages are handled and the work they spawned is done.
    /// A handler may set its timer to `now` again (more work right away, one
    /// durable step after another): it fires in the next round, up to
    /// [`TIMER_ROUNDS`] rounds per maintenance.
    async fn fire_timers(&self, now: u64) {
        for _ in 0..TIMER_ROUNDS {
            let mut handled = Vec::new();
            for host in self.inner.hosts.values() {
                handled.extend(host.fire_timers(now));
            }
            if handled.is_empty() {
                break;
            }
            let limit = self.inner.config.call_timeout;
            for done in handled {
                let _ = tokio::time::timeout(limit, done).await;
            }
            self.settle().await;
        }
    }

    /// Writes every dirty instance now and waits until the writes are on disk.
    pub async fn flush_all(&self) {
        self.flush(u64::MAX, 0).await;
        self.sync().await;
    }

    /// Waits until every write committed so far is on disk (write-behind
    /// commits are buffered until the next sync; see `RuntimeConfig`).
    async fn sync(&self) {
        if let Err(e) = self.inner.flusher.sync().await {
            tracing::error!(error = %e, "store sync failed");
        }
    }

    async fn flush(&self, now_ms: u64, interval_ms: u64) {
        let mut waits = Vec::new();
        for host in self.inner.hosts.values() {
            waits.extend(host.request_flush(now_ms, interval_ms));
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// Graceful stop: activates nothing new, passivates every instance (each
    /// writes its state) and waits until all have stopped.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let mut stops = Vec::new();
        for host in self.inner.hosts.values() {
            stops.extend(host.passivate_all());
        }
        for stop in stops {
            stop.await;
        }
        // An instance that was clean when it stopped wrote nothing more, but
        // its last write-behind commit may still be buffered.
        self.sync().await;
    }

    /// Registered kinds with their live counts and mailbox depths.
    pub fn kinds(&self) -> Vec<KindStats> {
        let mut kinds: Vec<_> = self.inner.hosts.values().map(|h| h.stats()).collect();
        kinds.sort_by(|a, b| a.kind.cmp(&b.kind));
        kinds
    }

    /// Live instances of one kind, deepest mailbox first.
    pub fn entities(&self, kind: &str) -> Option<Vec<EntityStats>> {
        let host = self.inner.hosts.get(kind)?;
        let mut list = host.entities(self.now_ms());
        list.sort_by(|a, b| b.mailbox_depth.cmp(&a.mailbox_depth).then_with(|| a.key.cmp(&b.key)));
        Some(list)
    }

    /// Any entity's state as JSON: from the live instance if active (without
    /// disturbing it beyond one letter), else from the store (without
    /// activating it). `Ok(None)` if it was never stored and is not active.
    pub async fn state_json(&self, kind: &str, key: &str) -> Result<Option<serde_json::Value>, CallError> {
        let host = self.inner.hosts.get(kind).ok_or_else(|| CallError::UnknownKind(kind.into()))?;
        if let Some(wait) = host.snapshot(key) {
            if let Ok(Ok(value)) = tokio::time::timeout(self.inner.config.call_timeout, wait).await {
                return Ok(Some(value));
            }
        }
        host.stored_json(self.clone(), key.to_string()).await
    }
}
