//! Session resume: `auth.resume` re-attaches the session on a new
//! connection; the server replays what was missed, then the unanswered
//! calls are re-sent. A refusal either retries or loses the session.

use bytes::Bytes;
use guildhall_protocol::{method, pb, Status};
use prost::Message;

use super::connection::Loss;
use super::request::{CallKind, Pending};
use super::{Phase, Reply, Task};
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::stats::bump;

/// Resume refusals that mean the session is gone for good.
fn is_session_loss(status: Status) -> bool {
    matches!(status, Status::SessionExpired | Status::ReplayGap | Status::TokenExpired | Status::TokenInvalid)
}

impl Task {
    /// Sends `auth.resume` for our session on the current connection.
    pub(super) async fn start_resume(&mut self, reply: Option<Reply>) {
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

    pub(super) async fn on_resume_answer(&mut self, p: Pending, status: Status, message: String, payload: Bytes) {
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
}
