//! Entity runtime behaviour over the in-memory store, with an injected clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use guildhall_entity::{CallError, Ctx, Entity, Event, ManualClock, Runtime, RuntimeConfig, Subscriber};
use guildhall_store::{MemoryStore, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    count: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    /// Adds, yielding to the scheduler half-way to expose any interleaving.
    Add(u64),
    AddDurable(u64),
    Get,
    /// Reads, and asks that what it read be durable before the reply.
    DurableGet,
    Publish(String),
    Hang,
    /// Changes the state, then panics half-way through the handler.
    Panic,
}

impl Entity for Counter {
    const KIND: &'static str = "counter";
    type Msg = CounterMsg;
    type Reply = u64;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Counter::default()
    }

    async fn handle(&mut self, msg: CounterMsg, ctx: &mut Ctx) -> u64 {
        match msg {
            CounterMsg::Add(n) => {
                let before = self.count;
                tokio::task::yield_now().await;
                self.count = before + n;
            }
            CounterMsg::AddDurable(n) => {
                self.count += n;
                ctx.durable();
            }
            CounterMsg::Get => ctx.unchanged(),
            CounterMsg::DurableGet => {
                ctx.unchanged();
                ctx.durable();
            }
            CounterMsg::Publish(text) => {
                ctx.unchanged();
                ctx.publish(&format!("counter/{}", ctx.key()), Bytes::from(text));
            }
            CounterMsg::Hang => std::future::pending::<()>().await,
            CounterMsg::Panic => {
                self.count += 1000;
                panic!("a handler bug, on purpose");
            }
        }
        self.count
    }
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        call_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        flush_interval: Duration::from_secs(10),
        mailbox_capacity: 16,
        commit_interval: Duration::ZERO,
        sync_interval: Duration::from_secs(1),
    }
}

fn runtime(store: Arc<dyn Store>, clock: &ManualClock) -> Runtime {
    Runtime::builder(store, Arc::new(clock.clone())).config(config()).register::<Counter>().build()
}

async fn stored(store: &Arc<dyn Store>, key: &str) -> Option<(u64, u64)> {
    let rec = store.get(format!("e/counter/{key}").as_bytes()).await.unwrap()?;
    let c: Counter = serde_json::from_slice(&rec.value).unwrap();
    Some((c.count, rec.version))
}

#[tokio::test]
async fn one_handler_at_a_time() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    let mut calls = Vec::new();
    for _ in 0..200 {
        let rt = rt.clone();
        calls.push(tokio::spawn(async move { rt.call::<Counter>("a", CounterMsg::Add(1)).await }));
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(rt.call::<Counter>("a", CounterMsg::Get).await.unwrap(), 200);
}

#[tokio::test]
async fn a_panicking_handler_frees_its_entity_which_comes_back_from_the_store() {
    // A mutation that keeps the slot taken makes a cast wait for ever: the
    // timeout turns that into a failure.
    let body = async {
        let clock = ManualClock::default();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rt = runtime(store.clone(), &clock);
        assert_eq!(rt.call::<Counter>("p", CounterMsg::AddDurable(3)).await.unwrap(), 3);
        rt.call::<Counter>("p", CounterMsg::Add(4)).await.unwrap(); // write-behind only

        // The call that panics hears at once that its entity stopped; it does not
        // wait out the 5-s call timeout (the test runs on real time: a timeout
        // would take 5 s and be `Timeout`, not `Stopped`).
        let started = std::time::Instant::now();
        assert_eq!(rt.call::<Counter>("p", CounterMsg::Panic).await, Err(CallError::Stopped));
        // A cast to it is queued and handled (and panics) without hanging the caller.
        rt.cast::<Counter>("p", CounterMsg::Panic).await.unwrap();
        // The next call re-activates the entity from the store: the durable 3,
        // neither the unwritten 4 nor the panicking handlers' 1000s.
        assert_eq!(rt.call::<Counter>("p", CounterMsg::Get).await.unwrap(), 3);
        assert!(started.elapsed() < Duration::from_secs(4), "no call waited for its timeout");
        assert_eq!(stored(&store, "p").await, Some((3, 1)), "a panicked state is never written");
        assert_eq!(rt.call::<Counter>("p", CounterMsg::AddDurable(1)).await.unwrap(), 4);

        // Calls queued behind a panicking one are answered too, and the entity
        // serves the next ones.
        let queued: Vec<_> = (0..5)
            .map(|i| {
                let rt = rt.clone();
                let msg = if i == 0 { CounterMsg::Panic } else { CounterMsg::Get };
                tokio::spawn(async move { rt.call::<Counter>("q", msg).await })
            })
            .collect();
        let answers: Vec<_> = futures_join(queued).await;
        assert_eq!(answers[0], Err(CallError::Stopped), "the panicking call");
        assert!(answers[1..].iter().all(|a| *a == Ok(0)), "the others are answered by a fresh instance: {answers:?}");
        assert_eq!(rt.call::<Counter>("q", CounterMsg::Get).await.unwrap(), 0);
        assert!(started.elapsed() < Duration::from_secs(4), "no call waited for its timeout");
    };
    tokio::time::timeout(Duration::from_secs(20), body).await.expect("no call or cast hangs");
}

#[tokio::test]
async fn write_behind_flushes_after_the_interval_and_durable_writes_before_reply() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);

    rt.call::<Counter>("wb", CounterMsg::Get).await.unwrap();
    rt.call::<Counter>("wb", CounterMsg::Add(5)).await.unwrap();
    assert_eq!(stored(&store, "wb").await, None, "nothing written before the flush interval");
    rt.maintain().await;
    assert_eq!(stored(&store, "wb").await, None, "the interval has not passed yet");
    clock.advance(Duration::from_secs(10));
    rt.maintain().await;
    assert_eq!(stored(&store, "wb").await, Some((5, 1)));

    assert_eq!(rt.call::<Counter>("d", CounterMsg::AddDurable(7)).await.unwrap(), 7);
    assert_eq!(stored(&store, "d").await, Some((7, 1)), "durable write happened before the reply");
    assert_eq!(rt.kinds()[0].dirty, 0);
}

#[tokio::test]
async fn idle_entities_passivate_with_their_state_and_come_back() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Counter>("idle", CounterMsg::Add(3)).await.unwrap();
    rt.call::<Counter>("busy", CounterMsg::Add(1)).await.unwrap();
    assert_eq!(rt.kinds()[0].active, 2);

    clock.advance(Duration::from_secs(30));
    rt.call::<Counter>("busy", CounterMsg::Add(1)).await.unwrap();
    clock.advance(Duration::from_secs(31));
    rt.maintain().await;
    // Passivation is asynchronous: a call to the passivating entity waits for
    // its final write, so this read observes the stored state.
    assert_eq!(rt.call::<Counter>("idle", CounterMsg::Get).await.unwrap(), 3);
    assert_eq!(stored(&store, "idle").await.map(|(c, _)| c), Some(3));
    let busy = rt.entities("counter").unwrap().into_iter().find(|e| e.key == "busy");
    assert!(busy.is_some(), "the recently used entity stays active");
}

#[tokio::test]
async fn a_stale_instance_is_refused_and_steps_down() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let a = runtime(store.clone(), &clock);
    let b = runtime(store.clone(), &clock);
    // Both runtimes activate the same entity (the split brain a partition causes).
    assert_eq!(a.call::<Counter>("x", CounterMsg::Get).await.unwrap(), 0);
    assert_eq!(b.call::<Counter>("x", CounterMsg::Get).await.unwrap(), 0);

    assert_eq!(a.call::<Counter>("x", CounterMsg::AddDurable(10)).await.unwrap(), 10);
    match b.call::<Counter>("x", CounterMsg::AddDurable(1)).await {
        Err(CallError::Persist { stale: true, .. }) => {}
        other => panic!("stale write must be refused, got {other:?}"),
    }
    assert_eq!(stored(&store, "x").await, Some((10, 1)), "the stale writer overwrote nothing");
    // B's next call activates a fresh instance that sees A's state.
    assert_eq!(b.call::<Counter>("x", CounterMsg::Get).await.unwrap(), 10);
}

#[tokio::test]
async fn shutdown_writes_everything_and_refuses_new_work() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    for i in 0..50 {
        rt.call::<Counter>(&format!("k{i}"), CounterMsg::Add(i)).await.unwrap();
    }
    rt.shutdown().await;
    for i in 0..50 {
        assert_eq!(stored(&store, &format!("k{i}")).await.map(|(c, _)| c), Some(i));
    }
    assert_eq!(rt.kinds()[0].active, 0);
    assert_eq!(rt.call::<Counter>("new", CounterMsg::Get).await, Err(CallError::ShuttingDown));

    let again = runtime(store, &clock);
    assert_eq!(again.call::<Counter>("k42", CounterMsg::Get).await.unwrap(), 42);
}

#[tokio::test]
async fn introspection_shows_state_counts_and_mailboxes() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Counter>("live", CounterMsg::AddDurable(4)).await.unwrap();
    assert_eq!(rt.state_json("counter", "live").await.unwrap(), Some(serde_json::json!({"count": 4})));
    rt.shutdown().await;
    // Not active any more: read from the store without activating.
    assert_eq!(rt.state_json("counter", "live").await.unwrap(), Some(serde_json::json!({"count": 4})));
    assert_eq!(rt.state_json("counter", "never").await.unwrap(), None);
    assert!(matches!(rt.state_json("nope", "x").await, Err(CallError::UnknownKind(_))));

    let rt = runtime(store, &clock);
    // A hung handler leaves later letters queued: the mailbox depth shows it.
    let hung = rt.entity::<Counter>("hung");
    tokio::spawn({
        let hung = hung.clone();
        async move { hung.call(CounterMsg::Hang).await }
    });
    for _ in 0..3 {
        hung.cast(CounterMsg::Add(1)).await.unwrap();
    }
    let stats = rt.entities("counter").unwrap();
    assert_eq!(stats[0].key, "hung");
    assert!(stats[0].mailbox_depth >= 3, "{stats:?}");
    assert!(rt.kinds()[0].max_mailbox_depth >= 3);
}

#[tokio::test(start_paused = true)]
async fn call_times_out_when_the_entity_does_not_answer() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    assert_eq!(rt.call::<Counter>("h", CounterMsg::Hang).await, Err(CallError::Timeout));
}

struct Collect(Mutex<Vec<String>>);
impl Subscriber for Collect {
    fn deliver(&self, event: &Event) {
        self.0.lock().unwrap().push(String::from_utf8_lossy(&event.payload).into_owned());
    }
}

#[tokio::test]
async fn handlers_publish_to_subscribers() {
    let clock = ManualClock::default();
    let rt = runtime(Arc::new(MemoryStore::new()), &clock);
    let sub = Arc::new(Collect(Mutex::new(Vec::new())));
    rt.pubsub().subscribe("counter/p", sub.clone());
    rt.call::<Counter>("p", CounterMsg::Publish("hello".into())).await.unwrap();
    rt.call::<Counter>("q", CounterMsg::Publish("elsewhere".into())).await.unwrap();
    assert_eq!(*sub.0.lock().unwrap(), vec!["hello".to_string()]);
}

#[tokio::test]
async fn an_unreadable_snapshot_is_refused_not_overwritten() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store.put(b"e/counter/bad", b"not json".to_vec(), 0).await.unwrap();
    let rt = runtime(store.clone(), &clock);
    assert!(matches!(rt.call::<Counter>("bad", CounterMsg::Add(1)).await, Err(CallError::Load(_))));
    rt.shutdown().await;
    assert_eq!(store.get(b"e/counter/bad").await.unwrap().unwrap().value, b"not json");
}

/// State snapshots survive schema growth: a snapshot written by the old
/// struct loads into the new one, the new field taking its default.
mod schema_growth {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct ProfileV1 {
        name: String,
        score: u64,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct ProfileV2 {
        name: String,
        score: u64,
        #[serde(default = "default_title")]
        title: String,
        #[serde(default)]
        badges: Vec<String>,
    }

    fn default_title() -> String {
        "novice".into()
    }

    macro_rules! profile_entity {
        ($ty:ident, $create:expr) => {
            impl Entity for $ty {
                const KIND: &'static str = "profile";
                type Msg = ();
                type Reply = String;
                fn create(_key: &str, _now_ms: u64) -> Self {
                    $create
                }
                async fn handle(&mut self, _msg: (), _ctx: &mut Ctx) -> String {
                    serde_json::to_string(self).unwrap()
                }
            }
        };
    }
    profile_entity!(ProfileV1, ProfileV1 { name: "ada".into(), score: 9 });
    profile_entity!(ProfileV2, ProfileV2 { name: String::new(), score: 0, title: default_title(), badges: vec![] });

    #[tokio::test]
    async fn old_snapshot_loads_after_a_field_was_added() {
        let clock = ManualClock::default();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let old = Runtime::builder(store.clone(), Arc::new(clock.clone())).register::<ProfileV1>().build();
        old.call::<ProfileV1>("ada", ()).await.unwrap();
        old.shutdown().await;

        let new = Runtime::builder(store, Arc::new(clock)).register::<ProfileV2>().build();
        let json = new.call::<ProfileV2>("ada", ()).await.unwrap();
        let loaded: ProfileV2 = serde_json::from_str(&json).unwrap();
        assert_eq!(loaded.name, "ada");
        assert_eq!(loaded.score, 9);
        assert_eq!(loaded.title, "novice");
        assert!(loaded.badges.is_empty());
    }
}

#[tokio::test]
async fn each_instance_is_written_once_it_has_been_dirty_for_the_flush_interval() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Counter>("early", CounterMsg::Get).await.unwrap(); // a new entity is dirty at creation
    rt.call::<Counter>("early", CounterMsg::Add(1)).await.unwrap();
    clock.advance(Duration::from_secs(6));
    rt.call::<Counter>("late", CounterMsg::Add(2)).await.unwrap();
    clock.advance(Duration::from_secs(4)); // early: dirty 10 s; late: 4 s
    rt.maintain().await;
    assert_eq!(stored(&store, "early").await.map(|(c, _)| c), Some(1));
    assert_eq!(stored(&store, "late").await, None, "not yet: dirty for less than the interval");
    clock.advance(Duration::from_secs(6));
    rt.maintain().await;
    assert_eq!(stored(&store, "late").await.map(|(c, _)| c), Some(2));
}

/// A kind that asks for a longer write-behind than the runtime's interval.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    count: u64,
}

impl Entity for Tally {
    const KIND: &'static str = "tally";
    const WRITE_BEHIND_MS: u64 = 30_000;
    type Msg = u64;
    type Reply = u64;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Tally::default()
    }

    async fn handle(&mut self, add: u64, _ctx: &mut Ctx) -> u64 {
        self.count += add;
        self.count
    }
}

#[tokio::test]
async fn a_kind_with_a_longer_write_behind_waits_for_it_and_flush_all_does_not() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = Runtime::builder(store.clone(), Arc::new(clock.clone()))
        .config(config())
        .register::<Counter>()
        .register::<Tally>()
        .build();
    let tally = |n| {
        let store = store.clone();
        async move {
            let rec = store.get(format!("e/tally/{n}").as_bytes()).await.unwrap()?;
            Some(serde_json::from_slice::<Tally>(&rec.value).unwrap().count)
        }
    };
    rt.call::<Tally>("t", 4).await.unwrap();
    rt.call::<Counter>("c", CounterMsg::Add(1)).await.unwrap();
    clock.advance(Duration::from_secs(10));
    rt.maintain().await;
    assert_eq!(stored(&store, "c").await.map(|(c, _)| c), Some(1), "the runtime's interval for other kinds");
    assert_eq!(tally("t").await, None, "not after the runtime's 10 s");
    clock.advance(Duration::from_secs(19));
    rt.maintain().await;
    assert_eq!(tally("t").await, None, "not a second before its own 30 s");
    clock.advance(Duration::from_secs(1));
    rt.maintain().await;
    assert_eq!(tally("t").await, Some(4));

    rt.call::<Tally>("t", 1).await.unwrap();
    rt.flush_all().await;
    assert_eq!(tally("t").await, Some(5), "flush_all writes every dirty instance at once");
}

#[tokio::test]
async fn durable_calls_queued_behind_each_other_share_one_write() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    // Twenty callers queue before the instance has even loaded (the test
    // runtime is single-threaded: the callers run first).
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let rt = rt.clone();
        calls.spawn(async move { rt.call::<Counter>("batch", CounterMsg::AddDurable(1)).await });
    }
    let mut replies: Vec<u64> = calls.join_all().await.into_iter().map(|r| r.unwrap()).collect();
    replies.sort();
    assert_eq!(replies, (1..=20).collect::<Vec<_>>(), "handled one at a time, each saw the ones before");
    let (count, writes) = stored(&store, "batch").await.unwrap();
    assert_eq!(count, 20, "all twenty written before the replies");
    assert!(writes <= 2, "the queued calls shared their writes: {writes} writes for 20 calls");
    // A lone durable call still writes before its reply.
    assert_eq!(rt.call::<Counter>("batch", CounterMsg::AddDurable(1)).await.unwrap(), 21);
    assert_eq!(stored(&store, "batch").await, Some((21, writes + 1)));
}

/// A kind whose items live in parts, one record each, beside a snapshot that
/// holds only their count.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Shelf {
    writes: u64,
    #[serde(skip)]
    items: std::collections::BTreeMap<String, String>,
    #[serde(skip)]
    changed: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
enum ShelfMsg {
    Put(String, String),
    Remove(String),
    Items,
}

impl Entity for Shelf {
    const KIND: &'static str = "shelf";
    const HAS_PARTS: bool = true;
    type Msg = ShelfMsg;
    type Reply = Vec<(String, String)>;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Shelf::default()
    }

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let items = &self.items;
        self.changed.drain(..).map(|name| (name.clone(), items.get(&name).map(|v| v.clone().into_bytes()))).collect()
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            self.items.insert(name, String::from_utf8(value).map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    async fn handle(&mut self, msg: ShelfMsg, ctx: &mut Ctx) -> Self::Reply {
        match msg {
            ShelfMsg::Put(k, v) => {
                self.items.insert(k.clone(), v);
                self.changed.push(k);
                self.writes += 1;
                ctx.durable();
            }
            ShelfMsg::Remove(k) => {
                self.items.remove(&k);
                self.changed.push(k);
                ctx.durable();
            }
            ShelfMsg::Items => ctx.unchanged(),
        }
        self.items.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[tokio::test]
async fn parts_are_written_with_their_snapshot_come_back_on_activation_and_guard_like_it() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let shelf_rt = |store: Arc<dyn Store>| {
        Runtime::builder(store, Arc::new(clock.clone())).config(config()).register::<Shelf>().build()
    };
    let rt = shelf_rt(store.clone());
    let put = |k: &str, v: &str| ShelfMsg::Put(k.into(), v.into());
    rt.call::<Shelf>("s", put("a", "apple")).await.unwrap();
    rt.call::<Shelf>("s", put("b", "bread")).await.unwrap();
    rt.call::<Shelf>("s", ShelfMsg::Remove("a".into())).await.unwrap();
    rt.call::<Shelf>("s", put("c", "cheese")).await.unwrap();

    let parts: Vec<(Vec<u8>, u64, Vec<u8>)> =
        store.scan_prefix(b"e/shelf/s\0").await.unwrap().into_iter().map(|(k, r)| (k, r.version, r.value)).collect();
    assert_eq!(
        parts,
        vec![(b"e/shelf/s\0b".to_vec(), 2, b"bread".to_vec()), (b"e/shelf/s\0c".to_vec(), 4, b"cheese".to_vec())],
        "one record per item, written with the snapshot that changed it; removed ones gone"
    );
    let snapshot = store.get(b"e/shelf/s").await.unwrap().unwrap();
    assert_eq!((snapshot.version, snapshot.value), (4, br#"{"writes":3}"#.to_vec()), "items stay out of the snapshot");

    // A second runtime (a stale duplicate) can write neither.
    let other = shelf_rt(store.clone());
    assert_eq!(other.call::<Shelf>("s", ShelfMsg::Items).await.unwrap().len(), 2, "loaded with its parts");
    rt.call::<Shelf>("s", put("d", "dates")).await.unwrap();
    match other.call::<Shelf>("s", put("e", "eggs")).await {
        Err(CallError::Persist { stale: true, .. }) => {}
        got => panic!("the stale instance must be refused, got {got:?}"),
    }
    assert!(store.get(b"e/shelf/s\0e").await.unwrap().is_none(), "nor its part");

    // Passivated and activated again: the parts come back.
    rt.shutdown().await;
    let again = shelf_rt(store.clone());
    let items = again.call::<Shelf>("s", ShelfMsg::Items).await.unwrap();
    assert_eq!(
        items,
        [("b", "bread"), ("c", "cheese"), ("d", "dates")].map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
    );
}

/// A store whose batch writes wait at a gate until the test opens it: a
/// commit that takes as long as the test wants.
struct GatedStore {
    inner: MemoryStore,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl Store for GatedStore {
    async fn get(&self, key: &[u8]) -> Result<Option<guildhall_store::Record>, guildhall_store::StoreError> {
        self.inner.get(key).await
    }

    async fn write_batch(
        &self,
        ops: Vec<guildhall_store::WriteOp>,
    ) -> Result<Vec<Result<u64, guildhall_store::StoreError>>, guildhall_store::StoreError> {
        let _pass = self.gate.acquire().await.expect("gate");
        self.inner.write_batch(ops).await
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, guildhall_store::Record)>, guildhall_store::StoreError> {
        self.inner.scan_prefix(prefix).await
    }
}

/// Entity `key` at 5, not yet written, whose periodic flush has been handed
/// to a store that holds every commit at a gate (`maintain`: that flush).
struct StuckFlush {
    rt: Runtime,
    gated: Arc<GatedStore>,
    store: Arc<dyn Store>,
    maintain: tokio::task::JoinHandle<()>,
}

async fn stuck_flush(key: &str) -> StuckFlush {
    let clock = ManualClock::default();
    let gated = Arc::new(GatedStore { inner: MemoryStore::new(), gate: tokio::sync::Semaphore::new(0) });
    let store: Arc<dyn Store> = gated.clone();
    let rt = runtime(store.clone(), &clock);
    rt.call::<Counter>(key, CounterMsg::Add(5)).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let maintain = tokio::spawn({
        let rt = rt.clone();
        async move { rt.maintain().await }
    });
    tokio::task::yield_now().await;
    StuckFlush { rt, gated, store, maintain }
}

#[tokio::test]
async fn a_write_behind_commit_does_not_hold_up_the_entity_and_its_flush_waits_for_the_disk() {
    let StuckFlush { rt, gated, store, maintain } = stuck_flush("wb").await;
    // The entity still answers, and keeps changing, while its write waits.
    // (A timeout, so that an entity held up by its commit fails the test
    // instead of hanging it.)
    let add = tokio::time::timeout(Duration::from_secs(5), rt.call::<Counter>("wb", CounterMsg::Add(1)));
    assert_eq!(add.await.expect("the entity is held up by its commit").unwrap(), 6);
    assert_eq!(rt.call::<Counter>("wb", CounterMsg::Get).await.unwrap(), 6);
    assert!(!maintain.is_finished(), "the flush waits for its commit");
    assert_eq!(stored(&store, "wb").await, None);

    gated.gate.add_permits(100);
    maintain.await.unwrap();
    assert_eq!(stored(&store, "wb").await, Some((5, 1)), "the flushed state, on disk when the flush returned");
    // The next write follows on the version the first one produced.
    assert_eq!(rt.call::<Counter>("wb", CounterMsg::AddDurable(1)).await.unwrap(), 7);
    assert_eq!(stored(&store, "wb").await, Some((7, 2)));
}

#[tokio::test]
async fn a_durable_call_waits_for_the_write_behind_it_answers_from() {
    let StuckFlush { rt, gated, store, maintain } = stuck_flush("d").await;
    // Durable but unchanged: it must not answer before the 5 is on disk.
    let get = tokio::spawn({
        let rt = rt.clone();
        async move { rt.call::<Counter>("d", CounterMsg::DurableGet).await }
    });
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert!(!get.is_finished(), "answered before the state it reports was durable");
    gated.gate.add_permits(100);
    assert_eq!(get.await.unwrap().unwrap(), 5);
    assert_eq!(stored(&store, "d").await, Some((5, 1)));
    maintain.await.unwrap();
}
