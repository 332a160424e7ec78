//! The background task behind a [`crate::Client`]: it owns the connection
//! and is the only place where the session protocol lives.
//!
//! One task, one `select!` loop, no locks around protocol state: request ids,
//! the pending-request table, sequence tracking, acks, pings and the
//! reconnect/resume state machine are plain fields mutated in one place, so
//! their invariants hold by construction:
//!
//! * ids are assigned here, strictly increasing for the client's lifetime;
//! * a call is answered at most once: its entry leaves `pending` when the
//!   first response with its id arrives; later copies find nothing;
//! * sequenced messages are accepted in order only (`seq == last + 1`), so
//!   every push reaches the application once and in order, replays included;
//! * after a resume, unanswered requests are re-sent with their original ids
//!   in id order (the server remembers results by id and, per session,
//!   refuses ids older than the newest it has seen, so order matters).
//!
//! Phases: `Idle` (no connection, none wanted), `Open` (connected; logged in
//! or not), `Resuming` (connected, `auth.resume` sent, calls held back until
//! it is answered), `Reconnecting` (no connection, trying to get one back
//! with backoff). A lost connection while logged in with auto-reconnect goes
//! to `Reconnecting`; otherwise pending calls fail and the client goes `Idle`
//! and connects again lazily on the next call.
//!
//! The parts: request tracking and sending (`request`), the handle's
//! commands (`command`), incoming messages and their sequencing
//! (`message`), session resume (`resume`), and connection loss and
//! reconnection (`connection`).

mod command;
mod connection;
mod message;
mod request;
mod resume;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::Status;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::seq::SeqTracker;
use crate::shared::Shared;

use connection::{Loss, Reconnect};
use request::Pending;

/// Where a call's result goes: the response payload, or why there is none.
pub(crate) type Reply = oneshot::Sender<Result<Bytes, ClientError>>;

/// What a [`crate::Client`] handle asks of the task.
pub(crate) enum Command {
    /// Send a request; `drop_after` kills the connection right after writing
    /// it (test hook).
    Call { method: String, payload: Bytes, reply: Reply, drop_after: bool },
    /// Re-attach to the session by hand (`Client::resume`).
    Resume { reply: Reply },
    /// Measure a round trip with Ping/Pong.
    Ping { reply: oneshot::Sender<Result<Duration, ClientError>> },
    /// Kill the connection as a network failure would (test hook).
    DropConnection { done: oneshot::Sender<()> },
    /// End the client.
    Close { done: oneshot::Sender<()> },
}

enum Phase {
    Idle,
    Open,
    Resuming {
        id: u64,
        /// Sequenced messages received since the resume was sent.
        replayed: u64,
        deadline: Instant,
    },
    Reconnecting,
}

pub(crate) struct Task {
    cfg: ClientConfig,
    shared: Arc<Shared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    push_tx: mpsc::UnboundedSender<pb::Push>,
    conn: Option<Connection>,
    /// Incremented for every new connection.
    conn_gen: u64,
    phase: Phase,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    seq: SeqTracker,
    /// We hold a session (token and sequence state) that can be resumed.
    logged_in: bool,
    /// The current connection carries that session.
    attached: bool,
    token: Option<String>,
    /// The token of the resume in flight (adopted if it succeeds).
    resume_token: Option<String>,
    resume_window: Duration,
    reconnect: Option<Reconnect>,
    /// A loss noticed mid-operation, handled by the main loop.
    lost: Option<Loss>,
    /// `last` at the last gap we resynchronised for: a second gap at the
    /// same point is accepted instead of looping.
    gap_guard: Option<u64>,
    pings: HashMap<u64, (Instant, oneshot::Sender<Result<Duration, ClientError>>)>,
    next_nonce: u64,
    ack_tick: Interval,
    done: bool,
}

enum Wake {
    Msg(Result<Option<Kind>, ClientError>),
    Cmd(Option<Command>),
    Tick,
    ResumeTimeout,
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Task {
    pub fn new(
        cfg: ClientConfig,
        shared: Arc<Shared>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        push_tx: mpsc::UnboundedSender<pb::Push>,
        conn: Connection,
    ) -> Self {
        let period = cfg.ack_interval.max(Duration::from_millis(10));
        // No immediate first tick: nothing can be unacknowledged yet.
        let mut ack_tick = tokio::time::interval_at(Instant::now() + period, period);
        ack_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            resume_window: cfg.default_resume_window,
            cfg,
            shared,
            cmd_rx,
            push_tx,
            conn: Some(conn),
            conn_gen: 1,
            phase: Phase::Open,
            next_id: 1,
            pending: BTreeMap::new(),
            seq: SeqTracker::default(),
            logged_in: false,
            attached: false,
            token: None,
            resume_token: None,
            reconnect: None,
            lost: None,
            gap_guard: None,
            pings: HashMap::new(),
            next_nonce: 1,
            ack_tick,
            done: false,
        }
    }

    pub async fn run(mut self) {
        while !self.done {
            if matches!(self.phase, Phase::Reconnecting) {
                self.reconnect_step().await;
            } else {
                self.step().await;
            }
            if let Some(loss) = self.lost.take() {
                self.handle_loss(loss);
            }
        }
        tracing::debug!("client task ended");
    }

    /// Waits for one thing to happen (a message, a command, the ack timer)
    /// and handles it.
    async fn step(&mut self) {
        let resume_deadline = match self.phase {
            Phase::Resuming { deadline, .. } => Some(deadline),
            _ => None,
        };
        let wake = match self.conn.as_mut() {
            Some(conn) => tokio::select! {
                m = conn.recv() => Wake::Msg(m),
                c = self.cmd_rx.recv() => Wake::Cmd(c),
                _ = self.ack_tick.tick() => Wake::Tick,
                _ = sleep_until_opt(resume_deadline) => Wake::ResumeTimeout,
            },
            None => tokio::select! {
                c = self.cmd_rx.recv() => Wake::Cmd(c),
                _ = self.ack_tick.tick() => Wake::Tick,
            },
        };
        match wake {
            Wake::Msg(Ok(Some(kind))) => self.on_message(kind).await,
            Wake::Msg(Ok(None)) => self.lose(Loss::Eof),
            Wake::Msg(Err(e)) => self.lose(Loss::Io(e)),
            Wake::Cmd(c) => self.on_command(c).await,
            Wake::Tick => self.on_tick().await,
            Wake::ResumeTimeout => self.lose(Loss::ResumeTimeout),
        }
    }

    /// Ends the client: every pending and later call fails with `err`.
    fn finish(&mut self, err: ClientError) {
        if self.done {
            return;
        }
        self.done = true;
        self.conn = None;
        self.lost = None;
        self.phase = Phase::Idle;
        self.shared.set_terminal(err.clone());
        self.shared.set_logged_in(false);
        for (_, (_, reply)) in self.pings.drain() {
            let _ = reply.send(Err(err.clone()));
        }
        self.fail_all(err.clone());
        let (status, reason) = match &err {
            ClientError::Closed { status, reason } => (*status, reason.clone()),
            other => (Status::Ok, other.to_string()),
        };
        self.shared.emit(ClientEvent::Closed(status, reason));
    }
}
