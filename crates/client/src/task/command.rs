//! The commands of the [`crate::Client`] handles: calls (connecting on
//! demand while idle), manual resume, pings, the test hooks, close; and the
//! periodic tick (acks, forgetting calls whose caller gave up).

use bytes::Bytes;
use guildhall_protocol::pb::{self, envelope::Kind};
use guildhall_protocol::Status;
use tokio::time::Instant;

use super::connection::Loss;
use super::request::{request_frame_len, CallKind, Pending};
use super::{Command, Phase, Reply, Task};
use crate::error::ClientError;

impl Task {
    pub(super) async fn on_command(&mut self, cmd: Option<Command>) {
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

    pub(super) async fn on_tick(&mut self) {
        self.send_ack().await;
        // Forget calls whose caller timed out: no point re-sending them.
        self.pending.retain(|_, p| p.kind == CallKind::Resume || !p.abandoned());
        self.pings.retain(|_, (_, tx)| !tx.is_closed());
    }
}
