//! The task that runs one instance: activation, the mailbox loop, durable
//! writes shared by the calls queued behind them, passivation, stepping
//! down when stale, and recovery from a panicking handler.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::host::{KindHost, Letter, Reply, Slot};
use crate::instance::{load_instance, write_behind_stale, Instance};
use crate::mailbox;
use crate::{CallError, Ctx, Entity, EntityId, Runtime};

/// Most calls handled before one shared durable write (see `run_entity`):
/// bounds how long the first of them waits for its reply.
const MAX_CALLS_PER_WRITE: usize = 64;

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
        let timer = slot.timer();
        let unwritten = if E::READS_PARTS {
            [Some(inst.parts.clone()), inst.inflight.as_ref().map(|f| f.parts.clone())]
        } else {
            [None, None]
        };
        let mut ctx = Ctx::new(id.clone(), rt.clone(), timer, unwritten, E::is_cold_part);
        // Inline: this whole step is boxed by the caller.
        let answer = inst.state.handle(msg, &mut ctx).await;
        // The context shares the instance's unwritten parts: take what the
        // handler decided and let it go before they change (no copy then).
        let (ctx_timer, ctx_durable, ctx_stop, ctx_changed) = (ctx.timer, ctx.durable, ctx.stop, ctx.changed);
        drop(ctx);
        // Written back only when the handler changed it: most kinds never
        // set one, and a timer that fired meanwhile stays cleared.
        if ctx_timer != timer {
            slot.set_timer(ctx_timer);
        }
        let part_changes = if E::HAS_PARTS { inst.state.take_part_changes() } else { Vec::new() };
        let parts_changed = !part_changes.is_empty();
        if parts_changed {
            std::sync::Arc::make_mut(&mut inst.parts).extend(part_changes);
        }
        if ctx_changed || parts_changed {
            if !inst.dirty {
                slot.dirty_since.store(rt.now_ms().max(1), Ordering::Relaxed);
            }
            inst.dirty = true;
            slot.dirty.store(true, Ordering::Relaxed);
        }
        durable |= ctx_durable;
        batch.push((reply, answer, ctx_durable));
        if ctx_stop {
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
pub(crate) fn run_entity<E: Entity>(
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
            let mut ctx = Ctx::new(id.clone(), rt.clone(), None, [None, None], E::is_cold_part);
            inst.state.activated(&mut ctx);
            slot.set_timer(ctx.timer);
        }
        if E::HAS_PARTS {
            // Loading may have changed parts (a migration from an older layout).
            let changes = inst.state.take_part_changes();
            if !changes.is_empty() {
                std::sync::Arc::make_mut(&mut inst.parts).extend(changes);
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
