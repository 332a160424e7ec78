//! Request tracking and sending: the calls waiting for their answer, in id
//! order, and how they (and acks riding on them) are written to the
//! current connection, re-sent after a resume included.

use bytes::Bytes;
use guildhall_protocol::method;
use guildhall_protocol::pb::{self, envelope::Kind};
use prost::Message;
use tokio::time::Instant;

use super::connection::Loss;
use super::{Phase, Reply, Task};
use crate::error::ClientError;
use crate::stats::bump;

/// How the task treats a request's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallKind {
    Normal,
    /// `auth.login`: an OK answer starts a new session.
    Login,
    /// `auth.logout`: an OK answer ends the session.
    Logout,
    /// `auth.resume`: re-attaches a session; calls wait for its answer.
    Resume,
}

impl CallKind {
    pub(super) fn of(method: &str) -> Self {
        match method {
            method::LOGIN => CallKind::Login,
            method::LOGOUT => CallKind::Logout,
            method::RESUME => CallKind::Resume,
            _ => CallKind::Normal,
        }
    }
}

pub(super) struct Pending {
    pub(super) method: String,
    pub(super) payload: Bytes,
    pub(super) kind: CallKind,
    /// None for the task's own resume requests.
    pub(super) reply: Option<Reply>,
    /// Generation of the connection it was last written to, if any.
    pub(super) sent_gen: Option<u64>,
}

impl Pending {
    pub(super) fn answer(self, result: Result<Bytes, ClientError>) {
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    pub(super) fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_closed())
    }
}

pub(super) fn request_frame_len(method: &str, payload: &Bytes, id: u64) -> usize {
    // The largest ack that may ride on it, so the size check is never short.
    let req = pb::Request { id, method: method.to_string(), payload: payload.clone(), ack: u64::MAX };
    let n = req.encoded_len();
    1 + prost::encoding::encoded_len_varint(n as u64) + n
}

impl Task {
    pub(super) fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends one envelope on the current connection; a failure is a loss.
    pub(super) async fn send(&mut self, kind: Kind) {
        let Some(conn) = self.conn.as_mut() else { return };
        if let Err(e) = conn.send(kind).await {
            self.lose(Loss::Io(e));
        }
    }

    pub(super) fn can_send_calls(&self) -> bool {
        self.conn.is_some() && matches!(self.phase, Phase::Open)
    }

    /// Writes pending request `id` to the current connection.
    pub(super) async fn send_pending(&mut self, id: u64) {
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
    pub(super) async fn flush_unsent(&mut self) {
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

    pub(super) async fn send_ack(&mut self) {
        if self.attached && self.conn.is_some() && self.seq.unacked() {
            let seq = self.seq.take_ack();
            self.send(Kind::Ack(pb::Ack { seq })).await;
        }
    }

    pub(super) async fn maybe_ack(&mut self) {
        if self.attached && self.seq.ack_due(self.cfg.ack_every) {
            self.send_ack().await;
        }
    }
}
