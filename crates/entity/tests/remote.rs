//! The cluster seams with in-memory twins: an entity that the directory
//! places on another node is called the same way as a local one, and an
//! event crosses to each node that follows its topic once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use guildhall_entity::{
    CallError, Ctx, Delivery, Directory, Entity, Event, Fanout, Location, ManualClock, NodeId, Remote, RemoteLetter,
    Runtime, Subscriber,
};
use guildhall_store::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    total: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum TallyMsg {
    Add(u64),
    Get,
    Fail,
}

impl Entity for Tally {
    const KIND: &'static str = "tally";
    type Msg = TallyMsg;
    type Reply = Result<u64, String>;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Tally::default()
    }

    async fn handle(&mut self, msg: TallyMsg, ctx: &mut Ctx) -> Result<u64, String> {
        match msg {
            TallyMsg::Add(n) => self.total += n,
            TallyMsg::Get => ctx.unchanged(),
            TallyMsg::Fail => return Err(format!("refused by {}", ctx.key())),
        }
        Ok(self.total)
    }
}

/// The nodes of a test cluster, by name.
type Nodes = Arc<Mutex<HashMap<NodeId, Runtime>>>;

/// Keys starting with "b" live on node B; the rest here.
struct SplitDirectory;

impl Directory for SplitDirectory {
    fn locate(&self, _kind: &str, key: &str) -> Location {
        if key.starts_with('b') {
            Location::Remote(NodeId("B".into()))
        } else {
            Location::Local
        }
    }
}

/// The in-memory twin of the mesh: hands a letter straight to the other
/// node's runtime.
struct TwinRemote {
    nodes: Nodes,
}

impl Remote for TwinRemote {
    fn deliver(&self, node: &NodeId, letter: RemoteLetter) -> Delivery<'_> {
        let target = self.nodes.lock().unwrap().get(node).cloned();
        let node = node.clone();
        Box::pin(async move {
            match target {
                Some(rt) => rt.receive(letter).await,
                None => Err(CallError::Unreachable(node)),
            }
        })
    }
}

/// The in-memory twin of cluster pub/sub: which node follows which topic,
/// and an event handed once to each other node that does.
struct TwinFanout {
    me: NodeId,
    nodes: Nodes,
    interest: Arc<Mutex<HashMap<String, HashSet<NodeId>>>>,
    crossings: Arc<AtomicUsize>,
}

impl Fanout for TwinFanout {
    fn interest(&self, topic: &str, interested: bool) {
        let mut interest = self.interest.lock().unwrap();
        let nodes = interest.entry(topic.to_string()).or_default();
        if interested {
            nodes.insert(self.me.clone());
        } else {
            nodes.remove(&self.me);
        }
    }

    fn publish(&self, topic: &str, payload: &Bytes) {
        let followers: Vec<NodeId> = self.interest.lock().unwrap().get(topic).into_iter().flatten().cloned().collect();
        for node in followers.into_iter().filter(|n| *n != self.me) {
            let rt = self.nodes.lock().unwrap().get(&node).cloned();
            if let Some(rt) = rt {
                self.crossings.fetch_add(1, Ordering::Relaxed);
                rt.pubsub().deliver_local(topic, payload.clone());
            }
        }
    }
}

struct Cluster {
    a: Runtime,
    b: Runtime,
    c: Runtime,
    crossings: Arc<AtomicUsize>,
}

fn cluster() -> Cluster {
    let nodes: Nodes = Arc::default();
    let interest = Arc::default();
    let crossings = Arc::new(AtomicUsize::new(0));
    let node = |name: &str, split: bool| {
        let fanout = TwinFanout {
            me: NodeId(name.into()),
            nodes: nodes.clone(),
            interest: Arc::clone(&interest),
            crossings: crossings.clone(),
        };
        let mut builder = Runtime::builder(Arc::new(MemoryStore::new()), Arc::new(ManualClock::default()))
            .remote(Arc::new(TwinRemote { nodes: nodes.clone() }))
            .fanout(Arc::new(fanout))
            .register::<Tally>();
        if split {
            builder = builder.directory(Arc::new(SplitDirectory));
        }
        let rt = builder.build();
        nodes.lock().unwrap().insert(NodeId(name.into()), rt.clone());
        rt
    };
    Cluster { a: node("A", true), b: node("B", false), c: node("C", false), crossings }
}

fn active(rt: &Runtime) -> usize {
    rt.kinds().iter().find(|k| k.kind == "tally").map_or(0, |k| k.active)
}

#[tokio::test]
async fn a_call_to_an_entity_on_another_node_is_the_same_call() {
    let c = cluster();
    assert_eq!(c.a.call::<Tally>("b1", TallyMsg::Add(5)).await.unwrap(), Ok(5));
    assert_eq!(c.a.call::<Tally>("b1", TallyMsg::Add(2)).await.unwrap(), Ok(7));
    c.a.cast::<Tally>("b1", TallyMsg::Add(1)).await.unwrap();
    assert_eq!(c.b.call::<Tally>("b1", TallyMsg::Get).await.unwrap(), Ok(8), "B hosts it, and saw the cast");
    assert_eq!(active(&c.a), 0, "A hosts nothing of it");
    assert_eq!(c.a.call::<Tally>("a1", TallyMsg::Add(1)).await.unwrap(), Ok(1));
    assert_eq!((active(&c.a), active(&c.b)), (1, 1));
    // The entity's own refusal crosses back as its reply.
    assert_eq!(c.a.call::<Tally>("b1", TallyMsg::Fail).await.unwrap(), Err("refused by b1".into()));
}

#[tokio::test]
async fn a_call_to_a_node_that_is_gone_fails_fast() {
    let c = cluster();
    c.b.shutdown().await;
    assert_eq!(c.a.call::<Tally>("b2", TallyMsg::Get).await, Err(CallError::ShuttingDown));
    let lone = Runtime::builder(Arc::new(MemoryStore::new()), Arc::new(ManualClock::default()))
        .directory(Arc::new(SplitDirectory))
        .register::<Tally>()
        .build();
    assert_eq!(lone.call::<Tally>("b3", TallyMsg::Get).await, Err(CallError::Unreachable(NodeId("B".into()))));
}

struct Count(AtomicUsize);

impl Subscriber for Count {
    fn deliver(&self, _event: &Event) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn an_event_crosses_once_to_each_node_that_follows_its_topic() {
    let c = cluster();
    let subs: Vec<Arc<Count>> = (0..3).map(|_| Arc::new(Count(AtomicUsize::new(0)))).collect();
    let subscriptions: Vec<_> = subs.iter().map(|s| c.b.pubsub().subscribe("feed", s.clone())).collect();
    let here = Arc::new(Count(AtomicUsize::new(0)));
    c.a.pubsub().subscribe("feed", here.clone());

    assert_eq!(c.a.pubsub().publish("feed", Bytes::from_static(b"x")), 1, "one subscriber on A itself");
    assert!(subs.iter().all(|s| s.0.load(Ordering::Relaxed) == 1), "every subscriber on B got it");
    assert_eq!(c.crossings.load(Ordering::Relaxed), 1, "once to B, none to C, which follows nothing");
    assert_eq!(c.c.pubsub().topic_count(), 0);

    for s in &subscriptions {
        c.b.pubsub().unsubscribe(s);
    }
    c.a.pubsub().publish("feed", Bytes::from_static(b"y"));
    assert_eq!(c.crossings.load(Ordering::Relaxed), 1, "B follows it no more");
    assert_eq!(here.0.load(Ordering::Relaxed), 2);
}
