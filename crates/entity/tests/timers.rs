//! Entity timers on the injected clock: a hub's periodic work runs where
//! the hub is hosted, fired by its runtime's maintenance.

use std::sync::Arc;
use std::time::Duration;

use guildhall_entity::{Ctx, Entity, ManualClock, Runtime, RuntimeConfig};
use guildhall_store::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ticker {
    ticks: u64,
    /// Ticks still wanted at once (each in the next round).
    burst: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum TickerMsg {
    /// Ticks every second from now on.
    Start,
    /// Then `n` more ticks right away.
    Burst(u64),
    Stop,
    Get,
    Tick,
}

impl Entity for Ticker {
    const KIND: &'static str = "ticker";
    type Msg = TickerMsg;
    type Reply = u64;

    fn create(_key: &str, _now_ms: u64) -> Self {
        Ticker::default()
    }

    fn timer_msg() -> Option<TickerMsg> {
        Some(TickerMsg::Tick)
    }

    async fn handle(&mut self, msg: TickerMsg, ctx: &mut Ctx) -> u64 {
        let now = ctx.now_ms();
        match msg {
            TickerMsg::Start => ctx.set_timer(now + 1000),
            TickerMsg::Burst(n) => {
                self.burst = n;
                ctx.set_timer(now);
            }
            TickerMsg::Stop => ctx.clear_timer(),
            TickerMsg::Get => ctx.unchanged(),
            TickerMsg::Tick => {
                assert_eq!(ctx.timer(), None, "a fired timer is cleared before its message");
                self.ticks += 1;
                if self.burst > 0 {
                    self.burst -= 1;
                    ctx.set_timer(now);
                } else {
                    ctx.set_timer(now + 1000);
                }
            }
        }
        self.ticks
    }
}

fn runtime(clock: &ManualClock) -> Runtime {
    let config = RuntimeConfig { idle_timeout: Duration::from_secs(10), ..RuntimeConfig::default() };
    Runtime::builder(Arc::new(MemoryStore::new()), Arc::new(clock.clone())).config(config).register::<Ticker>().build()
}

#[tokio::test]
async fn a_timer_fires_on_the_injected_clock_and_keeps_its_instance_active() {
    let clock = ManualClock::default();
    let rt = runtime(&clock);
    rt.call::<Ticker>("t", TickerMsg::Start).await.unwrap();
    rt.maintain().await;
    assert_eq!(rt.call::<Ticker>("t", TickerMsg::Get).await.unwrap(), 0, "not due yet");
    for second in 1..=30 {
        clock.advance(Duration::from_secs(1));
        rt.maintain().await;
        assert_eq!(rt.call::<Ticker>("t", TickerMsg::Get).await.unwrap(), second, "one tick a second");
    }
    // Both idle far past the idle timeout: the one without a timer
    // passivates, the one with a timer stays (passivation is asynchronous:
    // wait, boundedly, until the first is gone; the second was asked at the
    // same time if at all).
    rt.call::<Ticker>("idle", TickerMsg::Get).await.unwrap();
    clock.advance(Duration::from_secs(60));
    rt.maintain().await;
    let gone = async {
        while rt.entities("ticker").unwrap().iter().any(|e| e.key == "idle") {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone).await.expect("the idle instance passivates");
    assert!(rt.entities("ticker").unwrap().iter().any(|e| e.key == "t"), "a timer keeps its instance active");
    assert_eq!(rt.call::<Ticker>("t", TickerMsg::Get).await.unwrap(), 31, "and it went on ticking");
}

#[tokio::test]
async fn a_timer_set_for_now_fires_again_in_the_same_maintenance_a_few_rounds_at_most() {
    let clock = ManualClock::default();
    let rt = runtime(&clock);
    rt.call::<Ticker>("b", TickerMsg::Burst(10)).await.unwrap();
    rt.maintain().await;
    assert_eq!(rt.call::<Ticker>("b", TickerMsg::Get).await.unwrap(), 4, "four rounds in one maintenance");
    rt.maintain().await;
    assert_eq!(rt.call::<Ticker>("b", TickerMsg::Get).await.unwrap(), 8, "the rest in the next");
}
