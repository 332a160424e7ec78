//! Connection loss and reconnection: what a lost connection means for the
//! calls in flight, the reconnect loop with backoff inside the resume
//! window, and installing a new connection.

use guildhall_protocol::Status;
use tokio::time::Instant;

use super::{Phase, Task};
use crate::conn::Connection;
use crate::error::ClientError;
use crate::event::ClientEvent;
use crate::stats::bump;

#[derive(Debug, Clone, Copy)]
pub(super) struct Reconnect {
    /// When the connection was lost: the resume window counts from here.
    since: Instant,
    /// Attempts made so far after this loss.
    attempt: u32,
}

/// Why the connection went away.
#[derive(Debug)]
pub(super) enum Loss {
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
/// session now, an operator banned the account, or this client sends frames the server rejects (a retry
/// would send them again).
fn is_terminal_close(status: Status) -> bool {
    matches!(status, Status::SessionTakenOver | Status::Banned | Status::FrameTooLarge | Status::MalformedFrame)
}

impl Task {
    /// Drops the connection; the consequences are handled by
    /// [`handle_loss`](Self::handle_loss) from the main loop.
    pub(super) fn lose(&mut self, loss: Loss) {
        if self.conn.take().is_some() && self.lost.is_none() {
            self.lost = Some(loss);
        }
    }

    pub(super) fn handle_loss(&mut self, loss: Loss) {
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

    pub(super) fn fail_all(&mut self, err: ClientError) {
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
    pub(super) async fn open_connection(&mut self) -> Result<(), ClientError> {
        let conn = self.connect_future().await?;
        self.install(conn);
        Ok(())
    }

    /// One reconnect attempt: wait the backoff delay, connect, send the
    /// resume. Commands keep being served meanwhile (calls are queued).
    pub(super) async fn reconnect_step(&mut self) {
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
}
