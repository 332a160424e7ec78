//! An entity's mailbox: a bounded, single-consumer queue.
//!
//! Every live entity has one, so its idle size counts once per player. A
//! tokio bounded channel allocates its first block of 32 slots and a
//! semaphore up front, about 790 bytes per entity in a heap profile at 8,000
//! players; this one is a mutex-guarded `VecDeque` (empty until the first
//! letter) and two `Notify`s, about 150 bytes.
//!
//! Semantics are the ones the host relies on: FIFO; `send` waits while the
//! mailbox is full and gives the value back once it is closed; `recv` is
//! cancel-safe (it sits in a `select!`): a letter is only taken out of the
//! queue by the poll that returns it; `close` refuses new letters while those
//! already queued can still be received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

struct Queue<T> {
    letters: VecDeque<T>,
    closed: bool,
}

struct Inner<T> {
    queue: Mutex<Queue<T>>,
    capacity: usize,
    /// Wakes the receiver: a letter arrived, or the mailbox was closed.
    arrived: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
}

impl<T> Inner<T> {
    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // A panic while holding this lock leaves the queue itself intact.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending side; the entity's slot holds it.
pub struct Sender<T> {
    inner: Arc<Inner<T>>,
}

/// The receiving side; the entity's task owns it.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
}

/// Why [`Sender::try_send`] did not queue the value (which it gives back).
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    Full(T),
    Closed(T),
}

/// A mailbox holding at most `capacity` letters.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        queue: Mutex::new(Queue { letters: VecDeque::new(), closed: false }),
        capacity: capacity.max(1),
        arrived: Notify::new(),
        room: Notify::new(),
    });
    (Sender { inner: inner.clone() }, Receiver { inner })
}

impl<T> Sender<T> {
    /// Queues `value`, waiting while the mailbox is full; gives it back if
    /// the mailbox is (or gets) closed.
    pub async fn send(&self, mut value: T) -> Result<(), T> {
        loop {
            let room = self.inner.room.notified();
            tokio::pin!(room);
            // Registered before the check, so a letter taken between the
            // check and the wait still wakes us.
            room.as_mut().enable();
            match self.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(v),
                Err(TrySendError::Full(v)) => value = v,
            }
            room.await;
        }
    }

    /// Queues `value` if there is room and the mailbox is open.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut q = self.inner.lock();
        if q.closed {
            return Err(TrySendError::Closed(value));
        }
        if q.letters.len() >= self.inner.capacity {
            return Err(TrySendError::Full(value));
        }
        q.letters.push_back(value);
        drop(q);
        // Stores a permit if the receiver is not waiting yet.
        self.inner.arrived.notify_one();
        Ok(())
    }

    /// Letters waiting to be received.
    pub fn depth(&self) -> usize {
        self.inner.lock().letters.len()
    }
}

impl<T> Receiver<T> {
    /// The next letter; `None` once the mailbox is closed and empty.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            {
                let mut q = self.inner.lock();
                if let Some(letter) = q.letters.pop_front() {
                    drop(q);
                    self.inner.room.notify_one();
                    return Some(letter);
                }
                if q.closed {
                    return None;
                }
            }
            // A send after the check above left a permit: this returns at once.
            self.inner.arrived.notified().await;
        }
    }

    /// The next letter if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
        let letter = self.inner.lock().letters.pop_front();
        if letter.is_some() {
            self.inner.room.notify_one();
        }
        letter
    }

    /// Refuses new letters; those already queued can still be received.
    pub fn close(&mut self) {
        self.inner.lock().closed = true;
        // Senders waiting for room must see the mailbox closed.
        self.inner.room.notify_waiters();
    }
}

/// Letters still queued are dropped with the receiver, so that a caller
/// waiting on a reply inside one hears at once that none will come, not
/// when its call times out.
impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
        let queued = std::mem::take(&mut self.inner.lock().letters);
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn letters_arrive_in_order() {
        let (tx, mut rx) = channel(8);
        for i in 0..5 {
            tx.send(i).await.unwrap();
        }
        assert_eq!(tx.depth(), 5);
        for i in 0..5 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn a_full_mailbox_makes_senders_wait_for_room() {
        let (tx, mut rx) = channel(2);
        let tx = Arc::new(tx);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(3).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "no room yet");
        assert_eq!(rx.recv().await, Some(1));
        waiting.await.unwrap().unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn closing_refuses_new_letters_but_delivers_queued_ones() {
        let (tx, mut rx) = channel(4);
        tx.send("a").await.unwrap();
        rx.close();
        assert_eq!(tx.send("b").await, Err("b"));
        assert_eq!(tx.try_send("c"), Err(TrySendError::Closed("c")));
        assert_eq!(rx.recv().await, Some("a"));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_sender_waiting_for_room_gets_its_letter_back_on_close() {
        let (tx, mut rx) = channel(1);
        let tx = Arc::new(tx);
        tx.send(1).await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(2).await }
        });
        tokio::task::yield_now().await;
        rx.close();
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap(), Err(2));
    }

    #[tokio::test]
    async fn recv_wakes_for_a_letter_sent_while_it_waits() {
        let (tx, mut rx) = channel(4);
        let receiver = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        tx.send(7).await.unwrap();
        assert_eq!(tokio::time::timeout(Duration::from_secs(5), receiver).await.unwrap().unwrap(), Some(7));
    }

    #[tokio::test]
    async fn a_cancelled_recv_loses_nothing() {
        let (tx, mut rx) = channel(4);
        // Cancelled while waiting: nothing was taken.
        tokio::select! {
            biased;
            _ = rx.recv() => panic!("nothing to receive"),
            _ = std::future::ready(()) => {}
        }
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        // The other branch wins: the letter stays for the next recv.
        tokio::select! {
            biased;
            _ = std::future::ready(()) => {}
            _ = rx.recv() => panic!("the biased branch goes first"),
        }
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
    }

    #[test]
    fn an_idle_mailbox_is_small() {
        let (tx, _rx) = channel::<Box<u64>>(64);
        // The shared part, allocated once per entity; the queue allocates
        // only when the first letter arrives.
        let shared = std::mem::size_of::<Inner<Box<u64>>>();
        assert!(shared <= 200, "{shared} bytes");
        assert_eq!(tx.inner.lock().letters.capacity(), 0);
    }
}
