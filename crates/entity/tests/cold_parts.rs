//! Cold parts: stored apart, not loaded at activation, read on demand with
//! what the entity wrote and is not yet on disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use guildhall_entity::{CallError, Ctx, Entity, ManualClock, Runtime, RuntimeConfig};
use guildhall_store::{MemoryStore, Store};
use serde::{Deserialize, Serialize};

/// Items in memory; those named `old/...` are cold parts, and `Evict`
/// drops one from memory without deleting it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Archive {
    #[serde(skip)]
    items: BTreeMap<String, String>,
    #[serde(skip)]
    changed: Vec<(String, Option<String>)>,
}

#[derive(Debug, Serialize, Deserialize)]
enum ArchiveMsg {
    Put { name: String, value: String, durable: bool },
    Delete(String),
    Evict(String),
    InMemory,
    ReadCold(String),
    ReadPart(String),
}

impl Entity for Archive {
    const KIND: &'static str = "archive";
    const HAS_PARTS: bool = true;
    const READS_PARTS: bool = true;
    type Msg = ArchiveMsg;
    type Reply = Result<Vec<(String, String)>, CallError>;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Archive::default()
    }

    fn is_cold_part(name: &str) -> bool {
        name.starts_with("old/")
    }

    fn take_part_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        self.changed.drain(..).map(|(name, value)| (name, value.map(String::into_bytes))).collect()
    }

    fn load_parts(&mut self, parts: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        for (name, value) in parts {
            self.items.insert(name, String::from_utf8(value).map_err(|e| e.to_string())?);
        }
        Ok(())
    }

    async fn handle(&mut self, msg: ArchiveMsg, ctx: &mut Ctx) -> Self::Reply {
        match msg {
            ArchiveMsg::Put { name, value, durable } => {
                self.items.insert(name.clone(), value.clone());
                self.changed.push((name, Some(value)));
                if durable {
                    ctx.durable();
                }
            }
            ArchiveMsg::Delete(name) => {
                self.items.remove(&name);
                self.changed.push((name, None));
            }
            ArchiveMsg::Evict(name) => {
                self.items.remove(&name);
                ctx.unchanged();
            }
            ArchiveMsg::InMemory => ctx.unchanged(),
            ArchiveMsg::ReadCold(prefix) => {
                ctx.unchanged();
                let parts = ctx.read_cold(&prefix).await?;
                return Ok(parts.into_iter().map(|(n, v)| (n, String::from_utf8(v).unwrap())).collect());
            }
            ArchiveMsg::ReadPart(name) => {
                ctx.unchanged();
                let value = ctx.read_part(&name).await?;
                return Ok(value.into_iter().map(|v| (name.clone(), String::from_utf8(v).unwrap())).collect());
            }
        }
        Ok(self.items.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

fn runtime(store: Arc<dyn Store>, clock: &ManualClock) -> Runtime {
    let config = RuntimeConfig {
        call_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        flush_interval: Duration::from_secs(10),
        mailbox_capacity: 16,
        commit_interval: Duration::ZERO,
        sync_interval: Duration::from_secs(1),
    };
    Runtime::builder(store, Arc::new(clock.clone())).config(config).register::<Archive>().build()
}

fn put(name: &str, value: &str, durable: bool) -> ArchiveMsg {
    ArchiveMsg::Put { name: name.into(), value: value.into(), durable }
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn cold_parts_are_stored_apart_and_not_loaded_at_activation() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Archive>("a", put("now", "hot", true)).await.unwrap().unwrap();
    rt.call::<Archive>("a", put("old/1", "first", true)).await.unwrap().unwrap();
    rt.call::<Archive>("a", put("old/2", "second", true)).await.unwrap().unwrap();

    let hot: Vec<Vec<u8>> = store.scan_prefix(b"e/archive/a\0").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(hot, vec![b"e/archive/a\0now".to_vec()]);
    let cold: Vec<Vec<u8>> = store.scan_prefix(b"e/archive/a\x01").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(cold, vec![b"e/archive/a\x01old/1".to_vec(), b"e/archive/a\x01old/2".to_vec()]);

    rt.shutdown().await;
    let again = runtime(store.clone(), &clock);
    let in_memory = again.call::<Archive>("a", ArchiveMsg::InMemory).await.unwrap().unwrap();
    assert_eq!(in_memory, pairs(&[("now", "hot")]), "cold parts stay in the store");
    let read = again.call::<Archive>("a", ArchiveMsg::ReadCold("old/".into())).await.unwrap().unwrap();
    assert_eq!(read, pairs(&[("old/1", "first"), ("old/2", "second")]));
}

#[tokio::test]
async fn a_cold_read_sees_what_the_entity_wrote_before_it_is_on_disk() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Archive>("b", put("old/1", "kept", true)).await.unwrap().unwrap();
    rt.call::<Archive>("b", put("old/2", "gone soon", true)).await.unwrap().unwrap();
    // Write-behind: not on disk until the flush interval has passed.
    rt.call::<Archive>("b", put("old/1", "changed", false)).await.unwrap().unwrap();
    rt.call::<Archive>("b", put("old/3", "new", false)).await.unwrap().unwrap();
    rt.call::<Archive>("b", ArchiveMsg::Delete("old/2".into())).await.unwrap().unwrap();
    for name in ["old/1", "old/3"] {
        rt.call::<Archive>("b", ArchiveMsg::Evict(name.into())).await.unwrap().unwrap();
    }
    let on_disk = store.get(b"e/archive/b\x01old/1").await.unwrap().unwrap();
    assert_eq!(on_disk.value, b"kept", "the change is not written yet");

    let expected = pairs(&[("old/1", "changed"), ("old/3", "new")]);
    let read = rt.call::<Archive>("b", ArchiveMsg::ReadCold("old/".into())).await.unwrap().unwrap();
    assert_eq!(read, expected, "unwritten changes count, a deletion too");

    clock.advance(Duration::from_secs(11));
    rt.maintain().await;
    rt.flush_all().await;
    assert_eq!(store.get(b"e/archive/b\x01old/1").await.unwrap().unwrap().value, b"changed");
    assert!(store.get(b"e/archive/b\x01old/2").await.unwrap().is_none());
    let read = rt.call::<Archive>("b", ArchiveMsg::ReadCold("old/".into())).await.unwrap().unwrap();
    assert_eq!(read, expected, "the same once written");
    let none = rt.call::<Archive>("b", ArchiveMsg::ReadCold("older/".into())).await.unwrap().unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn a_key_with_a_control_character_is_refused() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    rt.call::<Archive>("c", put("old/1", "secret", true)).await.unwrap().unwrap();
    for key in ["c\u{1}old/1", "c\0old/1", "line\nbreak"] {
        match rt.call::<Archive>(key, ArchiveMsg::InMemory).await {
            Err(CallError::BadKey(k)) => assert_eq!(k, key),
            other => panic!("{key:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_part_dropped_from_memory_reads_back_hot_or_cold_written_or_not() {
    let clock = ManualClock::default();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let rt = runtime(store.clone(), &clock);
    let read = |name: &str| rt.call::<Archive>("d", ArchiveMsg::ReadPart(name.into()));
    rt.call::<Archive>("d", put("now/1", "on disk", true)).await.unwrap().unwrap();
    rt.call::<Archive>("d", put("old/1", "cold on disk", true)).await.unwrap().unwrap();
    rt.call::<Archive>("d", put("now/3", "deleted", true)).await.unwrap().unwrap();
    rt.call::<Archive>("d", put("now/2", "unwritten", false)).await.unwrap().unwrap();
    rt.call::<Archive>("d", ArchiveMsg::Delete("now/3".into())).await.unwrap().unwrap();
    for name in ["now/1", "old/1", "now/2"] {
        rt.call::<Archive>("d", ArchiveMsg::Evict(name.into())).await.unwrap().unwrap();
    }
    assert!(store.get(b"e/archive/d\0now/2").await.unwrap().is_none(), "not written yet");
    assert!(store.get(b"e/archive/d\0now/3").await.unwrap().is_some(), "the deletion is not written yet");

    assert_eq!(read("now/1").await.unwrap().unwrap(), pairs(&[("now/1", "on disk")]));
    assert_eq!(read("old/1").await.unwrap().unwrap(), pairs(&[("old/1", "cold on disk")]), "from its own place");
    assert_eq!(read("now/2").await.unwrap().unwrap(), pairs(&[("now/2", "unwritten")]));
    assert!(read("now/3").await.unwrap().unwrap().is_empty(), "an unwritten deletion counts");
    assert!(read("now/4").await.unwrap().unwrap().is_empty(), "never written");
}
