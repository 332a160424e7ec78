//! Incoming messages: the sequence rules (in order, once; a gap resumes),
//! pushes handed to the application, and responses matched to their calls,
//! a login's or logout's answer starting or ending the session.

use std::time::Duration;

use bytes::Bytes;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::Status;
use prost::Message;

use super::connection::Loss;
use super::request::{CallKind, Pending};
use super::{Phase, Task};
use crate::error::{status_from_wire, ClientError};
use crate::event::ClientEvent;
use crate::seq::SeqCheck;
use crate::shared::SessionInfo;
use crate::stats::bump;

impl Task {
    pub(super) async fn on_message(&mut self, kind: Kind) {
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
}
