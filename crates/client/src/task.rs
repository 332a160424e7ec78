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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::{method, Status};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{status_from_wire, ClientError};
use crate::event::ClientEvent;
use crate::seq::{SeqCheck, SeqTracker};
use crate::shared::{SessionInfo, Shared};
use crate::stats::bump;

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

/// How the task treats a request's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallKind {
    Normal,
    /// `auth.login`: an OK answer starts a new session.
    Login,
    /// `auth.logout`: an OK answer ends the session.
    Logout,
    /// `auth.resume`: re-attaches a session; calls wait for its answer.
    Resume,
}

impl CallKind {
    fn of(method: &str) -> Self {
        match method {
            method::LOGIN => CallKind::Login,
            method::LOGOUT => CallKind::Logout,
            method::RESUME => CallKind::Resume,
            _ => CallKind::Normal,
        }
    }
}

struct Pending {
    method: String,
    payload: Bytes,
    kind: CallKind,
    /// None for the task's own resume requests.
    reply: Option<Reply>,
    /// Generation of the connection it was last written to, if any.
    sent_gen: Option<u64>,
}

impl Pending {
    fn answer(self, result: Result<Bytes, ClientError>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }
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

#[derive(Debug, Clone, Copy)]
struct Reconnect {
    /// When the connection was lost: the resume window counts from here.
    since: Instant,
    /// Attempts made so far after this loss.
    attempt: u32,
}

/// Why the connection went away.
#[derive(Debug)]
enum Loss {
    Eof,
    Io(ClientError),
    Close(Status, String),
    /// `drop_connection` / `send_and_drop`.
    Hook,
    /// A hole in the sequence numbers: resume to get the missing messages.
    Gap,
    ResumeTimeout,
    /// The server refused a resume with a status worth retrying.
    ResumeRefused(Status),
}

/// Close statuses after which reconnecting is wrong: another device owns the
/// session now, or this client sends frames the server rejects (a retry
/// would send them again).
fn is_terminal_close(status: Status) -> bool {
    matches!(status, Status::SessionTakenOver | Status::FrameTooLarge | Status::MalformedFrame)
}

/// Resume refusals that mean the session is gone for good.
fn is_session_loss(status: Status) -> bool {
    matches!(status, Status::SessionExpired | Status::ReplayGap | Status::TokenExpired | Status::TokenInvalid)
}

fn request_frame_len(method: &str, payload: &Bytes, id: u64) -> usize {
    // The largest ack that may ride on it, so the size check is never short.
    let req = pb::Request { id, method: method.to_string(), payload: payload.clone(), ack: u64::MAX };
    let n = req.encoded_len();
    1 + prost::encoding::encoded_len_varint(n as u64) + n
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

    // ------------------------------------------------------------ sending --

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends one envelope on the current connection; a failure is a loss.
    async fn send(&mut self, kind: Kind) {
        let Some(conn) = self.conn.as_mut() else { return };
        if let Err(e) = conn.send(kind).await {
            self.lose(Loss::Io(e));
        }
    }

    fn can_send_calls(&self) -> bool {
        self.conn.is_some() && matches!(self.phase, Phase::Open)
    }

    /// Writes pending request `id` to the current connection.
    async fn send_pending(&mut self, id: u64) {
        let (now, gen, attached) = (Instant::now(), self.conn_gen, self.attached);
        let Some(p) = self.pending.get_mut(&id) else { return };
        if p.kind == CallKind::Resume && !attached {
            // From here until its answer, replayed messages arrive and other
            // calls wait. Sequence tracking restarts from the resume point.
            if let Ok(req) = pb::ResumeRequest::decode(p.payload.clone()) {
                self.seq.rebase(req.last_seq);
                self.shared.set_last_seq(req.last_seq);
                self.resume_token = Some(req.token);
            }
            self.phase = Phase::Resuming { id, replayed: 0, deadline: now + self.cfg.request_timeout };
        }
        let retransmit = p.sent_gen.is_some();
        p.sent_gen = Some(gen);
        // The ack rides on the request: no Ack frame of its own.
        let ack = if attached && self.seq.unacked() { self.seq.take_ack() } else { 0 };
        let req = pb::Request { id, method: p.method.clone(), payload: p.payload.clone(), ack };
        if retransmit {
            bump(&self.shared.stats.retransmits);
            tracing::debug!(id, method = %req.method, "re-sending unanswered request");
        }
        self.send(Kind::Request(req)).await;
    }

    /// Sends, in id order, every pending request not yet written to the
    /// current connection (re-sends after a resume, calls held during one).
    /// Calls whose caller gave up are forgotten instead.
    async fn flush_unsent(&mut self) {
        self.pending.retain(|_, p| !p.abandoned());
        let gen = self.conn_gen;
        let ids: Vec<u64> = self.pending.iter().filter(|(_, p)| p.sent_gen != Some(gen)).map(|(id, _)| *id).collect();
        for id in ids {
            if !self.can_send_calls() {
                break;
            }
            self.send_pending(id).await;
        }
    }

    async fn send_ack(&mut self) {
        if self.attached && self.conn.is_some() && self.seq.unacked() {
            let seq = self.seq.take_ack();
            self.send(Kind::Ack(pb::Ack { seq })).await;
        }
    }

    async fn maybe_ack(&mut self) {
        if self.attached && self.seq.ack_due(self.cfg.ack_every) {
            self.send_ack().await;
        }
    }

    // ------------------------------------------------------------ commands --

    async fn on_command(&mut self, cmd: Option<Command>) {
        let Some(cmd) = cmd else {
            // Every handle is gone: nobody can use the client any more.
            if let Some(conn) = self.conn.as_mut() {
                conn.shutdown().await;
            }
            self.finish(ClientError::Closed { status: Status::Ok, reason: "client dropped".into() });
            return;
        };
        match cmd {
            Command::Call { method, payload, reply, drop_after } => {
                self.on_call(method, payload, reply, drop_after).await
            }
            Command::Resume { reply } => self.on_manual_resume(reply).await,
            Command::Ping { reply } => {
                if !self.can_send_calls() && !matches!(self.phase, Phase::Resuming { .. }) {
                    let _ = reply.send(Err(ClientError::Disconnected));
                    return;
                }
                let nonce = self.next_nonce;
                self.next_nonce += 1;
                self.pings.insert(nonce, (Instant::now(), reply));
                self.send(Kind::Ping(pb::Ping { nonce })).await;
            }
            Command::DropConnection { done } => {
                self.lose(Loss::Hook);
                if let Some(loss) = self.lost.take() {
                    self.handle_loss(loss);
                }
                let _ = done.send(());
            }
            Command::Close { done } => {
                if let Some(conn) = self.conn.as_mut() {
                    conn.shutdown().await;
                }
                self.finish(ClientError::Closed { status: Status::Ok, reason: "closed by the client".into() });
                let _ = done.send(());
            }
        }
    }

    async fn on_call(&mut self, method: String, payload: Bytes, reply: Reply, drop_after: bool) {
        let len = request_frame_len(&method, &payload, self.next_id);
        if len > self.cfg.max_frame {
            let msg = format!("request of {len} bytes exceeds the maximum frame of {} bytes", self.cfg.max_frame);
            let _ = reply.send(Err(ClientError::Protocol(msg)));
            return;
        }
        if matches!(self.phase, Phase::Idle) {
            if let Err(e) = self.open_connection().await {
                let _ = reply.send(Err(e));
                return;
            }
        }
        let id = self.alloc_id();
        let kind = CallKind::of(&method);
        self.pending.insert(id, Pending { method, payload, kind, reply: Some(reply), sent_gen: None });
        // Otherwise it waits for the resume (or the reconnect) to finish.
        if self.can_send_calls() {
            self.send_pending(id).await;
            if drop_after {
                self.lose(Loss::Hook);
            }
        }
    }

    async fn on_manual_resume(&mut self, reply: Reply) {
        let refuse = |reply: Reply, msg: &str| {
            let _ = reply.send(Err(ClientError::Protocol(msg.to_string())));
        };
        if self.token.is_none() {
            return refuse(reply, "no session to resume: log in first");
        }
        if self.attached {
            return refuse(reply, "the session is attached to the current connection already");
        }
        match self.phase {
            Phase::Reconnecting => return refuse(reply, "a reconnect is in progress"),
            Phase::Resuming { .. } => return refuse(reply, "a resume is in progress"),
            Phase::Idle => {
                if let Err(e) = self.open_connection().await {
                    let _ = reply.send(Err(e));
                    return;
                }
            }
            Phase::Open => {}
        }
        self.start_resume(Some(reply)).await;
    }

    /// Sends `auth.resume` for our session on the current connection.
    async fn start_resume(&mut self, reply: Option<Reply>) {
        let Some(token) = self.token.clone() else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(ClientError::Protocol("no session to resume".into())));
            }
            return;
        };
        let payload = pb::ResumeRequest { token, last_seq: self.seq.last() }.encode_to_vec();
        let id = self.alloc_id();
        tracing::debug!(id, last_seq = self.seq.last(), "resuming session");
        let pending = Pending {
            method: method::RESUME.into(),
            payload: payload.into(),
            kind: CallKind::Resume,
            reply,
            sent_gen: None,
        };
        self.pending.insert(id, pending);
        self.send_pending(id).await;
    }

    async fn on_tick(&mut self) {
        self.send_ack().await;
        // Forget calls whose caller timed out: no point re-sending them.
        self.pending.retain(|_, p| p.kind == CallKind::Resume || !p.abandoned());
        self.pings.retain(|_, (_, tx)| !tx.is_closed());
    }

    // ------------------------------------------------------------ messages --

    async fn on_message(&mut self, kind: Kind) {
        match kind {
            Kind::Response(r) => self.on_response(r).await,
            Kind::Push(p) => self.on_push(p).await,
            Kind::Ping(p) => self.send(Kind::Pong(pb::Pong { nonce: p.nonce })).await,
            Kind::Pong(p) => {
                if let Some((sent, reply)) = self.pings.remove(&p.nonce) {
                    let _ = reply.send(Ok(sent.elapsed()));
                }
            }
            Kind::Close(c) => {
                let status = status_from_wire(c.status);
                tracing::debug!(?status, reason = %c.reason, "server closes the connection");
                self.shared.emit(ClientEvent::CloseReceived(status, c.reason.clone()));
                self.lose(Loss::Close(status, c.reason));
            }
            Kind::Ack(_) | Kind::Request(_) => tracing::debug!("ignoring a client-only message from the server"),
        }
    }

    /// Applies the sequence rules to `seq`; false when the message must not
    /// be processed (a duplicate, or a gap being resynchronised).
    fn accept_seq(&mut self, seq: u64, is_resume_answer: bool) -> bool {
        if seq == 0 {
            return true;
        }
        match self.seq.observe(seq) {
            SeqCheck::Next => {
                if let Phase::Resuming { replayed, .. } = &mut self.phase {
                    if !is_resume_answer {
                        *replayed += 1;
                    }
                }
            }
            SeqCheck::Duplicate => {
                bump(&self.shared.stats.duplicates);
                return false;
            }
            SeqCheck::Gap => {
                let last = self.seq.last();
                if self.logged_in && self.cfg.auto_reconnect && self.gap_guard != Some(last) {
                    tracing::warn!(
                        expected = last + 1,
                        got = seq,
                        "sequence gap: resuming to get the missing messages"
                    );
                    self.gap_guard = Some(last);
                    self.lose(Loss::Gap);
                    return false;
                }
                tracing::warn!(expected = last + 1, got = seq, "sequence gap: accepting it");
                self.seq.jump(seq);
            }
        }
        self.shared.set_last_seq(self.seq.last());
        true
    }

    async fn on_push(&mut self, push: pb::Push) {
        if !self.accept_seq(push.seq, false) {
            return;
        }
        bump(&self.shared.stats.pushes);
        self.shared.trim_untaken_pushes(self.cfg.max_buffered_pushes);
        let _ = self.push_tx.send(push);
        self.maybe_ack().await;
    }

    async fn on_response(&mut self, r: pb::Response) {
        let status = status_from_wire(r.status);
        let kind = self.pending.get(&r.id).map(|p| p.kind);
        let is_resume_answer = matches!(self.phase, Phase::Resuming { id, .. } if id == r.id);
        if kind == Some(CallKind::Login) && status == Status::Ok {
            // A new session: its sequence starts over with this response.
            self.seq.restart(r.seq);
            self.gap_guard = None;
            self.shared.set_last_seq(r.seq);
        } else if !self.accept_seq(r.seq, is_resume_answer) {
            return;
        }
        let Some(p) = self.pending.remove(&r.id) else {
            // Already answered (or given up by its caller): one result per call.
            bump(&self.shared.stats.duplicates);
            self.maybe_ack().await;
            return;
        };
        let payload = r.payload;
        match p.kind {
            CallKind::Resume if is_resume_answer => self.on_resume_answer(p, status, r.message, payload).await,
            _ if status != Status::Ok => p.answer(Err(ClientError::Status { status, message: r.message })),
            CallKind::Login => self.on_login(p, payload).await,
            CallKind::Logout => {
                self.end_session();
                p.answer(Ok(payload));
            }
            CallKind::Normal | CallKind::Resume => p.answer(Ok(payload)),
        }
        self.maybe_ack().await;
    }

    async fn on_login(&mut self, p: Pending, payload: Bytes) {
        let login = match pb::LoginResponse::decode(payload.clone()) {
            Ok(l) => l,
            Err(e) => return p.answer(Err(ClientError::Decode(e))),
        };
        self.logged_in = true;
        self.attached = true;
        self.reconnect = None;
        self.token = Some(login.token.clone());
        self.resume_window = match login.resume_window_ms {
            0 => self.cfg.default_resume_window,
            ms => Duration::from_millis(ms),
        };
        *self.shared.session() = SessionInfo {
            player_id: Some(login.player_id.clone()),
            token: Some(login.token.clone()),
            token_expires_at_ms: login.token_expires_at_ms,
            resume_window_ms: login.resume_window_ms,
        };
        self.shared.set_logged_in(true);
        // No Ack of the login answer here: the next request carries it.
        p.answer(Ok(payload));
        self.shared.emit(ClientEvent::LoggedIn { player_id: login.player_id });
    }

    /// Logged out: no session to resume any more.
    fn end_session(&mut self) {
        self.logged_in = false;
        self.attached = false;
        self.reconnect = None;
        self.token = None;
        *self.shared.session() = SessionInfo::default();
        self.shared.set_logged_in(false);
    }

    async fn on_resume_answer(&mut self, p: Pending, status: Status, message: String, payload: Bytes) {
        let replayed = match self.phase {
            Phase::Resuming { replayed, .. } => replayed,
            _ => 0,
        };
        self.phase = Phase::Open;
        if status == Status::Ok {
            let resumed = match pb::ResumeResponse::decode(payload.clone()) {
                Ok(r) => r,
                Err(e) => {
                    p.answer(Err(ClientError::Decode(e)));
                    self.lose(Loss::Io(ClientError::Protocol("undecodable ResumeResponse".into())));
                    return;
                }
            };
            self.logged_in = true;
            self.attached = true;
            self.reconnect = None;
            if let Some(token) = self.resume_token.take() {
                self.token = Some(token);
            }
            {
                let mut info = self.shared.session();
                info.player_id = Some(resumed.player_id.clone());
                info.token = self.token.clone();
            }
            self.shared.set_logged_in(true);
            bump(&self.shared.stats.resumes);
            tracing::debug!(replayed, replayed_to = resumed.replayed_to, "session resumed");
            self.send_ack().await;
            p.answer(Ok(payload));
            self.flush_unsent().await;
            self.shared.emit(ClientEvent::Resumed { replayed });
        } else if is_session_loss(status) {
            self.session_lost(status, message, p);
        } else if p.reply.is_some() {
            // A resume asked for by the application: its answer is the error.
            p.answer(Err(ClientError::Status { status, message }));
            self.flush_unsent().await;
        } else {
            tracing::debug!(?status, %message, "resume refused; retrying");
            self.lose(Loss::ResumeRefused(status));
        }
    }

    /// The session cannot be resumed: every pending call fails (a pending
    /// logout succeeds: its session is gone, as it wanted).
    fn session_lost(&mut self, status: Status, message: String, resume: Pending) {
        tracing::info!(?status, %message, "session lost");
        self.logged_in = false;
        self.attached = false;
        self.reconnect = None;
        self.resume_token = None;
        self.shared.set_logged_in(false);
        bump(&self.shared.stats.session_losses);
        let err = ClientError::SessionLost { status, message: message.clone() };
        resume.answer(Err(err.clone()));
        for (_, p) in std::mem::take(&mut self.pending) {
            if p.kind == CallKind::Logout {
                p.answer(Ok(Bytes::new()));
            } else {
                p.answer(Err(err.clone()));
            }
        }
        self.shared.emit(ClientEvent::SessionLost(status, message));
    }

    // ---------------------------------------------------- connection loss --

    /// Drops the connection; the consequences are handled by
    /// [`handle_loss`](Self::handle_loss) from the main loop.
    fn lose(&mut self, loss: Loss) {
        if self.conn.take().is_some() && self.lost.is_none() {
            self.lost = Some(loss);
        }
    }

    fn handle_loss(&mut self, loss: Loss) {
        match &loss {
            Loss::Io(e) => tracing::debug!(error = %e, "connection broke"),
            Loss::ResumeRefused(status) => tracing::debug!(?status, "connection dropped after a refused resume"),
            other => tracing::debug!(loss = ?other, "connection lost"),
        }
        self.attached = false;
        for (_, (_, reply)) in self.pings.drain() {
            let _ = reply.send(Err(ClientError::Disconnected));
        }
        if let Phase::Resuming { id, .. } = self.phase {
            if let Some(p) = self.pending.remove(&id) {
                let err = match loss {
                    Loss::ResumeTimeout => ClientError::Timeout,
                    _ => ClientError::Disconnected,
                };
                p.answer(Err(err));
            }
        }
        self.shared.emit(ClientEvent::Disconnected);
        if let Loss::Close(status, reason) = &loss {
            if is_terminal_close(*status) {
                self.finish(ClientError::Closed { status: *status, reason: reason.clone() });
                return;
            }
        }
        if self.logged_in && self.cfg.auto_reconnect {
            self.reconnect = Some(match self.reconnect {
                Some(r) => Reconnect { attempt: r.attempt + 1, ..r },
                None => Reconnect { since: Instant::now(), attempt: 0 },
            });
            self.phase = Phase::Reconnecting;
        } else {
            let err = match loss {
                Loss::Close(status, reason) => ClientError::Closed { status, reason },
                _ => ClientError::Disconnected,
            };
            self.fail_all(err);
            self.reconnect = None;
            self.phase = Phase::Idle;
        }
    }

    fn fail_all(&mut self, err: ClientError) {
        for (_, p) in std::mem::take(&mut self.pending) {
            p.answer(Err(err.clone()));
        }
    }

    /// Makes a new connection the current one.
    fn install(&mut self, conn: Connection) {
        self.conn = Some(conn);
        self.conn_gen += 1;
        self.attached = false;
        self.phase = Phase::Open;
        self.shared.emit(ClientEvent::Connected);
    }

    fn connect_future(&self) -> impl std::future::Future<Output = Result<Connection, ClientError>> + use<> {
        let (endpoint, local, max_frame, limit) =
            (self.cfg.endpoint.clone(), self.cfg.local_addr, self.cfg.max_frame, self.cfg.connect_timeout);
        async move {
            tokio::time::timeout(limit, Connection::connect(&endpoint, local, max_frame))
                .await
                .map_err(|_| ClientError::Timeout)?
        }
    }

    /// Connects on demand (a call while `Idle`).
    async fn open_connection(&mut self) -> Result<(), ClientError> {
        let conn = self.connect_future().await?;
        self.install(conn);
        Ok(())
    }

    /// One reconnect attempt: wait the backoff delay, connect, send the
    /// resume. Commands keep being served meanwhile (calls are queued).
    async fn reconnect_step(&mut self) {
        let Some(rc) = self.reconnect else {
            self.phase = Phase::Idle;
            return;
        };
        let limit = self.cfg.max_reconnect_attempts.unwrap_or(u32::MAX);
        if rc.attempt >= limit || rc.since.elapsed() >= self.resume_window {
            return self.give_up(rc.attempt);
        }
        let wake_at = Instant::now() + self.cfg.backoff.delay(rc.attempt);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => break,
                cmd = self.cmd_rx.recv() => {
                    self.on_command(cmd).await;
                    if self.done {
                        return;
                    }
                }
            }
        }
        let connect = self.connect_future();
        tokio::pin!(connect);
        let result = loop {
            tokio::select! {
                r = &mut connect => break r,
                cmd = self.cmd_rx.recv() => {
                    self.on_command(cmd).await;
                    if self.done {
                        return;
                    }
                }
            }
        };
        match result {
            Ok(conn) => {
                bump(&self.shared.stats.reconnects);
                self.install(conn);
                self.start_resume(None).await;
            }
            Err(e) => {
                tracing::debug!(attempt = rc.attempt, error = %e, "reconnect attempt failed");
                if let Some(r) = self.reconnect.as_mut() {
                    r.attempt += 1;
                }
            }
        }
    }

    fn give_up(&mut self, attempts: u32) {
        tracing::info!(attempts, "could not reconnect within the resume window; giving up");
        self.reconnect = None;
        self.phase = Phase::Idle;
        self.logged_in = false;
        self.shared.set_logged_in(false);
        self.fail_all(ClientError::Disconnected);
        self.shared.emit(ClientEvent::ReconnectFailed { attempts });
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
